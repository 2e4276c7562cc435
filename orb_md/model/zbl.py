"""Ziegler-Biersack-Littmark nuclear repulsion exactly as the released Orb-v3 weights saw it.

Two training quirks are reproduced on purpose (orb-models issue #169):
- atomic numbers enter as Z + 1 (also when looking up covalent radii for the cutoff);
- conservative models divide the summed repulsion by the number of atoms of the system.
The constants are stored as float32 values, as orb-models creates them before casting a model.
"""

from __future__ import annotations

from typing import Tuple

import ase.data
import torch
from torch import nn

from orb_md.model.layers import segment_sum


class ZBLRepulsion(nn.Module):
    """Pair repulsion with a p = 6 polynomial envelope at r_c = R_cov(Z_u+1) + R_cov(Z_v+1)."""

    def __init__(self) -> None:
        super().__init__()
        f32 = torch.float32
        self.register_buffer("c", torch.tensor([0.1818, 0.5099, 0.2802, 0.02817], dtype=f32), persistent=False)
        self.register_buffer("d", torch.tensor([3.2, 0.9423, 0.4028, 0.2016], dtype=f32), persistent=False)
        self.register_buffer(
            "covalent_radii", torch.tensor(ase.data.covalent_radii, dtype=f32), persistent=False
        )
        self.register_buffer("a_exp", torch.tensor(0.300, dtype=f32), persistent=False)
        self.register_buffer("a_prefactor", torch.tensor(0.4543, dtype=f32), persistent=False)

    def edge_energy_and_derivative(
        self, vectors: torch.Tensor, z_sender: torch.Tensor, z_receiver: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Half pair energy per directed edge and its derivative d/dr, both shape (E,)."""
        zu = z_sender + 1
        zv = z_receiver + 1
        # screening length a = 0.4543 * 0.529 Å / (Z_u^0.3 + Z_v^0.3)
        a = self.a_prefactor * 0.529 / (torch.pow(zu, self.a_exp) + torch.pow(zv, self.a_exp))
        r = torch.linalg.vector_norm(vectors, dim=1)
        x = r / a
        exp_term = torch.exp(-self.d[:, None] * x[None, :])
        phi = torch.sum(self.c[:, None] * exp_term, dim=0)
        dphi_dr = torch.sum(-self.d[:, None] * self.c[:, None] * exp_term, dim=0) / a
        coulomb = 14.3996 * zu.to(r.dtype) * zv.to(r.dtype) / r  # e^2/(4 pi eps0) in eV Å
        v_raw = coulomb * phi
        dv_raw = -coulomb / r * phi + coulomb * dphi_dr
        envelope, denvelope = _envelope_p6(r, self.covalent_radii[zu] + self.covalent_radii[zv])
        return 0.5 * v_raw * envelope, 0.5 * (dv_raw * envelope + v_raw * denvelope)

    def per_atom_energy(
        self,
        vectors: torch.Tensor,
        atomic_numbers: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
    ) -> torch.Tensor:
        """Repulsion summed over each sender's edges, shape (N,)."""
        energy, _ = self.edge_energy_and_derivative(
            vectors, atomic_numbers[senders], atomic_numbers[receivers]
        )
        return segment_sum(energy, senders, atomic_numbers.shape[0])


def _envelope_p6(r: torch.Tensor, r_max: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """1 - 28 x^6 + 48 x^7 - 21 x^8 (x = r / r_max) and its r-derivative, zero beyond r_max."""
    inside = (r < r_max).to(r.dtype)
    x = r / r_max
    envelope = (1.0 - 28.0 * torch.pow(x, 6.0) + 48.0 * torch.pow(x, 7.0) - 21.0 * torch.pow(x, 8.0)) * inside
    derivative = (
        -168.0 * torch.pow(x, 5.0) + 336.0 * torch.pow(x, 6.0) - 168.0 * torch.pow(x, 7.0)
    ) * (1.0 / r_max) * inside
    return envelope, derivative
