"""OrbModel: Orb-v3 inference over plain tensors (TorchScript- and torch.compile-ready).

Inputs are a graph already built (see :mod:`orb_md.graph`): for a directed edge s -> t the
vector is ``pos[t] - pos[s] + unit_shifts @ cell``. Several systems can be evaluated at once;
``system_index`` says which system each atom belongs to and ``cell``/``pbc`` have one row each.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from orb_md.model.backbone import GraphNetwork
from orb_md.model.config import OrbConfig
from orb_md.model.heads import Heads
from orb_md.model.layers import ScalarNormalizer, segment_mean, segment_sum
from orb_md.model.zbl import ZBLRepulsion


def edge_vectors(
    positions: torch.Tensor,
    cell: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    unit_shifts: torch.Tensor,
    edge_system: torch.Tensor,
) -> torch.Tensor:
    """``pos[t] - pos[s] + shift @ cell`` for every edge, shape (E, 3)."""
    shifts = torch.bmm(unit_shifts[:, None, :], cell[edge_system]).squeeze(1)
    return positions[receivers] - positions[senders] + shifts


def remove_net_torque(
    forces: torch.Tensor, positions: torch.Tensor, system_index: torch.Tensor, counts: torch.Tensor
) -> torch.Tensor:
    """Add r_i x mu per system so that the net torque about the centroid vanishes.

    mu solves (S - tr(S) I) mu = -tau with S = sum r r^T; the pseudo-inverse is used where the
    system is singular (one atom, linear molecules).
    """
    r = positions - segment_mean(positions, system_index, counts)[system_index]
    torque = segment_sum(torch.linalg.cross(r, forces), system_index, counts.shape[0])
    outer = segment_sum(r[:, :, None] * r[:, None, :], system_index, counts.shape[0])
    trace = outer.diagonal(dim1=1, dim2=2).sum(-1)
    eye = torch.eye(3, dtype=forces.dtype, device=forces.device)
    m = outer - trace[:, None, None] * eye
    solved, info = torch.linalg.solve_ex(m, -torque)
    fallback = torch.bmm(torch.linalg.pinv(m), -torque[:, :, None]).squeeze(-1)
    mu = torch.where((info == 0)[:, None], solved, fallback)
    return forces + torch.linalg.cross(r, mu[system_index])


def voigt(tensor: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) -> (B, 6) in the order xx, yy, zz, yz, xz, xy, averaging the shear pairs."""
    t = tensor
    return torch.stack(
        [
            t[:, 0, 0],
            t[:, 1, 1],
            t[:, 2, 2],
            0.5 * (t[:, 1, 2] + t[:, 2, 1]),
            0.5 * (t[:, 0, 2] + t[:, 2, 0]),
            0.5 * (t[:, 0, 1] + t[:, 1, 0]),
        ],
        dim=-1,
    )


def periodic_volume(cell: torch.Tensor, pbc: torch.Tensor) -> torch.Tensor:
    """|det(cell)| for systems with at least one periodic direction, 0 otherwise."""
    volume = torch.linalg.det(cell).abs()
    return torch.where(pbc.any(dim=1), volume, torch.zeros_like(volume))


def per_volume(virial: torch.Tensor, volume: torch.Tensor) -> torch.Tensor:
    """virial / volume per system, zero where the volume is zero (no stress in vacuum)."""
    safe = torch.where(volume > 0, volume, torch.ones_like(volume))
    return virial / safe[:, None] * (volume > 0).to(virial.dtype)[:, None]


class OrbModel(nn.Module):
    """An Orb-v3 model: energy, forces, stress and per-atom confidence from a graph.

    The parameter/buffer names match orb-models' regressors, so ``load_state_dict`` takes an
    official checkpoint unchanged. ``zero_net_force`` (default True, as orb-models >= 0.7)
    removes the mean of direct forces after un-normalising; False reproduces orb-models <= 0.6,
    whose direct forces keep a net force of N * mu_F.
    """

    def __init__(self, config: OrbConfig, zero_net_force: bool = True) -> None:
        super().__init__()
        self.config = config
        self.conservative = config.kind == "conservative"
        self.zero_net_force = zero_net_force
        self.model = GraphNetwork(config)
        self.heads = Heads(config)
        self.pair_repulsion_fn = ZBLRepulsion()
        if self.conservative:
            # Used only by orb-models' training losses; kept so checkpoints round-trip.
            self.grad_forces_normalizer = ScalarNormalizer()
            self.grad_stress_normalizer = ScalarNormalizer()

    @torch.jit.ignore
    def extra_repr(self) -> str:
        return f"{self.config.name}, {self.config.kind}, max_neighbors={self.config.max_neighbors}"

    def forward(
        self,
        positions: torch.Tensor,
        atomic_numbers: torch.Tensor,
        cell: torch.Tensor,
        pbc: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
        unit_shifts: torch.Tensor,
        system_index: torch.Tensor,
        total_charge: Optional[torch.Tensor] = None,
        spin: Optional[torch.Tensor] = None,
        compute_forces: bool = True,
        compute_stress: bool = True,
    ) -> Dict[str, torch.Tensor]:
        """Evaluate the model.

        Returns ``energy`` (B,) float64 eV, ``forces`` (N, 3) eV/Å, ``stress`` (B, 6) eV/Å^3
        (Voigt xx, yy, zz, yz, xz, xy; zero for non-periodic systems) and ``confidence`` (N, 50)
        probabilities over force-error bins. Forces/stress are present only when requested.
        """
        dtype = self.model.rbf_transform.bessel_weights.dtype
        positions = positions.to(dtype)
        cell = cell.to(dtype)
        unit_shifts = unit_shifts.to(dtype)
        counts = segment_sum(torch.ones_like(system_index), system_index, cell.shape[0])
        if self.conservative:
            return self._conservative(
                positions, atomic_numbers, cell, pbc, senders, receivers, unit_shifts,
                system_index, counts, total_charge, spin, compute_forces, compute_stress,
            )
        return self._direct(
            positions, atomic_numbers, cell, pbc, senders, receivers, unit_shifts,
            system_index, counts, total_charge, spin, compute_forces, compute_stress,
        )

    def _energy(
        self,
        vectors: torch.Tensor,
        atomic_numbers: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
        system_index: torch.Tensor,
        counts: torch.Tensor,
        total_charge: Optional[torch.Tensor],
        spin: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(energy incl. ZBL as trained, node features, pooled node features)."""
        nodes = self.model(atomic_numbers, vectors, senders, receivers, system_index, total_charge, spin)
        pooled = segment_mean(nodes, system_index, counts)
        energy = self.heads.energy(pooled, atomic_numbers, system_index, counts)
        zbl = self.pair_repulsion_fn.per_atom_energy(vectors, atomic_numbers, senders, receivers)
        zbl_per_system = segment_sum(zbl, system_index, counts.shape[0]).to(torch.float64)
        if self.conservative:
            zbl_per_system = zbl_per_system / counts.clamp(min=1).to(torch.float64)
        return energy + zbl_per_system, nodes, pooled

    def _conservative(
        self,
        positions: torch.Tensor,
        atomic_numbers: torch.Tensor,
        cell: torch.Tensor,
        pbc: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
        unit_shifts: torch.Tensor,
        system_index: torch.Tensor,
        counts: torch.Tensor,
        total_charge: Optional[torch.Tensor],
        spin: Optional[torch.Tensor],
        compute_forces: bool,
        compute_stress: bool,
    ) -> Dict[str, torch.Tensor]:
        differentiate = compute_forces or compute_stress
        if differentiate and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        strain = torch.zeros_like(cell).requires_grad_(differentiate)
        symmetric = 0.5 * (strain + strain.transpose(1, 2))
        strained_positions = positions + torch.bmm(
            positions[:, None, :], symmetric[system_index]
        ).squeeze(1)
        strained_cell = cell + torch.bmm(cell, symmetric)
        vectors = edge_vectors(
            strained_positions, strained_cell, senders, receivers, unit_shifts, system_index[senders]
        )
        energy, nodes, _ = self._energy(
            vectors, atomic_numbers, senders, receivers, system_index, counts, total_charge, spin
        )
        out: Dict[str, torch.Tensor] = {
            "energy": energy,
            "confidence": torch.softmax(self.heads.confidence(nodes), dim=-1),
        }
        if differentiate:
            grads: List[Optional[torch.Tensor]] = torch.autograd.grad(
                [energy.sum()], [positions, strain], create_graph=self.training, allow_unused=True
            )
            gradient, virial = grads[0], grads[1]
            if compute_forces:
                out["forces"] = -gradient if gradient is not None else torch.zeros_like(positions)
            if compute_stress:
                virial = virial if virial is not None else torch.zeros_like(cell)
                volume = periodic_volume(cell, pbc)
                out["stress"] = voigt(per_volume(virial.reshape(-1, 9), volume).reshape(-1, 3, 3))
        return out

    def _direct(
        self,
        positions: torch.Tensor,
        atomic_numbers: torch.Tensor,
        cell: torch.Tensor,
        pbc: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
        unit_shifts: torch.Tensor,
        system_index: torch.Tensor,
        counts: torch.Tensor,
        total_charge: Optional[torch.Tensor],
        spin: Optional[torch.Tensor],
        compute_forces: bool,
        compute_stress: bool,
    ) -> Dict[str, torch.Tensor]:
        edge_system = system_index[senders]
        vectors = edge_vectors(positions, cell, senders, receivers, unit_shifts, edge_system)
        energy, nodes, pooled = self._energy(
            vectors, atomic_numbers, senders, receivers, system_index, counts, total_charge, spin
        )
        out: Dict[str, torch.Tensor] = {
            "energy": energy,
            "confidence": torch.softmax(self.heads.confidence(nodes), dim=-1),
        }
        if not (compute_forces or compute_stress):
            return out
        zbl = self.pair_repulsion_fn
        _, dv_dr = zbl.edge_energy_and_derivative(
            vectors, atomic_numbers[senders], atomic_numbers[receivers]
        )
        r = torch.linalg.vector_norm(vectors, dim=1)
        edge_force = (-dv_dr / r)[:, None] * vectors  # force on the receiver along s -> t
        force_head = self.heads.forces
        if compute_forces and force_head is not None:
            forces = force_head(nodes, system_index, counts)
            if not self.zero_net_force:
                forces = forces + force_head.normalizer.bn.running_mean
            vacuum = ~pbc.any(dim=1)
            torque_free = remove_net_torque(forces, positions, system_index, counts)
            forces = torch.where(vacuum[system_index][:, None], torque_free, forces)
            forces = forces + segment_sum(
                torch.cat([edge_force, -edge_force]), torch.cat([receivers, senders]), forces.shape[0]
            )
            out["forces"] = forces
        stress_head = self.heads.stress
        if compute_stress and stress_head is not None:
            edge_virial = -vectors[:, :, None] * edge_force[:, None, :]
            virial = segment_sum(edge_virial, edge_system, counts.shape[0])
            volume = periodic_volume(cell, pbc)
            repulsion = voigt(per_volume(virial.reshape(-1, 9), volume).reshape(-1, 3, 3))
            periodic = (volume > 0).to(repulsion.dtype)[:, None]
            out["stress"] = stress_head(pooled) * periodic + repulsion
        return out
