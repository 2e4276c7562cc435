"""Neighbour lists for Orb-v3: all pairs within a cutoff, then the k nearest receivers per sender.

Public API:

- :func:`neighbor_list` — one call, validated, adaptive backend choice;
- :class:`NeighborList` — the same as a TorchScript-able ``torch.nn.Module``;
- :class:`VerletNeighborList` — Verlet-skin reuse for MD, identical results to a fresh build;
- :class:`FixedCapacityNeighborList` — one system's graph padded to static shapes, without host synchronisation
  (CUDA graphs, ``torch.compile(fullgraph=True)``); capacity overflows are flagged, never silent.

Edge vectors are v = positions[receivers] − positions[senders] + unit_shifts @ cell[system]; periodic
self-images (i→i with non-zero shift) are edges, i→i with zero shift is not. Edges are grouped by sender and
ordered within a sender by the tie rule of :mod:`orb_md.graph.knn` (distance on a 1e-8 Å grid, then receiver
index, then the edge vector on that grid lexicographically), which makes the k-nearest graph identical on every
backend, device and engine.
"""

import torch

from orb_md.errors import InputError
from orb_md.graph.backends import BACKENDS, choose_backend, make_search, usable_backends
from orb_md.graph.fixed_capacity import FixedCapacityNeighborList
from orb_md.graph.knn import DISTANCE_QUANTUM, select_neighbors
from orb_md.graph.module import SEARCH_MARGIN, NeighborList
from orb_md.graph.validation import input_problem
from orb_md.graph.verlet import VerletNeighborList

__all__ = [
    "BACKENDS", "DISTANCE_QUANTUM", "FixedCapacityNeighborList", "NeighborList", "VerletNeighborList", "choose_backend",
    "neighbor_list", "usable_backends",
]


def neighbor_list(
    positions: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    system_index: torch.Tensor,
    cutoff: float = 6.0,
    max_neighbors: int = 20,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Senders (E,) int64, receivers (E,) int64 and unit_shifts (E,3) (positions' dtype, integer values).

    positions (N,3) Å, any position; cell (B,3,3) rows = lattice vectors; pbc (B,3) bool; system_index (N,)
    int64 sorted; strict |v| < cutoff; max_neighbors nearest receivers kept per sender (-1: all).
    ``backend``: one of BACKENDS ("auto": vesin). Raises InputError on bad input.
    """
    for name, value in (("positions", positions), ("cell", cell), ("pbc", pbc), ("system_index", system_index)):
        if not isinstance(value, torch.Tensor):
            raise InputError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not isinstance(max_neighbors, int) or isinstance(max_neighbors, bool):
        raise InputError(f"max_neighbors must be an int, got {max_neighbors!r}")
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    problem = input_problem(positions, cell, pbc, system_index, float(cutoff), max_neighbors)
    if problem:
        raise InputError(problem)
    search = make_search(backend, float(cutoff) + SEARCH_MARGIN)
    senders, receivers, shifts, lengths = search(positions, cell, pbc, system_index)
    return select_neighbors(positions, cell, system_index, senders, receivers, shifts, float(cutoff), max_neighbors,
                            lengths)
