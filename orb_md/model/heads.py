"""Read-out heads of Orb-v3: energy, direct forces, direct stress, per-atom confidence."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from orb_md.model.backbone import NUM_ELEMENTS
from orb_md.model.config import OrbConfig
from orb_md.model.layers import ScalarNormalizer, mlp, segment_sum


class LinearReference(nn.Module):
    """Fixed per-element reference energies; ``linear.weight[Z]`` is added for each atom."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Module()
        self.linear.register_parameter(
            "weight", nn.Parameter(torch.zeros(NUM_ELEMENTS), requires_grad=False)
        )

    def forward(self, atomic_numbers: torch.Tensor, system_index: torch.Tensor, n: int) -> torch.Tensor:
        """Sum of reference energies per system, shape (B,), float64."""
        return segment_sum(self.per_atom(atomic_numbers), system_index, n)

    def per_atom(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """The reference energy of each atom, shape (N,), float64."""
        weight: torch.Tensor = self.linear.weight
        return weight[atomic_numbers].to(torch.float64)


class EnergyHead(nn.Module):
    """E = N * (MLP(mean of node features) * sigma + mu) + sum of reference energies.

    Orb-v3's energy is extensive through N, not a sum of per-atom terms.
    """

    def __init__(self, config: OrbConfig) -> None:
        super().__init__()
        self.normalizer = ScalarNormalizer()
        self.mlp = mlp(config.latent_dim, config.head_hidden_dim, config.head_depth, 1)
        self.reference = LinearReference()

    def forward(
        self,
        pooled: torch.Tensor,
        atomic_numbers: torch.Tensor,
        system_index: torch.Tensor,
        counts: torch.Tensor,
    ) -> torch.Tensor:
        """Energy per system in eV (float64), without pair repulsion."""
        return self.interaction(pooled, counts) + self.reference(atomic_numbers, system_index, counts.shape[0])

    def interaction(self, pooled: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """N * (MLP(pooled) * sigma + mu) per system (float64): the energy without references and repulsion."""
        per_atom = self.normalizer.inverse(self.mlp(pooled)).squeeze(-1)
        return per_atom.to(torch.float64) * counts.to(torch.float64)


class ForceHead(nn.Module):
    """Direct forces MLP(h_i) * sigma + mu (the model removes their net force, and net torque in vacuum)."""

    def __init__(self, config: OrbConfig) -> None:
        super().__init__()
        self.normalizer = ScalarNormalizer()
        self.mlp = mlp(config.latent_dim, config.head_hidden_dim, config.head_depth, 3)

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        """Un-normalised forces in eV/Å, shape (N, 3); the caller removes the net force (and torque)."""
        return self.normalizer.inverse(self.mlp(nodes))


class StressHead(nn.Module):
    """Direct stress from mean node features; diagonal and shear parts have own normalisers."""

    def __init__(self, config: OrbConfig) -> None:
        super().__init__()
        self.diag_normalizer = ScalarNormalizer()
        self.offdiag_normalizer = ScalarNormalizer()
        self.mlp = mlp(config.latent_dim, config.head_hidden_dim, config.head_depth, 6)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """Voigt stress (xx, yy, zz, yz, xz, xy) in eV/Å^3, shape (B, 6)."""
        out = self.mlp(pooled)
        return torch.cat(
            [self.diag_normalizer.inverse(out[:, :3]), self.offdiag_normalizer.inverse(out[:, 3:])],
            dim=-1,
        )


class ConfidenceHead(nn.Module):
    """Per-atom probabilities over binned force errors (bin edges come from the checkpoint)."""

    def __init__(self, config: OrbConfig) -> None:
        super().__init__()
        bins = config.num_confidence_bins
        self.register_buffer("bin_edges", torch.linspace(0.0, 0.3, bins + 1))
        self.mlp = mlp(config.latent_dim, config.head_hidden_dim, config.head_depth, bins)

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, bins); the node features are detached, as in training."""
        return self.mlp(nodes.detach())


class Heads(nn.Module):
    """Container mirroring the ``heads.*`` checkpoint keys; absent heads are None."""

    def __init__(self, config: OrbConfig) -> None:
        super().__init__()
        direct = config.kind == "direct"
        self.energy = EnergyHead(config)
        self.confidence = ConfidenceHead(config)
        self.forces: Optional[ForceHead] = ForceHead(config) if direct else None
        self.stress: Optional[StressHead] = StressHead(config) if direct and config.has_stress else None
