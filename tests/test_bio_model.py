"""The bundled biomolecular demo model (orb-md-demo-bio-v1) keeps a solvated peptide in one piece through 10 ps
of MD, which the general demo model (orb-md-demo-v1) does not: the cheap peptide checks run on both, strictly
expected to fail on orb-md-demo-v1 (its model card says why), so a change that makes either pass or fail
shows; the 10 ps MD runs on the bio model only.

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
from orb_md.training import peptide_data, reference_data
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


def _peptide_md(system: openmm.System, topology, positions) -> tuple[np.ndarray, np.ndarray]:
    """10 ps of Langevin dynamics at 300 K on the CPU platform (one thread, so amber14's run is reproducible;
    a TorchForce's is not, torch's two-thread CPU sums varying in the last bits), a standard 2 fs
    set-up: bonds to hydrogen constrained, hydrogens 4 amu (mass repartitioned from their heavy atom). Returns,
    every 0.2 ps, the peptide's heavy-atom RMSD (Å) from its minimised start after optimal superposition, and
    the largest relative change of a bond between peptide heavy atoms from its start length."""
    import mdtraj
    from openmm import unit

    for a, b in topology.bonds():
        if "H" in (a.element.symbol, b.element.symbol):
            heavy, hydrogen = (a, b) if b.element.symbol == "H" else (b, a)
            system.setParticleMass(heavy.index, system.getParticleMass(heavy.index) - 3.0 * unit.amu)
            system.setParticleMass(hydrogen.index, 4.0 * unit.amu)
            distance = np.linalg.norm(
                np.array(positions[a.index].value_in_unit(unit.nanometer))
                - np.array(positions[b.index].value_in_unit(unit.nanometer))
            )
            system.addConstraint(a.index, b.index, distance)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1.0 / unit.picosecond, 2.0 * unit.femtosecond)
    integrator.setRandomNumberSeed(7)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=100)
    context.setVelocitiesToTemperature(300.0, 7)
    frames = [context.getState(getPositions=True).getPositions(asNumpy=True)._value]
    for _ in range(50):  # 5000 x 2 fs = 10 ps
        integrator.step(100)
        frames.append(context.getState(getPositions=True).getPositions(asNumpy=True)._value)
    trajectory = mdtraj.Trajectory(np.array(frames), mdtraj.Topology.from_openmm(topology))
    heavy = trajectory.topology.select("protein and not element H")
    in_heavy = set(heavy.tolist())
    pairs = np.array([(a.index, b.index) for a, b in trajectory.topology.bonds
                      if a.index in in_heavy and b.index in in_heavy])
    lengths = mdtraj.compute_distances(trajectory, pairs)
    stretch = np.abs(lengths / lengths[0] - 1.0).max(axis=1)
    return mdtraj.rmsd(trajectory, trajectory, 0, atom_indices=heavy) * 10.0, stretch


@pytest.fixture(scope="module")
def villin_amber_rmsd():
    """The MD test's cluster (topology, positions) and amber14's heavy-atom RMSD in its protocol."""
    from openmm import app

    topology, positions = reference_data.villin_fragment()
    amber = app.ForceField("amber14-all.xml", "amber14/tip3p.xml").createSystem(
        topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False, removeCMMotion=False
    )
    return topology, positions, _peptide_md(amber, topology, positions)[0]


def test_solvated_peptide_stays_intact_in_openmm_torchforce(villin_amber_rmsd):
    """Villin's first five residues with their first water shell (non-periodic, a training window): all forces
    from orb_md's TorchForce (no force field), 10 ps at 300 K. The peptide stays finite and in one piece (no
    heavy-atom bond ever 20 % off its start length). Whether it stays folded is not claimed: one trajectory cannot
    decide it (issue 25; the RMSDs of both potentials are printed, the model card gives the measured ones). Only
    the bio model runs it (10 min on 2 cores): orb-md-demo-v1 reaches NaN coordinates (model card), which its two
    cheaper peptide checks above show."""
    from openmmml import MLPotential

    model = _model(NAME)
    topology, positions, reference = villin_amber_rmsd
    ours, stretch = _peptide_md(MLPotential(f"orb_md/{NAME}").createSystem(topology, model=model), topology, positions)
    print(f"{NAME}: peptide heavy-atom RMSD max: amber14 {reference.max():.2f} Å, model {ours.max():.2f} Å "
          f"(mean {reference.mean():.2f}, {ours.mean():.2f}); largest heavy-atom bond change {stretch.max():.3f}")
    assert np.all(np.isfinite(ours)) and stretch.max() < 0.2, stretch.max()
