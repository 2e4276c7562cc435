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
from orb_md.model.inputs import OrbInputs
from orb_md.units import EV_IN_KJ_PER_MOL, NM_IN_ANGSTROM


def no_box_message() -> str:
    """Raised by a periodic module called without box vectors (a function: TorchScript takes no global strings)."""
    return (
        "orb_md: this module was built for a periodic system but OpenMM passed no box vectors: "
        "call setUsesPeriodicBoundaryConditions(True) on its TorchForce"
    )


class _MLAtoms(torch.nn.Module):
    """The fixed model inputs of the ML atoms (buffers and flags), and OpenMM's arguments in the model's units."""

    def __init__(
        self,
        model: torch.nn.Module,
        atomic_numbers: List[int],
        indices: Optional[List[int]],
        periodic: bool,
        total_charge: Optional[float],
        spin: Optional[float],
        default_cell: torch.Tensor,
    ):
        super().__init__()
        dtype = next(model.parameters()).dtype
        self.model = model
        self.periodic = periodic
        self.subset = indices is not None
        self.charge_spin = total_charge is not None and spin is not None
        self.register_buffer("indices", torch.tensor(indices if indices is not None else [], dtype=torch.long))
        self.register_buffer("atomic_numbers", torch.tensor(atomic_numbers, dtype=torch.long))
        self.register_buffer("system_index", torch.zeros(len(atomic_numbers), dtype=torch.long))
        self.register_buffer("pbc", torch.full((1, 3), periodic, dtype=torch.bool))
        self.register_buffer("total_charge", torch.tensor([total_charge or 0.0], dtype=dtype))
        self.register_buffer("spin", torch.tensor([spin or 0.0], dtype=dtype))
        self.register_buffer("default_cell", default_cell.to(dtype))
        self.nm_to_angstrom = NM_IN_ANGSTROM  # an attribute: TorchScript reads no global floats

    def ml_positions(self, positions: torch.Tensor) -> torch.Tensor:
        """The ML atoms' rows of OpenMM's positions (nm)."""
        return positions.index_select(0, self.indices) if self.subset else positions

    def angstrom(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(positions, cell (1,3,3)) in Å and the model's dtype; the default cell when not periodic."""
        positions = positions.to(self.default_cell.dtype) * self.nm_to_angstrom
        cell = self.default_cell
        if self.periodic:
            if boxvectors is None:
                raise ValueError(no_box_message())
            cell = (boxvectors.to(self.default_cell.dtype) * self.nm_to_angstrom).unsqueeze(0)
        return positions, cell

    def evaluate(
        self, positions: torch.Tensor, cell: torch.Tensor, senders: torch.Tensor, receivers: torch.Tensor,
        shifts: torch.Tensor, compute_forces: bool,
    ) -> Dict[str, torch.Tensor]:
        """The model's outputs (eV, Å) on the graph, with the total charge and spin where the model takes them."""
        total_charge: Optional[torch.Tensor] = None
        spin: Optional[torch.Tensor] = None
        if self.charge_spin:
            total_charge = self.total_charge
            spin = self.spin
        inputs = OrbInputs(
            positions, self.atomic_numbers, cell, self.pbc, senders, receivers, shifts, self.system_index,
            total_charge, spin,
        )
        return self.model(inputs, compute_forces, False)


class OrbEvaluator(_MLAtoms):
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
        dtype = next(model.parameters()).dtype
        super().__init__(model, atomic_numbers, indices, periodic, total_charge, spin, torch.zeros(1, 3, 3, dtype=dtype))
        self.neighbors = NeighborList(model.config.cutoff, model.config.max_neighbors)

    def forward(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor], compute_forces: bool) -> Dict[str, torch.Tensor]:
        positions = self.ml_positions(positions)
        # One host sync per step: turns exploding positions into a clear error instead of a
        # neighbour-list failure or NaN forces (CUDA graphs use CapturableOrbEvaluator instead).
        if not bool(torch.isfinite(positions).all()):
            raise ValueError(
                "orb_md: ML atom positions contain NaN or inf (the simulation blew up: "
                "reduce the time step, minimise first, or check the starting structure)"
            )
        positions, cell = self.angstrom(positions, boxvectors)
        senders, receivers, shifts = self.neighbors(positions, cell, self.pbc, self.system_index)
        return self.evaluate(positions, cell, senders, receivers, shifts, compute_forces)


class CapturableOrbEvaluator(_MLAtoms):
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
        neighbors = FixedCapacityNeighborList(
            len(atomic_numbers), model.config.cutoff, model.config.max_neighbors, cell=box,
            bin_capacity=bin_capacity, candidate_capacity=candidate_capacity, raise_on_overflow=False,
        )
        super().__init__(model, atomic_numbers, indices, box is not None, total_charge, spin, neighbors.vacuum_cell)
        self.neighbors = neighbors

    def forward(self, positions: torch.Tensor, boxvectors: Optional[torch.Tensor], compute_forces: bool) -> Dict[str, torch.Tensor]:
        positions, cell = self.angstrom(self.ml_positions(positions), boxvectors)
        senders, receivers, shifts, overflow = self.neighbors(positions, cell)
        out = self.evaluate(positions, cell, senders, receivers, shifts, compute_forces)
        one = torch.ones((), dtype=torch.float64, device=overflow.device)
        exact = torch.where(overflow == 0, one, torch.full_like(one, float("nan")))  # 1, or NaN on overflow
        out["energy"] = out["energy"] * exact
        if "forces" in out:
            out["forces"] = out["forces"] * exact.to(out["forces"].dtype)
        return out


def _box_and_scale(
    scaled: bool, periodic: bool, second: Optional[torch.Tensor], third: Optional[torch.Tensor]
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """(box, λ) from a TorchForce module's arguments after the positions: openmm-torch appends each global
    parameter after the box, so (box) or () unscaled, (box, λ) when periodic and (λ) when not."""
    if not scaled:
        return second, None
    if not periodic:
        if second is None:
            raise ValueError("orb_md: this module is scaled by a global parameter but OpenMM passed none")
        return None, second
    if third is None:
        raise ValueError(no_box_message())
    return second, third


class EnergyModule(torch.nn.Module):
    """Energy-only TorchForce module (kJ/mol); OpenMM takes forces by autograd. For conservative models.

    ``scaled``: the energy is multiplied by λ, a TorchForce global parameter (openmm-ml's ``lambda_interpolate``);
    OpenMM's autograd then gives λ·F, so the ML region is switched on and off without a ``CustomCVForce``.
    """

    def __init__(self, evaluator: torch.nn.Module, scaled: bool = False):
        super().__init__()
        self.evaluator = evaluator
        self.energy_scale = EV_IN_KJ_PER_MOL
        self.scaled = scaled
        self.periodic = bool(evaluator.periodic)

    def forward(
        self, positions: torch.Tensor, box_or_scale: Optional[torch.Tensor] = None, scale: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        boxvectors, factor = _box_and_scale(self.scaled, self.periodic, box_or_scale, scale)
        energy = self.evaluator(positions, boxvectors, False)["energy"].sum() * self.energy_scale
        return energy if factor is None else energy * factor


class EnergyForcesModule(torch.nn.Module):
    """TorchForce module returning (energy kJ/mol, forces (N,3) kJ/mol/nm). For direct models; ``scaled``: both
    multiplied by λ, as in :class:`EnergyModule`."""

    def __init__(self, evaluator: torch.nn.Module, scaled: bool = False):
        super().__init__()
        self.evaluator = evaluator
        self.energy_scale = EV_IN_KJ_PER_MOL
        self.force_scale = EV_IN_KJ_PER_MOL * NM_IN_ANGSTROM
        self.scaled = scaled
        self.periodic = bool(evaluator.periodic)

    def forward(
        self, positions: torch.Tensor, box_or_scale: Optional[torch.Tensor] = None, scale: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        boxvectors, factor = _box_and_scale(self.scaled, self.periodic, box_or_scale, scale)
        # The forces are the model's output, not a gradient: OpenMM's Reference/CPU kernels still pass
        # positions with requires_grad=True, so without no_grad autograd would record the whole model.
        with torch.no_grad():
            out = self.evaluator(positions, boxvectors, True)
        forces = out["forces"].to(positions.dtype) * self.force_scale
        if self.evaluator.subset:
            forces = torch.zeros_like(positions).index_copy(0, self.evaluator.indices, forces)
        energy = out["energy"].sum() * self.energy_scale
        if factor is None:
            return energy, forces.contiguous()
        return energy * factor, forces.contiguous() * factor.to(forces.dtype)
