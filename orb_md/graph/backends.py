"""Candidate-search backends behind one interface, and the adaptive choice between them.

Each search backend is a TorchScript-able ``torch.nn.Module`` mapping (positions, cell, pbc, system_index) to
candidate pairs (senders, receivers, int64 unit shifts) within its search radius; knn.py then decides the graph.
"native" is the compiled cell list of :mod:`orb_md.graph.native` (eager CPU only), which also does the selection
and so is called directly by the API and the modules instead of through :func:`make_search`. "nvalchemi" (optional
package nvalchemi-toolkit-ops) is eager only: scripting a module that holds it raises InputError.
"""

import torch

from orb_md.graph.brute_force import brute_force_pairs
from orb_md.graph.cell_list import cell_list_pairs
from orb_md.graph.native import native_available
from orb_md.graph.nvalchemi_search import NvalchemiSearch, nvalchemi_available
from orb_md.graph.vesin_search import VesinSearch, vesin_available

BACKENDS = ("auto", "native", "brute_force", "cell_list", "vesin", "nvalchemi")

# Measured with benchmarks/bench_neighbors.py and 1-27-atom Cu cells (CPU, 1 thread, process CPU time): the compiled
# cell list ("native", search and selection in one pass) beats vesin + compiled selection at every size (1 atom:
# 0.29 ms vs 0.46 ms; 1k water: 5.8 ms vs 17 ms; 10k: 58 ms vs 168 ms; 100k: 0.59 s vs 2.5 s).
# Without it, vesin is fastest at every size (1 atom: 1.8 ms vs brute force 2.2 ms; 1k: 0.09 s vs 3.2 s); without
# vesin, brute force beats the torch cell list up to ~16 atoms (8 atoms: 7 ms vs 15 ms; 27 atoms: 16 ms vs 14 ms).
# "nvalchemi" (Warp CPU kernels) is never picked on the CPU: 2.3-4.9x slower than "native" at every size measured
# (1k water 8.1 vs 2.8 ms; 10k 111 vs 29 ms; 100k 1.71 vs 0.35 s; 64 systems of 8-64 atoms in one call 18 vs 7.7 ms),
# a 0.5-0.9 s first call per process (2.4-2.8 s with an empty Warp cache) and ~120 MB more memory. Against vesin (same
# selection) it is within ±30% on single systems and 1.5x faster on batches of small systems: not enough to
# replace the TorchScript-able fallback.
# CUDA choices are not measured (no GPU here).
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


def choose_search(n_atoms: int) -> str:
    """Fastest measured TorchScript-able search for a largest system of ``n_atoms`` atoms."""
    if vesin_available():
        return "vesin"
    return "brute_force" if n_atoms <= BRUTE_FORCE_MAX_ATOMS else "cell_list"


def choose_backend(n_atoms: int, device: torch.device) -> str:
    """Fastest measured backend for a largest system of ``n_atoms`` atoms (CUDA choices unmeasured).

    Builds the compiled ops on first use on CPU (see :mod:`orb_md.graph.native`)."""
    if device.type == "cpu" and native_available():
        return "native"
    return choose_search(n_atoms)


def make_search(backend: str, radius: float) -> torch.nn.Module:
    """Instantiate a concrete search backend ("auto" must be resolved first)."""
    if backend == "brute_force":
        return BruteForceSearch(radius)
    if backend == "cell_list":
        return CellListSearch(radius)
    if backend == "native":
        raise ValueError("'native' builds the whole graph (orb_md.graph.native.knn_graph), not candidates")
    if backend == "vesin":
        if not vesin_available():
            raise ImportError("backend 'vesin' needs the vesin-torch package")
        return VesinSearch(radius)
    if backend == "nvalchemi":
        if not nvalchemi_available():
            raise ImportError("backend 'nvalchemi' needs nvalchemi-toolkit-ops (pip install 'orb-md[nvalchemi]')")
        return NvalchemiSearch(radius)
    raise ValueError(f"unknown neighbour-list backend {backend!r}; choose one of {BACKENDS}")
