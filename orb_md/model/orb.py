"""OrbModel: Orb-v3 inference over plain tensors (TorchScript- and torch.compile-ready).

Inputs are systems and a graph already built (:class:`~orb_md.model.inputs.OrbInputs`, graphs from
:mod:`orb_md.graph`); several systems can be evaluated at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, List, Optional

import torch
from torch import nn

from orb_md.model.backbone import GraphNetwork
from orb_md.model.config import OrbConfig
from orb_md.model.heads import Heads
from orb_md.model.inputs import OrbInputs
from orb_md.model.layers import ScalarNormalizer, segment_mean, segment_sum
from orb_md.model.zbl import ZBLRepulsion

if TYPE_CHECKING:
    from orb_md.training_elements import TrainingElements


def edge_vectors(
    positions: torch.Tensor,
    cell: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    unit_shifts: torch.Tensor,
    edge_system: torch.Tensor,
) -> torch.Tensor:
    """``pos[t] - pos[s] + shift @ cell`` for every edge, shape (E, 3).

    index_select, not indexing: its backward is a parallel index_add rather than a serial index_put."""
    shifts = torch.bmm(unit_shifts[:, None, :], cell.index_select(0, edge_system)).squeeze(1)
    return positions.index_select(0, receivers) - positions.index_select(0, senders) + shifts


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
    fallback = torch.bmm(singular_pseudo_inverse(m), -torque[:, :, None]).squeeze(-1)
    mu = torch.where((info == 0)[:, None], solved, fallback)
    return forces + torch.linalg.cross(r, mu[system_index])


def singular_pseudo_inverse(m: torch.Tensor) -> torch.Tensor:
    """Pseudo-inverse of m = S - tr(S) I (S = sum r r^T), used where m is singular.

    On the CPU torch.linalg.pinv. Elsewhere pinv (an SVD) synchronises with the host, which a captured CUDA
    graph cannot do, so the closed form is used: m is singular only when S = s u u^T has rank <= 1 (one atom,
    collinear atoms), and then m = -s (I - u u^T), whose pseudo-inverse is m / s^2 with s = -tr(m) / 2 (0 if m = 0).
    """
    if m.device.type == "cpu":
        return torch.linalg.pinv(m)
    return collinear_pseudo_inverse(m)


def collinear_pseudo_inverse(m: torch.Tensor) -> torch.Tensor:
    """m / s^2 with s = -tr(m) / 2 (0 where s = 0): the pseudo-inverse of m = -s (I - u u^T), |u| = 1."""
    s = -0.5 * m.diagonal(dim1=1, dim2=2).sum(-1)
    s2 = s * s
    return m / torch.where(s2 > 0, s2, torch.ones_like(s2))[:, None, None]


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


def voigt_to_matrix(stress: torch.Tensor) -> torch.Tensor:
    """(B, 6) in the order of :func:`voigt` -> (B, 3, 3) symmetric (its inverse on symmetric tensors)."""
    xx, yy, zz, yz, xz, xy = stress.unbind(1)
    return torch.stack([torch.stack([xx, xy, xz], 1), torch.stack([xy, yy, yz], 1),
                        torch.stack([xz, yz, zz], 1)], 1)


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
    whose direct forces keep a net force of N * mu_F. ``training_elements`` (set by the loader from an orb_md
    sidecar, else None) is what :func:`orb_md.training_elements.warn_untrained_elements` checks.
    """

    __jit_ignored_attributes__ = ["training_elements"]

    def __init__(self, config: OrbConfig, zero_net_force: bool = True) -> None:
        super().__init__()
        self.config = config
        self.training_elements: TrainingElements | None = None
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
        self, inputs: OrbInputs, compute_forces: bool = True, compute_stress: bool = True
    ) -> Dict[str, torch.Tensor]:
        """Evaluate the model on a batch of systems and its graph (:class:`~orb_md.model.inputs.OrbInputs`).

        Returns ``energy`` (B,) float64 eV, ``forces`` (N, 3) eV/Å, ``stress`` (B, 6) eV/Å^3
        (Voigt xx, yy, zz, yz, xz, xy; zero for non-periodic systems) and ``confidence`` (N, 50)
        probabilities over force-error bins. Forces/stress are present only when requested.
        """
        positions, atomic_numbers, cell, pbc = inputs.positions, inputs.atomic_numbers, inputs.cell, inputs.pbc
        senders, receivers, unit_shifts = inputs.senders, inputs.receivers, inputs.unit_shifts
        system_index, total_charge, spin = inputs.system_index, inputs.total_charge, inputs.spin
        dtype = self.model.rbf_transform.bessel_weights.dtype
        positions = positions.to(dtype)
        cell = cell.to(dtype)
        unit_shifts = unit_shifts.to(dtype)
        counts = segment_sum(torch.ones_like(system_index), system_index, cell.shape[0])
        edge_system = system_index[senders]
        differentiate = self.conservative and (compute_forces or compute_stress)
        if differentiate:
            # forces = -dE/dr and virial = dE/d(strain), with a symmetric strain of positions and cell
            if not positions.requires_grad:
                positions = positions.detach().requires_grad_(True)
            strain = torch.zeros_like(cell).requires_grad_(True)
            symmetric = 0.5 * (strain + strain.transpose(1, 2))
            strained = positions + torch.bmm(positions[:, None, :], symmetric[system_index]).squeeze(1)
            vectors = edge_vectors(
                strained, cell + torch.bmm(cell, symmetric), senders, receivers, unit_shifts, edge_system
            )
        else:
            strain = torch.zeros_like(cell)
            vectors = edge_vectors(positions, cell, senders, receivers, unit_shifts, edge_system)
        nodes = self.model(atomic_numbers, vectors, senders, receivers, system_index, total_charge, spin)
        pooled = segment_mean(nodes, system_index, counts)
        energy = self.heads.energy(pooled, atomic_numbers, system_index, counts) + self._repulsion(
            vectors, atomic_numbers, senders, receivers, system_index, counts
        )
        out: Dict[str, torch.Tensor] = {
            "energy": energy,
            "confidence": torch.softmax(self.heads.confidence(nodes), dim=-1),
        }
        volume = periodic_volume(cell, pbc)
        if differentiate:
            grads: List[Optional[torch.Tensor]] = torch.autograd.grad(
                [energy.sum()], [positions, strain], create_graph=self.training, allow_unused=True
            )
            gradient, virial = grads[0], grads[1]
            if compute_forces:
                out["forces"] = -gradient if gradient is not None else torch.zeros_like(positions)
            if compute_stress:
                virial = virial if virial is not None else torch.zeros_like(cell)
                out["stress"] = voigt(per_volume(virial.reshape(-1, 9), volume).reshape(-1, 3, 3))
        elif not self.conservative and (compute_forces or compute_stress):
            self._direct_forces_and_stress(
                out, vectors, nodes, pooled, positions, atomic_numbers, pbc, senders, receivers,
                system_index, edge_system, counts, volume, compute_forces, compute_stress,
            )
        return out

    def _repulsion(
        self,
        vectors: torch.Tensor,
        atomic_numbers: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
        system_index: torch.Tensor,
        counts: torch.Tensor,
    ) -> torch.Tensor:
        """ZBL energy per system as trained (:meth:`trained_repulsion`)."""
        zbl = self.repulsion_per_atom(vectors, atomic_numbers, senders, receivers)
        return self.trained_repulsion(segment_sum(zbl, system_index, counts.shape[0]).to(torch.float64), counts)

    def _direct_forces_and_stress(
        self,
        out: Dict[str, torch.Tensor],
        vectors: torch.Tensor,
        nodes: torch.Tensor,
        pooled: torch.Tensor,
        positions: torch.Tensor,
        atomic_numbers: torch.Tensor,
        pbc: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
        system_index: torch.Tensor,
        edge_system: torch.Tensor,
        counts: torch.Tensor,
        volume: torch.Tensor,
        compute_forces: bool,
        compute_stress: bool,
    ) -> None:
        """Head forces/stress plus the analytic ZBL forces and virial, added to ``out``."""
        edge_force = self.repulsion_edge_forces(vectors, atomic_numbers, senders, receivers)
        force_head = self.heads.forces
        if compute_forces and force_head is not None:
            forces = force_head(nodes)
            forces = self.without_net_force(forces, segment_mean(forces, system_index, counts)[system_index])
            vacuum = ~pbc.any(dim=1)
            torque_free = remove_net_torque(forces, positions, system_index, counts)
            forces = torch.where(vacuum[system_index][:, None], torque_free, forces)
            out["forces"] = forces + segment_sum(
                torch.cat([edge_force, -edge_force]), torch.cat([receivers, senders]), forces.shape[0]
            )
        stress_head = self.heads.stress
        if compute_stress and stress_head is not None:
            edge_virial = -vectors[:, :, None] * edge_force[:, None, :]
            virial = segment_sum(edge_virial, edge_system, counts.shape[0])
            repulsion = voigt(per_volume(virial.reshape(-1, 9), volume).reshape(-1, 3, 3))
            periodic = (volume > 0).to(repulsion.dtype)[:, None]
            out["stress"] = stress_head(pooled) * periodic + repulsion

    # -- the terms of the energy, for engines that assemble it from parts (LAMMPS over MPI ranks) ----------
    # Orb-v3 is not a sum of atom terms: E = N * MLP(mean of node features) + references + ZBL (divided by N for
    # conservative models), and direct forces have the system's mean removed. An engine that splits a system
    # over processes sums the local parts, reduces them over the processes and finishes with these methods.

    def node_features(
        self,
        atomic_numbers: torch.Tensor,
        vectors: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
        system_index: torch.Tensor,
        total_charge: Optional[torch.Tensor] = None,
        spin: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Final node features (N, latent) of a graph given its edge vectors (the network without heads)."""
        return self.model(atomic_numbers, vectors, senders, receivers, system_index, total_charge, spin)

    @torch.jit.unused
    def owned_node_features(
        self,
        atomic_numbers: torch.Tensor,
        vectors: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
        owned: int,
        sum_into_owners: Callable[[torch.Tensor], torch.Tensor],
        copy_to_ghosts: Callable[[torch.Tensor], torch.Tensor],
        total_charge: Optional[torch.Tensor] = None,
        spin: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Final features (owned, latent) of the first ``owned`` rows, the atoms this process owns, in a graph
        whose other rows are ghosts (copies of atoms owned by other processes) and whose senders are all owned.

        The layer-wise split of domain decomposition: per message-passing layer the edges read ghost features,
        ``sum_into_owners(rows)`` adds the messages received by ghost rows into their owners' rows, the owned
        nodes are updated and ``copy_to_ghosts(rows)`` gives the ghosts their owners' new features. Both are
        collective in the engine (and must be differentiable for conservative forces). ``total_charge``/``spin``
        (shape (1,)) are the whole system's: every row gets the same conditioning, as in :meth:`node_features`."""
        network = self.model
        system = torch.zeros(atomic_numbers.shape[0], dtype=torch.long, device=atomic_numbers.device)
        nodes, edges, sender_chunks, receiver_chunks, gates, condition = network.encode(
            atomic_numbers, vectors, senders, receivers, system, total_charge, spin
        )
        layers = list(network.gnn_stacks)
        for index, layer in enumerate(layers):
            nodes = layer.conditioned(nodes, condition)
            sent, received, edges = layer.messages(nodes, edges, sender_chunks, receiver_chunks, gates)
            received = sum_into_owners(received)
            local = layer.update_nodes(nodes[:owned], received[:owned], sent[:owned])
            if index == len(layers) - 1:
                return local
            ghosts = torch.zeros(nodes.shape[0] - owned, local.shape[1], dtype=local.dtype, device=local.device)
            nodes = copy_to_ghosts(torch.cat([local, ghosts]))
        return nodes[:owned]

    def energy_from_pooled(self, pooled: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """The interaction energy N * (MLP(pooled) * sigma + mu) per system (float64), from the mean node features
        ``pooled`` (B, latent) and the numbers of atoms ``counts`` (B,): the energy without references and ZBL."""
        return self.heads.energy.interaction(pooled, counts)

    def reference_energies(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """The fixed reference energy of each atom (N,), float64."""
        return self.heads.energy.reference.per_atom(atomic_numbers)

    def repulsion_per_atom(
        self, vectors: torch.Tensor, atomic_numbers: torch.Tensor, senders: torch.Tensor, receivers: torch.Tensor
    ) -> torch.Tensor:
        """V_i: the ZBL half-pair energies of each atom's edges as sender, shape (N,) (weigh them with
        :meth:`trained_repulsion`)."""
        return self.pair_repulsion_fn.per_atom_energy(vectors, atomic_numbers, senders, receivers)

    def trained_repulsion(self, repulsion: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """ZBL energies (float64, per system or per atom) as the energy counts them: divided by the system's number
        of atoms ``counts`` for conservative models (the training quirk of :mod:`orb_md.model.zbl`), else as is."""
        if self.conservative:
            return repulsion / counts.clamp(min=1).to(torch.float64)
        return repulsion

    def per_atom_energies(
        self, interaction: torch.Tensor, counts: torch.Tensor, atomic_numbers: torch.Tensor, repulsion: torch.Tensor
    ) -> torch.Tensor:
        """e_i = E_int / N + ref(Z_i) + zbl_i for atoms of one system, which sum exactly to its energy.

        ``interaction``: :meth:`energy_from_pooled` of the system; ``counts``: its N (shape (1,));
        ``repulsion``: :meth:`repulsion_per_atom` of the atoms (zbl_i is V_i as :meth:`trained_repulsion`)."""
        return (interaction / counts.to(torch.float64) + self.reference_energies(atomic_numbers)
                + self.trained_repulsion(repulsion.to(torch.float64), counts))

    def repulsion_edge_forces(
        self, vectors: torch.Tensor, atomic_numbers: torch.Tensor, senders: torch.Tensor, receivers: torch.Tensor
    ) -> torch.Tensor:
        """ZBL force on each edge's receiver (E, 3), the opposite on its sender: the direct models' analytic
        repulsion forces (conservative models differentiate the energy instead)."""
        _, dv_dr = self.pair_repulsion_fn.edge_energy_and_derivative(
            vectors, atomic_numbers[senders], atomic_numbers[receivers]
        )
        r = torch.linalg.vector_norm(vectors, dim=1)
        return (-dv_dr / r)[:, None] * vectors

    def without_net_force(self, forces: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """Direct head forces (``self.heads.forces(nodes)``) minus their system's ``mean`` force; with
        ``zero_net_force=False`` the force normaliser's mean is added back (orb-models <= 0.6)."""
        forces = forces - mean
        force_head = self.heads.forces
        if not self.zero_net_force and force_head is not None:
            forces = forces + force_head.normalizer.bn.running_mean.to(forces.dtype)
        return forces
