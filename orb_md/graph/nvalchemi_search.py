"""Radius search with nvalchemi-toolkit-ops (NVIDIA Warp kernels), every system of a batch in one call.

nvalchemiops runs Warp kernels, JIT-compiled at first use into Warp's kernel cache (``$WARP_CACHE_PATH``, default
``~/.cache/warp``; no network needed; safe for concurrent processes), on the CPU or a CUDA GPU (not tested here).
Its strength is the batched call: one launch for all systems, each with its own cell and periodicity. It is **not
TorchScript-able** (Python + Warp), so this backend works in eager mode only and refuses ``torch.jit.script``.

Adaptations to the search contract of :mod:`orb_md.graph.backends`:

- positions and cells go in as contiguous float64 (nvalchemiops computes in the input dtype, and the margin of
  the search radius is meant for float64 rounding; Warp rejects strided arrays);
- its neighbour matrix has a fixed width (``capacity``); the true per-atom counts come back with it, so an
  overflow is detected and the call repeated with a wide enough matrix — no pair is ever dropped;
- its cell list rejects zero-volume cells: the rows of non-periodic directions (often zero for molecules, slabs
  and wires) are replaced by unit vectors orthogonal to the periodic ones, scaled to the system's extent, and each
  system is translated so its atoms lie inside along them. Only non-periodic rows change and every atom of a
  system moves by the same vector, so distances and periodic shifts are those of the input.
"""

import math

import torch

from orb_md.errors import InputError

CAPACITY_QUANTUM = 16  # matrix widths are rounded up to a multiple of this (as nvalchemiops does)
# Largest system (atoms) searched with nvalchemiops' all-pairs kernel instead of its cell list: the CPU crossover of
# `bench_neighbors.py --nvalchemi-crossover` (benchmarks/results/neighbors.md), where nvalchemiops' own choice
# (method=None) would take all-pairs far beyond it. CUDA: not benchmarked.
NAIVE_MAX_ATOMS = 128


def nvalchemi_available() -> bool:
    """True when nvalchemi-toolkit-ops (and Warp) import."""
    try:
        import nvalchemiops.torch.neighbors  # noqa: F401
    except ImportError:
        return False
    return True


def _search_frame(
    positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor, radius: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 (positions, cell) with each non-periodic cell row a unit vector orthogonal to the periodic rows.

    Its length is the system's extent along that vector plus ``radius``; the system is translated so its atoms
    start at 0 along it. Fully periodic systems are unchanged. Both come back contiguous (Warp takes no strides)."""
    pos = positions.to(torch.float64).contiguous()
    cell64 = cell.to(torch.float64).contiguous()
    if bool(pbc.all()):
        return pos, cell64
    periodic = cell64 * pbc.unsqueeze(-1).to(torch.float64)
    complement = torch.eye(3, dtype=torch.float64, device=cell.device) - torch.linalg.pinv(periodic) @ periodic
    basis = torch.linalg.eigh(complement)[1].transpose(1, 2)  # rows: periodic span (eigenvalue 0), then complement (1)
    column = (pbc.sum(1, keepdim=True) + torch.cumsum((~pbc).to(torch.int64), 1) - 1).clamp(max=2)
    axes = basis.gather(1, column.unsqueeze(-1).expand(-1, -1, 3))  # (B,3,3): row d = unit vector for direction d
    along = torch.bmm(axes[system_index], pos.unsqueeze(-1)).squeeze(-1)  # (N,3) coordinates along the axes
    index = system_index.unsqueeze(1).expand(-1, 3)
    infinity = torch.full_like(cell64[:, 0], math.inf)
    low = infinity.scatter_reduce(0, index, along, reduce="amin")
    high = (-infinity).scatter_reduce(0, index, along, reduce="amax")
    empty = ~torch.isfinite(low)
    low = torch.where(empty, torch.zeros_like(low), low)
    length = torch.where(empty, torch.zeros_like(high), high - low) + radius
    frame = torch.where(pbc.unsqueeze(-1), cell64, axes * length.unsqueeze(-1))
    origin = torch.bmm(((~pbc) * low).unsqueeze(1), axes).squeeze(1)  # (B,3)
    return pos - origin[system_index], frame


class NvalchemiSearch(torch.nn.Module):
    """Candidate pairs within ``radius`` from one batched nvalchemiops call (eager only).

    Batches whose largest system has at most NAIVE_MAX_ATOMS atoms use its all-pairs kernel, others its cell list.

    ``capacity`` (neighbour-matrix width) starts at nvalchemiops' estimate for ``radius`` and grows, never
    shrinks, when a call finds more neighbours per atom; the call is then repeated, so results are complete."""

    def __init__(self, radius: float):
        super().__init__()
        from nvalchemiops.torch.neighbors.neighbor_utils import estimate_max_neighbors

        self.radius = radius
        self.capacity = estimate_max_neighbors(radius)

    def __prepare_scriptable__(self) -> "NvalchemiSearch":
        raise InputError(
            "neighbour-list backend 'nvalchemi' is not TorchScript-able (nvalchemi-toolkit-ops runs Python and Warp "
            "kernels); script with backend 'auto', 'vesin', 'cell_list' or 'brute_force' instead"
        )

    def forward(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from nvalchemiops.torch.neighbors import neighbor_list

        device = positions.device
        if positions.shape[0] == 0:
            empty = torch.zeros(0, dtype=torch.int64, device=device)
            return empty, empty, torch.zeros(0, 3, dtype=torch.int64, device=device)
        pos, frame = _search_frame(positions, cell, pbc, system_index, self.radius)
        counts = torch.bincount(system_index, minlength=cell.shape[0])
        batch_ptr = torch.nn.functional.pad(torch.cumsum(counts, 0), (1, 0)).to(torch.int32)
        largest = int(counts.max())
        method = "batch_naive" if largest <= NAIVE_MAX_ATOMS else "batch_cell_list"
        sizes = {"max_atoms_per_system": largest} if method == "batch_naive" else {}
        while True:
            matrix, found, shift_matrix = neighbor_list(
                pos, self.radius, cell=frame, pbc=pbc.contiguous(), batch_idx=system_index.to(torch.int32).contiguous(),
                batch_ptr=batch_ptr,
                method=method, max_neighbors=self.capacity, fill_value=-1, **sizes,
            )
            most = int(found.max())
            if most <= self.capacity:
                break
            self.capacity = -(-most // CAPACITY_QUANTUM) * CAPACITY_QUANTUM  # overflow: widen and search again
        width = matrix.shape[1]
        slot = torch.nonzero(matrix.view(-1) != -1).squeeze(1)  # row-major: grouped by sender
        senders = torch.div(slot, width, rounding_mode="floor")
        receivers = matrix.view(-1).index_select(0, slot).to(torch.int64)
        return senders, receivers, shift_matrix.view(-1, 3).index_select(0, slot).to(torch.int64)
