"""Training data for the biomolecular demo model: solvated peptide windows, thermal and deliberately distorted.

Every five-residue window of villin headpiece (residues 1-5, 6-10, ..., 31-35 of openmm's test.pdb) with its
first water shell, as a non-periodic cluster of flexible amber14/TIP3P (no constraints). Per window:

- **thermal**: Langevin MD on the CPU platform at 300, 450 and 600 K, ``frames_per_temperature`` frames each
  (0.1 ps apart, after 0.5 ps at that temperature);
- **distorted** thermal frames, the moves an energy minimiser under a poor model makes and thermal MD rarely
  samples: all atoms rattled (0.03-0.10 Å), hydrogens only rattled (0.05-0.15 Å), bond angles closed (four
  shell waters' H-O-H to 40-150 degrees and four peptide angles to 60-90 % of theirs, the moved atom terminal:
  a hydrogen or a carbonyl oxygen), and shell waters moved as rigid bodies (0.15 Å per axis, up to 20 degrees
  about their oxygen). A distorted frame whose largest reference force exceeds ``MAX_FORCE_EV_PER_A`` (two
  atoms pushed into each other) is drawn again: such frames teach nothing a minimiser or MD would visit.

A third kind, :func:`minimiser_contacts`, depends on a model: frames on the way to where OpenMM's L-BFGS under
that model goes. Its first iterations step far (hydrogens collapse onto each other under a model trained on the
two kinds above; MODEL_CARD.md), into contacts no thermal or distorted frame has; labelled, they
teach the model the wall it lacked (recipe stage 2 of the bio model, :func:`orb_md.training.recipe.train_bio`).

Labels come from the Reference platform (float64), in ASE units (see :mod:`orb_md.training.reference_data`).
Deterministic for a given seed: OpenMM's seeds are set before each Context, the CPU platform runs one thread and
the distortions draw from one seeded NumPy generator.
"""

from __future__ import annotations

import ase
import numpy as np
from scipy.spatial.transform import Rotation

from orb_md.training import reference_data

PEPTIDE_DATA_VERSION = 1  # bump whenever a change below alters the generated structures or labels
WINDOW_FIRST_RESIDUES = (0, 5, 10, 15, 20, 25, 30)
WINDOW_RESIDUES = 5
TEMPERATURES_K = (300.0, 450.0, 600.0)
DISTORTIONS = {"rattled": 20, "hydrogens-rattled": 15, "angles-closed": 20, "waters-moved": 15}
"""Distorted frames per window, by kind (drawn from the window's thermal frames)."""
MAX_FORCE_EV_PER_A = 50.0
MAX_DRAWS = 20  # per distorted frame, before giving up with an error
CONTACT_ITERATIONS = (1, 2, 4, 8)
"""L-BFGS iterations under the model from each start; each end point gives up to one frame per force cap."""
CONTACT_FORCE_CAPS_EV_PER_A = (20.0, 60.0, 150.0)
CONTACT_THERMAL_STARTS = 3  # thermal frames per window used as starts, besides amber14's minimum
BISECTION_STEPS = 30


def peptide_windows(seed: int = 0, windows: tuple[int, ...] = WINDOW_FIRST_RESIDUES,
                    frames_per_temperature: int = 20) -> list[ase.Atoms]:
    """Thermal and distorted frames of each window, ``info["source"]`` = ``amber14-peptide-<first>-<kind>``."""
    rng = np.random.default_rng(seed)
    out = []
    for first in windows:
        topology, positions = reference_data.villin_fragment(WINDOW_RESIDUES, first)
        out.extend(_window_frames(topology, positions, first, seed, frames_per_temperature, rng))
    return out


def _window_frames(topology, positions, first: int, seed: int, frames_per_temperature: int,
                   rng: np.random.Generator) -> list[ase.Atoms]:
    import openmm

    numbers = reference_data._element_numbers(topology)
    _, integrator, sampler = reference_data._openmm_context(topology, positions, False, "CPU", seed=seed + 3 + first)
    _, _, labeller = reference_data._openmm_context(topology, positions, False, "Reference")
    openmm.LocalEnergyMinimizer.minimize(sampler, maxIterations=300)
    source = f"amber14-peptide-{first + 1}"
    thermal = []
    for temperature in TEMPERATURES_K:
        integrator.setTemperature(temperature)
        sampler.setVelocitiesToTemperature(temperature, seed + first + int(temperature))
        integrator.step(1000)
        for _ in range(frames_per_temperature):
            integrator.step(200)
            thermal.append(reference_data._label_state(sampler, labeller, numbers, False,
                                                       f"{source}-{temperature:.0f}K"))
    geometry = _Geometry(topology)
    distorted = []
    for kind, count in DISTORTIONS.items():
        for _ in range(count):
            distorted.append(_distorted_frame(labeller, numbers, geometry, kind, thermal, rng, f"{source}-{kind}"))
    return thermal + distorted


def minimiser_contacts(model, thermal: list[ase.Atoms], seed: int = 0,
                       windows: tuple[int, ...] = WINDOW_FIRST_RESIDUES[:-1]) -> list[ase.Atoms]:
    """Frames on the paths of OpenMM's L-BFGS under ``model`` (an OrbModel of the windows' elements).

    Per window: from amber14's minimum and from ``CONTACT_THERMAL_STARTS`` frames drawn (seeded) from that
    window's thermal frames in ``thermal``, minimise with the model (TorchForce, Reference platform) for each of
    ``CONTACT_ITERATIONS``. On the straight segment from the start to each end point, the farthest point whose
    largest amber14 force is at most each of ``CONTACT_FORCE_CAPS_EV_PER_A`` (bisection; caps the end point
    already meets add nothing), labelled by amber14. ``info["source"]`` = ``amber14-peptide-<first>-contact``.
    Bit-reproducible for one model, seed and CPU model with one torch thread; with more, torch's CPU sums vary in
    the last bits from call to call, and so do the frames."""
    import openmm

    from orb_md_openmm.force import create_torch_force

    rng = np.random.default_rng(seed)
    frames = []
    for first in windows:
        source = f"amber14-peptide-{first + 1}"
        window = [a for a in thermal if a.info["source"].startswith(f"{source}-") and a.info["source"].endswith("K")]
        if len(window) < CONTACT_THERMAL_STARTS:
            raise ValueError(f"{source}: {len(window)} thermal frames given, {CONTACT_THERMAL_STARTS} needed as starts")
        topology, positions = reference_data.villin_fragment(WINDOW_RESIDUES, first)
        numbers = reference_data._element_numbers(topology)
        _, _, labeller = reference_data._openmm_context(topology, positions, False, "Reference")
        openmm.LocalEnergyMinimizer.minimize(labeller, maxIterations=300)
        starts = [labeller.getState(getPositions=True).getPositions(asNumpy=True)._value * 10.0]
        starts += [window[i].positions for i in rng.choice(len(window), CONTACT_THERMAL_STARTS, replace=False)]
        system = openmm.System()
        for atom in topology.atoms():
            system.addParticle(atom.element.mass)
        system.addForce(create_torch_force(model, topology, periodic=False))
        reference = openmm.Platform.getPlatformByName("Reference")
        minimiser = openmm.Context(system, openmm.VerletIntegrator(0.001), reference)
        for start in starts:
            for iterations in CONTACT_ITERATIONS:
                minimiser.setPositions(start / 10.0)
                openmm.LocalEnergyMinimizer.minimize(minimiser, maxIterations=iterations)
                end = minimiser.getState(getPositions=True).getPositions(asNumpy=True)._value * 10.0
                frames.extend(_capped_points(labeller, numbers, start, end, f"{source}-contact"))
    return frames


def _capped_points(labeller, numbers: np.ndarray, start: np.ndarray, end: np.ndarray, source: str) -> list[ase.Atoms]:
    """For each force cap the end point exceeds, the labelled farthest point of start->end within the cap."""
    def largest_force(fraction: float) -> float:
        return float(np.abs(_label(labeller, numbers, start + fraction * (end - start), source).arrays["forces"]).max())

    out = []
    end_force = largest_force(1.0)
    for cap in CONTACT_FORCE_CAPS_EV_PER_A:
        if end_force <= cap:
            continue
        low, high = 0.0, 1.0
        for _ in range(BISECTION_STEPS):
            middle = 0.5 * (low + high)
            low, high = (middle, high) if largest_force(middle) <= cap else (low, middle)
        out.append(_label(labeller, numbers, start + low * (end - start), source))
    return out


def _distorted_frame(labeller, numbers: np.ndarray, geometry: _Geometry, kind: str, thermal: list[ase.Atoms],
                     rng: np.random.Generator, source: str) -> ase.Atoms:
    """One ``kind`` distortion of a random thermal frame with all reference forces below the cap."""
    for _ in range(MAX_DRAWS):
        start = thermal[int(rng.integers(len(thermal)))].positions
        atoms = _label(labeller, numbers, geometry.distort(kind, start, rng), source)
        if np.abs(atoms.arrays["forces"]).max() <= MAX_FORCE_EV_PER_A:
            return atoms
    raise RuntimeError(f"{source}: no {kind} distortion with forces below {MAX_FORCE_EV_PER_A} eV/Å "
                       f"in {MAX_DRAWS} draws")


def _label(context, numbers: np.ndarray, positions: np.ndarray, source: str) -> ase.Atoms:
    """``positions`` (Å) labelled by ``context`` (Reference platform)."""
    context.setPositions(positions / 10.0)
    state = context.getState(getEnergy=True, getForces=True)
    atoms = ase.Atoms(numbers, positions, pbc=False)
    atoms.info["energy"] = state.getPotentialEnergy()._value * reference_data.KJ_PER_MOL_IN_EV
    atoms.arrays["forces"] = state.getForces(asNumpy=True)._value * reference_data.KJ_PER_MOL_NM_IN_EV_PER_A
    atoms.info["source"] = source
    return atoms


class _Geometry:
    """Index sets of one cluster's topology that the distortions act on."""

    def __init__(self, topology) -> None:
        atoms = list(topology.atoms())
        self.hydrogens = np.array([a.index for a in atoms if a.element.symbol == "H"])
        self.waters = [[a.index for a in sorted(r.atoms(), key=lambda a: a.element.symbol != "O")]
                       for r in topology.residues() if r.name == "HOH"]  # oxygen first
        bonded: dict[int, set[int]] = {a.index: set() for a in atoms}
        for a, b in topology.bonds():
            bonded[a.index].add(b.index)
            bonded[b.index].add(a.index)
        in_water = {i for water in self.waters for i in water}
        # peptide angles i-j-k whose outer atom k is terminal: moving it stretches no other bond
        self.angles = [(i, j, k) for j, partners in bonded.items() if j not in in_water
                       for i in partners for k in partners if i != k and len(bonded[k]) == 1]

    def distort(self, kind: str, positions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = positions.copy()
        if kind == "rattled":
            x += rng.normal(0.0, rng.uniform(0.03, 0.10), x.shape)
        elif kind == "hydrogens-rattled":
            x[self.hydrogens] += rng.normal(0.0, rng.uniform(0.05, 0.15), (len(self.hydrogens), 3))
        elif kind == "angles-closed":
            for w in rng.choice(len(self.waters), 4, replace=False):
                oxygen, h1, h2 = self.waters[w]
                _set_angle(x, h1, oxygen, h2, np.radians(rng.uniform(40.0, 150.0)))
            for a in rng.choice(len(self.angles), 4, replace=False):
                i, j, k = self.angles[a]
                _set_angle(x, i, j, k, rng.uniform(0.6, 0.9) * _angle(x, i, j, k))
        elif kind == "waters-moved":
            for water in self.waters:
                axis = rng.normal(size=3)
                rotation = Rotation.from_rotvec(np.radians(rng.uniform(0.0, 20.0)) * axis / np.linalg.norm(axis))
                oxygen = x[water[0]].copy()
                x[water] = rotation.apply(x[water] - oxygen) + oxygen + rng.normal(0.0, 0.15, 3)
        else:
            raise ValueError(f"unknown distortion {kind!r}; known: {', '.join(DISTORTIONS)}")
        return x


def _angle(x: np.ndarray, i: int, j: int, k: int) -> float:
    u, v = x[i] - x[j], x[k] - x[j]
    return float(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1.0, 1.0)))


def _set_angle(x: np.ndarray, i: int, j: int, k: int, angle: float) -> None:
    """Move atom k in the i-j-k plane so that the angle at j is ``angle``, keeping |x_k - x_j|."""
    u, v = x[i] - x[j], x[k] - x[j]
    e1 = u / np.linalg.norm(u)
    e2 = v - (v @ e1) * e1
    e2 /= np.linalg.norm(e2)
    x[k] = x[j] + np.linalg.norm(v) * (np.cos(angle) * e1 + np.sin(angle) * e2)

