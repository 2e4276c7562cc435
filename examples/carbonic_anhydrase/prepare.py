"""Prepare human carbonic anhydrase II (PDB 3KS3) for MD: fix, protonate, solvate, write a PDB.

Choices:
- Kept: the protein, the catalytic Zn2+ and the crystal waters (the Zn-bound water and the
  active-site water network matter for CA II). Dropped: every other hetero group (glycerol).
- Missing heavy atoms are rebuilt; missing *terminal* residues (disordered Met1-His3 in 3KS3)
  are not modelled, internal gaps would be.
- Hydrogens at the requested pH with amber14 templates. The three Zn-ligating histidines are
  protonated on the nitrogen that does not bind Zn (HID/HIE chosen by geometry), since OpenMM's
  H-bond heuristic ignores metal coordination.
- Zn uses amber14's Li-Merz 12-6 Zn2+ template (``amber14/tip3p.xml``, charge +2, no bonds).
  The force field is only used here for templates, neutralisation and ion placement; the Orb
  simulation itself uses no classical terms.
- amber14 + TIP3P, 0.15 M NaCl, neutralised; rhombic dodecahedron with 0.8 nm padding.

Small CPU variant: ``--residues 91-120`` keeps a contiguous fragment (with charged termini)
that contains the three Zn ligands (His94, His96, His119); hetero groups are kept only within
0.35 nm of the fragment. ``--padding`` sets the periodic water layer; ``--shell`` instead keeps
only waters/ions within that distance of the solute and drops the box (a non-periodic droplet,
like the published 5.5k-atom Orb CA II cluster); ``--max-atoms`` fails when the result is larger.
``--seed`` (default 0) fixes hydrogen and ion placement: the same inputs and seed give the same file.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
from pdbfixer import PDBFixer
from scipy.spatial import cKDTree

PDB_CACHE = Path.home() / ".cache" / "orb-md" / "pdb"
FORCEFIELD_FILES = ("amber14-all.xml", "amber14/tip3p.xml")
METALS = frozenset({"ZN"})
WATERS = frozenset({"HOH", "WAT"})
AMINO_ACIDS = frozenset(
    "ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL".split()
)
ZN_LIGAND_CUTOFF_NM = 0.26
FRAGMENT_CONTACT_NM = 0.35


@dataclass
class PreparedSystem:
    """A prepared topology with positions, atom counts and per-stage wall times (s)."""

    topology: app.Topology
    positions: unit.Quantity
    counts: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)


def resolve_source(source: str, cache_dir: Path = PDB_CACHE) -> Path:
    """Return a local PDB path for a file path or a 4-character PDB id (downloaded once, cached)."""
    path = Path(source)
    if path.is_file():
        return path
    if not re.fullmatch(r"[0-9][A-Za-z0-9]{3}", source):
        raise ValueError(f"{source!r} is neither an existing PDB file nor a 4-character PDB id")
    cached = cache_dir / f"{source.upper()}.pdb"
    if cached.is_file():
        return cached
    url = f"https://files.rcsb.org/download/{source.upper()}.pdb"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            data = response.read()
    except OSError as err:
        raise RuntimeError(
            f"cannot download PDB {source.upper()} from {url} ({err}): fetching by id needs internet "
            f"access; pass a local .pdb path instead (or place it at {cached})"
        ) from None
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(data)
    return cached


def parse_range(text: str) -> tuple[int, int]:
    """Parse ``FIRST-LAST`` residue numbers (inclusive)."""
    match = re.fullmatch(r"(-?\d+)-(-?\d+)", text)
    if not match or int(match[1]) > int(match[2]):
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST residue numbers, got {text!r}")
    return int(match[1]), int(match[2])


def _keep_residue(residue: app.Residue, keep_waters: bool) -> bool:
    name = residue.name.upper()
    if name in WATERS:
        return keep_waters
    return name in METALS or name in AMINO_ACIDS


def _replace(fixer: PDBFixer, modeller: app.Modeller) -> None:
    fixer.topology, fixer.positions = modeller.topology, modeller.positions


def select_atoms(fixer: PDBFixer, keep_waters: bool, residues: tuple[int, int] | None) -> None:
    """Drop hetero groups other than Zn (and waters); optionally cut a contiguous protein fragment."""
    deleted = [r for r in fixer.topology.residues() if not _keep_residue(r, keep_waters)]
    if residues is not None:
        first, last = residues
        protein = [r for r in fixer.topology.residues() if r.name.upper() in AMINO_ACIDS]
        kept = [r for r in protein if first <= int(r.id) <= last]
        if not kept:
            raise ValueError(f"no protein residue numbered {first}-{last} in the structure")
        xyz = np.asarray(fixer.positions.value_in_unit(unit.nanometer))
        kept_xyz = xyz[[a.index for r in kept for a in r.atoms()]]
        deleted += [r for r in protein if r not in kept]
        for r in fixer.topology.residues():
            if r.name.upper() in AMINO_ACIDS or r in deleted:
                continue
            d = np.linalg.norm(xyz[[a.index for a in r.atoms()]][:, None] - kept_xyz[None], axis=-1)
            if d.min() > FRAGMENT_CONTACT_NM:
                deleted.append(r)
    modeller = app.Modeller(fixer.topology, fixer.positions)
    modeller.delete(deleted)
    _replace(fixer, modeller)


def add_missing_heavy_atoms(fixer: PDBFixer, seed: int = 0) -> None:
    """Rebuild missing heavy atoms and internal missing residues; never add terminal residues."""
    fixer.findMissingResidues()
    chains = list(fixer.topology.chains())
    fixer.missingResidues = {
        (c, i): names
        for (c, i), names in fixer.missingResidues.items()
        if 0 < i < len(list(chains[c].residues()))
    }
    fixer.findMissingAtoms()
    fixer.addMissingAtoms(seed=seed)


def zinc_histidine_variants(topology: app.Topology, positions: unit.Quantity) -> list[str | None]:
    """Per-residue variants: HID/HIE for histidines ligating Zn (H on the non-binding N), else None."""
    xyz = np.asarray(positions.value_in_unit(unit.nanometer))
    metals = [a.index for a in topology.atoms() if a.residue.name.upper() in METALS]
    variants: list[str | None] = [None] * topology.getNumResidues()
    for residue in topology.residues():
        if residue.name.upper() != "HIS" or not metals:
            continue
        ring = {a.name: a.index for a in residue.atoms() if a.name in ("ND1", "NE2")}
        dist = {n: np.linalg.norm(xyz[metals] - xyz[i], axis=1).min() for n, i in ring.items()}
        bound = [n for n, d in dist.items() if d < ZN_LIGAND_CUTOFF_NM]
        if len(bound) == 1:
            variants[residue.index] = "HIE" if bound[0] == "ND1" else "HID"
    return variants


def trim_to_shell(modeller: app.Modeller, shell_nm: float, first_solvent_chain: int) -> None:
    """Keep added solvent residues within ``shell_nm`` of the solute; drop the periodic box."""
    xyz = np.asarray(modeller.positions.value_in_unit(unit.nanometer))
    solvent = [r for r in modeller.topology.residues() if r.chain.index >= first_solvent_chain]
    solvent_atoms = [a.index for r in solvent for a in r.atoms()]
    solute = np.setdiff1d(np.arange(len(xyz)), solvent_atoms)
    dist, _ = cKDTree(xyz[solute]).query(xyz[solvent_atoms], distance_upper_bound=shell_nm)
    near = {i for i, d in zip(solvent_atoms, dist) if d <= shell_nm}
    far = [r for r in solvent if not any(a.index in near for a in r.atoms())]
    modeller.delete(far)
    modeller.topology.setPeriodicBoxVectors(None)


@contextlib.contextmanager
def seeded_python_random(seed: int):
    """Seed Python's ``random`` inside the block, restoring the caller's state after: OpenMM's Modeller starts
    new hydrogens at random positions and picks the waters that become ions at random."""
    outer = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(outer)


def count_atoms(topology: app.Topology) -> dict[str, int]:
    """Atom counts by category: protein, zinc, water, Na+, Cl-, total."""
    counts: Counter[str] = Counter()
    for atom in topology.atoms():
        name = atom.residue.name.upper()
        if name in AMINO_ACIDS:
            counts["protein"] += 1
        elif name in WATERS:
            counts["water"] += 1
        else:
            counts[name] += 1
    counts["total"] = topology.getNumAtoms()
    return dict(counts)


def prepare(
    source: str,
    padding_nm: float = 0.8,
    ionic_strength_molar: float = 0.15,
    box_shape: str = "dodecahedron",
    ph: float = 7.0,
    keep_waters: bool = True,
    residues: tuple[int, int] | None = None,
    shell_nm: float | None = None,
    max_atoms: int | None = None,
    seed: int = 0,
) -> PreparedSystem:
    """Fix, protonate and solvate a CA II structure given as a PDB path or PDB id. The same inputs and
    ``seed`` give the same atoms and positions on every run."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    fixer = PDBFixer(filename=str(resolve_source(source)))
    select_atoms(fixer, keep_waters, residues)
    add_missing_heavy_atoms(fixer, seed)
    timings["fix"] = time.perf_counter() - start

    start = time.perf_counter()
    forcefield = app.ForceField(*FORCEFIELD_FILES)
    modeller = app.Modeller(fixer.topology, fixer.positions)
    variants = zinc_histidine_variants(modeller.topology, modeller.positions)
    with seeded_python_random(seed):  # minimised on Reference: the CPU platform's threaded sums vary run to run
        modeller.addHydrogens(forcefield, pH=ph, variants=variants,
                              platform=openmm.Platform.getPlatformByName("Reference"))
    timings["hydrogens"] = time.perf_counter() - start

    start = time.perf_counter()
    solute_chains = modeller.topology.getNumChains()
    with seeded_python_random(seed):
        modeller.addSolvent(
            forcefield,
            model="tip3p",
            padding=(padding_nm if shell_nm is None else shell_nm + 0.3) * unit.nanometer,
            boxShape=box_shape if shell_nm is None else "cube",
            ionicStrength=ionic_strength_molar * unit.molar,
            positiveIon="Na+",
            negativeIon="Cl-",
        )
    if shell_nm is not None:
        trim_to_shell(modeller, shell_nm, solute_chains)
    timings["solvate"] = time.perf_counter() - start

    counts = count_atoms(modeller.topology)
    if max_atoms is not None and counts["total"] > max_atoms:
        raise ValueError(
            f"prepared system has {counts['total']} atoms > --max-atoms {max_atoms}; "
            "use a smaller --padding or a --residues fragment"
        )
    return PreparedSystem(modeller.topology, modeller.positions, counts, timings)


def total_charge(topology: app.Topology) -> float:
    """Net charge (e) of the system under amber14/TIP3P: 0 after neutralisation."""
    system = app.ForceField(*FORCEFIELD_FILES).createSystem(topology, nonbondedMethod=app.NoCutoff)
    nonbonded = next(f for f in system.getForces() if f.__class__.__name__ == "NonbondedForce")
    charges = (nonbonded.getParticleParameters(i)[0] for i in range(system.getNumParticles()))
    return sum(q.value_in_unit(unit.elementary_charge) for q in charges)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", help="PDB file path (offline) or PDB id such as 3KS3 (needs internet unless cached)")
    parser.add_argument("-o", "--output", type=Path, default=Path("caii_solvated.pdb"))
    parser.add_argument("--padding", type=float, default=0.8, help="solvent padding in nm (default 0.8)")
    parser.add_argument("--box-shape", choices=("dodecahedron", "octahedron", "cube"), default="dodecahedron")
    parser.add_argument("--ionic-strength", type=float, default=0.15, help="NaCl molarity (default 0.15)")
    parser.add_argument("--ph", type=float, default=7.0)
    parser.add_argument("--drop-waters", action="store_true", help="drop the crystal waters")
    parser.add_argument("--residues", type=parse_range, help="keep only protein residues FIRST-LAST, e.g. 91-120")
    parser.add_argument("--shell", type=float, help="non-periodic droplet: keep solvent within this many nm")
    parser.add_argument("--max-atoms", type=int, help="fail if the prepared system is larger")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of hydrogen and ion placement: a seed gives the same system on every run")
    args = parser.parse_args(argv)
    try:
        prepared = prepare(
            args.source,
            padding_nm=args.padding,
            ionic_strength_molar=args.ionic_strength,
            box_shape=args.box_shape,
            ph=args.ph,
            keep_waters=not args.drop_waters,
            residues=args.residues,
            shell_nm=args.shell,
            max_atoms=args.max_atoms,
            seed=args.seed,
        )
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    with open(args.output, "w") as handle:
        app.PDBFile.writeFile(prepared.topology, prepared.positions, handle, keepIds=True)
    counts = ", ".join(f"{k} {v}" for k, v in prepared.counts.items())
    times = ", ".join(f"{k} {v:.1f} s" for k, v in prepared.timings.items())
    print(f"wrote {args.output}: {counts}\ntimings: {times}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
