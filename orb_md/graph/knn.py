"""Canonical cutoff filter and deterministic k-nearest selection per sender.

Every backend only proposes candidate pairs; this module decides the graph, so all backends, devices and
thread counts give identical edges. Lengths are recomputed here in float64 from the given positions,
v = (pos[r] − pos[s]) + shift @ cell and |v| = sqrt((vx² + vy²) + vz²), operation by operation (correctly
rounded IEEE arithmetic, so every device and the compiled ops of :mod:`orb_md.graph.native` get the same bits).
The order of a sender's receivers (the **tie rule**) is:

1. distance quantised to a 1e-8 Å grid (round(d / 1e-8)), so symmetric distances that differ only by
   floating-point rounding compare equal;
2. then receiver index;
3. then unit shift, lexicographically (x, then y, then z).

The k nearest by this order are kept; output is grouped by sender and sorted by the tie rule within a sender.

On CPU in eager mode the lengths, the filter and the selection run in the compiled op
``knn_select`` (counting sort by sender + ``nth_element``; bit-identical); under TorchScript, on CUDA, or when
the op cannot be built, the pure-torch path below (padded per-sender ``topk`` on one int64 composite key) is used.
"""

import torch

from orb_md.graph.images import lattice_translations

DISTANCE_QUANTUM = 1e-8  # Å; the literal is repeated as select_neighbors' default (TorchScript has no globals)


def edge_lengths(
    positions: torch.Tensor,
    cell: torch.Tensor,
    system_index: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    shifts: torch.Tensor,
    max_table: int = 1 << 16,
) -> torch.Tensor:
    """float64 |pos[r] − pos[s] + shift @ cell| per edge, by the canonical formula of the module doc.

    The translations shift @ cell are evaluated by :func:`lattice_translations` once per distinct (system, shift)
    of a small table and gathered per edge (same arithmetic, hence bit-identical to evaluating them per edge)."""
    pos = positions.to(torch.float64)
    cell64 = cell.to(torch.float64)
    n_edges = shifts.shape[0]
    n_systems = cell64.shape[0]
    reach = int(shifts.abs().max()) if n_edges > 0 else 0
    side = 2 * reach + 1
    entries = n_systems * side * side * side
    if entries <= max(max_table, n_edges // 4):
        axis = torch.arange(-reach, reach + 1, device=shifts.device)
        grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)  # code order
        table_system = torch.arange(n_systems, device=shifts.device).repeat_interleave(grid.shape[0])
        table = lattice_translations(cell64, grid.repeat(n_systems, 1), table_system)
        code = ((shifts[:, 0] + reach) * side + (shifts[:, 1] + reach)) * side + (shifts[:, 2] + reach)
        if n_systems > 1:
            code = code + system_index.index_select(0, senders) * (side * side * side)
        translation = table.index_select(0, code)
    else:
        translation = lattice_translations(cell64, shifts, system_index[senders])
    v = pos.index_select(0, receivers) - pos.index_select(0, senders) + translation
    return torch.sqrt((v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1]) + v[:, 2] * v[:, 2])


@torch.jit.unused
def _native_choice(
    positions: torch.Tensor,
    cell: torch.Tensor,
    system_index: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    shifts: torch.Tensor,
    cutoff: float,
    max_neighbors: int,
    quantum: float,
) -> torch.Tensor:
    """Indices chosen by the compiled op, or an empty (0,) float tensor when it is unavailable (eager CPU only)."""
    from orb_md.graph import native

    if positions.device.type != "cpu" or not native.native_available():
        return torch.zeros(0)
    return native.knn_select(positions, cell, system_index, senders, receivers, shifts, cutoff, max_neighbors, quantum)


def _segment_rank_order(
    senders: torch.Tensor, key: torch.Tensor, n_atoms: int, max_neighbors: int
) -> torch.Tensor:
    """Indices of the kept edges, grouped by sender, ascending ``key`` within a sender (keys unique per sender)."""
    if not bool((senders[1:] >= senders[:-1]).all()):
        order = torch.sort(senders, stable=True)[1]
    else:
        order = torch.arange(senders.shape[0], device=senders.device)
    grouped = senders[order]
    counts = torch.bincount(grouped, minlength=n_atoms)
    starts = torch.cumsum(counts, 0) - counts
    width = int(counts.max())
    column = torch.arange(grouped.shape[0], device=senders.device) - starts[grouped]
    padding = 9223372036854775807  # int64 max, above every composite key
    table = torch.full((n_atoms, width), padding, dtype=torch.int64, device=senders.device)
    table[grouped, column] = key[order]
    if max_neighbors < 0 or max_neighbors >= width:
        values, slots = torch.sort(table, dim=1)
    else:
        values, slots = torch.topk(table, max_neighbors, dim=1, largest=False, sorted=True)
    kept = (starts.unsqueeze(1) + slots)[values != padding]
    return order[kept]


def _lexicographic_order(
    senders: torch.Tensor, keys: list[torch.Tensor], n_atoms: int, max_neighbors: int
) -> torch.Tensor:
    """Fallback when the composite key would overflow: stable sorts from the least significant key."""
    order = torch.arange(senders.shape[0], device=senders.device)
    for i in range(len(keys) - 1, -1, -1):
        order = order[torch.sort(keys[i][order], stable=True)[1]]
    order = order[torch.sort(senders[order], stable=True)[1]]
    if max_neighbors < 0:
        return order
    grouped = senders[order]
    counts = torch.bincount(grouped, minlength=n_atoms)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(order.shape[0], device=senders.device) - starts[grouped]
    return order[rank < max_neighbors]


def select_neighbors(
    positions: torch.Tensor,
    cell: torch.Tensor,
    system_index: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    shifts: torch.Tensor,
    cutoff: float,
    max_neighbors: int,
    quantum: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """From candidate pairs (int64 shifts, any order, no duplicates) keep |v| < cutoff, then the k nearest per sender.

    Returns (senders, receivers, unit_shifts) with unit_shifts in the dtype of ``positions``.
    """
    if not torch.jit.is_scripting():
        chosen = _native_choice(
            positions, cell, system_index, senders, receivers, shifts, cutoff, max_neighbors, quantum
        )
        if chosen.dtype == torch.int64:
            return (
                senders.index_select(0, chosen),
                receivers.index_select(0, chosen),
                shifts.index_select(0, chosen).to(positions.dtype),
            )
    distance = edge_lengths(positions, cell, system_index, senders, receivers, shifts)
    keep = (distance < cutoff) & ((senders != receivers) | (shifts != 0).any(1))
    senders, receivers, shifts, distance = senders[keep], receivers[keep], shifts[keep], distance[keep]
    if senders.shape[0] == 0:
        return senders, receivers, shifts.to(positions.dtype)
    n_atoms = positions.shape[0]
    quantised = torch.round(distance / quantum).to(torch.int64)
    atoms_per_system = torch.bincount(system_index)
    first_atom = torch.cumsum(atoms_per_system, 0) - atoms_per_system
    local_receiver = receivers - first_atom[system_index[receivers]]
    reach = int(shifts.abs().max())
    side = 2 * reach + 1
    s = shifts + reach
    shift_code = (s[:, 0] * side + s[:, 1]) * side + s[:, 2]
    n_distance = int(quantised.max()) + 1
    n_receiver = int(atoms_per_system.max())
    if float(n_distance) * float(n_receiver) * float(side * side * side) < 2.0**62:  # int64 with room for the padding value
        key = (quantised * n_receiver + local_receiver) * (side * side * side) + shift_code
        chosen = _segment_rank_order(senders, key, n_atoms, max_neighbors)
    else:
        chosen = _lexicographic_order(senders, [quantised, local_receiver, shift_code], n_atoms, max_neighbors)
    return senders[chosen], receivers[chosen], shifts[chosen].to(positions.dtype)
