"""O(N) radius search in pure torch (CPU/CUDA, TorchScript): periodic images near the cell + Cartesian bins.

1. Wrap atoms into the cell; add the lattice images of each atom that lie within ``radius`` of the cell
   (in fractional units along each periodic direction: within radius·|reciprocal vector| of [0, 1)).
   This handles cells smaller than the cutoff and skewed cells alike.
2. Sort all points into cubic bins of edge >= radius (per system, keyed by system), so every neighbour of a
   central atom lies in the 27 bins around its own; bins are found by binary search, never stored densely.
3. Expand candidate pairs in chunks of senders (bounded memory) and keep those closer than ``radius``.
"""

import torch

from orb_md.graph.brute_force import translation_grid
from orb_md.graph.images import image_range, lattice_translations, periodic_cell, wrap_into_cell


def _images_near_cell(
    wrapped: torch.Tensor,
    fractional: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    system_index: torch.Tensor,
    radius: float,
    max_candidates: int,
    slack: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(atom, translation, position) of every image within ``radius`` of its cell, central copies first.

    ``slack`` widens the fractional window (extra images are harmless)."""
    n_max = image_range(cell, pbc, radius)
    reach = radius * torch.linalg.vector_norm(torch.linalg.pinv(cell), dim=1) + slack  # (B,3)
    grid = translation_grid(n_max.amax(0))
    grid = grid[grid.abs().sum(1) > 0]
    atoms = torch.arange(wrapped.shape[0], device=wrapped.device)
    atom_list = [atoms]
    shift_list = [torch.zeros(wrapped.shape[0], 3, dtype=torch.int64, device=wrapped.device)]
    atom_reach = reach[system_index]
    atom_n_max = n_max[system_index]
    block = max(1, max_candidates // max(1, wrapped.shape[0]))
    for lo in range(0, grid.shape[0], block):
        t = grid[lo : lo + block]  # (m,3)
        f = fractional.unsqueeze(0) + t.unsqueeze(1).to(fractional.dtype)  # (m,N,3)
        inside = ((f > -atom_reach) & (f < 1.0 + atom_reach)) | (t.unsqueeze(1) == 0)
        allowed = (t.unsqueeze(1).abs() <= atom_n_max.unsqueeze(0)).all(-1)
        hit = torch.nonzero(inside.all(-1) & allowed)
        m, a = hit[:, 0], hit[:, 1]
        atom_list.append(a)
        shift_list.append(t[m])
    image_atom = torch.cat(atom_list)
    image_shift = torch.cat(shift_list)
    image_pos = wrapped[image_atom] + lattice_translations(cell, image_shift, system_index[image_atom])
    return image_atom, image_shift, image_pos


def _bin_keys(
    points: torch.Tensor, system: torch.Tensor, n_systems: int, radius: float, max_bins_per_axis: int = 1 << 16
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per point integer bin coordinates (P,3) and, per system, grid dims (B,3) and key offset (B,).

    Bins have edge >= radius; sparse systems get coarser bins so no axis exceeds ``max_bins_per_axis``."""
    low = torch.full((n_systems, 3), float("inf"), dtype=points.dtype, device=points.device)
    high = torch.full((n_systems, 3), -float("inf"), dtype=points.dtype, device=points.device)
    index = system.unsqueeze(1).expand(-1, 3)
    low = low.scatter_reduce(0, index, points, reduce="amin")
    high = high.scatter_reduce(0, index, points, reduce="amax")
    low = torch.where(torch.isfinite(low), low, torch.zeros_like(low))
    extent = torch.clamp(high - low, min=0.0)
    edge = torch.clamp(extent.amax(1) / max_bins_per_axis, min=radius)  # (B,)
    dims = torch.floor(extent / edge.unsqueeze(1)).to(torch.int64) + 1  # (B,3)
    coords = torch.floor((points - low[system]) / edge[system].unsqueeze(1)).to(torch.int64)
    coords = torch.minimum(torch.clamp(coords, min=0), dims[system] - 1)
    sizes = dims.prod(1)
    key_offset = torch.cumsum(sizes, 0) - sizes
    return coords, dims, key_offset


def _linear_key(coords: torch.Tensor, dims: torch.Tensor, key_offset: torch.Tensor) -> torch.Tensor:
    return key_offset + (coords[..., 0] * dims[..., 1] + coords[..., 1]) * dims[..., 2] + coords[..., 2]


def cell_list_pairs(
    positions: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    system_index: torch.Tensor,
    radius: float,
    max_candidates: int = 1 << 22,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All (sender, receiver, unit shift) closer than ``radius`` (i→i with zero shift excluded), grouped by sender.

    Same contract as :func:`orb_md.graph.brute_force.brute_force_pairs`; shifts valid for the given positions.
    At most about ``max_candidates`` candidate pairs are expanded at once (bounded memory).
    """
    device = positions.device
    pos = positions.to(torch.float64)
    cell64 = periodic_cell(cell.to(torch.float64), pbc)
    n_atoms = pos.shape[0]
    wrapped, fractional, offsets = wrap_into_cell(pos, cell64, pbc, system_index)
    image_atom, image_shift, image_pos = _images_near_cell(
        wrapped, fractional, cell64, pbc, system_index, radius, max_candidates
    )
    image_system = system_index[image_atom]
    coords, dims, key_offset = _bin_keys(image_pos, image_system, cell.shape[0], radius)
    keys = _linear_key(coords, dims[image_system], key_offset[image_system])
    sorted_keys, order = torch.sort(keys)

    # 27 neighbouring bins of every central atom (central images are the first n_atoms points)
    stencil = translation_grid(torch.ones(3, dtype=torch.int64, device=device))  # (27,3)
    around = coords[:n_atoms].unsqueeze(1) + stencil.unsqueeze(0)  # (N,27,3)
    atom_dims = dims[system_index].unsqueeze(1)
    valid = ((around >= 0) & (around < atom_dims)).all(-1)
    around_keys = _linear_key(around, atom_dims, key_offset[system_index].unsqueeze(1))
    begin = torch.searchsorted(sorted_keys, around_keys.reshape(-1))
    end = torch.searchsorted(sorted_keys, around_keys.reshape(-1), right=True)
    counts = torch.where(valid.reshape(-1), end - begin, torch.zeros_like(begin)).view(n_atoms, 27)
    begin = begin.view(n_atoms, 27)

    per_sender = counts.sum(1)
    cumulative = torch.cumsum(per_sender, 0)
    senders, receivers, shifts = [], [], []
    lo = 0
    while lo < n_atoms:
        base = int(cumulative[lo - 1]) if lo > 0 else 0
        hi = int(torch.searchsorted(cumulative, torch.tensor(base + max_candidates, device=device), right=True))
        hi = min(n_atoms, max(hi, lo + 1))
        c = counts[lo:hi].reshape(-1)
        total = int(c.sum())
        if total > 0:
            slot = torch.repeat_interleave(torch.arange(c.shape[0], device=device), c, output_size=total)
            first = torch.cumsum(c, 0) - c
            point = order[begin[lo:hi].reshape(-1)[slot] + torch.arange(total, device=device) - first[slot]]
            sender = lo + torch.div(slot, 27, rounding_mode="floor")
            diff = image_pos[point] - wrapped[sender]
            close = (diff * diff).sum(1) < radius * radius
            close &= (image_atom[point] != sender) | (image_shift[point] != 0).any(1)
            sender = sender[close]
            point = point[close]
            receiver = image_atom[point]
            senders.append(sender)
            receivers.append(receiver)
            shifts.append(image_shift[point] + offsets[sender] - offsets[receiver])
        lo = hi
    if len(senders) == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty, torch.zeros(0, 3, dtype=torch.int64, device=device)
    return torch.cat(senders), torch.cat(receivers), torch.cat(shifts)
