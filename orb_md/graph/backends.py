"""Candidate-search backends behind one interface, and the adaptive choice between them.

Each backend is a TorchScript-able ``torch.nn.Module`` mapping (positions, cell, pbc, system_index) to
candidate pairs (senders, receivers, int64 unit shifts) within its search radius; knn.py then decides the graph.
"""

import torch

from orb_md.graph.brute_force import brute_force_pairs
from orb_md.graph.cell_list import cell_list_pairs
from orb_md.graph.vesin_search import VesinSearch, vesin_available

BACKENDS = ("auto", "brute_force", "cell_list", "vesin")

# Measured with benchmarks/bench_neighbors.py and 1-108-atom Cu cells (CPU, 1 thread): vesin is fastest at every
# size (1 atom: 1.8 ms vs brute force 2.2 ms; 1k: 0.09 s vs 3.2 s); without vesin, brute force beats the torch cell
# list up to ~16 atoms (8 atoms: 7 ms vs 15 ms; 27 atoms: 16 ms vs 14 ms). CUDA choices are not measured (no GPU here).
BRUTE_FORCE_MAX_ATOMS = 16


class BruteForceSearch(torch.nn.Module):
    """Every pair against every needed lattice image (float64, chunked): the reference."""

    def __init__(self, radius: float):
        super().__init__()
        self.radius = radius

    def forward(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return brute_force_pairs(positions, cell, pbc, system_index, self.radius)


class CellListSearch(torch.nn.Module):
    """O(N) pure-torch cell list (CPU and CUDA)."""

    def __init__(self, radius: float):
        super().__init__()
        self.radius = radius

    def forward(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return cell_list_pairs(positions, cell, pbc, system_index, self.radius)


def choose_backend(n_atoms: int, device: torch.device) -> str:
    """Fastest measured backend for a largest system of ``n_atoms`` atoms (same choice on CUDA, unmeasured there)."""
    if vesin_available():
        return "vesin"
    return "brute_force" if n_atoms <= BRUTE_FORCE_MAX_ATOMS else "cell_list"


def make_search(backend: str, radius: float) -> torch.nn.Module:
    """Instantiate a concrete backend ("auto" must be resolved first)."""
    if backend == "brute_force":
        return BruteForceSearch(radius)
    if backend == "cell_list":
        return CellListSearch(radius)
    if backend == "vesin":
        if not vesin_available():
            raise ImportError("backend 'vesin' needs the vesin-torch package")
        return VesinSearch(radius)
    raise ValueError(f"unknown neighbour-list backend {backend!r}; choose one of {BACKENDS}")
