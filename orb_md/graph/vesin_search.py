"""Radius search with vesin-torch (C++ cell list on CPU, NVRTC kernels on CUDA), one call per system.

vesin returns the radius list without any k cap; orb_md adds the selection (knn.py), which uses vesin's lengths
only to prune candidates far from each sender's k-th nearest. vesin is asked for the half list (each pair once)
and the pairs are mirrored here: that is cheaper than vesin's own full list (benchmarks/results/neighbors.md).
"""

import torch


def vesin_available() -> bool:
    """True when vesin-torch is installed and its TorchScript class is registered."""
    try:
        import vesin_torch  # noqa: F401  (registers torch.classes.vesin)
    except ImportError:
        return False
    return True


class VesinSearch(torch.nn.Module):
    """Candidate pairs within ``radius`` from vesin-torch; TorchScript-able when vesin-torch is loaded."""

    def __init__(self, radius: float):
        super().__init__()
        import vesin_torch  # noqa: F401

        self.radius = radius
        self.engine = torch.classes.vesin._NeighborList(
            cutoff=radius, full_list=False, sorted=False, algorithm="auto", skin=0.0,
            n_threads=max(1, torch.get_num_threads()),  # follow torch's thread count (set at construction)
        )

    def forward(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(senders, receivers, int64 unit shifts, float64 lengths) of every pair within the radius, both ways."""
        pos = positions.to(torch.float64)
        cell64 = cell.to(torch.float64) * pbc.unsqueeze(-1).to(torch.float64)
        counts = torch.bincount(system_index, minlength=cell.shape[0])
        starts = torch.cumsum(counts, 0) - counts
        senders, receivers, shifts, lengths = [], [], [], []
        for b in range(cell.shape[0]):
            first, n = int(starts[b]), int(counts[b])
            if n == 0:
                continue
            result = self.engine.compute(
                points=pos[first : first + n], box=cell64[b], periodic=pbc[b], quantities="ijSd", copy=True
            )
            i, j, shift = result[0].to(torch.int64) + first, result[1].to(torch.int64) + first, result[2].to(torch.int64)
            senders += [i, j]
            receivers += [j, i]
            shifts += [shift, -shift]
            lengths += [result[3], result[3]]
        if len(senders) == 0:
            empty = torch.zeros(0, dtype=torch.int64, device=positions.device)
            return empty, empty, torch.zeros(0, 3, dtype=torch.int64, device=positions.device), torch.zeros(
                0, dtype=torch.float64, device=positions.device)
        return torch.cat(senders), torch.cat(receivers), torch.cat(shifts), torch.cat(lengths)
