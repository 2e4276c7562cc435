"""Total-charge and spin-multiplicity conditioning of the OMol models."""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalEmbedding(nn.Module):
    """[sin(2 pi v W), cos(2 pi v W)] with learnt frequencies W; zero rows where v == 0 if masked."""

    def __init__(self, num_frequencies: int, zero_when_zero: bool) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(num_frequencies))
        self.zero_when_zero = zero_when_zero

    def forward(self, values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Embedding of shape (B, 2 * num_frequencies)."""
        # orb-models casts the values to float32 before embedding them.
        v = values.to(torch.float32).to(dtype)
        phase = v[:, None] * self.W.to(dtype)[None, :] * (2.0 * math.pi)
        emb = torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)
        if self.zero_when_zero:
            emb = emb * (v != 0).to(dtype)[:, None]
        return emb


class ChargeSpinConditioner(nn.Module):
    """Per-system vector from total charge and spin multiplicity (spin 0 means 'unspecified')."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.charge_embedding = SinusoidalEmbedding(latent_dim // 4, zero_when_zero=False)
        self.spin_embedding = SinusoidalEmbedding(latent_dim // 4, zero_when_zero=True)

    def forward(
        self, total_charge: torch.Tensor, spin: torch.Tensor, dtype: torch.dtype
    ) -> torch.Tensor:
        """Conditioning vectors of shape (B, latent_dim)."""
        return torch.cat(
            [self.charge_embedding(total_charge, dtype), self.spin_embedding(spin, dtype)], dim=-1
        )
