"""Fixed-capacity cell list: atoms sorted into a construction-time grid of bins, each holding at most ``capacity``.

Every shape is a function of the number of atoms, the grid and the capacity, never of the data, so the table is
built without host synchronisation: a stable sort by bin, occupancies by ``scatter_add``, ranks within a bin from a
cumulative sum, and one ``scatter`` into a (bins, capacity + 1) table whose last column swallows the atoms of an
overfull bin (reported through the occupancy, never silently used).
"""

from typing import Tuple

import torch


def bin_table(bin_index: torch.Tensor, n_bins: int, capacity: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(table (n_bins, capacity) int64 atom indices, occupancy (n_bins,) int64) for atoms in bins ``bin_index`` (N,).

    Row b lists the first ``min(occupancy[b], capacity)`` atoms of bin b in index order; other entries are 0."""
    n_atoms = bin_index.shape[0]
    order = torch.sort(bin_index, stable=True)[1]
    sorted_bins = bin_index.index_select(0, order)
    occupancy = torch.zeros(n_bins, dtype=torch.int64, device=bin_index.device)
    occupancy = occupancy.scatter_add(0, bin_index, torch.ones_like(bin_index))
    first = torch.cumsum(occupancy, 0) - occupancy
    rank = torch.arange(n_atoms, device=bin_index.device) - first.index_select(0, sorted_bins)
    slot = sorted_bins * (capacity + 1) + rank.clamp(max=capacity)
    table = torch.zeros(n_bins * (capacity + 1), dtype=torch.int64, device=bin_index.device).scatter(0, slot, order)
    return table.view(n_bins, capacity + 1)[:, :capacity], occupancy


def stencil_bins(
    sender_bins: torch.Tensor, stencil: torch.Tensor, bins: torch.Tensor, periodic: bool
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The 27 bins around each sender's bin: linear index (S,27) and lattice image (S,27,3) int64.

    sender_bins (S,3) int64 bin coordinates; stencil (27,3) int64 offsets; bins (3,) int64 grid size. A periodic
    grid wraps and the image counts the wraps (−1, 0 or 1 per axis; with at least 3 bins per axis the 27 bins are
    distinct, so every (atom, image) is seen once). An open grid must have an empty layer of bins around its atoms.
    """
    around = sender_bins.unsqueeze(1) + stencil.unsqueeze(0)
    images = torch.zeros_like(around)
    if periodic:
        images = torch.div(around, bins, rounding_mode="floor")
        around = around - images * bins
    return (around[..., 0] * bins[1] + around[..., 1]) * bins[2] + around[..., 2], images
