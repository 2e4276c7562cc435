"""Equigrad: how far a model is from rotational invariance (Orb-v3 paper, Sec. 3).

Delta_rot = dE(r R, h R)/dG at G = 0 with R = exp(G - G^T): positions r and cell h are rotated
together, which leaves an exactly invariant energy unchanged, so Delta_rot = 0 for such a model.
"""

from __future__ import annotations

import ase
import numpy as np
import torch

from orb_md.batch import atoms_to_batch, build_graph
from orb_md.model.orb import OrbModel


def rotational_gradient(model: OrbModel, atoms: ase.Atoms) -> np.ndarray:
    """Delta_rot of ``model`` at ``atoms``, a (3, 3) array in eV (zero for a perfectly invariant model)."""
    parameter = next(model.parameters())
    batch = atoms_to_batch([atoms], dtype=parameter.dtype, device=parameter.device)
    senders, receivers, shifts = build_graph(model, batch)
    generator = torch.zeros(3, 3, dtype=parameter.dtype, device=parameter.device, requires_grad=True)
    with torch.enable_grad():
        rotation = torch.linalg.matrix_exp(generator - generator.T)
        charge_spin = model.config.charge_spin
        energy = model(
            batch.positions @ rotation, batch.atomic_numbers, batch.cell @ rotation, batch.pbc,
            senders, receivers, shifts, batch.system_index,
            batch.total_charge if charge_spin else None, batch.spin if charge_spin else None,
            compute_forces=False, compute_stress=False,
        )["energy"]
        (gradient,) = torch.autograd.grad(energy.sum(), generator)
    return gradient.detach().cpu().double().numpy()
