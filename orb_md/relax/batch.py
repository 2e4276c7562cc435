"""RelaxBatch: the systems still relaxing, as flat tensors a ForceField can evaluate, and its shrinking.

Rows of the optimiser: the N atom rows (positions in the undeformed cell), then three cell rows per system
(the filter's X; all zero for systems whose cell is fixed, so they change no FIRE sum, norm or fmax).
"""

from __future__ import annotations

import dataclasses

import torch

from orb_md.relax.cell import deformation


@dataclasses.dataclass
class RelaxBatch:
    """B systems (N atoms) being relaxed; everything float64 on one device."""

    indices: list[int]  # position of each system in the caller's list
    labels: list[str]
    positions: torch.Tensor  # (N, 3) Cartesian
    reference_positions: torch.Tensor  # (N, 3) r F^-T: the optimiser's atom coordinates
    atomic_numbers: torch.Tensor  # (N,)
    system_index: torch.Tensor  # (N,)
    free: torch.Tensor  # (N,) bool, False for atoms fixed by FixAtoms
    pbc: torch.Tensor  # (B, 3)
    cell: torch.Tensor  # (B, 3, 3) current (working) cell
    reference_cell: torch.Tensor  # (B, 3, 3) starting (working) cell
    log_strain: torch.Tensor  # (B, 3, 3) the filter's X
    mask: torch.Tensor  # (B, 3, 3) strain mask; zero when the cell is fixed
    exp_cell_factor: torch.Tensor  # (B,)
    total_charge: torch.Tensor
    spin: torch.Tensor
    steps: torch.Tensor  # (B,) int64
    energy: torch.Tensor | None = None
    forces: torch.Tensor | None = None
    stress: torch.Tensor | None = None

    @property
    def n_systems(self) -> int:
        return len(self.indices)

    def row_system(self) -> torch.Tensor:
        """System of every optimiser row: atoms, then three cell rows per system."""
        cells = torch.arange(self.n_systems, device=self.positions.device).repeat_interleave(3)
        return torch.cat([self.system_index, cells])

    def coordinates(self) -> torch.Tensor:
        """(N + 3B, 3) the optimiser's coordinates."""
        return torch.cat([self.reference_positions, self.log_strain.reshape(-1, 3)])

    def set_coordinates(self, rows: torch.Tensor) -> None:
        """Move to optimiser coordinates ``rows``: cell = reference cell (I + deform), r = r0 (I + deform)."""
        n = self.positions.shape[0]
        self.reference_positions = rows[:n]
        self.log_strain = rows[n:].reshape(-1, 3, 3)
        deform_t = self.deform_t()
        self.cell = self.reference_cell @ deform_t
        self.positions = torch.bmm(self.reference_positions[:, None, :], deform_t[self.system_index]).squeeze(1)

    def deform_t(self) -> torch.Tensor:
        """(B, 3, 3) ASE's ``I + deform`` = F^T."""
        return deformation(self.log_strain, self.mask, self.exp_cell_factor)

    def select(self, keep: torch.Tensor) -> RelaxBatch:
        """The batch of the systems where ``keep`` (B,) is True, renumbered."""
        atoms = keep[self.system_index]
        renumber = torch.cumsum(keep.to(torch.int64), 0) - 1
        per_system = {f.name: getattr(self, f.name)[keep] for f in dataclasses.fields(self)
                      if f.name in _PER_SYSTEM and getattr(self, f.name) is not None}
        per_atom = {f.name: getattr(self, f.name)[atoms] for f in dataclasses.fields(self)
                    if f.name in _PER_ATOM and getattr(self, f.name) is not None}
        kept = keep.tolist()
        return RelaxBatch(
            indices=[i for i, k in zip(self.indices, kept) if k], labels=[s for s, k in zip(self.labels, kept) if k],
            system_index=renumber[self.system_index[atoms]], **per_system, **per_atom,
        )


_PER_SYSTEM = {"pbc", "cell", "reference_cell", "log_strain", "mask", "exp_cell_factor", "total_charge", "spin",
               "steps", "energy", "stress"}
_PER_ATOM = {"positions", "reference_positions", "atomic_numbers", "free", "forces"}
