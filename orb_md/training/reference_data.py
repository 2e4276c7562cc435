"""Training data generated offline from classical reference potentials that ship with PyPI packages.

Two families, both deterministic for a given seed (whatever the thread count):

- **metals**: ASE's EMT for Al, Ni, Cu, Pd, Ag, Pt, Au and random binary alloys. Strained and rattled
  fcc crystals, vacancies, (111) slabs (periodic in x and y only), and snapshots of EMT Langevin MD from
  300 K to far above melting. Labels: energy, forces, stress (3D-periodic cells only).
- **biomolecular**: flexible amber14/TIP3P from OpenMM (no constraints, rigid water off) on the Reference
  platform (float64): periodic water boxes (PME) sampled by NPT MD at 280-360 K, and non-periodic clusters of
  a capped-free pentapeptide from villin headpiece with its first water shell. Stress of the water boxes is the
  central finite difference of the energy under lower-triangular homogeneous strains (rotation invariance
  makes that the full symmetric stress).

Every structure is an :class:`ase.Atoms` with ``info["energy"]`` (eV), ``arrays["forces"]`` (eV/Å) and,
where defined, ``info["stress"]`` (Voigt xx yy zz yz xz xy, eV/Å^3, ASE sign); ``info["source"]`` names the
generator. :func:`write_dataset` stores them as extxyz.
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib.resources
import multiprocessing
import random
from collections.abc import Iterator
from pathlib import Path

import ase
import ase.build
import ase.data
import ase.io
import numpy as np
from ase import units
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from orb_md.units import EV_IN_KJ_PER_MOL

DATA_VERSION = 2  # bump whenever a change below alters the generated structures or labels
METALS = ("Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au")
ALLOYS = (("Cu", "Au"), ("Cu", "Ni"), ("Ag", "Pd"), ("Pt", "Ni"))
MD_TEMPERATURES_K = (300.0, 800.0, 1500.0, 2500.0, 4000.0)
WATER_TEMPERATURES_K = (280.0, 300.0, 330.0, 360.0)
KJ_PER_MOL_IN_EV = 1.0 / EV_IN_KJ_PER_MOL
KJ_PER_MOL_NM_IN_EV_PER_A = KJ_PER_MOL_IN_EV / 10.0
STRAIN_STEP = 1e-4  # finite-difference strain for the water-box stress


def _labelled(atoms: ase.Atoms, source: str, stress: bool) -> ase.Atoms:
    """A copy of ``atoms`` carrying its calculator's energy/forces(/stress) as plain data."""
    out = ase.Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out.info["energy"] = float(atoms.get_potential_energy())
    out.arrays["forces"] = atoms.get_forces().copy()
    if stress:
        out.info["stress"] = atoms.get_stress(voigt=True).copy()
    out.info["source"] = source
    return out


def _emt_lattice_constant(element: str) -> float:
    """EMT's own fcc equilibrium lattice constant (Å), by a parabola through three energies."""
    a0 = float(ase.build.bulk(element, "fcc", cubic=True).cell[0, 0])
    steps = a0 * np.array([-0.02, 0.0, 0.02])
    energies = []
    for da in steps:
        atoms = ase.build.bulk(element, "fcc", a=a0 + da, cubic=True)
        atoms.calc = EMT()
        energies.append(atoms.get_potential_energy())
    c2, c1, _ = np.polyfit(steps, energies, 2)
    return a0 - c1 / (2.0 * c2)


def _strained(atoms: ase.Atoms, rng: np.random.Generator, diagonal: float, shear: float) -> ase.Atoms:
    strain = np.diag(rng.uniform(-diagonal, diagonal, 3))
    off = rng.uniform(-shear, shear, 3)
    strain[[1, 2, 2], [0, 0, 1]] = off
    strain = 0.5 * (strain + strain.T)
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    return atoms


def _emt_md_snapshots(
    atoms: ase.Atoms, temperature_k: float, rng: np.random.Generator, count: int, source: str
) -> Iterator[ase.Atoms]:
    atoms = atoms.copy()
    atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_k, rng=rng)
    dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=temperature_k, friction=0.05, fixcm=False, rng=rng)
    dyn.run(150)
    for _ in range(count):
        dyn.run(50)
        yield _labelled(atoms, source, stress=True)


def metal_structures(
    seed: int = 0,
    elements: tuple[str, ...] = METALS,
    alloys: tuple[tuple[str, str], ...] = ALLOYS,
    weight: dict[str, int] | None = None,
) -> list[ase.Atoms]:
    """EMT-labelled metal and alloy structures (600 of 16-32 atoms by default; Cu's set is drawn twice)."""
    weight = {"Cu": 2} if weight is None else weight
    rng = np.random.default_rng(seed)
    out: list[ase.Atoms] = []
    for element in elements:
        a = _emt_lattice_constant(element)
        crystal = ase.build.bulk(element, "fcc", a=a, cubic=True) * (2, 2, 2)
        for _ in range(weight.get(element, 1)):
            out.extend(_metal_set(crystal, element, a, rng))
    for first, second in alloys:
        a = 0.5 * (_emt_lattice_constant(first) + _emt_lattice_constant(second))
        for _ in range(6):
            alloy = ase.build.bulk(first, "fcc", a=a, cubic=True) * (2, 2, 2)
            alloy.numbers[rng.random(len(alloy)) < rng.uniform(0.2, 0.8)] = ase.data.atomic_numbers[second]
            alloy = _strained(alloy, rng, 0.03, 0.02)
            alloy.rattle(0.1, rng=rng)
            alloy.calc = EMT()
            out.append(_labelled(alloy, f"emt-alloy-{first}{second}", stress=True))
            temperature = float(rng.choice(MD_TEMPERATURES_K))
            out.extend(_emt_md_snapshots(alloy, temperature, rng, 2, f"emt-alloy-md-{first}{second}"))
    return out


def _metal_set(crystal: ase.Atoms, element: str, a: float, rng: np.random.Generator) -> list[ase.Atoms]:
    out = []
    for scale in np.linspace(0.92, 1.08, 9):  # equation of state
        atoms = crystal.copy()
        atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
        atoms.rattle(0.02, rng=rng)
        atoms.calc = EMT()
        out.append(_labelled(atoms, f"emt-eos-{element}", stress=True))
    for _ in range(20):  # strained, rattled crystals
        atoms = _strained(crystal, rng, 0.04, 0.03)
        atoms.rattle(float(rng.uniform(0.02, 0.2)), rng=rng)
        atoms.calc = EMT()
        out.append(_labelled(atoms, f"emt-crystal-{element}", stress=True))
    for _ in range(6):  # vacancies
        atoms = crystal.copy()
        del atoms[int(rng.integers(len(atoms)))]
        atoms.rattle(0.08, rng=rng)
        atoms.calc = EMT()
        out.append(_labelled(atoms, f"emt-vacancy-{element}", stress=True))
    for _ in range(6):  # (111) surfaces, periodic in x and y only
        slab = ase.build.fcc111(element, size=(2, 2, 4), a=a, vacuum=None, periodic=False)
        slab.pbc = (True, True, False)
        slab.rattle(0.08, rng=rng)
        slab.calc = EMT()
        out.append(_labelled(slab, f"emt-slab-{element}", stress=False))
    for temperature in MD_TEMPERATURES_K:  # thermal disorder up to the liquid
        out.extend(_emt_md_snapshots(crystal, temperature, rng, 5, f"emt-md-{element}-{temperature:.0f}K"))
    return out


def _openmm_context(topology, positions, periodic: bool, platform: str, seed: int = 1,
                    barostat_seed: int | None = None):
    """An OpenMM context of flexible amber14/TIP3P for ``topology`` on ``platform``, its Langevin integrator seeded
    with ``seed`` and, with ``barostat_seed``, a 1 bar Monte Carlo barostat. Seeds must be set before the Context
    exists: OpenMM reads them there, ignores later calls and draws a fresh seed per Context for 0. The CPU platform
    runs one thread, which makes its trajectories reproducible."""
    import openmm
    from openmm import app, unit

    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    system = forcefield.createSystem(
        topology,
        nonbondedMethod=app.PME if periodic else app.NoCutoff,
        nonbondedCutoff=0.45 * unit.nanometer,
        constraints=None,
        rigidWater=False,
        removeCMMotion=False,
    )
    if periodic:
        for force in system.getForces():
            if isinstance(force, openmm.NonbondedForce):
                force.setEwaldErrorTolerance(1e-5)
    if barostat_seed is not None:
        barostat = openmm.MonteCarloBarostat(1.0 * unit.bar, 300.0, 25)
        barostat.setRandomNumberSeed(barostat_seed)
        system.addForce(barostat)
    integrator = openmm.LangevinMiddleIntegrator(300.0, 5.0, 0.0005)
    integrator.setRandomNumberSeed(seed)
    properties = {"Threads": "1"} if platform == "CPU" else {}  # with more threads its sums vary run to run
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), properties)
    context.setPositions(positions)
    return system, integrator, context


def _label_state(sampler, context, numbers: np.ndarray, periodic: bool, source: str) -> ase.Atoms:
    """The sampler's current configuration, labelled by ``context`` (Reference platform) in ASE units."""
    sampled = sampler.getState(getPositions=True)
    if periodic:
        context.setPeriodicBoxVectors(*sampled.getPeriodicBoxVectors())
    context.setPositions(sampled.getPositions())
    state = context.getState(getEnergy=True, getForces=True, getPositions=True)
    positions = state.getPositions(asNumpy=True)._value * 10.0
    cell = state.getPeriodicBoxVectors(asNumpy=True)._value * 10.0 if periodic else np.zeros((3, 3))
    atoms = ase.Atoms(numbers, positions, cell=cell, pbc=periodic)
    atoms.info["energy"] = state.getPotentialEnergy()._value * KJ_PER_MOL_IN_EV
    atoms.arrays["forces"] = state.getForces(asNumpy=True)._value * KJ_PER_MOL_NM_IN_EV_PER_A
    if periodic:
        atoms.info["stress"] = _finite_difference_stress(context, positions / 10.0, cell / 10.0)
    atoms.info["source"] = source
    return atoms


def _finite_difference_stress(context, positions_nm: np.ndarray, box_nm: np.ndarray) -> np.ndarray:
    """(1/V) dE/d(strain) by central differences of lower-triangular strains (box stays in reduced form)."""
    volume = abs(np.linalg.det(box_nm)) * 1000.0  # Å^3
    derivative = np.zeros((3, 3))
    for i, j in ((0, 0), (1, 1), (2, 2), (1, 0), (2, 0), (2, 1)):
        energies = []
        for sign in (1.0, -1.0):
            gradient = np.eye(3)
            gradient[i, j] += sign * STRAIN_STEP
            context.setPeriodicBoxVectors(*(box_nm @ gradient))
            context.setPositions(positions_nm @ gradient)
            energies.append(context.getState(getEnergy=True).getPotentialEnergy()._value * KJ_PER_MOL_IN_EV)
        derivative[i, j] = derivative[j, i] = (energies[0] - energies[1]) / (2.0 * STRAIN_STEP)
    context.setPeriodicBoxVectors(*box_nm)
    context.setPositions(positions_nm)
    sigma = derivative / volume
    return np.array([sigma[0, 0], sigma[1, 1], sigma[2, 2], sigma[1, 2], sigma[0, 2], sigma[0, 1]])


def _element_numbers(topology) -> np.ndarray:
    return np.array([atom.element.atomic_number for atom in topology.atoms()])


def water_boxes(seed: int = 0, box_nm: float = 1.0, frames_per_temperature: int = 25) -> list[ase.Atoms]:
    """Flexible TIP3P water boxes (PME): NPT Langevin MD on the CPU platform samples configurations
    at several temperatures, the Reference platform (float64) labels them."""
    import openmm
    from openmm import app

    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(
        app.ForceField("amber14-all.xml", "amber14/tip3p.xml"), model="tip3p", boxSize=openmm.Vec3(box_nm, box_nm, box_nm)
    )
    numbers = _element_numbers(modeller.topology)
    _, integrator, sampler = _openmm_context(modeller.topology, modeller.positions, True, "CPU", seed=seed + 2,
                                             barostat_seed=seed + 1)
    openmm.LocalEnergyMinimizer.minimize(sampler, maxIterations=200)
    _, _, labeller = _openmm_context(modeller.topology, modeller.positions, True, "Reference")
    out = []
    sampler.setVelocitiesToTemperature(WATER_TEMPERATURES_K[0], seed)
    integrator.step(4000)
    for temperature in WATER_TEMPERATURES_K:
        integrator.setTemperature(temperature)
        sampler.setParameter(openmm.MonteCarloBarostat.Temperature(), temperature)
        integrator.step(2000)
        for _ in range(frames_per_temperature):
            integrator.step(200)
            out.append(_label_state(sampler, labeller, numbers, True, f"tip3p-water-{temperature:.0f}K"))
    return out


def villin_fragment(residues: int = 5, first: int = 0):
    """Residues ``first`` to ``first + residues - 1`` of villin headpiece (openmm's test.pdb) as a zwitterionic
    peptide with its first water shell (waters whose oxygen lies within 3.5 Å of a peptide atom), hydrogens from
    amber14."""
    import openmm
    from openmm import app, unit

    path = importlib.resources.files("openmm.app") / "data" / "test.pdb"
    pdb = app.PDBFile(str(path))
    keep_residues = [r for r in pdb.topology.residues() if r.name != "HOH"][first:first + residues]
    peptide_atoms = {atom.index for res in keep_residues for atom in res.atoms()}
    xyz = np.array(pdb.positions.value_in_unit(unit.nanometer))
    peptide_xyz = xyz[sorted(peptide_atoms)]
    shell = []
    for res in pdb.topology.residues():
        if res.name == "HOH":
            oxygen = [a.index for a in res.atoms() if a.element.symbol == "O"][0]
            if np.min(np.linalg.norm(peptide_xyz - xyz[oxygen], axis=1)) < 0.35:
                shell.append(res)
    keep = peptide_atoms | {atom.index for res in shell for atom in res.atoms()}
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.delete([atom for atom in pdb.topology.atoms() if atom.index not in keep])
    modeller.topology.setPeriodicBoxVectors(None)
    hydrogens = [a for a in modeller.topology.atoms() if a.element.symbol == "H" and a.residue.name != "HOH"]
    modeller.delete(hydrogens)
    _add_terminal_oxygen(modeller)
    outer = random.getstate()  # Modeller.addHydrogens starts new hydrogens at positions from Python's random
    random.seed(0)
    try:  # and minimises them on the given platform (the default, CPU, sums in a varying order with 2+ threads)
        modeller.addHydrogens(app.ForceField("amber14-all.xml", "amber14/tip3p.xml"), pH=7.0,
                              platform=openmm.Platform.getPlatformByName("Reference"))
    finally:
        random.setstate(outer)
    return modeller.topology, modeller.positions


def _add_terminal_oxygen(modeller) -> None:
    """Give the cut C-terminus its OXT (amber14's C-terminal templates need it)."""
    from openmm import app, unit

    residues = [r for r in modeller.topology.residues() if r.name != "HOH"]
    last = residues[-1]
    names = {a.name: a for a in last.atoms()}
    if "OXT" in names:
        return
    xyz = modeller.positions
    c = np.array(xyz[names["C"].index].value_in_unit(unit.nanometer))
    o = np.array(xyz[names["O"].index].value_in_unit(unit.nanometer))
    ca = np.array(xyz[names["CA"].index].value_in_unit(unit.nanometer))
    bisector = (c - o) / np.linalg.norm(c - o) + (c - ca) / np.linalg.norm(c - ca)
    oxt = c + 0.125 * bisector / np.linalg.norm(bisector)
    topology = app.Topology()
    new_positions = []
    for chain in modeller.topology.chains():
        new_chain = topology.addChain(chain.id)
        for residue in chain.residues():
            new_res = topology.addResidue(residue.name, new_chain, residue.id)
            for atom in residue.atoms():
                topology.addAtom(atom.name, atom.element, new_res)
                new_positions.append(xyz[atom.index])
            if residue == last:
                topology.addAtom("OXT", app.element.oxygen, new_res)
                new_positions.append(oxt * unit.nanometer)
    topology.createStandardBonds()
    modeller.topology = topology
    modeller.positions = unit.Quantity([v.value_in_unit(unit.nanometer) for v in new_positions], unit.nanometer)


def peptide_clusters(seed: int = 0, frames_per_temperature: int = 25) -> list[ase.Atoms]:
    """Non-periodic villin pentapeptide + first water shell, sampled by Langevin MD at 300 and 360 K."""
    import openmm

    topology, positions = villin_fragment()
    numbers = _element_numbers(topology)
    _, integrator, sampler = _openmm_context(topology, positions, False, "CPU", seed=seed + 3)
    _, _, labeller = _openmm_context(topology, positions, False, "Reference")
    openmm.LocalEnergyMinimizer.minimize(sampler, maxIterations=300)
    out = []
    for temperature in (300.0, 360.0):
        integrator.setTemperature(temperature)
        sampler.setVelocitiesToTemperature(temperature, seed + int(temperature))
        integrator.step(2000)
        for _ in range(frames_per_temperature):
            integrator.step(200)
            out.append(_label_state(sampler, labeller, numbers, False, f"amber14-peptide-{temperature:.0f}K"))
    return out


def generate(seed: int = 0, processes: int = 1) -> list[ase.Atoms]:
    """The whole demo training set: metals (EMT), water and peptide clusters (amber14/TIP3P). The three
    families draw from their own seeded generators, so ``processes`` > 1 builds them side by side in fresh
    processes with the same result."""
    families = [functools.partial(family, seed) for family in (metal_structures, water_boxes, peptide_clusters)]
    if processes <= 1:
        return [atoms for family in families for atoms in family()]
    context = multiprocessing.get_context("spawn")  # no forked copies of torch's or OpenMM's thread pools
    with concurrent.futures.ProcessPoolExecutor(min(processes, len(families)), mp_context=context) as pool:
        futures = [pool.submit(family) for family in families]
        return [atoms for future in futures for atoms in future.result()]


def write_dataset(structures: list[ase.Atoms], path: str | Path) -> None:
    """Store labelled structures as extxyz (energy/stress in info, forces in arrays)."""
    ase.io.write(str(path), structures, format="extxyz")


def read_dataset(path: str | Path) -> list[ase.Atoms]:
    """Inverse of :func:`write_dataset` (ASE's reader puts the labels on a calculator; move them back)."""
    structures = []
    for atoms in ase.io.read(str(path), index=":", format="extxyz"):
        results = atoms.calc.results if atoms.calc is not None else {}
        atoms.calc = None
        atoms.info["energy"] = float(results.get("energy", atoms.info.get("energy")))
        atoms.arrays["forces"] = np.asarray(results.get("forces", atoms.arrays.get("forces")))
        if "stress" in results or "stress" in atoms.info:
            atoms.info["stress"] = np.asarray(results.get("stress", atoms.info.get("stress")))
        structures.append(atoms)
    return structures
