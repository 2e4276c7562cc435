"""Verlet-skin reuse for MD: candidates within cutoff + skin, rebuilt only when needed, exact graph every step.

A pair closer than ``cutoff`` now was closer than cutoff + skin at the last build as long as no atom has moved
more than skin/2 since then, so re-selecting from the stored candidates (knn.py) gives exactly the graph of a
fresh build. The candidates are rebuilt when an atom moved more than skin/2, or when the cell, pbc or atoms change.
"""

import torch

from orb_md.graph.backends import BACKENDS, make_search
from orb_md.graph.knn import select_neighbors
from orb_md.graph.module import SEARCH_MARGIN
from orb_md.graph.validation import input_problem


class VerletNeighborList(torch.nn.Module):
    """Stateful, TorchScript-able neighbour list for consecutive MD steps; call it like :class:`NeighborList`."""

    def __init__(self, cutoff: float = 6.0, max_neighbors: int = 20, skin: float = 1.0, backend: str = "auto"):
        super().__init__()
        if not skin > 0.0:
            raise ValueError(f"skin must be positive, got {skin}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown neighbour-list backend {backend!r}; choose one of {BACKENDS}")
        self.cutoff = float(cutoff)
        self.max_neighbors = int(max_neighbors)
        self.skin = float(skin)
        self.search = make_search(backend, self.cutoff + self.skin + SEARCH_MARGIN)
        self.builds = 0
        self.reference_positions = torch.zeros(0, 3)
        self.reference_cell = torch.zeros(0, 3, 3)
        self.reference_pbc = torch.zeros(0, 3, dtype=torch.bool)
        self.reference_system_index = torch.zeros(0, dtype=torch.int64)
        self.candidate_senders = torch.zeros(0, dtype=torch.int64)
        self.candidate_receivers = torch.zeros(0, dtype=torch.int64)
        self.candidate_shifts = torch.zeros(0, 3, dtype=torch.int64)

    def needs_rebuild(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor
    ) -> bool:
        """True if the stored candidates may miss a pair of this configuration."""
        if self.builds == 0 or positions.shape != self.reference_positions.shape:
            return True
        if cell.shape != self.reference_cell.shape or positions.device != self.reference_positions.device:
            return True
        if not torch.equal(cell.to(torch.float64), self.reference_cell) or not torch.equal(pbc, self.reference_pbc):
            return True
        if not torch.equal(system_index, self.reference_system_index):
            return True
        moved = torch.linalg.vector_norm(positions.to(torch.float64) - self.reference_positions, dim=1)
        return bool((moved > 0.5 * self.skin).any())

    def forward(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        problem = input_problem(positions, cell, pbc, system_index, self.cutoff, self.max_neighbors)
        if problem != "":
            raise ValueError(problem)
        if self.needs_rebuild(positions, cell, pbc, system_index):
            candidates = self.search(positions, cell, pbc, system_index)  # all pairs within cutoff + skin
            self.candidate_senders = candidates[0]
            self.candidate_receivers = candidates[1]
            self.candidate_shifts = candidates[2]
            self.reference_positions = positions.to(torch.float64).clone()
            self.reference_cell = cell.to(torch.float64).clone()
            self.reference_pbc = pbc.clone()
            self.reference_system_index = system_index.clone()
            self.builds += 1
        return select_neighbors(
            positions,
            cell,
            system_index,
            self.candidate_senders,
            self.candidate_receivers,
            self.candidate_shifts,
            self.cutoff,
            self.max_neighbors,
        )
