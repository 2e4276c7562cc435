"""Orb energy, per-atom energies, forces and virial on one rank, from the node features of its atoms.

Orb-v3 is not a sum of atom terms: its energy is N * MLP(mean of all node features) + references + ZBL
(divided by N for conservative models), and direct forces have the *global* mean removed. Each rank sums
its local atoms' features, references and ZBL terms; one ``MPI_Allreduce`` gives the global values. For
conservative models every rank then backpropagates <dE/d(pooled) (global, detached), sum of its local
features> plus its local ZBL terms, so its pair forces are exactly its share of dE/dr_ij.

Per-atom energy convention (sums exactly to Orb's total): e_i = (E - sum refs - E_zbl)/N + ref(Z_i) + zbl_i,
zbl_i = V_i/N (conservative) or V_i (direct), V_i = ZBL half-pair energies of i's edges as sender.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from orb_md_lammps.virial import add_to_virial, allreduce


def evaluate(
    model, comm, atomic_numbers: torch.Tensor, senders: torch.Tensor, receivers: torch.Tensor,
    vectors_np: np.ndarray, nlocal: int, features: Callable[[torch.Tensor], torch.Tensor],
) -> dict:
    """Energy, per-atom energies of the local atoms and, for conservative models, dE/dr per edge
    (``edge_grad``); for direct models what :func:`write_direct_forces` needs.

    ``features(vectors)`` returns node features whose first ``nlocal`` rows are the local atoms'."""
    parameter = next(model.parameters())
    dtype, device = parameter.dtype, parameter.device
    conservative = model.conservative
    z, s, r = atomic_numbers, senders, receivers
    vectors = torch.from_numpy(vectors_np).to(device=device, dtype=dtype)
    if conservative:
        vectors.requires_grad_(True)
    with torch.set_grad_enabled(conservative):
        h = features(vectors)[:nlocal]
        local_sum = h.to(torch.float64).sum(0)
        zbl_edge, dzbl = model.pair_repulsion_fn.edge_energy_and_derivative(vectors, z[s], z[r])
        zbl_atom = torch.zeros(z.shape[0], dtype=torch.float64, device=device).index_add(
            0, s, zbl_edge.to(torch.float64))[:nlocal]
        ref = model.heads.energy.reference.linear.weight[z[:nlocal]].to(torch.float64)
        # global sums: pooled features, N, references, ZBL (one copy off the device)
        sums = torch.stack([torch.full_like(ref.sum(), float(nlocal)), ref.sum(), zbl_atom.detach().sum()])
        total = allreduce(comm, torch.cat([local_sum.detach(), sums]).cpu().numpy())
        n_all = total[-3]
        pooled = torch.tensor(total[: local_sum.shape[0]] / n_all, dtype=dtype, device=device,
                              requires_grad=conservative)
        head = model.heads.energy
        with torch.enable_grad() if conservative else torch.no_grad():
            per_atom = head.normalizer.inverse(head.mlp(pooled[None])).squeeze()
            e_int = per_atom.to(torch.float64) * n_all
            coeff = torch.autograd.grad(e_int, pooled)[0] / n_all if conservative else None
        zbl_total = total[-1] / n_all if conservative else total[-1]
        energy = float(e_int.detach()) + total[-2] + zbl_total
        zbl_i = (zbl_atom / n_all if conservative else zbl_atom).detach()
        out = {"energy": energy, "eatoms": (float(e_int.detach()) / n_all + ref + zbl_i).cpu().numpy()}
        if conservative:
            surrogate = (h.sum(0) * coeff.to(h.dtype)).sum().to(torch.float64) + zbl_atom.sum() / n_all
            grad = torch.autograd.grad(surrogate, vectors, allow_unused=True)[0]
            out["edge_grad"] = (torch.zeros_like(vectors) if grad is None else grad).detach().to(torch.float64).cpu().numpy()
        else:
            out.update(features=h.detach(), n_all=n_all, pooled=pooled.detach(), vectors=vectors.detach(), dzbl=dzbl)
        return out


def write_direct_forces(
    data, lmp, comm, model, result: dict, senders: torch.Tensor, receivers: torch.Tensor, nlocal: int,
    rows: int, x: np.ndarray, tags: np.ndarray, share: float, zero_net_force: bool,
) -> None:
    """Add a direct model's forces to ``atom->f`` and correct the global virial to Orb's stress.

    Head forces (minus the global mean) go to the local atoms; ZBL edge forces to the edges' endpoints
    among the first ``rows`` node rows (``rows`` > nlocal: LAMMPS ghost rows, summed into their owners by
    LAMMPS; the forces on other nodes are their owners' business). ``share`` is this
    rank's fraction of the stress head's virial (1/ranks)."""
    boxlo, boxhi = lmp.extract_box()[:2]
    head = model.heads.forces
    forces = head.normalizer.inverse(head.mlp(result["features"])).to(torch.float64)
    device = forces.device
    forces = forces - torch.from_numpy(allreduce(comm, forces.sum(0).cpu().numpy()) / result["n_all"]).to(device)
    if not zero_net_force:
        forces = forces + head.normalizer.bn.running_mean.to(torch.float64)
    vectors, dzbl = result["vectors"], result["dzbl"]
    length = torch.linalg.vector_norm(vectors, dim=1)
    edge_force = ((-dzbl / length)[:, None] * vectors).to(torch.float64)  # on the receiver
    nodes = max(rows, int(senders.max()) + 1, int(receivers.max()) + 1) if senders.numel() else rows
    added = torch.zeros(nodes, 3, dtype=torch.float64, device=device).index_add(0, receivers, edge_force)
    added = added.index_add(0, senders, -edge_force)[:rows]
    added[:nlocal] += forces
    added = added.cpu().numpy()
    data.f[:rows] += added
    # virial: LAMMPS's W = sum x (x) f (fdotr) must equal -V * sigma_model
    volume = float(np.prod(np.array(boxhi) - np.array(boxlo)))
    sh = model.heads.stress(result["pooled"][None])[0].to(torch.float64).cpu().numpy()
    sigma = np.array([[sh[0], sh[5], sh[4]], [sh[5], sh[1], sh[3]], [sh[4], sh[3], sh[2]]])
    local_edges = senders < nlocal
    ev = (vectors.to(torch.float64)[local_edges, :, None] * edge_force[local_edges, None, :]).sum(0).cpu().numpy()
    target = -volume * sigma * share + 0.5 * (ev + ev.T)
    add_to_virial(data, comm, target - x[:rows].T @ added, x, tags)
