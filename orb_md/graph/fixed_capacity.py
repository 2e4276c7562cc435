"""Static-shape k-nearest graph of one system, for CUDA graphs and ``torch.compile(fullgraph=True)``.

:class:`FixedCapacityNeighborList` returns exactly N·k edges for N atoms (k = max_neighbors): sender i owns rows
i·k … i·k + k − 1, its neighbours first, in the order of :mod:`orb_md.graph.knn` (distance on a 1e-8 Å grid, then
receiver, then edge vector), then padding. Dropping the padding gives exactly :func:`orb_md.graph.neighbor_list`'s
graph. Every shape is a function of N, k and construction-time constants; there is no host synchronisation
(no ``.item()``, ``nonzero``, boolean indexing or branch on tensor values), so the module can be captured.

Candidates (``method``, chosen at construction by the number of candidates per sender):

- ``"cell_list"`` (O(N)): a grid of bins fixed at construction, at least the search radius wide, each holding at
  most ``bin_capacity`` atoms; a sender's candidates are the 27 · bin_capacity slots of the bins around its own.
  Periodic cells (any triclinic cell) are binned in fractional coordinates, at least 3 bins per axis;
  non-periodic systems in their bounding box, whose bins widen as it grows.
- ``"brute_force"``: every atom at every lattice image within reach of the construction-time cell (N · images
  candidates per sender): small systems, and cells too small for 3 bins per axis.

Selection (:mod:`orb_md.graph.padded_knn`): the ``candidate_capacity`` nearest candidates by a cheap length,
then the exact lengths and tie rule of :mod:`orb_md.graph.knn` on those.

Capacities, and what overflows (``overflow``, an int64 bit mask, 0 when the graph is exact):

- ``bin_capacity`` (default ⌈2 · mean occupancy⌉ + 8; mean occupancy N / bins for a periodic cell, 0.1 Å⁻³ ·
  radius³ for a non-periodic grid; its margin in water boxes and solvated or bare proteins:
  benchmarks/results/neighbors.md): a bin holding more atoms sets ``OVERFLOW_BIN``;
- ``candidate_capacity`` (default max(2k, k + 64)): a sender whose kept candidates do not provably hold its k
  nearest (more candidates within the cutoff, and less than 1e-6 Å between its k-th and last kept one) sets
  ``OVERFLOW_CANDIDATES``;
- the grid (bins ≥ radius · (1 + cell_slack) wide) and the image reach (enough for plane spacings down to the
  construction-time ones / (1 + cell_slack)) belong to the construction-time cell: a cell that shrinks further, so
  that a bin becomes narrower than the search radius or more images are needed, sets ``OVERFLOW_CELL``;
- NaN/inf positions or a singular cell set ``OVERFLOW_NOT_FINITE``.

Raise a capacity with the constructor argument of the same name (``create_torch_force(..., cuda_graphs=True,
bin_capacity=..., candidate_capacity=...)`` in OpenMM); for ``OVERFLOW_CELL`` build a new module for the new cell.
With ``raise_on_overflow`` (the default; a host synchronisation) the module raises ValueError naming the capacity;
without it (CUDA graphs) the caller must act on the flag, e.g. turn the energy and forces into NaN
(orb_md_openmm.module.CapturableOrbEvaluator).

Padding slots are edges i → i with a unit shift whose translation is at least twice the cutoff long (periodic:
(⌊2 · cutoff / plane spacing⌋ + 1, 0, 0) of the given cell). The model's envelopes and the ZBL term are exactly
zero beyond the cutoff, so such edges change no output. A non-periodic system has no cell: its padding shift is
(1, 0, 0) and the model must be evaluated with ``vacuum_cell`` (2 · cutoff · identity), which no real edge uses
(their shifts are zero).
"""

import math
from typing import List, Optional, Tuple

import torch

from orb_md.errors import InputError
from orb_md.graph.fixed_bins import bin_table, stencil_bins
from orb_md.graph.images import inverse_cell
from orb_md.graph.knn import MAX_CUTOFF
from orb_md.graph.module import SEARCH_MARGIN
from orb_md.graph.padded_knn import padded_knn, preselect

OVERFLOW_BIN = 1  # a bin holds more atoms than bin_capacity
OVERFLOW_CELL = 2  # the cell shrank below what the construction-time grid / image reach covers
OVERFLOW_NOT_FINITE = 4  # NaN/inf positions, or a singular cell
OVERFLOW_CANDIDATES = 8  # a sender's candidate_capacity nearest candidates do not provably hold its k nearest
METHODS = ("auto", "cell_list", "brute_force")
REFERENCE_DENSITY = 0.1  # atoms/Å³ (water, proteins): sizes the grid of a non-periodic system
OPEN_GRID_REACH = 2.0  # a non-periodic grid keeps radius-wide bins up to this many times the compact size per axis
OCCUPANCY_FACTOR, OCCUPANCY_MARGIN = 2.0, 8  # default bin_capacity = ceil(factor · mean occupancy) + margin


def default_bin_capacity(mean_occupancy: float) -> int:
    """Atoms per bin allowed by default for a grid whose bins hold ``mean_occupancy`` atoms on average."""
    return int(math.ceil(OCCUPANCY_FACTOR * mean_occupancy)) + OCCUPANCY_MARGIN


def default_candidate_capacity(max_neighbors: int) -> int:
    """Nearest candidates (other atoms and images) per sender kept by the pre-selection by default: max(2k, k + 64)."""
    return max(2 * max_neighbors, max_neighbors + 64)


def _translations(reach: List[int]) -> torch.Tensor:
    """(M,3) int64: every lattice image with |t_i| <= reach[i], lexicographic."""
    axes = [torch.arange(-r, r + 1) for r in reach]
    grid = torch.meshgrid(axes[0], axes[1], axes[2], indexing="ij")
    return torch.stack([g.reshape(-1) for g in grid], dim=1)


class FixedCapacityNeighborList(torch.nn.Module):
    """Padded k-nearest graph of one system of ``n_atoms`` atoms with static shapes; see the module doc.

    ``cell`` (3,3) or (1,3,3) Å, rows = lattice vectors: the system is periodic in 3-D and the grid and image
    reach are sized for this cell; None: non-periodic. Capacities 0: the defaults. ``cell_slack``: by how much
    (relative) the plane spacings may shrink below those of ``cell``. ``candidate_chunk``: candidates evaluated at
    once (senders go in chunks of a size fixed per device type; 0: 2^16 on the CPU, where small chunks stay in
    cache, 2^22 elsewhere, where fewer, larger kernels are faster).
    """

    def __init__(
        self,
        n_atoms: int,
        cutoff: float = 6.0,
        max_neighbors: int = 20,
        cell: Optional[torch.Tensor] = None,
        bin_capacity: int = 0,
        candidate_capacity: int = 0,
        method: str = "auto",
        cell_slack: float = 0.1,
        raise_on_overflow: bool = True,
        candidate_chunk: int = 0,
    ):
        super().__init__()
        if not isinstance(n_atoms, int) or n_atoms < 1:
            raise InputError(f"n_atoms must be a positive int, got {n_atoms!r}")
        if not (0.0 < cutoff <= MAX_CUTOFF):
            raise InputError(f"cutoff must be a positive number of Å, at most {MAX_CUTOFF} (the tie rule's key), got {cutoff}")
        if not isinstance(max_neighbors, int) or max_neighbors < 1:
            raise InputError(f"max_neighbors must be a positive int (a fixed capacity has no 'all'), got {max_neighbors!r}")
        for name, value in (("bin_capacity", bin_capacity), ("candidate_capacity", candidate_capacity),
                            ("candidate_chunk", candidate_chunk)):
            if not isinstance(value, int) or value < 0:
                raise InputError(f"{name} must be a positive int (0: the default), got {value!r}")
        if 0 < candidate_capacity <= max_neighbors:
            raise InputError(f"candidate_capacity must exceed max_neighbors={max_neighbors}, got {candidate_capacity}")
        if method not in METHODS:
            raise InputError(f"unknown method {method!r}; choose one of {METHODS}")
        if not cell_slack >= 0.0:
            raise InputError(f"cell_slack must be >= 0, got {cell_slack}")
        self.n_atoms = n_atoms
        self.cutoff = float(cutoff)
        self.max_neighbors = max_neighbors
        self.radius = self.cutoff + SEARCH_MARGIN
        self.periodic = cell is not None
        self.raise_on_overflow = raise_on_overflow
        self.bin_flag, self.cell_flag = OVERFLOW_BIN, OVERFLOW_CELL
        self.not_finite_flag, self.candidates_flag = OVERFLOW_NOT_FINITE, OVERFLOW_CANDIDATES
        bins, reach = self._grid(cell, cell_slack)
        if self.periodic:
            occupancy = n_atoms / max(1, bins[0] * bins[1] * bins[2])
        else:  # bins are radius-wide until the system outgrows the grid
            occupancy = min(float(n_atoms), REFERENCE_DENSITY * self.radius**3)
        self.bin_capacity = bin_capacity or default_bin_capacity(occupancy)
        n_images = (2 * reach[0] + 1) * (2 * reach[1] + 1) * (2 * reach[2] + 1)
        grid_fits = not self.periodic or min(bins) >= 3
        if method == "auto":
            method = "cell_list" if grid_fits and 27 * self.bin_capacity < n_atoms * n_images else "brute_force"
        if method == "cell_list" and not grid_fits:
            raise InputError(
                f"method='cell_list' needs 3 bins of at least {self.radius * (1 + cell_slack):.4f} Å per axis, but the "
                f"cell fits {bins}: use method='brute_force' or 'auto'"
            )
        self.method = method
        self.cell_list = method == "cell_list"
        self.candidates_per_sender = 27 * self.bin_capacity if self.cell_list else n_atoms * n_images
        self.candidate_capacity = candidate_capacity or default_candidate_capacity(max_neighbors)
        self.preselect = self.candidate_capacity < self.candidates_per_sender
        self.candidate_chunk = candidate_chunk
        self.layout = (f"{method}, bins {bins}, bin_capacity {self.bin_capacity}, image reach {reach}, "
                       f"candidate_capacity {self.candidate_capacity if self.preselect else 'all'}")
        # an open grid gets an empty layer of bins on each side, so that the 27 bins around an atom's always exist
        grid = bins if self.periodic else [b + 2 for b in bins]
        self.n_bins = grid[0] * grid[1] * grid[2]
        self.register_buffer("bins", torch.tensor(bins, dtype=torch.int64))
        self.register_buffer("grid", torch.tensor(grid, dtype=torch.int64))
        self.register_buffer("image_reach", torch.tensor(reach, dtype=torch.float64))
        self.register_buffer("stencil", _translations([1, 1, 1]))
        images = _translations(reach) if not self.cell_list else torch.zeros(0, 3, dtype=torch.int64)
        self.register_buffer("dense_receivers", torch.arange(n_atoms).repeat_interleave(images.shape[0]).unsqueeze(0))
        self.register_buffer("dense_images", images.repeat(n_atoms, 1).unsqueeze(0))
        self.register_buffer("dense_central", (self.dense_images == 0).all(-1))  # image 0: i -> i is no candidate
        self.register_buffer("senders", torch.arange(n_atoms).repeat_interleave(max_neighbors))
        self.register_buffer("vacuum_cell", 2.0 * self.cutoff * torch.eye(3, dtype=torch.float64).unsqueeze(0))
        self.register_buffer("vacuum_padding_shift", torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))

    def _grid(self, cell: Optional[torch.Tensor], cell_slack: float) -> Tuple[List[int], List[int]]:
        """Bins per axis and image reach per axis for the construction-time cell (None: non-periodic)."""
        stretched = self.radius * (1.0 + cell_slack)
        if cell is None:
            side = (self.n_atoms / REFERENCE_DENSITY) ** (1.0 / 3.0)  # of a compact system
            return [max(1, int(OPEN_GRID_REACH * side // self.radius))] * 3, [0, 0, 0]
        if not isinstance(cell, torch.Tensor) or cell.numel() != 9:
            raise InputError(f"cell must be a (3, 3) tensor of lattice vectors in Å, got {cell!r}")
        inverse = inverse_cell(cell.detach().reshape(3, 3).to(device="cpu", dtype=torch.float64))
        if not bool(torch.isfinite(inverse).all()):
            raise InputError("the cell is singular (zero volume)")
        spacing = (1.0 / torch.linalg.vector_norm(inverse, dim=0)).tolist()
        return [int(d // stretched) for d in spacing], [int(math.ceil(stretched / d)) for d in spacing]

    @torch.jit.ignore
    def extra_repr(self) -> str:
        return (f"{self.n_atoms} atoms, cutoff={self.cutoff}, max_neighbors={self.max_neighbors}, "
                f"periodic={self.periodic}: {self.layout}")

    def forward(
        self, positions: torch.Tensor, cell: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(senders (N·k,), receivers (N·k,), unit_shifts (N·k,3) in the positions' dtype, overflow () int64).

        positions (N,3) Å, unwrapped; cell (1,3,3) Å (ignored when non-periodic)."""
        if positions.dim() != 2 or positions.shape[0] != self.n_atoms or positions.shape[1] != 3:
            raise ValueError(f"positions must have shape ({self.n_atoms}, 3), got {list(positions.shape)}")
        if not positions.is_floating_point():
            raise ValueError(f"positions must be floating point, got {positions.dtype}")
        if cell.dim() != 3 or cell.shape[0] != 1 or cell.shape[1] != 3 or cell.shape[2] != 3:
            raise ValueError(f"cell must have shape (1, 3, 3), got {list(cell.shape)}")
        pos = positions.detach().to(torch.float64)  # integer outputs: nothing to differentiate
        cell64 = cell[0].detach().to(torch.float64)
        bins = self.bins.to(torch.float64)
        finite = torch.isfinite(pos).all()
        lattice = torch.zeros(3, 3, dtype=torch.float64, device=pos.device)  # rows of the periodic directions
        offsets = torch.zeros(self.n_atoms, 3, dtype=torch.int64, device=pos.device)  # wraps into the cell
        scaled = pos  # positions in units of bins (cell list only)
        too_small = torch.zeros((), dtype=torch.bool, device=pos.device)
        padding_shift = self.vacuum_padding_shift  # a buffer: no copy from the host during a capture
        if self.periodic:
            lattice = cell64
            inverse = inverse_cell(cell64)
            fractional = pos @ inverse
            wraps = torch.floor(fractional)
            offsets = wraps.to(torch.int64)
            scaled = (fractional - wraps) * bins
            inverse_spacing = torch.linalg.vector_norm(inverse, dim=0)  # 1 / plane spacing
            if self.cell_list:
                too_small = (inverse_spacing * bins * self.radius > 1.0).any()
            else:
                too_small = (inverse_spacing * self.radius > self.image_reach).any()
            finite = finite & torch.isfinite(inverse).all()
            padding = torch.floor(2.0 * self.cutoff * inverse_spacing[0:1]) + 1.0
            padding_shift = torch.cat([padding, torch.zeros(2, dtype=torch.float64, device=pos.device)])
        elif self.cell_list:
            low = pos.amin(0)
            scaled = (pos - low) / torch.clamp((pos.amax(0) - low) / bins, min=self.radius)
        wrapped = pos - offsets.to(torch.float64) @ lattice
        overflow = (~finite).to(torch.int64) * self.not_finite_flag + too_small.to(torch.int64) * self.cell_flag
        complete = torch.ones((), dtype=torch.bool, device=pos.device)

        atom_bins = offsets  # bin coordinates (cell list only)
        table = torch.zeros(0, self.bin_capacity, dtype=torch.int64, device=pos.device)
        occupancy = torch.zeros(1, dtype=torch.int64, device=pos.device)
        filled = torch.zeros(0, self.bin_capacity, dtype=torch.bool, device=pos.device)
        planes = wrapped.t()  # x, y, z planes of the cheap candidate positions: per bin slot, or per atom and image
        if self.cell_list:
            atom_bins = torch.minimum(torch.floor(scaled).to(torch.int64).clamp(min=0), self.bins - 1)
            if not self.periodic:
                atom_bins = atom_bins + 1  # inside the empty layer
            linear = (atom_bins[:, 0] * self.grid[1] + atom_bins[:, 1]) * self.grid[2] + atom_bins[:, 2]
            table, occupancy = bin_table(linear, self.n_bins, self.bin_capacity)
            overflow = overflow + (occupancy.amax() > self.bin_capacity).to(torch.int64) * self.bin_flag
            filled = torch.arange(self.bin_capacity, device=pos.device) < occupancy.unsqueeze(1)
            empty = torch.full_like(planes[:, :1], float("inf"))
            planes = torch.where(filled.view(1, -1), planes.index_select(1, table.reshape(-1)), empty)
            planes = planes.view(3, self.n_bins, self.bin_capacity)
        else:
            planes = planes.index_select(1, self.dense_receivers[0]) + (self.dense_images[0].to(torch.float64) @ lattice).t()

        receivers: List[torch.Tensor] = []
        shifts: List[torch.Tensor] = []
        kept: List[torch.Tensor] = []
        budget = self.candidate_chunk
        if budget == 0:
            budget = 1 << 16 if pos.device.type == "cpu" else 1 << 22
        sender_chunk = max(1, budget // self.candidates_per_sender)
        for lo in range(0, self.n_atoms, sender_chunk):
            senders = torch.arange(lo, min(self.n_atoms, lo + sender_chunk), device=pos.device)
            if self.cell_list:
                candidates = self._bin_candidates(senders, atom_bins, table, filled, planes, wrapped, lattice)
            else:
                candidates = self._image_candidates(senders, planes, wrapped)
            complete = complete & candidates[3]
            chosen = padded_knn(pos, cell64, offsets, senders, candidates[0], candidates[1], candidates[2],
                                self.cutoff, self.max_neighbors, self.periodic)
            receivers.append(chosen[0])
            shifts.append(chosen[1])
            kept.append(chosen[2])
        overflow = overflow + (~complete).to(torch.int64) * self.candidates_flag

        is_edge = torch.cat(kept).view(-1)
        receiver = torch.where(is_edge, torch.cat(receivers).view(-1), self.senders)
        shift = torch.where(is_edge.unsqueeze(1), torch.cat(shifts).view(-1, 3).to(torch.float64), padding_shift)
        if self.raise_on_overflow:
            self.check(overflow, occupancy)
        return self.senders, receiver, shift.to(positions.dtype), overflow

    def _bin_candidates(
        self,
        senders: torch.Tensor,
        atom_bins: torch.Tensor,
        table: torch.Tensor,
        filled: torch.Tensor,
        planes: torch.Tensor,
        wrapped: torch.Tensor,
        lattice: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(receivers, images, valid, complete) of ``senders`` from the 27 bins around each one's own."""
        count = senders.shape[0]
        around, around_images = stencil_bins(atom_bins.index_select(0, senders), self.stencil, self.grid, self.periodic)
        flat = around.reshape(-1)
        receivers = table.index_select(0, flat).view(count, -1)
        valid = filled.index_select(0, flat).view(count, -1)
        if not self.preselect:
            images = around_images.unsqueeze(2).expand(count, 27, self.bin_capacity, 3).reshape(count, -1, 3)
            return receivers, images, valid, torch.ones((), dtype=torch.bool, device=senders.device)
        # each bin's atoms against the sender seen from that bin's image (centre − translation)
        translations = (around_images.to(torch.float64) @ lattice).permute(2, 0, 1)  # (3,S,27)
        centres = wrapped.index_select(0, senders).t().unsqueeze(-1) - translations
        d = planes.index_select(1, flat).view(3, count, 27, -1) - centres.unsqueeze(-1)
        own = (receivers == senders.unsqueeze(1)) & valid  # a sender is only in its own bin, at image 0
        picked, within, complete = self._nearest(d.view(3, count, -1), own)
        column = torch.div(picked, self.bin_capacity, rounding_mode="floor").unsqueeze(-1).expand(-1, -1, 3)
        return receivers.gather(1, picked), around_images.gather(1, column), within, complete

    def _image_candidates(
        self, senders: torch.Tensor, planes: torch.Tensor, wrapped: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(receivers, images, valid, complete) of ``senders`` from every atom at every image within reach."""
        count = senders.shape[0]
        receivers, images = self.dense_receivers, self.dense_images
        if not self.preselect:
            valid = torch.ones(receivers.shape, dtype=torch.bool, device=senders.device)
            return receivers, images, valid, torch.ones((), dtype=torch.bool, device=senders.device)
        d = planes.unsqueeze(1) - wrapped.index_select(0, senders).t().unsqueeze(-1)
        own = (receivers == senders.unsqueeze(1)) & self.dense_central
        picked, within, complete = self._nearest(d, own)
        receivers = receivers.expand(count, -1).gather(1, picked)
        images = images.expand(count, -1, -1).gather(1, picked.unsqueeze(-1).expand(-1, -1, 3))
        return receivers, images, within, complete

    def _nearest(self, d: torch.Tensor, own: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:func:`preselect` on the cheap vectors d (3,S,C) (the sender itself excluded): slots, within, complete."""
        squared = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        squared = torch.where(own, torch.full_like(squared, float("inf")), squared)
        picked, within, complete = preselect(squared, self.radius, self.max_neighbors, self.candidate_capacity)
        return picked, within, complete.all()

    def check(self, overflow: torch.Tensor, occupancy: torch.Tensor) -> None:
        """Raise ValueError naming the capacity to raise if ``overflow`` is set (a host synchronisation)."""
        flags = int(overflow)
        if flags & self.not_finite_flag:
            raise ValueError("FixedCapacityNeighborList: positions or cell contain NaN/inf values, or the cell is singular")
        if flags & self.cell_flag:
            raise ValueError(
                f"FixedCapacityNeighborList: the cell shrank below what this module was built for ({self.layout}; "
                f"search radius {self.radius} Å): build a new one for the current cell, or a larger cell_slack"
            )
        if flags & self.bin_flag:
            raise ValueError(
                f"FixedCapacityNeighborList: a cell-list bin holds {int(occupancy.amax())} atoms, more than "
                f"bin_capacity={self.bin_capacity}: build it with a larger bin_capacity (orb_md_openmm: "
                f"create_torch_force(..., cuda_graphs=True, bin_capacity=...))"
            )
        if flags & self.candidates_flag:
            raise ValueError(
                f"FixedCapacityNeighborList: a sender has more than candidate_capacity={self.candidate_capacity} "
                f"candidates within {self.radius} Å, without a gap after its {self.max_neighbors}th nearest: build it "
                f"with a larger candidate_capacity (orb_md_openmm: create_torch_force(..., cuda_graphs=True, "
                f"candidate_capacity=...))"
            )
