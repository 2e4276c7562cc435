"""The tie rule: the canonical edge length and the k nearest receivers per sender, for every caller.

Every search only proposes candidate pairs; this module decides the graph, so all searches, devices, thread counts
and engines (LAMMPS included) give identical edges. Lengths are recomputed in float64 from the given positions,
v = (pos[r] − pos[s]) + shift @ cell and |v| = sqrt((vx² + vy²) + vz²), operation by operation (correctly rounded
IEEE arithmetic, so every device gets the same bits). A sender's receivers are ordered by (the **tie rule**):

1. the distance on a 1e-8 Å grid, round(|v| / 1e-8), so symmetric distances that differ only by rounding tie;
2. then the receiver's index within its system (in LAMMPS: its atom ID − 1);
3. then the edge vector v on the 1e-8 Å grid, lexicographically x, y, z.

The last key is the physical vector, not the integer shift, so the graph does not depend on where the caller
wrapped its atoms, and a LAMMPS rank that does not own the receiver can apply it. The k first by this order are
kept, grouped by sender, in that order.

Implementation (:func:`nearest_slots`, one code path for dynamic and static shapes): a sender's candidates form a
padded row; key A = (1, 2) and key B = (3) are one int64 each. Key B packs (vx, vy) on the grid and the sign of vz:
key B only separates candidates with the same receiver and distance, i.e. images of one atom, whose vectors differ
by a lattice vector; equal (vx, vy) on the grid then means vz = ±the same non-zero value, so the sign orders vz.
This needs |v| < 2^30 · 1e-8 Å (cutoffs below :data:`MAX_CUTOFF`).
"""

from typing import Optional, Tuple

import torch

from orb_md.graph.images import lattice_translations

DISTANCE_QUANTUM = 1e-8  # Å; the literal is repeated as default arguments (TorchScript has no globals)
MAX_CUTOFF = 10.0  # Å, below 2^30 · DISTANCE_QUANTUM: key B holds a grid component in 31 bits
PADDING = 9223372036854775807  # int64 max: the key A of an empty slot, above every real key


def edge_length(v: torch.Tensor) -> torch.Tensor:
    """|v| over the last axis, summed in the canonical order (x² + y²) + z²."""
    return torch.sqrt((v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1]) + v[..., 2] * v[..., 2])


def shift_translations(
    cell: torch.Tensor, system_index: torch.Tensor, senders: torch.Tensor, shifts: torch.Tensor, max_table: int = 1 << 16
) -> torch.Tensor:
    """float64 lattice translations shift @ cell[system of the sender] per edge, the last term of the canonical v.

    They are evaluated by :func:`lattice_translations` once per distinct (system, shift) of a small table and
    gathered per edge (same arithmetic, hence bit-identical to evaluating them per edge)."""
    cell64 = cell.to(torch.float64)
    n_edges = shifts.shape[0]
    n_systems = cell64.shape[0]
    reach = int(shifts.abs().max()) if n_edges > 0 else 0
    side = 2 * reach + 1
    entries = n_systems * side * side * side
    if entries > max(max_table, n_edges // 4):
        return lattice_translations(cell64, shifts, system_index[senders])
    axis = torch.arange(-reach, reach + 1, device=shifts.device)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)  # code order
    table_system = torch.arange(n_systems, device=shifts.device).repeat_interleave(grid.shape[0])
    table = lattice_translations(cell64, grid.repeat(n_systems, 1), table_system)
    code = ((shifts[:, 0] + reach) * side + (shifts[:, 1] + reach)) * side + (shifts[:, 2] + reach)
    if n_systems > 1:
        code = code + system_index.index_select(0, senders) * (side * side * side)
    return table.index_select(0, code)


def canonical_edge_vectors(
    positions: torch.Tensor,
    cell: torch.Tensor,
    system_index: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    shifts: torch.Tensor,
) -> torch.Tensor:
    """float64 v = pos[r] − pos[s] + shift @ cell per edge, by the canonical formula of the module doc."""
    return translated_vectors(positions, senders, receivers, shift_translations(cell, system_index, senders, shifts))


def translated_vectors(
    positions: torch.Tensor, senders: torch.Tensor, receivers: torch.Tensor, translations: torch.Tensor
) -> torch.Tensor:
    """float64 v = (pos[r] − pos[s]) + translation, the canonical order of operations; ``translations`` from
    :func:`shift_translations` (callers that keep them between steps pass them in)."""
    pos = positions.to(torch.float64)
    return pos.index_select(0, receivers) - pos.index_select(0, senders) + translations


def is_edge(senders: torch.Tensor, receivers: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """False only for i→i with zero shift, which is never an edge (periodic self-images are); any broadcast shape,
    shifts with a trailing axis of 3."""
    return (senders != receivers) | (shifts != 0).any(-1)


def local_receivers(receivers: torch.Tensor, system_index: torch.Tensor, n_systems: int) -> torch.Tensor:
    """Each receiver's index within its own system (the second key of the tie rule), any shape."""
    if n_systems == 1:
        return receivers
    atoms_per_system = torch.bincount(system_index, minlength=n_systems)
    first_atom = torch.cumsum(atoms_per_system, 0) - atoms_per_system
    return receivers - first_atom.index_select(0, system_index.index_select(0, receivers.reshape(-1))).view(
        receivers.shape)


def edge_lengths(
    positions: torch.Tensor,
    cell: torch.Tensor,
    system_index: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    shifts: torch.Tensor,
) -> torch.Tensor:
    """float64 |v| per edge, by the canonical formula."""
    return edge_length(canonical_edge_vectors(positions, cell, system_index, senders, receivers, shifts))


def tie_keys(
    distance: torch.Tensor, receivers: torch.Tensor, vectors: torch.Tensor, quantum: float = 1e-8
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(key A, key B) int64 of each candidate (any leading shape; vectors (..., 3) float64): module doc.

    ``receivers``: index within the system (< 2^32). Key B is exact for |v| < MAX_CUTOFF, the only candidates
    whose key B is read (others are empty slots)."""
    half = 1 << 30
    key_a = torch.round(distance / quantum).to(torch.int64) * (1 << 32) + receivers
    grid = torch.round(vectors / quantum).to(torch.int64) + half
    return key_a, grid[..., 0] * (1 << 32) + grid[..., 1] * 2 + (grid[..., 2] > half).to(torch.int64)


def nearest_slots(key_a: torch.Tensor, key_b: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per row, the column indices (S,k) of the k smallest entries by (key A, key B), in that order, and kept (S,k).

    Rows are padded tables (S,C) of candidates; ``kept`` is False for empty slots (key A = PADDING). Static shapes,
    no host synchronisation: one ``topk`` finds the k-th key A, a second the k first by the tie rule (key B decides
    among the candidates at the k-th key A), and two stable sorts of the k chosen give their order."""
    padding = 9223372036854775807
    n_rows, n_columns = key_a.shape[0], key_a.shape[1]
    if n_columns < k:
        key_a = torch.cat([key_a, torch.full((n_rows, k - n_columns), padding, dtype=key_a.dtype, device=key_a.device)], 1)
        key_b = torch.cat([key_b, torch.zeros((n_rows, k - n_columns), dtype=key_b.dtype, device=key_b.device)], 1)
    kth = torch.topk(key_a, k, dim=1, largest=False, sorted=False)[0].amax(1, keepdim=True)
    before = torch.full_like(key_b, -9223372036854775807 - 1)  # below every key B
    rank = torch.where(key_a < kth, before, torch.where(key_a == kth, key_b, torch.full_like(key_b, padding)))
    slots = torch.topk(rank, k, dim=1, largest=False, sorted=False)[1]
    order = torch.sort(key_b.gather(1, slots), dim=1, stable=True)[1]
    slots = slots.gather(1, order)
    slots = slots.gather(1, torch.sort(key_a.gather(1, slots), dim=1, stable=True)[1])
    return slots, key_a.gather(1, slots) != padding


def group_by_sender(
    senders: torch.Tensor, n_senders: int
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Candidates grouped by sender for a padded (n_senders, width) table: (order (stable), grouped senders, each
    sender's first position in the order, each grouped candidate's flat slot in the table, width)."""
    order = torch.sort(senders.to(torch.int32), stable=True)[1]  # int32: the faster sort
    grouped = senders.index_select(0, order)
    counts = torch.bincount(grouped, minlength=n_senders)
    starts = torch.cumsum(counts, 0) - counts
    width = int(counts.max())
    slot = torch.arange(grouped.shape[0], device=senders.device) + (grouped * width - starts.index_select(0, grouped))
    return order, grouped, starts, slot, width


def padded_rows(blank: torch.Tensor, values: torch.Tensor, slot: torch.Tensor, width: int) -> torch.Tensor:
    """(n_senders, width) table: ``blank`` (n_senders · width,) holding ``values`` (in grouped order) at ``slot``."""
    return blank.index_copy(0, slot, values).view(-1, width)


def nearest_per_sender(
    senders: torch.Tensor, key_a: torch.Tensor, key_b: torch.Tensor, n_senders: int, max_neighbors: int
) -> torch.Tensor:
    """Indices of the kept candidates, grouped by sender in tie-rule order, at most ``max_neighbors`` per sender
    (-1: all). Candidates flat, in any order, senders in [0, n_senders); key A = PADDING: never kept."""
    if senders.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=senders.device)
    order, grouped, starts, slot, width = group_by_sender(senders, n_senders)
    blank = torch.full((n_senders * width,), 9223372036854775807, dtype=torch.int64, device=senders.device)
    table_a = padded_rows(blank, key_a.index_select(0, order), slot, width)
    table_b = padded_rows(torch.zeros_like(blank), key_b.index_select(0, order), slot, width)
    k = width if max_neighbors < 0 else min(max_neighbors, width)
    slots, kept = nearest_slots(table_a, table_b, k)
    return order.index_select(0, (starts.unsqueeze(1) + slots)[kept])


def near_kth(
    senders: torch.Tensor, estimate: torch.Tensor, n_senders: int, k: int, margin: float = 1e-4, bin_width: float = 0.125
) -> torch.Tensor:
    """Indices of the candidates that can be among their sender's k nearest (a superset, in their given order).

    ``estimate``: each candidate's length from the search (below MAX_CUTOFF), any rounding (error far below
    ``margin``). A histogram of each sender's estimates on ``bin_width`` bins gives an upper bound of its k-th
    smallest, the top of the first bin where k are reached; a candidate more than ``margin`` beyond that bound is
    farther than k others by more than rounding and the 1e-8 Å grid can bridge, so the tie rule never keeps it.
    No sort: one ``bincount`` and a cumulative sum over the bins."""
    n_bins = int(10.0 / bin_width) + 2  # estimates up to MAX_CUTOFF; the last bin also takes anything beyond
    bins = torch.clamp(torch.floor(estimate / bin_width).to(torch.int64), min=0, max=n_bins - 1)
    histogram = torch.bincount(senders * n_bins + bins, minlength=n_senders * n_bins).view(n_senders, n_bins)
    reached = torch.cumsum(histogram, 1) >= k
    first = torch.argmax(reached.to(torch.uint8), 1).to(estimate.dtype)
    limit = torch.where(reached[:, -1], (first + 1.0) * bin_width + margin, torch.full_like(first, float("inf")))
    return torch.nonzero(estimate <= limit.index_select(0, senders)).squeeze(1)


def select_neighbors(
    positions: torch.Tensor,
    cell: torch.Tensor,
    system_index: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    shifts: torch.Tensor,
    cutoff: float,
    max_neighbors: int,
    estimate: Optional[torch.Tensor] = None,
    quantum: float = 1e-8,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """From candidate pairs (int64 shifts, any order, no duplicates) keep |v| < cutoff, then the k nearest per sender.

    ``estimate``: the search's own length per candidate (optional): only the candidates :func:`near_kth` keeps get
    the canonical lengths and the tie rule. Returns (senders, receivers, unit_shifts), unit_shifts in the dtype of
    ``positions``.
    """
    if estimate is not None and max_neighbors > 0 and senders.shape[0] > 0:
        near = near_kth(senders, estimate, positions.shape[0], max_neighbors)
        senders, receivers = senders.index_select(0, near), receivers.index_select(0, near)
        shifts = shifts.index_select(0, near)
    vectors = canonical_edge_vectors(positions, cell, system_index, senders, receivers, shifts)
    distance = edge_length(vectors)
    keep = (distance < cutoff) & is_edge(senders, receivers, shifts)
    key_a, key_b = tie_keys(distance, local_receivers(receivers, system_index, cell.shape[0]), vectors, quantum)
    key_a = torch.where(keep, key_a, torch.full_like(key_a, 9223372036854775807))
    chosen = nearest_per_sender(senders, key_a, key_b, positions.shape[0], max_neighbors)
    shifts = shifts.index_select(0, chosen).to(positions.dtype)
    return senders.index_select(0, chosen), receivers.index_select(0, chosen), shifts
