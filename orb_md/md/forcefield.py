"""ForceField: one model call per step for the whole batch, graph from one Verlet-skin neighbour list.

A single :class:`~orb_md.graph.VerletNeighborList` covers the batch (its graph is identical to a fresh build,
so sharing it never changes a trajectory); it re-searches all systems when any atom has moved more than
skin/2 or any cell changed (NPT changes cells every step, so NPT rebuilds every step). One list is
cheaper than per-system lists for many small systems: one search call instead of B per rebuild.
"""

from __future__ import annotations

import torch

from orb_md.batch import check_overlap
from orb_md.charge_spin import model_charge_spin
from orb_md.errors import InputError
from orb_md.graph import VerletNeighborList
from orb_md.md.state import MDState
from orb_md.model.inputs import OrbInputs
from orb_md.model.orb import OrbModel
from orb_md.training_elements import warn_untrained_elements


class ForceField:
    """Evaluates energy (B,), forces (N,3) and stress (B,6) of an MDState, stored on the state."""

    def __init__(self, model: OrbModel, skin: float = 1.0, chunk: int = 0, backend: str = "auto") -> None:
        if chunk < 0:
            raise InputError("the edge chunk must be a positive number of edges, or 0 for the device's default; "
                             f"got {chunk}")
        self.model = model
        self.neighbors = VerletNeighborList(model.config.cutoff, model.config.max_neighbors, skin, backend)
        model.model.edge_chunk = int(chunk)  # 0: the device's default; see GraphNetwork
        self.calls = 0
        parameter = next(model.parameters())
        self.dtype, self.device = parameter.dtype, parameter.device

    def compute(self, state: MDState, stress: bool = True, check_finite: bool = True) -> None:
        """Energy, forces and stress of every system; non-finite results raise InputError unless not
        ``check_finite`` (callers that handle a blown-up system on its own, such as the batched relaxation)."""
        pos = state.positions.to(self.device)
        cell = state.cell.to(self.device)
        index = state.system_index.to(self.device)
        pbc = state.pbc.to(self.device)
        senders, receivers, shifts = self.neighbors(pos, cell, pbc, index)
        if self.calls == 0:
            warn_untrained_elements(self.model, state.atomic_numbers)
            if senders.numel():
                check_overlap(pos, cell, index, senders, receivers, shifts)
        total_charge, spin = model_charge_spin(self.model.config, state.total_charge, state.spin)
        inputs = OrbInputs(
            pos.to(self.dtype), state.atomic_numbers.to(self.device), cell.to(self.dtype), pbc,
            senders, receivers, shifts, index,
            None if total_charge is None else total_charge.to(self.device, self.dtype),
            None if spin is None else spin.to(self.device, self.dtype),
        )
        want_stress = stress and bool(pbc.any())
        with torch.set_grad_enabled(self.model.conservative):
            out = self.model(inputs, compute_forces=True, compute_stress=want_stress)
        home = state.positions.device
        state.energy = out["energy"].detach().to(home, torch.float64)
        state.forces = out["forces"].detach().to(home, torch.float64)
        if "stress" in out:
            state.stress = out["stress"].detach().to(home, torch.float64)
        else:
            state.stress = torch.zeros(state.n_systems, 6, dtype=torch.float64, device=home)
        finite = bool(torch.isfinite(state.forces).all()) and bool(torch.isfinite(state.energy).all())
        if check_finite and not finite:
            bad = sorted({state.labels[int(b)] for b in state.system_index[~torch.isfinite(state.forces).all(1)]})
            raise InputError(f"non-finite forces or energy (systems {bad or 'energy only'}); the simulation blew up")
        self.calls += 1

