"""k-nearest selection with static shapes: a fixed table of candidates per sender in, k padded slots per sender out.

The same graph as :func:`orb_md.graph.knn.select_neighbors`, computed without any data-dependent shape or host
synchronisation (for CUDA graphs and ``torch.compile(fullgraph=True)``), in two steps:

1. :func:`preselect` keeps the ``capacity`` nearest candidates of each sender by a cheap length (wrapped positions,
   any rounding). It proves that they contain the k nearest: either the farthest kept one lies beyond the search
   radius (every pair within the cutoff is kept), or it is more than ``tolerance`` farther than the k-th nearest
   (so every candidate left out is farther than the k-th by more than rounding and the 1e-8 Å grid can bridge).
   A sender without that proof is reported (``complete`` False), never silently cut.
2. :func:`padded_knn` applies the canonical cutoff and tie rule of :mod:`orb_md.graph.knn` to the kept candidates:
   lengths by the canonical formula, operation by operation, so the bits are the same,
   v = (pos[r] − pos[s]) + ((n_x·a + n_y·b) + n_z·c) with the unit shift n of the unwrapped positions, then
   :func:`orb_md.graph.knn.nearest_slots` on the padded table (candidates outside the cutoff or not ``valid`` are
   empty slots and come back with ``kept`` False).
"""

from typing import Tuple

import torch

from orb_md.graph.knn import edge_length, is_edge, nearest_slots, tie_keys


def preselect(
    squared: torch.Tensor, radius: float, max_neighbors: int, capacity: int, tolerance: float = 1e-6
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``capacity`` nearest candidates per sender: slots (S,capacity) int64, within (S,capacity), complete (S,).

    squared (S,C): cheap squared lengths of the candidates (inf for empty slots and the sender itself). ``within``:
    the slot holds a candidate closer than ``radius``; ``complete``: the kept slots provably contain the sender's
    ``max_neighbors`` nearest (module doc)."""
    values, slots = torch.topk(squared, capacity, dim=1, largest=False, sorted=True)
    lengths = torch.sqrt(values)
    farthest = lengths[:, capacity - 1]
    complete = (farthest >= radius) | (farthest > lengths[:, max_neighbors - 1] + tolerance)
    return slots, lengths < radius, complete


def padded_knn(
    positions: torch.Tensor,
    cell: torch.Tensor,
    offsets: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    images: torch.Tensor,
    valid: torch.Tensor,
    cutoff: float,
    max_neighbors: int,
    periodic: bool,
    quantum: float = 1e-8,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``max_neighbors`` nearest candidates of each sender, in tie-rule order, padded.

    positions (N,3) float64 as given (unwrapped); cell (3,3) float64 (unused if not ``periodic``); offsets (N,3)
    int64 wrap offsets (positions − offsets @ cell lies in the cell); senders (S,); receivers (S or 1, C) and
    images (S or 1, C, 3) int64: candidate receivers and their lattice image relative to the wrapped positions;
    valid (S or 1, C) bool. Each (receiver, image) may appear at most once per sender.

    Returns receivers (S,k) int64, unit shifts (S,k,3) int64 and kept (S,k) bool (False: a padding slot, whose
    receiver and shift are meaningless).
    """
    own = senders.unsqueeze(1)
    shifts = images + offsets.index_select(0, senders).unsqueeze(1) - offsets[receivers]
    v = positions[receivers] - positions.index_select(0, senders).unsqueeze(1)
    if periodic:
        s = shifts.to(torch.float64)
        v = v + ((s[..., 0:1] * cell[0] + s[..., 1:2] * cell[1]) + s[..., 2:3] * cell[2])
    distance = edge_length(v)
    keep = (distance < cutoff) & is_edge(own, receivers, images) & valid
    n_senders, n_candidates = distance.shape[0], distance.shape[1]
    key_a, key_b = tie_keys(distance, receivers.expand(n_senders, n_candidates), v, quantum)
    key_a = torch.where(keep, key_a, torch.full_like(key_a, 9223372036854775807))
    slots, kept = nearest_slots(key_a, key_b, max_neighbors)
    slots = slots.clamp(max=n_candidates - 1)  # padding columns (if any) point at a real, unkept candidate
    chosen_receivers = receivers.expand(n_senders, n_candidates).gather(1, slots)
    chosen_shifts = shifts.gather(1, slots.unsqueeze(-1).expand(n_senders, max_neighbors, 3))
    return chosen_receivers, chosen_shifts, kept
