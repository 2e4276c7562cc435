"""Structures shared by tests and benchmarks."""

from __future__ import annotations

import ase
import numpy as np


def sparse_gas(n: int = 60, box: float = 16.0, seed: int = 3) -> ase.Atoms:
    """Random Cu/O 'gas' (min distance 1.8 Å), large enough for 4 LAMMPS subdomains but a cheap halo."""
    rng = np.random.default_rng(seed)
    pos: list[np.ndarray] = []
    while len(pos) < n:
        p = rng.uniform(0, box, 3)
        if all(np.linalg.norm((p - q + box / 2) % box - box / 2) > 1.8 for q in pos):
            pos.append(p)
    return ase.Atoms(["Cu", "O"] * (n // 2), positions=pos, cell=[box] * 3, pbc=True)
