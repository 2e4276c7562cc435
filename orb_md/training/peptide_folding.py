"""Whether a potential keeps the solvated villin cluster folded: short MD runs from several seeds.

The protocol the bio model is checked with (``tests/test_bio_model.py``, ``benchmarks/peptide_folding.py``):
the potential's own minimum of the cluster (100 L-BFGS iterations from the built structure), then per seed an
independent Langevin run at 300 K in the standard 2 fs set-up (bonds to hydrogen constrained, hydrogens 4 amu,
mass taken from their heavy atom). One trajectory is chaotic: CPU models and thread counts change it after a
few hundred steps, so a verdict comes from the distribution over seeds, compared with amber14's in the same
protocol.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

TEMPERATURE_K = 300.0
FRICTION_PER_PS = 1.0
STEP_FS = 2.0
HYDROGEN_MASS_AMU = 4.0
MINIMISER_ITERATIONS = 100


@dataclass(frozen=True)
class FoldingRun:
    """One seed's trajectory, sampled every ``every`` steps (frame 0 is the minimised start): the peptide's
    heavy-atom RMSD (Å) from the folded structure (the built one, before minimisation) after optimal
    superposition, its heavy-atom radius of gyration (Å), and the largest relative change of a bond between
    peptide heavy atoms from its folded length."""

    seed: int
    rmsd: np.ndarray
    gyration: np.ndarray
    stretch: np.ndarray

    @property
    def late_rmsd(self) -> float:
        """Mean RMSD over the run's second half (frames after the midpoint): less chaotic than its maximum."""
        return float(np.mean(self.rmsd[len(self.rmsd) // 2 + 1:]))

    @property
    def finite(self) -> bool:
        return bool(np.all(np.isfinite(self.rmsd)) and np.all(np.isfinite(self.stretch)))


def amber14_system(topology):
    """amber14/flexible TIP3P for the cluster, no cutoff: the potential that labelled the training data."""
    from openmm import app

    return app.ForceField("amber14-all.xml", "amber14/tip3p.xml").createSystem(
        topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False, removeCMMotion=False
    )


def folding_runs(system, topology, positions, seeds: Sequence[int], steps: int, every: int = 50,
                 threads: int = 1) -> Iterator[FoldingRun]:
    """Minimise ``system`` (modified in place: repartitioned masses, hydrogen-bond constraints), then one run of
    ``steps`` 2 fs steps per seed from that minimum (Langevin and velocity seed ``seed``) on the CPU platform
    with ``threads`` threads; yields each seed's run as it ends."""
    import openmm

    _repartition_and_constrain(system, topology, positions)
    context = _context(system, positions, seed=1, threads=threads)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=MINIMISER_ITERATIONS)
    start = context.getState(getPositions=True).getPositions(asNumpy=True)
    del context
    analysis = _Analysis(topology, positions)
    for seed in seeds:
        context = _context(system, start, seed=seed, threads=threads)
        context.setVelocitiesToTemperature(TEMPERATURE_K, seed)
        frames = [start._value]
        for _ in range(steps // every):
            try:
                context.getIntegrator().step(every)
            except openmm.OpenMMException:  # NaN coordinates: the run blew up, its remaining frames are NaN
                break
            frames.append(context.getState(getPositions=True).getPositions(asNumpy=True)._value)
        frames += [np.full_like(start._value, np.nan)] * (steps // every + 1 - len(frames))
        yield analysis.run(seed, np.array(frames))


def _context(system, positions, seed: int, threads: int):
    import openmm
    from openmm import unit

    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE_K * unit.kelvin, FRICTION_PER_PS / unit.picosecond,
                                                 STEP_FS * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)  # read when the Context is made
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": str(threads)})
    context.setPositions(positions)
    return context


def _repartition_and_constrain(system, topology, positions) -> None:
    from openmm import unit

    for a, b in topology.bonds():
        if "H" in (a.element.symbol, b.element.symbol):
            heavy, hydrogen = (a, b) if b.element.symbol == "H" else (b, a)
            shift = (HYDROGEN_MASS_AMU - hydrogen.element.mass.value_in_unit(unit.amu)) * unit.amu
            system.setParticleMass(heavy.index, system.getParticleMass(heavy.index) - shift)
            system.setParticleMass(hydrogen.index, HYDROGEN_MASS_AMU * unit.amu)
            distance = np.linalg.norm(np.array(positions[a.index].value_in_unit(unit.nanometer))
                                      - np.array(positions[b.index].value_in_unit(unit.nanometer)))
            system.addConstraint(a.index, b.index, distance)


class _Analysis:
    """The peptide's heavy atoms, the bonds between them and their folded positions, in mdtraj's terms."""

    def __init__(self, topology, folded_positions) -> None:
        import mdtraj
        from openmm import unit

        self.topology = mdtraj.Topology.from_openmm(topology)
        self.folded = np.array(folded_positions.value_in_unit(unit.nanometer))
        self.heavy = self.topology.select("protein and not element H")
        heavy = set(self.heavy.tolist())
        self.bonds = np.array([(a.index, b.index) for a, b in self.topology.bonds if a.index in heavy and b.index in heavy])

    def run(self, seed: int, frames_nm: np.ndarray) -> FoldingRun:
        import mdtraj

        trajectory = mdtraj.Trajectory(np.concatenate([self.folded[None], frames_nm]), self.topology)
        lengths = mdtraj.compute_distances(trajectory, self.bonds)
        peptide = trajectory.atom_slice(self.heavy)
        blown_up = ~np.isfinite(frames_nm).all(axis=(1, 2))  # mdtraj's RMSD of NaN coordinates is 0, not NaN
        return FoldingRun(
            seed=seed,
            rmsd=np.where(blown_up, np.nan, mdtraj.rmsd(peptide, peptide, 0)[1:] * 10.0),
            gyration=np.where(blown_up, np.nan, mdtraj.compute_rg(peptide)[1:] * 10.0),
            stretch=np.abs(lengths / lengths[0] - 1.0).max(axis=1)[1:],
        )
