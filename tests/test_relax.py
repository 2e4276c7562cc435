"""Batched relaxation (orb_md.relax) against ASE's FIRE + FrechetCellFilter driven by orb_md's calculator.

The bundled demo model (trained on EMT metals, water, peptides) in float64 gives physical relaxations of small
Cu/Al/Au structures, so ASE and the batch take tens of steps, not thousands, and step counts are a sharp test.
"""

from __future__ import annotations

import csv

import ase
import ase.build
import ase.io
import numpy as np
import pytest
import torch
from ase.constraints import FixAtoms
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE
from scipy.linalg import expm_frechet

from orb_md import load_model
from orb_md.calculator import OrbCalculator
from orb_md.cli import main
from orb_md.md.forcefield import ForceField
from orb_md.relax import relax
from orb_md.relax.cell import expm_frechet_adjoint, strain_mask
from orb_md.relax.output import ResultWriter

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
MAX_STEPS = 200


@pytest.fixture(scope="module")
def model():
    return load_model("orb-md-demo-v1", precision="float64")


def molecule() -> ase.Atoms:
    atoms = ase.build.molecule("H2O")
    atoms.rattle(0.1, seed=1)
    return atoms


def wire() -> ase.Atoms:
    """A zig-zag Cu chain along z, periodic along z only."""
    atoms = ase.Atoms("Cu2", positions=[[5.0, 5.0, 0.0], [6.1, 5.2, 1.3]], cell=[10.0, 10.0, 2.8],
                      pbc=(False, False, True))
    atoms.rattle(0.03, seed=4)
    return atoms


def slab() -> ase.Atoms:
    atoms = ase.build.fcc111("Al", size=(2, 2, 2), vacuum=5.0)
    atoms.pbc = (True, True, False)
    atoms.rattle(0.05, seed=3)
    return atoms


def triclinic() -> ase.Atoms:
    atoms = ase.build.bulk("Cu", "fcc", a=3.7) * (2, 1, 1)
    atoms.set_cell(atoms.cell.array + np.array([[0, 0.1, 0.2], [0.1, 0, 0.1], [0.3, 0.1, 0]]), scale_atoms=True)
    atoms.rattle(0.05, seed=2)
    return atoms


SYSTEMS = {"molecule-0D": molecule, "wire-1D": wire, "slab-2D": slab, "triclinic-3D": triclinic}


def ase_fire(model, atoms: ase.Atoms, relax_cell: bool) -> tuple[ase.Atoms, int, bool]:
    atoms = atoms.copy()
    atoms.calc = OrbCalculator(model)
    target = FrechetCellFilter(atoms, mask=strain_mask(atoms.pbc)) if relax_cell else atoms
    optimizer = FIRE(target, logfile=None)
    converged = optimizer.run(fmax=0.05, steps=MAX_STEPS)
    return atoms, optimizer.nsteps, converged


@pytest.mark.parametrize("name", SYSTEMS)
def test_single_system_equals_ase_fire_and_frechet_filter(model, name):
    start = SYSTEMS[name]()
    relax_cell = bool(start.pbc.any())
    reference, steps, converged = ase_fire(model, start, relax_cell)
    [result] = relax([start], model, fmax=0.05, max_steps=MAX_STEPS, relax_cell=relax_cell, progress=False)
    assert converged and result.status == "converged" and steps > 5
    assert result.steps == steps
    assert abs(result.energy - reference.get_potential_energy()) / len(start) < 1e-8
    np.testing.assert_allclose(result.atoms.positions, reference.positions, atol=1e-6)
    np.testing.assert_allclose(result.atoms.cell.array, reference.cell.array, atol=1e-6)
    np.testing.assert_allclose(result.atoms.get_forces(), reference.get_forces(), atol=1e-6)
    fixed_axes = ~start.pbc  # strain only along periodic axes: non-periodic coordinates move only by forces
    np.testing.assert_array_equal(result.atoms.cell.array[fixed_axes], start.cell.array[fixed_axes])
    if relax_cell:
        assert not np.allclose(result.atoms.cell.array, start.cell.array)
        np.testing.assert_allclose(result.atoms.get_stress(), reference.get_stress(), atol=1e-8)


def test_positions_only_with_fixed_atoms_equals_ase(model):
    start = slab()
    start.set_constraint(FixAtoms(indices=[0, 1, 2, 3]))
    reference, steps, _ = ase_fire(model, start, relax_cell=False)
    [result] = relax([start], model, max_steps=MAX_STEPS, progress=False)
    assert result.status == "converged" and result.steps == steps
    np.testing.assert_array_equal(result.atoms.positions[:4], start.positions[:4])
    np.testing.assert_allclose(result.atoms.positions, reference.positions, atol=1e-6)
    assert abs(result.energy - reference.get_potential_energy()) / len(start) < 1e-8


def test_batch_gives_each_system_its_result_alone(model):
    structures = [f() for f in SYSTEMS.values()] + [slab()]
    flags = [True, True, True, True, False]
    flags[0] = False  # the molecule has no cell to relax
    together = relax(structures, model, max_steps=MAX_STEPS, relax_cell=flags, progress=False)
    assert len({r.steps for r in together}) > 2  # systems leave the batch at different steps
    for atoms, flag, batched in zip(structures, flags, together):
        [alone] = relax([atoms], model, max_steps=MAX_STEPS, relax_cell=flag, progress=False)
        assert (batched.status, batched.steps) == (alone.status, alone.steps) == ("converged", alone.steps)
        assert abs(batched.energy - alone.energy) / len(atoms) < 1e-10
        np.testing.assert_allclose(batched.atoms.positions, alone.atoms.positions, atol=1e-9)


def test_zero_length_non_periodic_vector_relaxes_as_with_vacuum(model):
    padded = slab()
    bare = padded.copy()
    bare.cell[2] = 0.0
    with_vacuum, without = relax([padded, bare], model, max_steps=MAX_STEPS, relax_cell=True, progress=False)
    assert with_vacuum.steps == without.steps and with_vacuum.status == "converged"
    assert abs(with_vacuum.energy - without.energy) < 1e-10
    np.testing.assert_allclose(without.atoms.cell.array[:2], with_vacuum.atoms.cell.array[:2], atol=1e-10)
    np.testing.assert_array_equal(without.atoms.cell.array[2], 0.0)


def test_frechet_adjoint_matches_scipy():
    rng = np.random.default_rng(0)
    log_deform, direction = rng.normal(scale=0.1, size=(2, 3, 3)), rng.normal(size=(3, 3))
    expected = np.array([[np.sum(expm_frechet(log_deform[0], np.eye(3)[[m]].T @ np.eye(3)[[n]], compute_expm=False)
                                 * direction) for n in range(3)] for m in range(3)])
    got = expm_frechet_adjoint(torch.tensor(log_deform[:1]), torch.tensor(direction[None]))[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


class PoisonedForceField(ForceField):
    """The real ForceField; after ``call`` evaluations the forces of input structure ``victim`` become NaN."""

    def __init__(self, model, victim: int, call: int) -> None:
        super().__init__(model)
        self.victim, self.call = victim, call

    def compute(self, state, stress=True, check_finite=True) -> None:
        super().compute(state, stress, check_finite)
        if self.calls == self.call and self.victim in state.indices:
            poisoned = state.system_index == state.indices.index(self.victim)
            state.forces = torch.where(poisoned[:, None], torch.nan, state.forces)


def test_bad_input_fails_alone_and_the_batch_carries_on(model, tmp_path):
    fixed = slab()
    fixed.set_constraint(FixAtoms(mask=[True] * len(fixed)))
    structures = [molecule(), fixed, triclinic(), slab()]
    flags = [True, False, True, False]  # a molecule given to the cell filter; every atom fixed, positions only
    writer = ResultWriter(tmp_path)
    results = relax(structures, PoisonedForceField(model, victim=2, call=6), max_steps=MAX_STEPS,
                    relax_cell=flags, on_result=writer, progress=False)
    assert [r.status for r in results] == ["failed", "failed", "blow_up", "converged"]
    assert "no periodic direction" in results[0].message
    assert "all 8 atoms are fixed" in results[1].message
    assert "non-finite" in results[2].message and results[2].steps == 4 and np.isfinite(results[2].energy)
    assert all("\n" not in r.message for r in results)
    [alone] = relax([slab()], model, max_steps=MAX_STEPS, progress=False)
    assert results[3].steps == alone.steps and abs(results[3].energy - alone.energy) < 1e-10
    rows = list(csv.DictReader((tmp_path / "status.csv").open()))
    assert sorted(int(r["index"]) for r in rows) == [0, 1, 2, 3]
    frames = ase.io.read(tmp_path / "relaxed.extxyz", index=":")
    assert sorted(f.info["relax_status"] for f in frames) == ["blow_up", "converged", "failed", "failed"]


class InterruptedForceField(ForceField):
    def compute(self, state, stress=True, check_finite=True) -> None:
        if self.calls == 38:
            raise KeyboardInterrupt
        super().compute(state, stress, check_finite)


def test_interrupted_run_keeps_finished_systems(model, tmp_path):
    structures = [molecule(), slab()]  # the molecule converges at step 35, the slab with its cell at 39
    with pytest.raises(KeyboardInterrupt):
        relax(structures, InterruptedForceField(model), relax_cell=[False, True], on_result=ResultWriter(tmp_path),
              progress=False)
    [frame] = ase.io.read(tmp_path / "relaxed.extxyz", index=":")
    assert frame.info["relax_status"] == "converged" and frame.info["index"] == 0
    assert np.isfinite(frame.get_potential_energy()) and frame.get_forces().shape == (3, 3)


def test_max_force_and_fragmentation_stop_a_system(model):
    squeezed = ase.Atoms("Cu2", positions=[[0, 0, 0], [1.0, 0, 0]])
    far = ase.Atoms("Cu2", positions=[[0, 0, 0], [2.4, 0, 0]])
    spread = lambda atoms: "spread" if np.ptp(atoms.positions[:, 0]) > 2.0 else None  # noqa: E731
    blown, fragmented = relax([squeezed, far], model, max_force=20.0, fragmented=spread, progress=False)
    assert blown.status == "blow_up" and "above max_force" in blown.message
    assert np.linalg.norm(blown.atoms.get_forces(), axis=1).max() > 20.0 > np.linalg.norm(blown.atoms.positions[1])
    assert fragmented.status == "fragmented" and fragmented.message == "spread"


def test_cli_writes_relaxed_structures_and_status(model, tmp_path, capsys):
    path = tmp_path / "in.extxyz"
    ase.io.write(path, [molecule(), triclinic()])
    assert main(["relax", str(path), "--model", "orb-md-demo-v1", "--precision", "float64", "--relax-cell",
                 "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "000_in_0: failed" in printed and "no periodic direction" in printed and "001_in_1: converged" in printed
    frames = {f.info["index"]: f for f in ase.io.read(tmp_path / "out" / "relaxed.extxyz", index=":")}
    assert frames[1].get_stress().shape == (6,) and frames[1].info["relax_status"] == "converged"
    [alone] = relax([triclinic()], model, relax_cell=True, progress=False)
    assert abs(frames[1].get_potential_energy() - alone.energy) < 1e-8
    assert main(["relax", str(tmp_path / "missing.xyz")]) == 2
