"""TorchScript-able wrappers that evaluate an Orb-v3 model on OpenMM's TorchForce inputs.

OpenMM passes positions (N,3) in nm for *all* particles and, for periodic forces, the box
vectors (3,3) in nm (rows = vectors). The wrappers select the ML atoms, build the graph, call the
model in Å/eV and return kJ/mol (and kJ/mol/nm). Two evaluators: :class:`OrbEvaluator` (the graph of
:class:`orb_md.graph.NeighborList`, exact size) and :class:`CapturableOrbEvaluator` (for
``useCUDAGraphs``: the padded, fixed-capacity graph, no host synchronisation).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch

from orb_md.graph import NeighborList
from orb_md.graph.fixed_capacity import FixedCapacityNeighborList

EV_TO_KJ_PER_MOL = 96.48533212
NM_TO_ANGSTROM = 10.0


def no_box_message() -> str:
    """Raised by a periodic module called without box vectors (a function: TorchScript takes no global strings)."""
    return (
        "orb_md: this module was built for a periodic system but OpenMM passed no box vectors: "
        "call setUsesPeriodicBoundaryConditions(True) on its TorchForce"
    )


def _register_system(
    module: torch.nn.Module,
    atomic_numbers: List[int],
    indices: Optional[List[int]],
    periodic: bool,
    total_charge: Optional[float],
    spin: Optional[float],
    dtype: torch.dtype,
) -> None:
    """The fixed model inputs of the ML atoms, as buffers and flags of ``module``."""
    module.subset = indices is not None
    module.charge_spin = total_charge is not None and spin is not None
    module.register_buffer("indices", torch.tensor(indices if indices is not None else [], dtype=torch.long))
    module.register_buffer("atomic_numbers", torch.tensor(atomic_numbers, dtype=torch.long))
    module.register_buffer("system_index", torch.zeros(len(atomic_numbers), dtype=torch.long))
    module.register_buffer("pbc", torch.full((1, 3), periodic, dtype=torch.bool))
    module.register_buffer("total_charge", torch.tensor([total_charge or 0.0], dtype=dtype))
    module.register_buffer("spin", torch.tensor([spin or 0.0], dtype=dtype))


class OrbEvaluator(torch.nn.Module):
    """Selects the ML atoms, converts nm→Å, builds the graph and returns the model's outputs (Å, eV)."""

    def __init__(
        self,
        model: torch.nn.Module,
        atomic_numbers: List[int],
        indices: Optional[List[int]],
        periodic: bool,
        total_charge: Optional[float],
        spin: Optional[float],
    ):
        super().__init__()
        dtype = next(model.parameters()).dtype
        self.model = model
        self.neighbors = NeighborList(model.config.cutoff, model.config.max_neighbors)
        self.periodic = periodic
        self.nm_to_angstrom = NM_TO_ANGSTROM
        _register_system(self, atomic_numbers, indices, periodic, total_charge, spin, dtype)
        self.register_buffer("zero_cell", torch.zeros(1, 3, 3, dtype=dtype))

    def forward(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor], compute_forces: bool) -> Dict[str, torch.Tensor]:
        if self.subset:
            positions = positions.index_select(0, self.indices)
        # One host sync per step: turns exploding positions into a clear error instead of a
        # neighbour-list failure or NaN forces (CUDA graphs use CapturableOrbEvaluator instead).
        if not bool(torch.isfinite(positions).all()):
            raise ValueError(
                "orb_md: ML atom positions contain NaN or inf (the simulation blew up: "
                "reduce the time step, minimise first, or check the starting structure)"
            )
        positions = positions.to(self.zero_cell.dtype) * self.nm_to_angstrom
        cell = self.zero_cell
        if self.periodic:
            if boxvectors is None:
                raise ValueError(no_box_message())
            cell = (boxvectors.to(self.zero_cell.dtype) * self.nm_to_angstrom).unsqueeze(0)
        senders, receivers, shifts = self.neighbors(positions, cell, self.pbc, self.system_index)
        total_charge: Optional[torch.Tensor] = None
        spin: Optional[torch.Tensor] = None
        if self.charge_spin:
            total_charge = self.total_charge
            spin = self.spin
        return self.model(
            positions, self.atomic_numbers, cell, self.pbc, senders, receivers, shifts, self.system_index,
            total_charge, spin, compute_forces, False,
        )


class CapturableOrbEvaluator(torch.nn.Module):
    """:class:`OrbEvaluator` for CUDA graphs: static shapes and no host synchronisation.

    The graph comes from :class:`orb_md.graph.fixed_capacity.FixedCapacityNeighborList`, sized at construction
    for the ML atoms and ``box`` ((3,3) Å, the topology's box; None: non-periodic), with capacities
    ``bin_capacity`` and ``candidate_capacity`` (0: its defaults). Its padding edges change no output. A captured
    graph cannot raise, so an overflow of a capacity (or NaN positions) turns the energy and forces into NaN, and
    OpenMM stops with "Particle coordinate is NaN". Evaluating the same positions with a
    ``FixedCapacityNeighborList`` of the same sizes and ``raise_on_overflow=True`` names the capacity to raise.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        atomic_numbers: List[int],
        indices: Optional[List[int]],
        box: Optional[torch.Tensor],
        total_charge: Optional[float],
        spin: Optional[float],
        bin_capacity: int = 0,
        candidate_capacity: int = 0,
    ):
        super().__init__()
        dtype = next(model.parameters()).dtype
        self.model = model
        self.periodic = box is not None
        self.neighbors = FixedCapacityNeighborList(
            len(atomic_numbers), model.config.cutoff, model.config.max_neighbors, cell=box,
            bin_capacity=bin_capacity, candidate_capacity=candidate_capacity, raise_on_overflow=False,
        )
        self.nm_to_angstrom = NM_TO_ANGSTROM
        _register_system(self, atomic_numbers, indices, self.periodic, total_charge, spin, dtype)
        self.register_buffer("vacuum_cell", self.neighbors.vacuum_cell.to(dtype))

    def forward(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor], compute_forces: bool) -> Dict[str, torch.Tensor]:
        if self.subset:
            positions = positions.index_select(0, self.indices)
        positions = positions.to(self.vacuum_cell.dtype) * self.nm_to_angstrom
        cell = self.vacuum_cell
        if self.periodic:
            if boxvectors is None:
                raise ValueError(no_box_message())
            cell = (boxvectors.to(self.vacuum_cell.dtype) * self.nm_to_angstrom).unsqueeze(0)
        senders, receivers, shifts, overflow = self.neighbors(positions, cell)
        total_charge: Optional[torch.Tensor] = None
        spin: Optional[torch.Tensor] = None
        if self.charge_spin:
            total_charge = self.total_charge
            spin = self.spin
        out = self.model(
            positions, self.atomic_numbers, cell, self.pbc, senders, receivers, shifts, self.system_index,
            total_charge, spin, compute_forces, False,
        )
        one = torch.ones((), dtype=torch.float64, device=overflow.device)
        exact = torch.where(overflow == 0, one, torch.full_like(one, float("nan")))  # 1, or NaN on overflow
        out["energy"] = out["energy"] * exact
        if "forces" in out:
            out["forces"] = out["forces"] * exact.to(out["forces"].dtype)
        return out


class EnergyModule(torch.nn.Module):
    """Energy-only TorchForce module (kJ/mol); OpenMM takes forces by autograd. For conservative models."""

    def __init__(self, evaluator: torch.nn.Module):
        super().__init__()
        self.evaluator = evaluator
        self.energy_scale = EV_TO_KJ_PER_MOL

    def forward(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.evaluator(positions, boxvectors, False)["energy"].sum() * self.energy_scale


class EnergyForcesModule(torch.nn.Module):
    """TorchForce module returning (energy kJ/mol, forces (N,3) kJ/mol/nm). For direct models."""

    def __init__(self, evaluator: torch.nn.Module):
        super().__init__()
        self.evaluator = evaluator
        self.energy_scale = EV_TO_KJ_PER_MOL
        self.force_scale = EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM

    def forward(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        # The forces are the model's output, not a gradient: OpenMM's Reference/CPU kernels still pass
        # positions with requires_grad=True, so without no_grad autograd would record the whole model.
        with torch.no_grad():
            out = self.evaluator(positions, boxvectors, True)
        forces = out["forces"].to(positions.dtype) * self.force_scale
        if self.evaluator.subset:
            forces = torch.zeros_like(positions).index_copy(0, self.evaluator.indices, forces)
        return out["energy"].sum() * self.energy_scale, forces.contiguous()


def _box_and_scale(periodic: bool, second: torch.Tensor, third: Optional[torch.Tensor]) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
    """openmm-torch appends each global parameter after the box: (positions, box, λ) when periodic, (positions, λ) not."""
    if not periodic:
        return None, second
    if third is None:
        raise ValueError(no_box_message())
    return second, third


class ScaledEnergyModule(torch.nn.Module):
    """λ·E of an :class:`EnergyModule`, λ a TorchForce global parameter (openmm-ml's ``lambda_interpolate``).

    OpenMM's autograd then gives λ·F, so the ML region is switched on and off without a ``CustomCVForce``.
    """

    def __init__(self, module: torch.nn.Module, periodic: bool):
        super().__init__()
        self.module = module
        self.periodic = periodic

    def forward(self, positions: torch.Tensor, box_or_scale: torch.Tensor, scale: Optional[torch.Tensor] = None) -> torch.Tensor:
        boxvectors, factor = _box_and_scale(self.periodic, box_or_scale, scale)
        return self.module(positions, boxvectors) * factor


class ScaledEnergyForcesModule(torch.nn.Module):
    """(λ·E, λ·F) of an :class:`EnergyForcesModule`; λ as in :class:`ScaledEnergyModule`."""

    def __init__(self, module: torch.nn.Module, periodic: bool):
        super().__init__()
        self.module = module
        self.periodic = periodic

    def forward(
        self, positions: torch.Tensor, box_or_scale: torch.Tensor, scale: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        boxvectors, factor = _box_and_scale(self.periodic, box_or_scale, scale)
        energy, forces = self.module(positions, boxvectors)
        return energy * factor, forces * factor.to(forces.dtype)
