"""Phonons on phonopy with the displaced supercells in batched model calls (orb_md.phonons), float64.

The reference is phonopy's own workflow written out here: its displacements, one ASE calculator call per displaced
supercell (orb_md's OrbCalculator, or EMT), its force constants.
"""

from __future__ import annotations

import json

import ase
import ase.build
import ase.io
import numpy as np
import pytest
from ase.calculators.emt import EMT
from phonopy import Phonopy
from phonopy.structure.atoms import PhonopyAtoms

from orb_md import InputError, load_model
from orb_md.calculator import OrbCalculator
from orb_md.cli import main
from orb_md.phonons import batched_forces, compute_phonons, frequencies
from orb_md.training.reference_data import _emt_lattice_constant
from tests.benchmark_scripts import load_benchmark

pytestmark = [
    pytest.mark.usefixtures("one_thread"),  # tests/conftest.py
    # phonopy 4 notes that its default primitive_matrix changed; the loop below asks for "auto" on purpose
    pytest.mark.filterwarnings("ignore:primitive_matrix defaulted to 'auto'"),
]
NAME = "orb-md-demo-v1"
EMT_CU = _emt_lattice_constant("Cu")  # EMT's equilibrium: the crystal both potentials are compared on
# Brillouin-zone points of the fcc primitive cell (reduced coordinates): X, L, W, K and half-way to X.
ZONE_POINTS = [[0.5, 0.0, 0.5], [0.5, 0.5, 0.5], [0.5, 0.25, 0.75], [0.375, 0.375, 0.75], [0.25, 0.0, 0.25]]


@pytest.fixture(scope="module")
def model():
    return load_model(NAME, precision="float64")


def copper() -> ase.Atoms:
    return ase.build.bulk("Cu", "fcc", a=EMT_CU, cubic=True)


def cu3au() -> ase.Atoms:
    """L1_2 Cu3Au: two kinds of site, one displacement each one way (two each both ways)."""
    atoms = copper()
    atoms.numbers[0] = 79
    return atoms


def rattled_copper() -> ase.Atoms:
    """No symmetry left: every atom displaced along x, y and z, both ways (24 supercells)."""
    atoms = copper()
    atoms.rattle(0.03, seed=3)
    return atoms


def phonopy_loop(calculator, atoms: ase.Atoms, supercell, is_plusminus) -> Phonopy:
    """phonopy's usual loop: displacements, one calculator call per displaced supercell, force constants."""
    unitcell = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array,
                            scaled_positions=atoms.get_scaled_positions(), masses=atoms.get_masses())
    run = Phonopy(unitcell, supercell_matrix=np.diag(supercell), primitive_matrix="auto")
    run.generate_displacements(distance=0.01, is_plusminus=is_plusminus)
    forces = []
    for cell in run.supercells_with_displacements:
        displaced = ase.Atoms(cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)
        displaced.calc = calculator
        forces.append(displaced.get_forces())
    run.forces = np.array(forces)
    run.produce_force_constants()
    return run


@pytest.mark.parametrize(
    "structure, is_plusminus, max_atoms, displacements, calls",
    [
        (copper, "auto", 0, 1, 1),
        (copper, True, 0, 2, 1),
        (cu3au, False, 0, 2, 1),
        (cu3au, True, 0, 4, 1),
        (rattled_copper, "auto", 8 * 32, 24, 4),  # 25 supercells (with the undisplaced one), 8 per call
    ],
)
def test_batched_force_constants_equal_phonopys_loop(model, structure, is_plusminus, max_atoms, displacements, calls):
    """Same force constants as the loop with OrbCalculator: batching adds only summation round-off."""
    atoms = structure()
    result = compute_phonons(model, atoms, (2, 2, 2), is_plusminus=is_plusminus, max_atoms_per_batch=max_atoms)
    reference = phonopy_loop(OrbCalculator(model), atoms, (2, 2, 2), is_plusminus)
    assert len(result.phonopy.supercells_with_displacements) == displacements
    assert result.model_calls == calls
    batched, looped = result.phonopy.force_constants, reference.force_constants
    assert batched.shape == looped.shape
    assert np.abs(batched - looped).max() <= 1e-10 * np.abs(looped).max()


def test_batches_bounded_in_atoms_give_the_same_forces(model):
    structures = [rattled_copper() * (2, 1, 1) for _ in range(5)]
    for k, atoms in enumerate(structures):
        atoms.positions[k] += 0.01
    together, one_call = batched_forces(model, structures)
    split, three_calls = batched_forces(model, structures, max_atoms_per_batch=2 * len(structures[0]))
    assert (one_call, three_calls) == (1, 3)
    np.testing.assert_allclose(split, together, rtol=0, atol=1e-12)


def _acoustic_tolerance(result) -> float:
    """1e-5 of the highest frequency at the zone points, in THz.

    A zero mode's frequency is sqrt(|error of its eigenvalue|). With forces summing to zero (a conservative
    model: each edge's gradient enters its two atoms with opposite signs), the error is float64 round-off: the
    acoustic frequencies come out near 1e-8 of the highest. 1e-5 of it corresponds to force constants off by
    m (1e-5 nu_max / 15.63 THz)^2 ~ 2e-9 eV/Å^2 in their translation sum, i.e. a net force of 5e-13 eV/Å per
    atom of a 32-atom supercell displaced by 0.01 Å: 50 times the round-off of the forces (1e-14 eV/Å) and
    far below any physical drift; test_acoustic_test_detects_a_net_force shows one of 1e-9 eV/Å fails.
    """
    return 1e-5 * float(frequencies(result.phonopy, ZONE_POINTS).max())


@pytest.mark.parametrize("is_plusminus", ["auto", True])
def test_acoustic_frequencies_vanish_at_gamma(model, is_plusminus):
    result = compute_phonons(model, copper(), (2, 2, 2), is_plusminus=is_plusminus)
    assert result.gamma_frequencies.shape == (3,)  # one atom per primitive cell: three acoustic modes only
    assert np.abs(result.gamma_frequencies).max() < _acoustic_tolerance(result)
    assert np.abs(result.residual_forces).max() < 1e-12  # fcc: zero by symmetry
    assert 0 < np.linalg.norm(result.rotational_gradient) < 0.1  # reported; the card's held-out RMS is 0.017 eV


def test_acoustic_test_detects_a_net_force(model):
    result = compute_phonons(model, copper(), (2, 2, 2))
    run = result.phonopy
    run.forces = run.forces + 1e-9  # every atom of every displaced supercell pushed by 1e-9 eV/Å along x, y, z
    run.produce_force_constants(show_drift=False)
    assert np.abs(frequencies(run, [[0, 0, 0]])).max() > _acoustic_tolerance(result)


def _force_errors(model) -> tuple[float, float]:
    """The demo model's forces against EMT's on fcc Cu at room-temperature amplitude: the mean absolute error
    (eV/Å, as the model card states it) and eps, the rms error relative to EMT's rms force. 8 seeded 32-atom
    crystals (the supercell of the phonon runs), every atom displaced by 0.08 Å rms per component (Cu's thermal
    amplitude near 300 K: Debye–Waller B ~ 0.55 Å^2)."""
    calculator = OrbCalculator(model)
    errors, references = [], []
    for seed in range(8):
        atoms = copper() * (2, 2, 2)
        atoms.rattle(0.08, seed=100 + seed)
        atoms.calc = EMT()
        references.append(atoms.get_forces())
        atoms.calc = calculator
        errors.append(atoms.get_forces() - references[-1])
    errors, references = np.array(errors), np.array(references)
    return float(np.abs(errors).mean()), float(np.sqrt((errors**2).mean() / (references**2).mean()))


def test_frequencies_agree_with_emt_within_the_models_force_error(model):
    """Squared frequencies at the zone points within 2 eps nu_max^2 of EMT's, eps the model's relative force error.

    Near equilibrium F = -Phi u. For random displacements the rms force is a norm of the force constants over
    the supercell's commensurate q-points (the zone points here among them), so eps, the rms force error relative
    to EMT's, is the error of the dynamical matrices relative to EMT's in that averaged norm. An eigenvalue nu^2
    moves by at most the norm of its matrix's error (Weyl's inequality): about eps nu_max^2, absolute in nu^2,
    so soft modes (the transverse branch at L) carry the same absolute error on a smaller frequency. The factor 2
    allows one q-point's error above the average. eps is measured here; the same crystals' mean
    absolute force error must lie within the model card's EMT force MAE (0.0504 eV/Å, held out, hot and liquid
    frames included), which it does by a wide margin.
    """
    mae, eps = _force_errors(model)
    assert mae < 0.0504
    ours = frequencies(compute_phonons(model, copper(), (2, 2, 2)).phonopy, ZONE_POINTS)
    emt = frequencies(compute_phonons(EMT(), copper(), (2, 2, 2)).phonopy, ZONE_POINTS)
    assert emt.min() > 2.0  # THz: these points are far from Γ's zero modes
    deviation = np.abs(ours**2 - emt**2) / emt.max() ** 2
    print(f"force MAE {mae:.4f} eV/Å, eps {eps:.4f}; |nu^2 - nu_EMT^2| / nu_max^2: {np.round(deviation, 4).tolist()}; "
          f"relative frequency differences {np.round(np.abs(ours - emt) / emt, 4).tolist()}")
    assert deviation.max() < 2 * eps


@pytest.mark.parametrize(
    "atoms, kwargs, message",
    [
        (ase.build.molecule("H2O"), {}, "periodic in all three directions"),
        (ase.build.fcc111("Cu", (2, 2, 3), vacuum=5.0), {}, "pbc=[True, True, False]"),
        (copper(), {"supercell": (2, 2)}, "3 integers or a 3x3 integer matrix"),
        (copper(), {"supercell": (2, 0, 2)}, "no positive determinant"),
        (copper(), {"distance": 0.0}, "distance must be positive"),
        (copper(), {"is_plusminus": "yes"}, "is_plusminus must be"),
        (copper(), {"max_atoms_per_batch": -1}, "max_atoms_per_batch must be"),
    ],
)
def test_bad_input_is_one_clear_error(model, atoms, kwargs, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compute_phonons(model, atoms, **kwargs)


def test_command_writes_plots_and_summary(tmp_path, capsys):
    ase.io.write(tmp_path / "cu.cif", copper())
    out = tmp_path / "out"
    assert main(["phonons", str(tmp_path / "cu.cif"), "-m", NAME, "--precision", "float64", "--supercell", "2", "2",
                 "2", "--plusminus", "true", "-o", str(out)]) == 0
    assert "2 displaced supercells of 32 atoms in 1 model call(s)" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["displacements"] == 2 and summary["atoms_in_supercell"] == 32
    assert max(abs(f) for f in summary["gamma_frequencies_THz"]) < 1e-4
    assert 0 < summary["rotational_gradient_norm_eV"] < 0.1
    assert abs(summary["band_minimum_frequency_THz"]) < 1e-4  # no imaginary branch along the path
    for name in ("bands.png", "dos.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_command_rejects_a_molecule(tmp_path, capsys):
    ase.io.write(tmp_path / "water.xyz", ase.build.molecule("H2O"))
    assert main(["phonons", str(tmp_path / "water.xyz"), "-m", NAME]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "periodic in all three directions" in error[0]


def test_command_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["phonons", "--help"])
    assert exit_info.value.code == 0
    assert "--supercell" in capsys.readouterr().out


def test_benchmark_times_both_paths_on_the_same_displacements(model):
    row = load_benchmark("bench_phonons").measure(model, copper(), 2, True, repeats=1, max_atoms=0)
    assert (row["atoms"], row["displacements"]) == (32, 2)
    assert min(row["batched_s"], row["compute_phonons_s"], row["loop_s"]) > 0
    assert row["speedup"] == pytest.approx(row["loop_s"] / row["batched_s"])
