"""Reference radius search: every pair against every lattice image, in float64, chunked over senders."""

import torch

from orb_md.graph.images import image_range, lattice_translations, periodic_cell, wrap_into_cell


def translation_grid(n_max: torch.Tensor) -> torch.Tensor:
    """(M,3) int64: all integer triples with |n_i| <= n_max[i], in lexicographic order."""
    axes = [torch.arange(-int(n_max[i]), int(n_max[i]) + 1, device=n_max.device) for i in range(3)]
    grid = torch.meshgrid(axes[0], axes[1], axes[2], indexing="ij")
    return torch.stack([grid[0].reshape(-1), grid[1].reshape(-1), grid[2].reshape(-1)], dim=1)


def brute_force_pairs(
    positions: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    system_index: torch.Tensor,
    radius: float,
    chunk_elements: int = 1 << 22,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """All (sender, receiver, unit shift, length) with |pos[r] − pos[s] + shift @ cell| < radius, except i→i with
    zero shift (length: float64, from the wrapped positions).

    Shifts are valid for the given (unwrapped) positions. Output is grouped by sender. At most
    ``chunk_elements`` distances are held at once (bounded memory).
    """
    pos = positions.to(torch.float64)
    cell64 = periodic_cell(cell.to(torch.float64), pbc)
    wrapped, _, offsets = wrap_into_cell(pos, cell64, pbc, system_index)
    n_max = image_range(cell64, pbc, radius)
    counts = torch.bincount(system_index, minlength=cell.shape[0])
    starts = torch.cumsum(counts, 0) - counts
    senders, receivers, shifts, lengths = [], [], [], []
    for b in range(cell.shape[0]):
        first, n = int(starts[b]), int(counts[b])
        if n == 0:
            continue
        points = wrapped[first : first + n]
        grid = translation_grid(n_max[b])
        system = torch.full((grid.shape[0],), b, dtype=torch.int64, device=pos.device)
        images = points.unsqueeze(0) + lattice_translations(cell64, grid, system).unsqueeze(1)  # (M, n, 3)
        zero = int(grid.shape[0] // 2)  # index of the (0,0,0) translation in the symmetric grid
        chunk = max(1, chunk_elements // (grid.shape[0] * n))
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            diff = images.unsqueeze(0) - points[lo:hi].view(hi - lo, 1, 1, 3)
            squared = (diff * diff).sum(-1)  # (c, M, n)
            close = squared < radius * radius
            idx = torch.arange(lo, hi, device=pos.device)
            close[idx - lo, zero, idx] = False
            hit = torch.nonzero(close)
            i, m, j = hit[:, 0], hit[:, 1], hit[:, 2]
            lengths.append(torch.sqrt(squared[i, m, j]))
            i = i + lo
            senders.append(i + first)
            receivers.append(j + first)
            shifts.append(grid[m] + offsets[i + first] - offsets[j + first])
    if len(senders) == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=pos.device)
        return empty, empty, torch.zeros(0, 3, dtype=torch.int64, device=pos.device), torch.zeros(0, dtype=pos.dtype,
                                                                                             device=pos.device)
    return torch.cat(senders), torch.cat(receivers), torch.cat(shifts), torch.cat(lengths)
