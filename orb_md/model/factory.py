"""Orb-v3 models with random weights, for tests, benchmarks and training from scratch."""

from __future__ import annotations

import torch

from orb_md.model.config import OrbConfig, model_config
from orb_md.model.orb import OrbModel


def build_model(
    architecture: str | OrbConfig = "orb-v3-direct-20-omat",
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    random_statistics: bool = True,
    zero_net_force: bool = True,
    **overrides: object,
) -> OrbModel:
    """A released architecture (or a reduced variant via ``overrides``) with seeded random weights.

    With ``random_statistics`` the normaliser means/variances and reference energies are
    random too (a model whose every buffer matters, which makes parity tests sharper);
    otherwise they keep the neutral values mean 0, variance 1, reference 0.
    Like :func:`orb_md.load_model` the model is ready for inference: eval mode, parameters without
    gradients (autograd then keeps no layer inputs for weight gradients: conservative models need about
    a quarter less memory); :mod:`orb_md.training` turns gradients back on.
    """
    config = architecture if isinstance(architecture, OrbConfig) else model_config(architecture)
    if overrides:
        config = config.replace(**overrides)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = OrbModel(config, zero_net_force=zero_net_force)
    if random_statistics:
        _randomize_statistics(model, generator)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _randomize_statistics(model: OrbModel, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.5)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
        reference = model.heads.energy.reference.linear.weight
        reference.copy_(-5.0 * torch.rand(reference.shape, generator=generator))
