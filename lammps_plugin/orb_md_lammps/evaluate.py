"""Orb energy, per-atom energies, forces and virial on one rank, from the model's parts and MPI sums.

Each rank sums its local atoms' node features, references and ZBL terms; one ``MPI_Allreduce`` gives the global
values, from which the model's methods (:meth:`~orb_md.model.orb.OrbModel.energy_from_pooled` and the others
beside it) finish the energy. For conservative models every rank then backpropagates <dE/d(pooled) (global,
detached), sum of its local features> plus its local ZBL terms, so its pair forces are exactly its share of dE/dr_ij.
Per-atom energies follow :meth:`~orb_md.model.orb.OrbModel.per_atom_energies` (they sum exactly to Orb's total).
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
        zbl_atom = model.repulsion_per_atom(vectors, z, s, r).to(torch.float64)[:nlocal]
        ref = model.reference_energies(z[:nlocal])
        # global sums: pooled features, N, references, ZBL (one copy off the device)
        sums = torch.stack([torch.full_like(ref.sum(), float(nlocal)), ref.sum(), zbl_atom.detach().sum()])
        total = allreduce(comm, torch.cat([local_sum.detach(), sums]).cpu().numpy())
        n_all = torch.tensor([total[-3]], dtype=torch.float64, device=device)
        pooled = torch.tensor(total[: local_sum.shape[0]] / total[-3], dtype=dtype, device=device,
                              requires_grad=conservative)
        with torch.enable_grad() if conservative else torch.no_grad():
            e_int = model.energy_from_pooled(pooled[None], n_all)
            coeff = torch.autograd.grad(e_int.sum(), pooled)[0] / n_all if conservative else None
        e_int = e_int.detach()
        zbl_total = model.trained_repulsion(torch.tensor([total[-1]], dtype=torch.float64, device=device), n_all)
        energy = float(e_int) + total[-2] + float(zbl_total)
        out = {"energy": energy,
               "eatoms": model.per_atom_energies(e_int, n_all, z[:nlocal], zbl_atom.detach()).cpu().numpy()}
        if conservative:
            surrogate = (h.sum(0) * coeff.to(h.dtype)).sum().to(torch.float64) + model.trained_repulsion(
                zbl_atom.sum(), n_all).sum()
            grad = torch.autograd.grad(surrogate, vectors, allow_unused=True)[0]
            out["edge_grad"] = (torch.zeros_like(vectors) if grad is None else grad).detach().to(torch.float64).cpu().numpy()
        else:
            out.update(features=h.detach(), n_all=total[-3], pooled=pooled.detach(), vectors=vectors.detach())
        return out


def write_direct_forces(
    data, lmp, comm, model, result: dict, atomic_numbers: torch.Tensor, senders: torch.Tensor,
    receivers: torch.Tensor, nlocal: int, rows: int, x: np.ndarray, tags: np.ndarray, share: float,
) -> None:
    """Add a direct model's forces to ``atom->f`` and correct the global virial to Orb's stress.

    Head forces (minus the global mean) go to the local atoms; ZBL edge forces to the edges' endpoints
    among the first ``rows`` node rows (``rows`` > nlocal: LAMMPS ghost rows, summed into their owners by
    LAMMPS; the forces on other nodes are their owners' business). ``share`` is this
    rank's fraction of the stress head's virial (1/ranks)."""
    boxlo, boxhi = lmp.extract_box()[:2]
    forces = model.heads.forces(result["features"]).to(torch.float64)
    device = forces.device
    mean = torch.from_numpy(allreduce(comm, forces.sum(0).cpu().numpy()) / result["n_all"]).to(device)
    forces = model.without_net_force(forces, mean)
    vectors = result["vectors"]
    edge_force = model.repulsion_edge_forces(vectors, atomic_numbers, senders, receivers).to(torch.float64)
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
