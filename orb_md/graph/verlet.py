"""Verlet-skin reuse for MD: candidates within cutoff + skin, rebuilt only when needed, exact graph every step.

A pair closer than ``cutoff`` now was closer than cutoff + skin at the last build as long as no atom has moved
more than skin/2 since then, so re-selecting from the stored candidates (knn.py) gives exactly the graph of a
fresh build. The candidates are rebuilt when an atom moved more than skin/2, or when the cell, pbc or atoms change.

Each step is cheap by a second bound. If no atom has moved more than δ since the previous call, every pair length
has changed by at most 2δ, so a sender's k-th nearest now lies within D_k + 2δ (D_k: its k-th nearest at the
previous call), and only its candidates within that distance go to the tie rule (about k when δ is small). At the
build, a candidate farther than d_k + 2·skin (d_k: the k-th nearest then) is dropped: until the next build no atom
moves more than skin/2, so by the same bound it can never be among the k nearest.
"""

import torch

from orb_md.graph.backends import BACKENDS, make_search
from orb_md.graph.knn import (
    edge_length,
    is_edge,
    local_receivers,
    nearest_per_sender,
    shift_translations,
    tie_keys,
    translated_vectors,
)
from orb_md.graph.module import SEARCH_MARGIN
from orb_md.graph.validation import input_problem

ROUNDING_MARGIN = 1e-4  # Å added to every reuse bound: far above float64 rounding of the lengths


def largest_displacement(positions: torch.Tensor, reference: torch.Tensor) -> float:
    """The largest distance an atom has moved from ``reference`` (float64, same shape), in Å."""
    if positions.shape[0] == 0:
        return 0.0
    return float(torch.linalg.vector_norm(positions.to(torch.float64) - reference, dim=1).max())


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
        self.margin = ROUNDING_MARGIN  # an attribute: TorchScript reads no globals
        self.search = make_search(backend, self.cutoff + self.skin + SEARCH_MARGIN)
        self.builds = 0
        self.reference_positions = torch.zeros(0, 3, dtype=torch.float64)
        self.reference_cell = torch.zeros(0, 3, 3, dtype=torch.float64)
        self.reference_pbc = torch.zeros(0, 3, dtype=torch.bool)
        self.reference_system_index = torch.zeros(0, dtype=torch.int64)
        self.candidate_senders = torch.zeros(0, dtype=torch.int64)
        self.candidate_receivers = torch.zeros(0, dtype=torch.int64)
        self.candidate_shifts = torch.zeros(0, 3, dtype=torch.int64)
        self.candidate_translations = torch.zeros(0, 3, dtype=torch.float64)  # shift @ cell, fixed until a build
        self.previous_positions = torch.zeros(0, 3, dtype=torch.float64)
        self.previous_kth = torch.zeros(0, dtype=torch.float64)  # per sender, D_k at the previous call (inf: none)

    def same_structure(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor
    ) -> bool:
        """True if only the positions can differ from the last build (same atoms, systems, cell, pbc, device)."""
        if self.builds == 0 or positions.shape != self.reference_positions.shape:
            return False
        if cell.shape != self.reference_cell.shape or positions.device != self.reference_positions.device:
            return False
        if not torch.equal(cell.to(torch.float64), self.reference_cell) or not torch.equal(pbc, self.reference_pbc):
            return False
        return torch.equal(system_index, self.reference_system_index)

    def rebuild(self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor):
        """Search all pairs within cutoff + skin and store those that can matter before the next build."""
        senders, receivers, shifts, _ = self.search(positions, cell, pbc, system_index)
        real = is_edge(senders, receivers, shifts)
        senders, receivers, shifts = senders[real], receivers[real], shifts[real]
        translations = shift_translations(cell, system_index, senders, shifts)
        lengths = edge_length(translated_vectors(positions, senders, receivers, translations))
        by_length = torch.sort(lengths, stable=True)[1]
        order = by_length.index_select(0, torch.sort(senders.index_select(0, by_length), stable=True)[1])
        if self.max_neighbors > 0 and order.shape[0] > 0:
            grouped, grouped_lengths = senders.index_select(0, order), lengths.index_select(0, order)
            counts = torch.bincount(grouped, minlength=positions.shape[0])
            kth = (torch.cumsum(counts, 0) - counts + self.max_neighbors - 1).clamp(max=order.shape[0] - 1)
            kth_length = torch.where(counts >= self.max_neighbors, grouped_lengths.index_select(0, kth), float("inf"))
            order = order[grouped_lengths <= kth_length.index_select(0, grouped) + (2.0 * self.skin + self.margin)]
        self.candidate_senders = senders.index_select(0, order)
        self.candidate_receivers = receivers.index_select(0, order)
        self.candidate_shifts = shifts.index_select(0, order)
        self.candidate_translations = translations.index_select(0, order)
        self.reference_positions = positions.to(torch.float64).clone()
        self.reference_cell = cell.to(torch.float64).clone()
        self.reference_pbc = pbc.clone()
        self.reference_system_index = system_index.clone()
        self.builds += 1

    def select(
        self, positions: torch.Tensor, system_index: torch.Tensor, n_systems: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The k nearest per sender by the tie rule, among its candidates within D_k + 2δ of the previous call."""
        n_atoms = positions.shape[0]
        senders, receivers = self.candidate_senders, self.candidate_receivers
        vectors = translated_vectors(positions, senders, receivers, self.candidate_translations)
        distance = edge_length(vectors)
        bound = torch.full((n_atoms,), float("inf"), dtype=torch.float64, device=positions.device)
        if self.previous_kth.shape[0] == n_atoms:
            bound = self.previous_kth + (2.0 * largest_displacement(positions, self.previous_positions) + self.margin)
        near = torch.nonzero((distance < self.cutoff) & (distance <= bound.index_select(0, senders))).squeeze(1)
        senders, receivers, distance = senders.index_select(0, near), receivers.index_select(0, near), distance[near]
        key_a, key_b = tie_keys(distance, local_receivers(receivers, system_index, n_systems), vectors[near])
        chosen = nearest_per_sender(senders, key_a, key_b, n_atoms, self.max_neighbors)
        senders = senders.index_select(0, chosen)
        self.previous_positions = positions.to(torch.float64).clone()
        self.previous_kth = self.kth_distance(senders, distance.index_select(0, chosen), n_atoms)
        return senders, receivers.index_select(0, chosen), self.candidate_shifts[near[chosen]].to(positions.dtype)

    def kth_distance(self, senders: torch.Tensor, distance: torch.Tensor, n_atoms: int) -> torch.Tensor:
        """Per sender, the length of its k-th edge (edges grouped by sender in tie-rule order); inf below k edges."""
        kth = torch.full((n_atoms,), float("inf"), dtype=torch.float64, device=senders.device)
        if self.max_neighbors <= 0 or senders.shape[0] == 0:
            return kth
        counts = torch.bincount(senders, minlength=n_atoms)
        last = (torch.cumsum(counts, 0) - 1).clamp(min=0)
        return torch.where(counts == self.max_neighbors, distance.index_select(0, last), kth)

    def forward(
        self, positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        problem = input_problem(positions, cell, pbc, system_index, self.cutoff, self.max_neighbors)
        if problem != "":
            raise ValueError(problem)
        if not self.same_structure(positions, cell, pbc, system_index):
            self.previous_kth = torch.zeros(0, dtype=torch.float64, device=positions.device)  # no bound yet
            self.rebuild(positions, cell, pbc, system_index)
        elif largest_displacement(positions, self.reference_positions) > 0.5 * self.skin:
            self.rebuild(positions, cell, pbc, system_index)
        return self.select(positions, system_index, cell.shape[0])
