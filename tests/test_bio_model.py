"""The bundled biomolecular demo model (orb-md-demo-bio-v1) keeps a solvated peptide in one piece and as folded
as amber14 does over several seeds of MD, which the general demo model (orb-md-demo-v1) does not: the cheap
peptide checks run on both, strictly expected to fail on orb-md-demo-v1 (its model card says why), so a change
that makes either pass or fail shows; the MD runs on the bio model only.

Physical criteria are stated at each test; the reference is amber14/TIP3P, the potential that labelled the
training data, in the same protocol.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files

import ase
import numpy as np
import openmm
import pytest
import torch
from ase import units

from orb_md import BUNDLED_MODELS, load_model
from orb_md.training import peptide_data, peptide_folding, reference_data
from orb_md.training.samples import to_samples
from orb_md.training.validation import validation_errors

pytestmark = pytest.mark.heavy
NAME = "orb-md-demo-bio-v1"
CARD = json.loads((files("orb_md") / "weights" / f"{NAME}.json").read_text())
DEMO_FAILS = pytest.mark.xfail(
    raises=(AssertionError, openmm.OpenMMException),
    strict=True,
    reason="orb-md-demo-v1 is not a peptide model: its energy falls along moves that break the molecule (model "
    "card, 'Why the peptide fails'); the fine-tuned orb-md-demo-bio-v1 is the peptide model. Strict: if it passes, "
    "drop the marker",
)


@functools.cache
def _model(name: str):
    return load_model(name, precision="float32-highest")


@pytest.fixture(scope="module")
def model():
    return _model(NAME)


PEPTIDE_MODELS = [pytest.param("orb-md-demo-v1", marks=DEMO_FAILS), NAME]
"""Both bundled models as parameters, orb-md-demo-v1 strictly expected to fail."""


def test_bundled_checkpoint_is_the_demo_layout_and_documented(model):
    path = files("orb_md") / "weights" / f"{NAME}.ckpt"
    assert path.stat().st_size < 5e6
    state = torch.load(str(path), weights_only=True)
    assert set(state) == set(model.state_dict())
    assert model.config == BUNDLED_MODELS[NAME]
    card = (files("orb_md") / "weights" / "MODEL_CARD.md").read_text()
    section = card[card.index(f"# Model card: {NAME}"):]
    for metrics in ("validation", "validation_unseen_window"):
        for key in ("energy_mae_per_atom", "force_mae"):
            assert f"{CARD[metrics][key]:.3g}" in section, (metrics, key)  # the card quotes the training run


def test_unseen_sequence_matches_the_model_card(model):
    """Thermal frames of residues 31-35 (never trained on) from a new trajectory (seed 1234, 8 frames per
    temperature): errors within 1.5x the card's figures for that window's thermal frames (energy: + 2 meV/atom)."""
    frames = peptide_data.peptide_windows(seed=1234, windows=(peptide_data.WINDOW_FIRST_RESIDUES[-1],),
                                          frames_per_temperature=8)
    thermal = [a for a in frames if a.info["source"].endswith("K")]
    metrics = validation_errors(model, to_samples(model, thermal))
    card = CARD["validation_unseen_window_thermal"]
    print(f"fresh unseen-window thermal frames: {metrics}")
    assert metrics["force_mae"] < 1.5 * card["force_mae"], (metrics, card)
    assert metrics["energy_mae_per_atom"] < 1.5 * card["energy_mae_per_atom"] + 0.002, (metrics, card)


@pytest.fixture(scope="module")
def amber_minimised_villin():
    """The villin cluster's topology, its amber14 Reference context, and amber14's minimum (a State with
    positions and energy). Tests set the context's positions before each query."""
    topology, positions = reference_data.villin_fragment()
    _, _, amber = reference_data._openmm_context(topology, positions, False, "Reference")
    openmm.LocalEnergyMinimizer.minimize(amber, maxIterations=300)
    return topology, amber, amber.getState(getPositions=True, getEnergy=True)


@pytest.mark.parametrize("name", PEPTIDE_MODELS)
def test_geminal_hydrogen_angle_wall(name, amber_minimised_villin):
    """Closing one shell water's H-O-H angle (bond lengths kept) in the amber-minimised villin cluster: the
    energy rises like amber14's, at least half of its rise at 75, 45 and 20 degrees."""
    from openmm import unit

    from orb_md.calculator import OrbCalculator

    model = _model(name)
    topology, amber, minimum = amber_minimised_villin
    numbers = reference_data._element_numbers(topology)
    start = minimum.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    oxygen, first, second = [a.index for a in [r for r in topology.residues() if r.name == "HOH"][5].atoms()]
    u, v = start[first] - start[oxygen], start[second] - start[oxygen]
    e1 = u / np.linalg.norm(u)
    e2 = v - (v @ e1) * e1
    e2 /= np.linalg.norm(e2)
    calculator = OrbCalculator(model)
    rises = []
    for angle in (104.5, 75.0, 45.0, 20.0):
        x = start.copy()
        x[second] = x[oxygen] + np.linalg.norm(v) * (np.cos(np.radians(angle)) * e1 + np.sin(np.radians(angle)) * e2)
        atoms = ase.Atoms(numbers, x, calculator=calculator)
        amber.setPositions(x / 10.0)
        reference = amber.getState(getEnergy=True).getPotentialEnergy()._value * reference_data.KJ_PER_MOL_IN_EV
        rises.append((atoms.get_potential_energy(), reference))
    rises = [(ours - rises[0][0], reference - rises[0][1]) for ours, reference in rises[1:]]
    print(f"{name}: H-O-H closed to 75, 45, 20 degrees, energy rise (model, amber14) eV: {np.round(rises, 2).tolist()}")
    assert all(ours > 0.5 * reference for ours, reference in rises), rises


@pytest.mark.parametrize("name", PEPTIDE_MODELS)
def test_minimising_the_peptide_stays_near_the_amber_minimum(name, amber_minimised_villin):
    """Minimising the villin cluster with the model (the MD test's 100 iterations, through the TorchForce),
    starting from amber14's minimum, ends where amber14's energy is at most that of a typical 300 K frame above
    its minimum: (3N/2) kT = 7.6 eV for these 195 atoms (a model's minimum must be no worse than thermal noise)."""
    from openmm import unit
    from openmmml import MLPotential

    model = _model(name)
    topology, amber, start = amber_minimised_villin
    system = MLPotential(f"orb_md/{name}").createSystem(topology, model=model)
    ours = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ours.setPositions(start.getPositions())
    openmm.LocalEnergyMinimizer.minimize(ours, maxIterations=100)
    amber.setPositions(ours.getState(getPositions=True).getPositions())
    rise = (amber.getState(getEnergy=True).getPotentialEnergy() - start.getPotentialEnergy()).value_in_unit(
        unit.kilojoule_per_mole) * reference_data.KJ_PER_MOL_IN_EV
    thermal = 1.5 * topology.getNumAtoms() * units.kB * 300.0
    print(f"{name}: amber14 energy rise after minimising with the model: {rise:.1f} eV (bound {thermal:.1f} eV)")
    assert rise < thermal, (rise, thermal)


FOLDING_STEPS = 500
"""1 ps per seed (2 fs steps): four seeds of the model fit the CI budget."""
MODEL_SEEDS = range(1, 5)
AMBER_SEEDS = range(1, 33)
"""amber14 is cheap (a second per seed): 32 seeds give its spread in this window on this CPU."""


def test_folding_seeds_give_independent_reproducible_runs():
    """The folding protocol's seeds (amber14, one thread, 0.2 ps): a seed run twice gives the same trajectory, and
    two seeds give different ones (OpenMM reads the Langevin seed only when a Context is made)."""
    topology, positions = reference_data.villin_fragment()
    pair, again = (list(peptide_folding.folding_runs(peptide_folding.amber14_system(topology), topology, positions,
                                                      seeds, 100, every=25)) for seeds in ((3, 4), (3,)))
    np.testing.assert_array_equal(pair[0].rmsd, again[0].rmsd)
    assert np.abs(pair[0].rmsd[1:] - pair[1].rmsd[1:]).min() > 1e-4, (pair[0].rmsd, pair[1].rmsd)


def test_a_run_that_blows_up_counts_as_neither_finite_nor_folded():
    """A seed whose run blows up (here amber14 plus a 1e9 kJ/mol/nm^2 spring pulling every atom to x = 0) has NaN
    frames to its end: it is not finite and its late RMSD is NaN, never below a bound (mdtraj alone gives 0 Å)."""
    topology, positions = reference_data.villin_fragment()
    system = peptide_folding.amber14_system(topology)
    spring = openmm.CustomExternalForce("1e9*x^2")
    for index in range(system.getNumParticles()):
        spring.addParticle(index, [])
    system.addForce(spring)
    (run,) = peptide_folding.folding_runs(system, topology, positions, [1], 100, every=25)
    assert run.rmsd.shape == (5,) and not run.finite, run.rmsd
    assert np.isnan(run.late_rmsd) and not run.late_rmsd < 10.0, run.rmsd


@pytest.fixture(scope="module")
def villin_amber_late_rmsd():
    """The cluster (topology, folded positions) and amber14's late-window heavy-atom RMSD per seed in the
    folding protocol (orb_md.training.peptide_folding)."""
    topology, positions = reference_data.villin_fragment()
    runs = peptide_folding.folding_runs(peptide_folding.amber14_system(topology), topology, positions, AMBER_SEEDS,
                                        FOLDING_STEPS, every=25)
    return topology, positions, np.array([run.late_rmsd for run in runs])


def test_solvated_peptide_stays_folded_like_amber14_over_seeds(villin_amber_late_rmsd):
    """Villin's first five residues with their first water shell (non-periodic, a training window): all forces
    from orb_md's TorchForce (no force field), 1 ps at 300 K from four seeds. Every seed stays finite and in one
    piece (no heavy-atom bond 20 % off its folded length), and at least three of the four keep the peptide as
    folded as amber14 does: their heavy-atom RMSD from the folded structure, averaged over the run's second half,
    is below amber14's mean + 3 sd over 32 seeds in the same protocol on this CPU (a run of amber14's own
    exceeds that with probability about 1e-3). One trajectory is chaotic and CPU-dependent (issue 25); this
    distribution is not. Only the bio model runs it: orb-md-demo-v1 reaches NaN coordinates (model card), which
    its two cheaper peptide checks above show."""
    from openmmml import MLPotential

    topology, positions, amber = villin_amber_late_rmsd
    bound = amber.mean() + 3.0 * amber.std(ddof=1)
    system = MLPotential(f"orb_md/{NAME}").createSystem(topology, model=_model(NAME))
    runs = list(peptide_folding.folding_runs(system, topology, positions, MODEL_SEEDS, FOLDING_STEPS, every=25))
    late = np.array([run.late_rmsd for run in runs])
    stretch = max(run.stretch.max() for run in runs)
    print(f"{NAME}: late-window heavy-atom RMSD per seed {np.round(late, 2).tolist()} Å; amber14 over "
          f"{len(amber)} seeds {amber.mean():.2f} ± {amber.std(ddof=1):.2f} Å (max {amber.max():.2f}, bound "
          f"{bound:.2f}); largest heavy-atom bond change {stretch:.3f}")
    assert all(run.finite for run in runs) and stretch < 0.2, stretch
    assert np.count_nonzero(late < bound) >= 3, (late.tolist(), bound)
