"""The bundled demo model (orb-md-demo-v1) behaves like matter, which random weights cannot do.

Each MD test runs >= 10 ps. Tolerances: the model card's validation errors (from the training run's held-out
set) with a 1.5x margin for the fresh, differently-seeded structures drawn here; physical criteria are
stated at each test.
"""

from __future__ import annotations

import json
from importlib.resources import files

import ase.build
import numpy as np
import pytest
import torch
from ase import units
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from orb_md import BUNDLED_MODELS, load_model
from orb_md.md.simulation import BatchMD
from orb_md.md.state import create_state
from orb_md.training import reference_data
from orb_md.training.samples import to_samples
from orb_md.training.validation import validation_errors

NAME = "orb-md-demo-v1"
CARD = json.loads((files("orb_md") / "weights" / f"{NAME}.json").read_text())


@pytest.fixture(scope="module")
def model():
    return load_model(NAME, precision="float32-highest")


def test_bundled_checkpoint_is_small_official_layout_and_documented(model):
    path = files("orb_md") / "weights" / f"{NAME}.ckpt"
    assert path.stat().st_size < 5e6
    state = torch.load(str(path), weights_only=True)
    assert set(state) == set(model.state_dict())  # the released conservative layout, loaded strictly
    assert model.config == BUNDLED_MODELS[NAME]
    card = (files("orb_md") / "weights" / "MODEL_CARD.md").read_text()
    for key in ("energy_mae_per_atom", "force_mae", "confidence_spearman"):
        assert f"{CARD['validation'][key]:.3g}" in card, key  # the card quotes the training run's numbers


def test_fresh_structures_match_the_model_card(model):
    """Structures drawn with other seeds than the training set: EMT metals and peptide-cluster frames."""
    metals = reference_data.metal_structures(seed=1234, elements=("Cu", "Ni", "Au"), alloys=(), weight={})
    peptide = reference_data.peptide_clusters(seed=1234, frames_per_temperature=4)
    for structures, family in ((metals, "emt"), (peptide, "amber14-peptide")):
        metrics = validation_errors(model, to_samples(model, structures))
        card = CARD["validation_by_family"][family]
        assert metrics["force_mae"] < 1.5 * card["force_mae"], family
        assert metrics["energy_mae_per_atom"] < 1.5 * card["energy_mae_per_atom"] + 0.002, family
    both = validation_errors(model, to_samples(model, metals + peptide))
    assert both["confidence_spearman"] > 0.5  # the predicted error ranks atoms by their actual error


def _lattice_drift(frames: list[np.ndarray], start: np.ndarray, cell: np.ndarray) -> float:
    """RMS displacement of atoms from their starting sites (minimum image, centre-of-mass drift removed), Å."""
    inverse = np.linalg.inv(cell)
    values = []
    for positions in frames:
        delta = positions - start
        delta -= np.round(delta @ inverse) @ cell
        delta -= delta.mean(axis=0)
        values.append(np.sqrt((delta**2).sum(axis=1).mean()))
    return float(np.mean(values))


def _orb_md_frames(model, atoms, temperature: float, dt: float, steps: int, every: int) -> list[np.ndarray]:
    state = create_state([atoms], ensemble="nvt", temperature=temperature, dt=dt, friction=0.02, seed=1)
    md = BatchMD(state, model, progress=False)
    frames = []
    for _ in range(steps // every):
        md.run(every)
        frames.append(state.positions.numpy().copy())
    return frames


def _emt_frames(atoms, temperature: float, dt: float, steps: int, every: int) -> list[np.ndarray]:
    atoms = atoms.copy()
    atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(1))
    dyn = Langevin(atoms, dt * units.fs, temperature_K=temperature, friction=0.02 / units.fs, fixcm=False,
                   rng=np.random.default_rng(2))
    frames = []
    for _ in range(steps // every):
        dyn.run(every)
        frames.append(atoms.positions.copy())
    return frames


def test_copper_stays_fcc_at_300K_and_melts_far_above_its_emt_melting_point(model):
    """10 ps of Langevin NVT (5 fs steps) on 32-atom fcc Cu, the same protocol for the model and for EMT.

    Solid: RMS displacement from the lattice sites over the last 5 ps < 0.3 Å (a Lindemann ratio of 0.12 of the
    2.55 Å nearest-neighbour distance; crystals melt near 0.15). Liquid at 3000 K (EMT Cu melts near 1300 K):
    RMS displacement > 1.2 Å (atoms left their sites). EMT passes the same thresholds in the same protocol.
    """
    crystal = ase.build.bulk("Cu", "fcc", a=3.59, cubic=True) * (2, 2, 2)
    steps, every = 2000, 100
    for temperature, solid in ((300.0, True), (3000.0, False)):
        ours = _orb_md_frames(model, crystal, temperature, 5.0, steps, every)
        reference = _emt_frames(crystal, temperature, 5.0, steps, every)
        drift = _lattice_drift(ours[len(ours) // 2 :], crystal.positions, crystal.cell.array)
        drift_emt = _lattice_drift(reference[len(reference) // 2 :], crystal.positions, crystal.cell.array)
        if solid:
            assert drift < 0.3 and drift_emt < 0.3, (temperature, drift, drift_emt)
        else:
            assert drift > 1.2 and drift_emt > 1.2, (temperature, drift, drift_emt)


def _oo_first_peak(frames: list[np.ndarray], oxygens: np.ndarray, cells: list[np.ndarray]) -> float:
    """Position (Å) of the first maximum of the O-O radial distribution function (0.05 Å bins, 2-4 Å)."""
    edges = np.arange(2.0, 4.0001, 0.05)
    histogram = np.zeros(len(edges) - 1)
    for positions, cell in zip(frames, cells):
        o = positions[oxygens]
        delta = o[:, None, :] - o[None, :, :]
        delta -= np.round(delta @ np.linalg.inv(cell)) @ cell
        r = np.linalg.norm(delta, axis=-1)[np.triu_indices(len(o), 1)]
        histogram += np.histogram(r, edges)[0]
    shells = histogram / (edges[1:] ** 3 - edges[:-1] ** 3)  # divide by the shell volume
    return float(0.5 * (edges[:-1] + edges[1:])[np.argmax(shells)])


def test_water_oo_rdf_peak_matches_tip3p(model):
    """10 ps NVT at 300 K of the 32-molecule flexible water box; the O-O RDF's first peak must lie within
    0.1 Å of flexible TIP3P's (the reference potential, same box, same length of run, in OpenMM).
    Hydrogens weigh 4 amu in our run (1 fs steps): configurational averages do not depend on masses."""
    import openmm
    from openmm import app, unit

    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(app.ForceField("amber14-all.xml", "amber14/tip3p.xml"), model="tip3p",
                        boxSize=openmm.Vec3(1.0, 1.0, 1.0))
    system, integrator, context = reference_data._openmm_context(modeller.topology, modeller.positions, True, "CPU")
    integrator.setRandomNumberSeed(5)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=200)
    context.setVelocitiesToTemperature(300.0, 5)
    integrator.step(4000)  # 2 ps equilibration at 0.5 fs
    start = context.getState(getPositions=True, enforcePeriodicBox=True)
    tip3p_frames = []
    for _ in range(100):  # 10 ps
        integrator.step(200)
        tip3p_frames.append(context.getState(getPositions=True).getPositions(asNumpy=True)._value * 10.0)
    cell = start.getPeriodicBoxVectors(asNumpy=True)._value * 10.0
    numbers = reference_data._element_numbers(modeller.topology)
    water = ase.Atoms(numbers, start.getPositions(asNumpy=True)._value * 10.0, cell=cell, pbc=True)
    masses = water.get_masses()
    masses[numbers == 1] = 4.0
    water.set_masses(masses)
    state = create_state([water], ensemble="nvt", temperature=300.0, dt=1.0, friction=0.01, seed=3)
    md = BatchMD(state, model, progress=False)
    md.run(1000)  # 1 ps equilibration in our model
    ours = []
    for _ in range(100):  # 10 ps
        md.run(100)
        ours.append(state.positions.numpy().copy())
    oxygens = np.flatnonzero(numbers == 8)
    peak_tip3p = _oo_first_peak(tip3p_frames, oxygens, [cell] * len(tip3p_frames))
    peak_ours = _oo_first_peak(ours, oxygens, [cell] * len(ours))
    assert 2.6 < peak_tip3p < 2.9, peak_tip3p
    assert abs(peak_ours - peak_tip3p) <= 0.1, (peak_ours, peak_tip3p)


def test_solvated_peptide_stays_folded_in_openmm_torchforce(model):
    """10 ps of Langevin dynamics at 300 K in OpenMM, all forces from orb_md's TorchForce (no force field):
    villin's first five residues with their first water shell (non-periodic). Bonds to hydrogen are
    constrained and hydrogens weigh 4 amu (mass repartitioned from their heavy atom), a standard 2 fs
    set-up. The peptide's heavy-atom RMSD from the start (after optimal superposition) stays below 2 Å."""
    import mdtraj
    import openmm
    from openmm import app, unit
    from openmmml import MLPotential

    topology, positions = reference_data.villin_fragment()
    system = MLPotential(f"orb_md/{NAME}").createSystem(topology, model=model)
    for bond in topology.bonds():
        a, b = bond
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
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=100)
    context.setVelocitiesToTemperature(300.0, 7)
    frames = [context.getState(getPositions=True).getPositions(asNumpy=True)._value]
    for _ in range(50):  # 5000 x 2 fs = 10 ps
        integrator.step(100)
        frames.append(context.getState(getPositions=True).getPositions(asNumpy=True)._value)
    trajectory = mdtraj.Trajectory(np.array(frames), mdtraj.Topology.from_openmm(topology))
    heavy = trajectory.topology.select("protein and not element H")
    rmsd = mdtraj.rmsd(trajectory, trajectory, 0, atom_indices=heavy) * 10.0
    assert np.all(np.isfinite(rmsd)) and rmsd.max() < 2.0, rmsd.max()
