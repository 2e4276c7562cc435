"""Equigrad: how far a model is from rotational invariance (Orb-v3 paper, Sec. 3).

Delta_rot = dE(r R, h R)/dG at G = 0 with R = exp(G - G^T): positions r and cell h are rotated
together, which leaves an exactly invariant energy unchanged, so Delta_rot = 0 for such a model.
"""

from __future__ import annotations

import ase
import numpy as np
import torch

from orb_md.batch import atoms_to_batch, build_graph
from orb_md.model.inputs import system_inputs
from orb_md.model.orb import OrbModel


def rotational_gradient(model: OrbModel, atoms: ase.Atoms) -> np.ndarray:
    """Delta_rot of ``model`` at ``atoms``, a (3, 3) array in eV (zero for a perfectly invariant model)."""
    parameter = next(model.parameters())
    batch = atoms_to_batch([atoms], dtype=parameter.dtype, device=parameter.device)
    graph = build_graph(model, batch)
    generator = torch.zeros(3, 3, dtype=parameter.dtype, device=parameter.device, requires_grad=True)
    with torch.enable_grad():
        rotation = torch.linalg.matrix_exp(generator - generator.T)
        inputs = system_inputs(model.config, batch, graph, batch.positions @ rotation, batch.cell @ rotation)
        energy = model(inputs, compute_forces=False, compute_stress=False)["energy"]
        (gradient,) = torch.autograd.grad(energy.sum(), generator)
    return gradient.detach().cpu().double().numpy()
