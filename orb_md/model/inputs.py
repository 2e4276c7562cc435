"""OrbInputs: a batch of systems and its graph, the one argument of :meth:`OrbModel.forward`.

For a directed edge s -> t the vector is ``positions[t] - positions[s] + unit_shifts @ cell``; ``system_index``
says which system each atom belongs to and ``cell``/``pbc`` have one row per system. ``total_charge`` and ``spin``
(one value per system) are given to the OMol models only. A NamedTuple, so TorchScript and torch.compile take it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Optional

import torch

from orb_md.charge_spin import model_charge_spin
from orb_md.model.config import OrbConfig

if TYPE_CHECKING:
    from orb_md.batch import SystemBatch


class OrbInputs(NamedTuple):
    """Positions (N, 3) Å, atomic numbers (N,), cells (B, 3, 3) Å, pbc (B, 3), the graph (senders (E,), receivers
    (E,), integer unit shifts (E, 3)), system index (N,) and, for the OMol models, total charge and spin (B,)."""

    positions: torch.Tensor
    atomic_numbers: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    senders: torch.Tensor
    receivers: torch.Tensor
    unit_shifts: torch.Tensor
    system_index: torch.Tensor
    total_charge: Optional[torch.Tensor] = None
    spin: Optional[torch.Tensor] = None


def system_inputs(
    config: OrbConfig,
    systems: SystemBatch,
    graph: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    positions: torch.Tensor | None = None,
    cell: torch.Tensor | None = None,
) -> OrbInputs:
    """The inputs of the structures ``systems`` on ``graph`` (senders, receivers, unit shifts); ``positions``/``cell``
    replace their own (rotated or strained copies). Charge and spin go only to a model that takes them."""
    total_charge, spin = model_charge_spin(config, systems.total_charge, systems.spin)
    senders, receivers, unit_shifts = graph
    return OrbInputs(
        systems.positions if positions is None else positions, systems.atomic_numbers,
        systems.cell if cell is None else cell, systems.pbc, senders, receivers, unit_shifts, systems.system_index,
        total_charge, spin,
    )
