"""The shipped 0D–3D reference set: structures from ASE's builders relaxed with ASE's EMT potential.

A small stand-in for the 0123D dataset (same file keys: ``id_dimension``, ``mat_id``,
``uncorrected_energy``) so that ``orb-md dimensionality`` runs offline with the bundled model, which learned
EMT (see orb_md/weights/MODEL_CARD.md). EMT's parameters for C, H, N and O are rough ("for fun" in ASE), so the
carbon and molecular entries test robustness more than physics. Deterministic: rebuild with
``python -m orb_md.dimensionality.reference_set`` (``--out`` for another file).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import ase
import ase.io
import numpy as np
from ase.build import bulk, fcc100, fcc110, fcc111, graphene, graphene_nanoribbon, molecule, nanotube
from ase.calculators.emt import EMT
from ase.cluster import Decahedron, Icosahedron, Octahedron
from ase.data import atomic_numbers
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE

SHIPPED_SET = Path(__file__).with_name("data") / "emt_0123d.extxyz"
FMAX = 1e-3  # eV/Å: references converged 40 times tighter than the protocol's 40 meV/Å
MAX_STEPS = 20_000
VACUUM = 6.0  # Å of vacuum padding (only for viewing: non-periodic directions have pbc False)


def emt_lattice_constant(symbol: str) -> float:
    """EMT's fcc lattice constant of ``symbol`` (cell relaxed from the experimental value)."""
    atoms = bulk(symbol, "fcc", cubic=True)
    atoms.calc = EMT()
    FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=FMAX, steps=MAX_STEPS)
    return float(np.cbrt(atoms.cell.volume))


def _nanowire(symbol: str, a: float, radius: float) -> ase.Atoms:
    """An fcc [001] wire: atoms of a bulk supercell within ``radius`` of the cell's axis."""
    crystal = bulk(symbol, "fcc", a=a, cubic=True).repeat((5, 5, 1))
    centre = crystal.cell.lengths()[:2] / 2 + a / 4
    keep = np.linalg.norm(crystal.positions[:, :2] - centre, axis=1) <= radius
    wire = crystal[keep]
    wire.pbc = (False, False, True)
    wire.center(vacuum=VACUUM, axis=(0, 1))
    return wire


def _fcc111_ribbon(symbol: str, a: float) -> ase.Atoms:
    """A two-layer (111) strip, periodic along x only."""
    ribbon = fcc111(symbol, (1, 4, 2), a=a, orthogonal=True)
    ribbon.pbc = (True, False, False)
    ribbon.center(vacuum=VACUUM, axis=(1, 2))
    return ribbon


def _vacancy(symbol: str, a: float, repeat: tuple[int, int, int]) -> ase.Atoms:
    crystal = bulk(symbol, "fcc", a=a, cubic=True).repeat(repeat)
    del crystal[0]
    return crystal


def _substitution(host: str, guest: str, a: float) -> ase.Atoms:
    crystal = bulk(host, "fcc", a=a, cubic=True).repeat((2, 2, 1))
    crystal.numbers[0] = atomic_numbers[guest]
    return crystal


def _cluster(atoms: ase.Atoms) -> ase.Atoms:
    atoms = atoms.copy()
    atoms.pbc = False
    atoms.center(vacuum=VACUUM)
    return atoms


def _slab(atoms: ase.Atoms) -> ase.Atoms:
    atoms.pbc = (True, True, False)
    return atoms


def builders(a: dict[str, float]) -> dict[str, tuple[int, Callable[[], ase.Atoms]]]:
    """Name -> (dimensionality, builder) of every structure of the set, at EMT lattice constants ``a``."""
    return {
        # 0D: clusters and molecules
        "Cu13-icosahedron": (0, lambda: _cluster(Icosahedron("Cu", 2, latticeconstant=a["Cu"]))),
        "Au13-cuboctahedron": (0, lambda: _cluster(Octahedron("Au", 3, cutoff=1, latticeconstant=a["Au"]))),
        "Ag13-decahedron": (0, lambda: _cluster(Decahedron("Ag", 2, 2, 0, latticeconstant=a["Ag"]))),
        "Pd19-octahedron": (0, lambda: _cluster(Octahedron("Pd", 3, latticeconstant=a["Pd"]))),
        "Pt6-octahedron": (0, lambda: _cluster(Octahedron("Pt", 2, latticeconstant=a["Pt"]))),
        "Ni13-icosahedron": (0, lambda: _cluster(Icosahedron("Ni", 2, latticeconstant=a["Ni"]))),
        "N2": (0, lambda: _cluster(molecule("N2"))),
        "H2O": (0, lambda: _cluster(molecule("H2O"))),
        # 1D: wires, ribbons, nanotubes
        "Cu-wire-001": (1, lambda: _nanowire("Cu", a["Cu"], 3.7)),
        "Al-wire-001": (1, lambda: _nanowire("Al", a["Al"], 3.7)),
        "Au-wire-001": (1, lambda: _nanowire("Au", a["Au"], 4.2)),
        "Ag-ribbon-111": (1, lambda: _fcc111_ribbon("Ag", a["Ag"])),
        "Pt-ribbon-111": (1, lambda: _fcc111_ribbon("Pt", a["Pt"])),
        "C-nanotube-3-3": (1, lambda: _cluster_axis(nanotube(3, 3, length=2, vacuum=VACUUM))),
        "C-nanotube-5-0": (1, lambda: _cluster_axis(nanotube(5, 0, length=2, vacuum=VACUUM))),
        "C-ribbon-zigzag": (1, lambda: graphene_nanoribbon(2, 2, type="zigzag", vacuum=VACUUM)),
        # 2D: sheets and slabs
        "graphene": (2, lambda: _slab(graphene(size=(2, 2, 1), vacuum=VACUUM))),
        "Cu-111-3layers": (2, lambda: _slab(fcc111("Cu", (2, 2, 3), a=a["Cu"], vacuum=VACUUM))),
        "Au-111-2layers": (2, lambda: _slab(fcc111("Au", (2, 2, 2), a=a["Au"], vacuum=VACUUM))),
        "Al-100-3layers": (2, lambda: _slab(fcc100("Al", (2, 2, 3), a=a["Al"], vacuum=VACUUM))),
        "Ni-100-2layers": (2, lambda: _slab(fcc100("Ni", (2, 2, 2), a=a["Ni"], vacuum=VACUUM))),
        "Ag-110-3layers": (2, lambda: _slab(fcc110("Ag", (2, 2, 3), a=a["Ag"], vacuum=VACUUM))),
        "Pd-111-monolayer": (2, lambda: _slab(fcc111("Pd", (2, 2, 1), a=a["Pd"], vacuum=VACUUM))),
        "Pt-111-3layers": (2, lambda: _slab(fcc111("Pt", (2, 2, 3), a=a["Pt"], vacuum=VACUUM))),
        # 3D: bulk with defects (a perfect crystal at fixed cell has no force to relax)
        "Cu-vacancy": (3, lambda: _vacancy("Cu", a["Cu"], (2, 2, 2))),
        "Al-vacancy": (3, lambda: _vacancy("Al", a["Al"], (2, 2, 1))),
        "Ni-vacancy": (3, lambda: _vacancy("Ni", a["Ni"], (2, 2, 1))),
        "Pt-vacancy": (3, lambda: _vacancy("Pt", a["Pt"], (2, 2, 1))),
        "Cu-in-Au": (3, lambda: _substitution("Au", "Cu", a["Au"])),
        "Pd-in-Ag": (3, lambda: _substitution("Ag", "Pd", a["Ag"])),
    }


def _cluster_axis(atoms: ase.Atoms) -> ase.Atoms:
    atoms.pbc = (False, False, True)
    return atoms


def build_reference_set() -> list[ase.Atoms]:
    """Every structure relaxed (positions only) with EMT to ``FMAX``, labelled like 0123D's entries."""
    symbols = ("Cu", "Al", "Au", "Ag", "Ni", "Pd", "Pt")
    a = {symbol: emt_lattice_constant(symbol) for symbol in symbols}
    structures = []
    for name, (dimensionality, build) in builders(a).items():
        atoms = build()
        atoms.calc = EMT()
        optimizer = FIRE(atoms, logfile=None)
        if not optimizer.run(fmax=FMAX, steps=MAX_STEPS):
            raise RuntimeError(f"EMT relaxation of {name} did not converge in {MAX_STEPS} steps")
        energy = atoms.get_potential_energy()
        atoms.calc = None
        atoms.info = {"mat_id": name, "id_dimension": f"{dimensionality}D", "uncorrected_energy": float(energy)}
        structures.append(atoms)
    return structures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SHIPPED_SET, help=f"extxyz file to write (default {SHIPPED_SET})")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(args.out, build_reference_set(), format="extxyz")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
