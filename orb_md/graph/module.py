"""TorchScript-able neighbour-list module (the form embedded in OpenMM TorchForce and exported models)."""

import torch

from orb_md.graph.backends import BACKENDS, BRUTE_FORCE_MAX_ATOMS, choose_search, make_search
from orb_md.graph.knn import select_neighbors
from orb_md.graph.native import native_graph
from orb_md.graph.validation import input_problem

SEARCH_MARGIN = 1e-4  # Å added to the search radius; the exact strict cutoff is applied in knn.py


class NeighborList(torch.nn.Module):
    """Directed edges within ``cutoff``, capped to the ``max_neighbors`` nearest receivers per sender (-1: no cap).

    ``backend="auto"``: in eager mode on CPU the compiled cell list (:mod:`orb_md.graph.native`) when it builds;
    otherwise (TorchScript, CUDA) vesin-torch when installed, else brute force for systems of at most
    BRUTE_FORCE_MAX_ATOMS atoms and the pure-torch cell list above. All give the same graph.
    """

    def __init__(self, cutoff: float = 6.0, max_neighbors: int = 20, backend: str = "auto"):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown neighbour-list backend {backend!r}; choose one of {BACKENDS}")
        self.cutoff = float(cutoff)
        self.max_neighbors = int(max_neighbors)
        self.native = backend in ("auto", "native")
        radius = self.cutoff + SEARCH_MARGIN
        large = choose_search(1 << 30) if self.native else backend
        self.small_max_atoms = BRUTE_FORCE_MAX_ATOMS if backend == "auto" and large != "vesin" else -1
        self.small = make_search("brute_force", radius)
        self.large = make_search(large, radius)

    def forward(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        problem = input_problem(positions, cell, pbc, system_index, self.cutoff, self.max_neighbors)
        if problem != "":
            raise ValueError(problem)
        if self.native and not torch.jit.is_scripting():
            graph = native_graph(positions, cell, pbc, system_index, self.cutoff, self.max_neighbors)
            if len(graph) == 3:
                return graph[0], graph[1], graph[2].to(positions.dtype)
        largest = int(torch.bincount(system_index).max()) if system_index.shape[0] > 0 else 0
        if largest <= self.small_max_atoms:
            candidates = self.small(positions, cell, pbc, system_index)
        else:
            candidates = self.large(positions, cell, pbc, system_index)
        return select_neighbors(
            positions, cell, system_index, candidates[0], candidates[1], candidates[2], self.cutoff, self.max_neighbors
        )
