"""From ASE structures to the tensors OrbModel takes, with input checks, and back."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import ase
import numpy as np
import torch

from orb_md.errors import InputError
from orb_md.graph import neighbor_list
from orb_md.model.inputs import system_inputs
from orb_md.model.orb import OrbModel, edge_vectors
from orb_md.training_elements import warn_untrained_elements
from orb_md.units import MAX_ATOMIC_NUMBER

MIN_DISTANCE = 0.01  # Å; closer atoms are treated as overlapping


@dataclasses.dataclass
class SystemBatch:
    """Several structures as flat tensors (atoms concatenated, one cell row per system)."""

    positions: torch.Tensor
    atomic_numbers: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    system_index: torch.Tensor
    total_charge: torch.Tensor
    spin: torch.Tensor

    @property
    def counts(self) -> list[int]:
        """Number of atoms per system."""
        return torch.bincount(self.system_index, minlength=self.cell.shape[0]).tolist()


def check_atomic_numbers(numbers: np.ndarray, label: str = "structure") -> None:
    """Raise InputError for atomic numbers outside 1..117."""
    bad = sorted({int(z) for z in numbers if not 1 <= z <= MAX_ATOMIC_NUMBER})
    if bad:
        raise InputError(f"{label}: unsupported atomic number(s) {bad}; Orb-v3 handles Z = 1..{MAX_ATOMIC_NUMBER}")


def atoms_to_batch(
    structures: Sequence[ase.Atoms],
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    charge: float | None = None,
    spin: float | None = None,
) -> SystemBatch:
    """Stack ASE structures; charge/spin come from ``atoms.info['charge'/'spin']`` or the defaults."""
    if len(structures) == 0:
        raise InputError("no structures given")
    charges, spins = [], []
    for i, atoms in enumerate(structures):
        if len(atoms) == 0:
            raise InputError(f"structure {i} has no atoms")
        check_atomic_numbers(atoms.numbers, f"structure {i}")
        label = f"structure {i} ({atoms.get_chemical_formula()})"
        if not np.all(np.isfinite(atoms.positions)):
            raise InputError(f"{label}: positions contain NaN or inf")
        charges.append(float(atoms.info.get("charge", 0.0 if charge is None else charge)))
        spins.append(float(atoms.info.get("spin", 0.0 if spin is None else spin)))
    return SystemBatch(
        positions=torch.tensor(np.concatenate([a.positions for a in structures]), dtype=dtype, device=device),
        atomic_numbers=torch.tensor(np.concatenate([a.numbers for a in structures]), dtype=torch.long, device=device),
        cell=torch.tensor(np.stack([a.cell.array for a in structures]), dtype=dtype, device=device),
        pbc=torch.tensor(np.stack([a.pbc for a in structures]), dtype=torch.bool, device=device),
        system_index=torch.repeat_interleave(
            torch.arange(len(structures), device=device),
            torch.tensor([len(a) for a in structures], device=device),
        ),
        total_charge=torch.tensor(charges, dtype=dtype, device=device),
        spin=torch.tensor(spins, dtype=dtype, device=device),
    )


def check_overlap(
    positions: torch.Tensor,
    cell: torch.Tensor,
    system_index: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    shifts: torch.Tensor,
) -> None:
    """Raise InputError if the closest pair of the graph is nearer than MIN_DISTANCE."""
    if senders.numel() == 0:
        return
    vectors = edge_vectors(
        positions, cell, senders, receivers, shifts.to(positions.dtype), system_index[senders]
    )
    lengths = torch.linalg.vector_norm(vectors, dim=1)
    closest = int(torch.argmin(lengths))
    if float(lengths[closest]) < MIN_DISTANCE:
        raise InputError(
            f"atoms {int(senders[closest])} and {int(receivers[closest])} overlap "
            f"(distance {float(lengths[closest]):.2e} Å < {MIN_DISTANCE} Å)"
        )


def build_graph(model: OrbModel, batch: SystemBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The model's k-nearest graph of the batch, rejecting overlapping atoms."""
    senders, receivers, shifts = neighbor_list(
        batch.positions, batch.cell, batch.pbc, batch.system_index,
        cutoff=model.config.cutoff, max_neighbors=model.config.max_neighbors,
    )
    check_overlap(batch.positions, batch.cell, batch.system_index, senders, receivers, shifts)
    return senders, receivers, shifts


def evaluate(
    model: OrbModel, batch: SystemBatch, forces: bool = True, stress: bool = True
) -> dict[str, torch.Tensor]:
    """Run the model on a batch (graph built here); outputs as documented by OrbModel. Warns once per element the
    model was not trained on (the ASE calculator, phonons and every other caller of this function)."""
    warn_untrained_elements(model, batch.atomic_numbers)
    inputs = system_inputs(model.config, batch, build_graph(model, batch))
    with torch.set_grad_enabled(model.conservative and (forces or stress)):
        out = model(inputs, compute_forces=forces, compute_stress=stress)
    return {k: v.detach() for k, v in out.items()}
