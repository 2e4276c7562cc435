"""Geometric edge features of Orb-v3: Bessel radial basis x spherical harmonics x envelope."""

from __future__ import annotations

import math

import torch
from torch import nn


def polynomial_envelope(r: torch.Tensor, r_max: float, p: int = 4) -> torch.Tensor:
    """Smooth cutoff 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2), zero for r >= r_max."""
    x = r / r_max
    envelope = (
        1.0
        - ((p + 1.0) * (p + 2.0) / 2.0) * torch.pow(x, p)
        + p * (p + 2.0) * torch.pow(x, p + 1)
        - (p * (p + 1.0) / 2.0) * torch.pow(x, p + 2)
    )
    return envelope * (r < r_max).to(r.dtype)


class BesselBasis(nn.Module):
    """phi_n(r) = sqrt(2/r_max) sin(n pi r / r_max) / r, n = 1..num_bases.

    The three buffers are persistent: official checkpoints carry them (as float32 values).
    """

    def __init__(self, r_max: float, num_bases: int) -> None:
        super().__init__()
        self.num_bases = num_bases
        weights = math.pi / r_max * torch.linspace(1.0, num_bases, num_bases)
        self.register_buffer("bessel_weights", weights)
        self.register_buffer("r_max", torch.tensor(r_max))
        self.register_buffer("prefactor", torch.tensor(math.sqrt(2.0 / r_max)))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """Basis values, shape (E, num_bases)."""
        return self.prefactor * (torch.sin(self.bessel_weights * r[:, None]) / r[:, None])


def spherical_harmonics_l3(unit: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics l = 0..3 of unit vectors, 'component' normalised, shape (E, 16).

    Polynomials and ordering of e3nn 0.4.4 in raw (x, y, z) axis order, as Orb-v3 was trained.
    """
    x, y, z = unit[:, 0], unit[:, 1], unit[:, 2]
    s3 = math.sqrt(3.0)
    y2 = y * y
    x2z2 = x * x + z * z
    l2_0 = s3 * x * z
    l2_4 = s3 / 2.0 * (z * z - x * x)
    harmonics = [
        torch.ones_like(x),
        x,
        y,
        z,
        l2_0,
        s3 * x * y,
        y2 - 0.5 * x2z2,
        s3 * y * z,
        l2_4,
        math.sqrt(5.0 / 6.0) * (l2_0 * z + l2_4 * x),
        math.sqrt(5.0) * l2_0 * y,
        math.sqrt(3.0 / 8.0) * (4.0 * y2 - x2z2) * x,
        0.5 * y * (2.0 * y2 - 3.0 * x2z2),
        math.sqrt(3.0 / 8.0) * z * (4.0 * y2 - x2z2),
        math.sqrt(5.0) * l2_4 * y,
        math.sqrt(5.0 / 6.0) * (l2_4 * z - l2_0 * x),
    ]
    # 'component' normalisation: block l is multiplied by sqrt(2l + 1)
    norms = [1.0] + [s3] * 3 + [math.sqrt(5.0)] * 5 + [math.sqrt(7.0)] * 7
    return torch.stack([h * c for h, c in zip(harmonics, norms)], dim=-1)


def edge_features(
    vectors: torch.Tensor, lengths: torch.Tensor, radial: torch.Tensor, envelope: torch.Tensor
) -> torch.Tensor:
    """Envelope x (radial basis outer spherical harmonics), RBF-major, shape (E, num_bases*16)."""
    unit = vectors / lengths.clamp(min=1e-12)[:, None]
    outer = radial[:, :, None] * spherical_harmonics_l3(unit)[:, None, :]
    return envelope[:, None] * outer.flatten(1)
