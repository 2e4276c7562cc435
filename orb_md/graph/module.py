"""TorchScript-able neighbour-list module (the form embedded in OpenMM TorchForce and exported models)."""

import torch

from orb_md.graph.backends import BACKENDS, make_search
from orb_md.graph.knn import select_neighbors
from orb_md.graph.validation import input_problem

SEARCH_MARGIN = 1e-4  # Å added to the search radius; the exact strict cutoff is applied in knn.py


class NeighborList(torch.nn.Module):
    """Directed edges within ``cutoff``, capped to the ``max_neighbors`` nearest receivers per sender (-1: no cap).

    The radius search of ``backend`` (:mod:`orb_md.graph.backends`), then the tie rule of :mod:`orb_md.graph.knn`:
    every backend gives the same graph.
    """

    def __init__(self, cutoff: float = 6.0, max_neighbors: int = 20, backend: str = "auto"):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown neighbour-list backend {backend!r}; choose one of {BACKENDS}")
        self.cutoff = float(cutoff)
        self.max_neighbors = int(max_neighbors)
        self.search = make_search(backend, self.cutoff + SEARCH_MARGIN)

    def forward(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        problem = input_problem(positions, cell, pbc, system_index, self.cutoff, self.max_neighbors)
        if problem != "":
            raise ValueError(problem)
        candidates = self.search(positions, cell, pbc, system_index)
        return select_neighbors(positions, cell, system_index, candidates[0], candidates[1], candidates[2], self.cutoff,
                                self.max_neighbors, candidates[3])
