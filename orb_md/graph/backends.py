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

# The CPU order of preference, from benchmarks/bench_neighbors.py (figures: benchmarks/results/neighbors.md): the
# compiled cell list ("native", search and selection in one pass) at every size; without it vesin; without vesin,
# brute force up to BRUTE_FORCE_MAX_ATOMS atoms, then the torch cell list. "nvalchemi" (Warp CPU kernels) is never
# picked on the CPU: slower than "native" at every size, with a slow first call, and not TorchScript-able.
# The CUDA choices are not benchmarked.
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


def usable_backends(device: torch.device) -> list[str]:
    """The BACKENDS that run on ``device`` in this environment: "native" needs the CPU and the compiled ops, "vesin"
    and "nvalchemi" their packages."""
    available = {"native": device.type == "cpu" and native_available(), "vesin": vesin_available(),
                 "nvalchemi": nvalchemi_available()}
    return [backend for backend in BACKENDS if available.get(backend, True)]


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
