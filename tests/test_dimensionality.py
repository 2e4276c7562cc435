"""The 0123D metrics on constructed cases with known answers, the fragmentation checks, reading 0123D-style
files, the shipped set's determinism and ``orb-md dimensionality`` end to end with the bundled model."""

from __future__ import annotations

import json

import ase
import ase.db
import ase.io
import numpy as np
import pytest
from ase.build import bulk, fcc111, molecule, nanotube
from scipy.spatial.transform import Rotation

from orb_md.cli import main
from orb_md.dimensionality.dataset import Reference, read_references
from orb_md.dimensionality.fragmentation import is_fragmented, size
from orb_md.dimensionality.geometry import geometry_error
from orb_md.dimensionality.periodicity import make_contiguous, periodic_directions
from orb_md.dimensionality.reference_set import SHIPPED_SET, build_reference_set
from orb_md.errors import InputError


def _error(moved: ase.Atoms, reference: ase.Atoms) -> float:
    return geometry_error(moved.positions, reference.positions, reference.cell.array, reference.pbc)


def _molecule() -> ase.Atoms:
    atoms = molecule("CH3CH2OH")
    atoms.pbc = False
    return atoms


def test_rotated_and_translated_molecule_has_zero_error():
    reference = _molecule()
    moved = reference.copy()
    moved.positions = Rotation.from_euler("zyx", [40, -25, 70], degrees=True).apply(moved.positions) + [3.0, -1.5, 7.0]
    assert np.abs(moved.positions - reference.positions).mean() > 0.5  # the rigid motion is large
    assert _error(moved, reference) < 1e-12


def test_wire_rotated_about_its_axis_and_shifted_has_zero_error():
    reference = nanotube(4, 0, length=2, vacuum=5.0)
    reference.pbc = (False, False, True)
    moved = reference.copy()
    centre = reference.positions.mean(axis=0)
    moved.positions = Rotation.from_rotvec([0, 0, 0.7]).apply(reference.positions - centre) + centre + [0.4, -0.3, 1.1]
    assert _error(moved, reference) < 1e-12


def test_rotation_of_a_periodic_structure_is_an_error():
    """A slab rotated in its fixed cell is another structure: only translations are removed for 2D and 3D,
    and for 1D a tilt of the axis is not removed."""
    slab = fcc111("Cu", (2, 2, 3), vacuum=5.0)
    slab.pbc = (True, True, False)
    turned = slab.copy()
    turned.rotate(5, "z", center="COM")
    assert _error(turned, slab) > 0.05
    wire = nanotube(4, 0, length=2, vacuum=5.0)
    wire.pbc = (False, False, True)
    tilted = wire.copy()
    tilted.rotate(5, "x", center="COM")
    assert _error(tilted, wire) > 0.05


def test_atom_wrapped_across_the_boundary_is_not_an_error():
    reference = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    reference.rattle(0.05, seed=1)
    moved = reference.copy()
    moved.positions[3] += reference.cell[0] - 2 * reference.cell[2]  # the same atom, another image
    moved.positions += [0.2, 0.1, -0.3]  # and a rigid translation
    assert _error(moved, reference) < 1e-12
    slab = fcc111("Al", (2, 2, 2), vacuum=6.0)
    slab.pbc = (True, True, False)
    wrapped = slab.copy()
    wrapped.positions[0] += slab.cell[1]  # an in-plane image; a shift along the vacuum axis would be real
    assert _error(wrapped, slab) < 1e-12


@pytest.mark.parametrize("pbc", [(False, False, False), (False, False, True), (True, True, False), (True, True, True)])
def test_known_displacement_gives_its_mae(pbc):
    """One atom of 32 moved by d = (0.3, -0.2, 0.1) Å. With translations only (2D, 3D) the best fit removes the
    mean displacement d/n from every atom, so the MAE is (|d|(1 - 1/n) + (n - 1)|d|/n) / 3n summed over
    components. Where a rotation is allowed too (0D, 1D) the least-squares fit lowers the RMS residual, so the
    MAE is bounded by the translation-only RMS of components, sqrt(|d|^2 (1 - 1/n) / 3n)."""
    reference = bulk("Ni", "fcc", a=3.52, cubic=True).repeat((2, 2, 2))
    reference.pbc = pbc
    displacement = np.array([0.3, -0.2, 0.1])
    moved = reference.copy()
    moved.positions[5] += displacement
    n = len(reference)
    expected = (np.abs(displacement).sum() * (1 - 1 / n) + (n - 1) * np.abs(displacement).sum() / n) / (3 * n)
    if sum(pbc) >= 2:
        assert _error(moved, reference) == pytest.approx(expected, rel=1e-12)
    else:
        bound = np.sqrt(displacement @ displacement * (1 - 1 / n) / (3 * n))
        assert 0.5 * expected < _error(moved, reference) <= bound + 1e-12


def test_uniform_displacement_along_the_vacuum_normal_is_removed_but_a_stretch_is_not():
    slab = fcc111("Pt", (2, 2, 3), vacuum=6.0)
    slab.pbc = (True, True, False)
    stretched = slab.copy()
    top = stretched.positions[:, 2] > stretched.positions[:, 2].mean()
    stretched.positions[top, 2] += 0.12  # the top layer(s) move out by 0.12 Å
    k = top.sum() / len(slab)
    expected = 0.12 * 2 * k * (1 - k) / 3  # after the best translation, z components only
    assert _error(stretched, slab) == pytest.approx(expected, rel=1e-12)


def test_fragmentation_of_a_pulled_apart_slab():
    slab = fcc111("Cu", (2, 2, 3), vacuum=8.0)
    slab.pbc = (True, True, False)
    thickness = size(slab.positions, slab.cell.array, slab.pbc)
    assert thickness == pytest.approx(2 * 3.61 / np.sqrt(3), rel=1e-3)
    assert not is_fragmented(thickness, 2)
    apart = slab.copy()
    apart.positions[apart.positions[:, 2] > apart.positions[:, 2].mean(), 2] += 5.0
    apart.positions[0] += slab.cell[0] + slab.cell[1]  # in-plane wrapping is irrelevant
    pulled = size(apart.positions, apart.cell.array, apart.pbc)
    assert pulled == pytest.approx(thickness + 5.0, rel=1e-9)
    assert is_fragmented(pulled, 2)


def test_fragmentation_of_a_wire_and_a_cluster():
    wire = nanotube(6, 0, length=2, vacuum=5.0)
    wire.pbc = (False, False, True)
    width = size(wire.positions, wire.cell.array, wire.pbc)
    assert width == pytest.approx(2 * np.linalg.norm(wire.positions[0, :2] - wire.cell.lengths()[:2] / 2), rel=1e-3)
    assert not is_fragmented(width, 1)
    wire.positions[0, 0] += 10.0  # one atom leaves sideways; moving along the axis would not count
    wire.positions[1, 2] += 100.0
    assert is_fragmented(size(wire.positions, wire.cell.array, wire.pbc), 1)
    cluster = _molecule()
    assert not is_fragmented(size(cluster.positions, cluster.cell.array, cluster.pbc), 0)
    cluster.positions[0] += [25.0, 0.0, 0.0]
    assert size(cluster.positions, cluster.cell.array, cluster.pbc) > 20.0
    assert is_fragmented(size(cluster.positions, cluster.cell.array, cluster.pbc), 0)
    assert not is_fragmented(None, 3)


def test_vacuum_padded_structures_take_their_label(tmp_path):
    """0123D-like data: every direction periodic with vacuum, dimensionality from the label; a molecule
    split across the boundary is made whole again and its periodic directions are the narrow-gap ones."""
    slab = fcc111("Au", (2, 2, 2), vacuum=6.0)
    slab.pbc = True
    slab.positions[:, 2] -= 4.0  # the bottom layer wraps to the top of the cell
    slab.wrap()
    assert list(periodic_directions(slab, 2)) == [True, True, False]
    whole = make_contiguous(slab, periodic_directions(slab, 2))
    assert size(whole.positions, whole.cell.array, whole.pbc) == pytest.approx(2.35, abs=0.05)
    path = tmp_path / "0123D_pbe.db"
    with ase.db.connect(path) as db:
        db.write(slab, mat_id="agm001", id_dimension="2D", uncorrected_energy=-12.5)
        water = molecule("H2O", vacuum=5.0)
        water.pbc = True
        db.write(water, mat_id="agm002", id_dimension="0D", uncorrected_energy=-14.2)
    references = read_references([path])
    assert [(r.name, r.dimensionality, r.energy) for r in references] == [("agm001", 2, -12.5), ("agm002", 0, -14.2)]
    assert list(references[0].atoms.pbc) == [True, True, False] and not references[1].atoms.pbc.any()
    with pytest.raises(InputError, match="no reference energy"):
        read_references([path], energy_key="total_energy")


def test_shipped_set_is_what_the_script_builds():
    shipped = ase.io.read(SHIPPED_SET, index=":")
    rebuilt = build_reference_set()
    assert [a.info["mat_id"] for a in shipped] == [a.info["mat_id"] for a in rebuilt]
    assert len(shipped) >= 25 and SHIPPED_SET.stat().st_size < 200_000
    assert {a.info["id_dimension"] for a in shipped} == {"0D", "1D", "2D", "3D"}
    for old, new in zip(shipped, rebuilt):
        assert np.abs(old.positions - new.positions).max() < 1e-6
        assert old.info["uncorrected_energy"] == pytest.approx(new.info["uncorrected_energy"], abs=1e-8)


def test_command_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["dimensionality", "--help"])
    assert exit_info.value.code == 0 and "0123D" in capsys.readouterr().out


def test_command_end_to_end_with_the_bundled_model(tmp_path, capsys):
    names = ["Cu13-icosahedron", "Cu-wire-001", "Cu-111-3layers", "Cu-vacancy"]
    out = tmp_path / "out"
    assert main(["dimensionality", "-m", "orb-md-demo-v1", "--select", ",".join(names), "-o", str(out),
                 "--no-progress", "--threads", "1", "--batch", "3"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["summary"]) == {"0D", "1D", "2D", "3D"}
    assert [s["name"] for s in report["structures"]] == names
    for s in report["structures"]:
        assert s["status"] == "converged" and s["steps"] < 15_000
        assert 0.0 <= s["geometry_error"] < 0.5  # a model trained on EMT stays near EMT's minima
        assert abs(s["energy_error"]) < 1.0
    assert report["meta"]["fmax"] == 0.04 and report["meta"]["max_force"] == 10_000.0
    assert (out / "errors.png").stat().st_size > 5_000
    assert "| 2D | 1 | 1 |" in (out / "report.md").read_text()
    relaxed = ase.io.read(out / "relaxed.extxyz", index=":")
    assert sorted(a.info["label"] for a in relaxed) == sorted(names)  # written as each finished
    assert main(["dimensionality", "-m", "orb-md-demo-v1", "--select", "nothing", "-o", str(out)]) == 2
    assert "no structure named nothing" in capsys.readouterr().err


def test_extxyz_with_calculator_energy_and_no_label(tmp_path):
    """A plain extxyz (energy in the calculator's results, no dimensionality label): pbc decides."""
    from ase.calculators.singlepoint import SinglePointCalculator

    wire = nanotube(3, 3, length=1, vacuum=5.0)
    wire.pbc = (False, False, True)
    wire.calc = SinglePointCalculator(wire, energy=-7.0)
    path = tmp_path / "mine.extxyz"
    ase.io.write(path, [wire])
    (reference,) = read_references([path])
    assert (reference.dimensionality, reference.energy) == (1, -7.0)


def test_protocol_reports_a_pulled_apart_slab_as_fragmented():
    """Two Cu(111) layers 8 Å apart (beyond the 6 Å cutoff: no force pulls them back) against an intact slab."""
    import torch

    from orb_md import load_model
    from orb_md.dimensionality.protocol import run_protocol

    torch.set_num_threads(1)
    intact = fcc111("Cu", (2, 2, 2), a=3.59, vacuum=8.0)
    intact.pbc = (True, True, False)
    apart = intact.copy()
    apart.positions[apart.positions[:, 2] > apart.positions[:, 2].mean(), 2] += 6.0
    references = [Reference("intact", intact, 2, -30.0), Reference("apart", apart, 2, -30.0)]
    ok, broken = run_protocol(references, load_model("orb-md-demo-v1"), progress=False)
    assert ok.status == "converged" and not is_fragmented(ok.size, 2)
    assert broken.status == "fragmented" and "thickness" in broken.message and broken.size > 7.5
    assert broken.geometry_error is None and broken.energy_error is None
