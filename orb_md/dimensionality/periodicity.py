"""Which cell directions of a structure are periodic, and making it contiguous along the others.

The dimensionality of a structure (0D molecule or cluster, 1D wire/tube/ribbon, 2D sheet or slab, 3D bulk)
is its number of periodic directions. It comes from the dataset's own label when there is one (0123D stores
``id_dimension``); DFT data often keeps every direction periodic with vacuum padding, so when the label and
``atoms.pbc`` disagree the non-periodic directions are the cell vectors with the widest vacuum gap.
"""

from __future__ import annotations

import ase
import numpy as np

from orb_md.errors import InputError

DIMENSIONALITIES = (0, 1, 2, 3)


def parse_dimensionality(label: object, name: str = "structure") -> int:
    """0..3 from a label such as ``"2D"``, ``"2d"``, ``2`` or ``"2"``."""
    text = str(label).strip().upper().removesuffix("D")
    if text not in {"0", "1", "2", "3"}:
        raise InputError(f"{name}: dimensionality label {label!r} is not one of 0D, 1D, 2D, 3D")
    return int(text)


def vacuum_gap(atoms: ase.Atoms, axis: int) -> float:
    """Widest empty slab, in Å, between periodic images of the atoms along cell vector ``axis``."""
    cell = np.asarray(atoms.cell)
    reciprocal = np.linalg.norm(np.linalg.inv(cell)[:, axis])  # 1 / spacing of the lattice planes
    fractions = np.sort(np.mod(atoms.get_scaled_positions(wrap=False)[:, axis], 1.0))
    gaps = np.diff(np.concatenate([fractions, [fractions[0] + 1.0]]))
    return float(gaps.max() / reciprocal)


def periodic_directions(atoms: ase.Atoms, dimensionality: int) -> np.ndarray:
    """Boolean mask of the cell vectors that are periodic for a structure of that dimensionality.

    ``atoms.pbc`` when it has that many periodic directions; otherwise (vacuum-padded cells) the
    ``dimensionality`` periodic cell vectors with the narrowest vacuum gaps.
    """
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.sum() == dimensionality:
        return pbc.copy()
    if pbc.sum() < dimensionality:
        raise InputError(f"labelled {dimensionality}D but only {int(pbc.sum())} cell direction(s) are periodic")
    if abs(atoms.cell.volume) < 1e-9:
        raise InputError(f"labelled {dimensionality}D with periodic directions {pbc.tolist()} but a degenerate cell")
    candidates = np.flatnonzero(pbc)
    gaps = np.array([vacuum_gap(atoms, axis) for axis in candidates])
    keep = candidates[np.argsort(gaps, kind="stable")[:dimensionality]]
    mask = np.zeros(3, dtype=bool)
    mask[keep] = True
    return mask


def make_contiguous(atoms: ase.Atoms, periodic: np.ndarray) -> ase.Atoms:
    """A copy with ``pbc = periodic``; along cell vectors that were periodic in ``atoms`` but are not in
    ``periodic``, atoms across the boundary are moved by one cell vector so that the widest vacuum gap
    lies at the boundary (the structure is then in one piece, no image needed)."""
    out = atoms.copy()
    unwrap = np.asarray(atoms.pbc, dtype=bool) & ~np.asarray(periodic, dtype=bool)
    if unwrap.any():
        fractions = atoms.get_scaled_positions(wrap=False)
        for axis in np.flatnonzero(unwrap):
            f = np.mod(fractions[:, axis], 1.0)
            ordered = np.sort(f)
            gaps = np.diff(np.concatenate([ordered, [ordered[0] + 1.0]]))
            widest = int(np.argmax(gaps))
            if widest == len(ordered) - 1:  # the widest gap already straddles the boundary
                fractions[:, axis] = f
            else:
                start = ordered[widest + 1]  # first atom after the gap: everything below it moves up
                fractions[:, axis] = np.where(f < start, f + 1.0, f)
        out.positions = fractions @ np.asarray(atoms.cell)
    out.pbc = np.asarray(periodic, dtype=bool)
    return out
