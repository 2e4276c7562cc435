"""Labelled structures as tensors with their graph built once, and their collation into batches."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import ase
import numpy as np
import torch

from orb_md.batch import atoms_to_batch, build_graph
from orb_md.errors import InputError
from orb_md.model.orb import OrbModel


@dataclasses.dataclass
class Sample:
    """One labelled structure: inputs, graph and targets (energy eV, forces eV/Å, Voigt stress eV/Å^3)."""

    positions: torch.Tensor
    atomic_numbers: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    senders: torch.Tensor
    receivers: torch.Tensor
    unit_shifts: torch.Tensor
    energy: float
    forces: torch.Tensor
    stress: torch.Tensor | None

    @property
    def num_atoms(self) -> int:
        return int(self.positions.shape[0])


@dataclasses.dataclass
class Batch:
    """Several samples concatenated; ``has_stress`` masks systems without a stress label."""

    positions: torch.Tensor
    atomic_numbers: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    senders: torch.Tensor
    receivers: torch.Tensor
    unit_shifts: torch.Tensor
    system_index: torch.Tensor
    counts: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    stress: torch.Tensor
    has_stress: torch.Tensor


def to_samples(model: OrbModel, structures: Sequence[ase.Atoms], dtype: torch.dtype = torch.float32) -> list[Sample]:
    """Check the labels of ``structures`` and build each one's graph with ``model``'s cutoff and k."""
    samples = []
    for i, atoms in enumerate(structures):
        if "energy" not in atoms.info or "forces" not in atoms.arrays:
            raise InputError(f"training structure {i} lacks an energy or forces label")
        forces = np.asarray(atoms.arrays["forces"], dtype=float)
        if forces.shape != (len(atoms), 3) or not np.all(np.isfinite(forces)):
            raise InputError(f"training structure {i}: forces must be finite with shape ({len(atoms)}, 3)")
        batch = atoms_to_batch([atoms], dtype=dtype)
        senders, receivers, shifts = build_graph(model, batch)
        stress = atoms.info.get("stress")
        samples.append(
            Sample(
                positions=batch.positions,
                atomic_numbers=batch.atomic_numbers,
                cell=batch.cell,
                pbc=batch.pbc,
                senders=senders,
                receivers=receivers,
                unit_shifts=shifts.to(dtype),
                energy=float(atoms.info["energy"]),
                forces=torch.tensor(forces, dtype=dtype),
                stress=None if stress is None else torch.tensor(np.asarray(stress, dtype=float), dtype=dtype),
            )
        )
    return samples


def pack_by_atoms(samples: Sequence[Sample], max_atoms: int) -> list[list[Sample]]:
    """Consecutive groups of ``samples`` with at most ``max_atoms`` atoms each (at least one sample per group)."""
    groups: list[list[Sample]] = [[]]
    atoms = 0
    for sample in samples:
        if groups[-1] and atoms + sample.num_atoms > max_atoms:
            groups.append([])
            atoms = 0
        groups[-1].append(sample)
        atoms += sample.num_atoms
    return groups


def collate(samples: Sequence[Sample]) -> Batch:
    """Concatenate samples into one batch, offsetting the graph indices."""
    offsets = np.cumsum([0] + [s.num_atoms for s in samples[:-1]])
    dtype = samples[0].positions.dtype
    zero_stress = torch.zeros(6, dtype=dtype)
    return Batch(
        positions=torch.cat([s.positions for s in samples]),
        atomic_numbers=torch.cat([s.atomic_numbers for s in samples]),
        cell=torch.cat([s.cell for s in samples]),
        pbc=torch.cat([s.pbc for s in samples]),
        senders=torch.cat([s.senders + int(o) for s, o in zip(samples, offsets)]),
        receivers=torch.cat([s.receivers + int(o) for s, o in zip(samples, offsets)]),
        unit_shifts=torch.cat([s.unit_shifts for s in samples]),
        system_index=torch.cat([torch.full((s.num_atoms,), i, dtype=torch.long) for i, s in enumerate(samples)]),
        counts=torch.tensor([s.num_atoms for s in samples]),
        energy=torch.tensor([s.energy for s in samples], dtype=torch.float64),
        forces=torch.cat([s.forces for s in samples]),
        stress=torch.stack([zero_stress if s.stress is None else s.stress for s in samples]),
        has_stress=torch.tensor([s.stress is not None for s in samples]),
    )
