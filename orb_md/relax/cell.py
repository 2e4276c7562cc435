"""Batched Fréchet cell filter: ASE's ``FrechetCellFilter`` for many systems, strain only along periodic axes.

Per system the optimiser sees the atoms in the undeformed cell, ``r0 = r F^-T``, and the cell as
``X = exp_cell_factor · log(F)``, F being the deformation gradient from the starting cell (ASE adds a constant
``exp_cell_factor · ln(N) · I`` to X, which no FIRE step depends on). Generalised forces are ASE's: ``f F`` on
the atoms and, on X, the adjoint Fréchet derivative of the matrix exponential applied to the masked virial
``-V σ (F^T)^-1``, divided by ``exp_cell_factor`` (default: the number of atoms). The strain mask is
``pbc_i and pbc_j`` in Cartesian axes (ASE's 3x3 mask), so a slab strains in-plane, a wire along its axis.
Differences from ASE: X is carried from step to step instead of being recomputed as ``logm`` of the cell
(equal to round-off), and a non-periodic cell vector of zero length is replaced by the unit vector of its axis
while relaxing (it stays zero in the output), so cells without vacuum padding can be relaxed too.
"""

from __future__ import annotations

import numpy as np
import torch

from orb_md.errors import InputError
from orb_md.model.orb import voigt_to_matrix


def strain_mask(pbc: np.ndarray) -> np.ndarray:
    """(3, 3) float: 1 where both Cartesian axes are periodic (ASE's mask3x3 of the filter)."""
    periodic = np.asarray(pbc, dtype=bool)
    return np.outer(periodic, periodic).astype(np.float64)


def working_cell(cell: np.ndarray, pbc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cell to relax (zero non-periodic vectors -> unit axis vectors) and which rows were replaced.

    Raises InputError for a structure the filter cannot strain along its periodic directions only.
    """
    periodic = np.asarray(pbc, dtype=bool)
    if not periodic.any():
        raise InputError("no periodic direction: the cell filter has nothing to relax (relax its positions only)")
    cell = np.array(cell, dtype=np.float64)
    lengths = np.linalg.norm(cell, axis=1)
    scale = max(float(lengths[periodic].max()), 1.0)
    for i in np.flatnonzero(~periodic):
        if np.any(np.abs(cell[periodic, i]) > 1e-8 * scale):
            raise InputError(
                f"periodic cell vectors have a component along the non-periodic axis {'xyz'[i]}; rotate the "
                f"structure so that non-periodic direction {i} is Cartesian axis {'xyz'[i]}")
    replaced = ~periodic & (lengths < 1e-12)
    cell[replaced] = np.eye(3)[replaced]
    if abs(np.linalg.det(cell)) < 1e-9 * np.prod(np.maximum(np.linalg.norm(cell, axis=1), 1e-300)):
        raise InputError(f"cell vectors are not independent (cell {cell.round(4).tolist()}); the cell filter needs "
                         "a cell of non-zero volume")
    return cell, replaced


def expm_frechet_adjoint(log_deform: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3): the matrix D with D_mn = <L_exp(L, E_mn), G>, i.e. L_exp(L^T, G) (block-matrix exponential)."""
    top = torch.cat([log_deform.transpose(1, 2), direction], 2)
    bottom = torch.cat([torch.zeros_like(log_deform), log_deform.transpose(1, 2)], 2)
    return torch.linalg.matrix_exp(torch.cat([top, bottom], 1))[:, :3, 3:]


def deformation(log_strain: torch.Tensor, mask: torch.Tensor, exp_cell_factor: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) ``I + deform`` of ASE (= F^T) from the filter's cell variables X."""
    eye = torch.eye(3, dtype=log_strain.dtype, device=log_strain.device)
    grad = torch.linalg.matrix_exp(log_strain / exp_cell_factor[:, None, None])
    return eye + (grad - eye).transpose(1, 2) * mask


def generalised_forces(
    forces: torch.Tensor,
    stress: torch.Tensor,
    cell: torch.Tensor,
    deform_t: torch.Tensor,
    log_strain: torch.Tensor,
    mask: torch.Tensor,
    exp_cell_factor: torch.Tensor,
    system_index: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forces on the filter's atom rows (N, 3) and cell rows (B, 3, 3), as ASE's FrechetCellFilter.get_forces."""
    volume = torch.linalg.det(cell).abs()
    virial = -volume[:, None, None] * voigt_to_matrix(stress) * mask
    cell_gradient = virial @ torch.linalg.inv(deform_t)
    log_deform = log_strain / exp_cell_factor[:, None, None]
    cell_forces = expm_frechet_adjoint(log_deform, cell_gradient) / exp_cell_factor[:, None, None]
    atom_forces = torch.bmm(forces[:, None, :], deform_t.transpose(1, 2)[system_index]).squeeze(1)
    return atom_forces, cell_forces
