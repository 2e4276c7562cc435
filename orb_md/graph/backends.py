"""Radius-search backends behind one interface, and the choice between them.

Each backend is a TorchScript-able ``torch.nn.Module`` mapping (positions, cell, pbc, system_index) to candidate
pairs (senders, receivers, int64 unit shifts, float64 lengths of any rounding) within its search radius; knn.py
then decides the graph.
"vesin" (vesin-torch: a C++ cell list on the CPU, CUDA kernels on the GPU) is the default everywhere;
"brute_force" (every pair against every image, float64) is the reference the tests compare it with.
"""

import torch

from orb_md.graph.brute_force import brute_force_pairs
from orb_md.graph.vesin_search import VesinSearch, vesin_available

BACKENDS = ("auto", "vesin", "brute_force")


class BruteForceSearch(torch.nn.Module):
    """Every pair against every needed lattice image (float64, chunked): the reference."""

    def __init__(self, radius: float):
        super().__init__()
        self.radius = radius

    def forward(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return brute_force_pairs(positions, cell, pbc, system_index, self.radius)


def choose_backend(n_atoms: int, device: torch.device) -> str:
    """The backend "auto" stands for: vesin at every size and on every device (benchmarks/results/neighbors.md)."""
    return "vesin"


def usable_backends(device: torch.device) -> list[str]:
    """The BACKENDS that run on ``device`` in this environment ("vesin" needs vesin-torch)."""
    return [backend for backend in BACKENDS if backend == "brute_force" or vesin_available()]


def make_search(backend: str, radius: float) -> torch.nn.Module:
    """Instantiate a search backend; "auto" is resolved by :func:`choose_backend`."""
    if backend == "auto":
        backend = choose_backend(0, torch.device("cpu"))
    if backend == "brute_force":
        return BruteForceSearch(radius)
    if backend == "vesin":
        if not vesin_available():
            raise ImportError("backend 'vesin' needs the vesin-torch package (a dependency of orb-md)")
        return VesinSearch(radius)
    raise ValueError(f"unknown neighbour-list backend {backend!r}; choose one of {BACKENDS}")
