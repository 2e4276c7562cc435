"""Predictions with gradients for training, and the Orb-v3 losses (paper Sec. 3; orb-models' heads).

- Huber (delta = 0.01) on normalised targets: energy per atom (after reference energies), forces, stress.
- Equigrad: ||Delta_rot||_F per system, Delta_rot = dE/dG at G = 0 for positions and cell rotated by
  R = exp(G - G^T). With a general homogeneous deformation r -> r (I + eps), W = dE/d(eps) gives both the
  virial (its symmetric part) and Delta_rot = W - W^T, from the same backward pass as the forces.
- Confidence: cross entropy between the confidence head (on detached node features) and the bin of each
  atom's mean absolute force-component error; errors above the last bin edge are ignored (hard clamp).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from orb_md.model.inputs import OrbInputs
from orb_md.model.orb import OrbModel, per_volume, periodic_volume, voigt
from orb_md.training.samples import Batch

HUBER_DELTA = 0.01
IGNORE_BIN = -100


@dataclasses.dataclass
class Prediction:
    """Model outputs on a training batch, differentiable with respect to the parameters."""

    energy: torch.Tensor  # (B,) eV, float64
    forces: torch.Tensor  # (N, 3) eV/Å
    stress: torch.Tensor  # (B, 6) eV/Å^3
    rotational_gradient: torch.Tensor  # (B, 3, 3) eV
    confidence: torch.Tensor  # (N, bins) probabilities


def predict(model: OrbModel, batch: Batch, create_graph: bool = True) -> Prediction:
    """Energy, forces, stress, Delta_rot and confidence; conservative forces/stress by autograd."""
    positions = batch.positions.detach().requires_grad_(True)
    deformation = torch.zeros_like(batch.cell).requires_grad_(True)
    identity = torch.eye(3, dtype=positions.dtype) + deformation
    deformed = torch.bmm(positions[:, None, :], identity[batch.system_index]).squeeze(1)
    cell = torch.bmm(batch.cell, identity)
    direct = not model.conservative
    with torch.enable_grad():
        inputs = OrbInputs(deformed, batch.atomic_numbers, cell, batch.pbc, batch.senders, batch.receivers,
                           batch.unit_shifts, batch.system_index)
        out = model(inputs, compute_forces=direct, compute_stress=direct and model.heads.stress is not None)
        energy = out["energy"]
        wanted = [positions, deformation] if model.conservative else [deformation]
        grads = torch.autograd.grad(energy.sum(), wanted, create_graph=create_graph)
    virial = grads[-1]
    if model.conservative:
        forces = -grads[0]
        volume = periodic_volume(batch.cell, batch.pbc)
        stress = voigt(per_volume(virial.reshape(-1, 9), volume).reshape(-1, 3, 3))
    else:
        forces = out["forces"]
        stress = out.get("stress", torch.zeros(batch.cell.shape[0], 6, dtype=forces.dtype))
    return Prediction(
        energy=energy,
        forces=forces,
        stress=stress,
        rotational_gradient=virial - virial.transpose(1, 2),
        confidence=out["confidence"],
    )


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (equigrad 0 switches it off). With Huber(0.01) the terms are nearly L1 on
    normalised errors; forces (derivatives of a nearly flat energy at a random start) get a gradient ~100x
    weaker than the energy, and energy errors below 0.01 of the energy scale fall in the quadratic part."""

    energy: float = 100.0
    forces: float = 100.0
    stress: float = 10.0
    equigrad: float = 10.0
    confidence: float = 1.0


def force_error_bins(error: torch.Tensor, bin_edges: torch.Tensor) -> torch.Tensor:
    """Bin index of each per-atom force error; errors beyond the last edge get IGNORE_BIN."""
    bins = torch.bucketize(error.clamp(min=0.0, max=float(bin_edges[-1])), bin_edges) - 1
    bins = bins.clamp(0, bin_edges.numel() - 2)
    return torch.where(error > bin_edges[-1], torch.full_like(bins, IGNORE_BIN), bins)


def losses(model: OrbModel, batch: Batch, prediction: Prediction, weights: LossWeights) -> dict[str, torch.Tensor]:
    """Each weighted loss term and their sum under ``"total"``."""
    energy_scale = model.heads.energy.normalizer.bn.running_var.sqrt()
    force_scale, stress_scale = force_and_stress_scales(model)
    counts = batch.counts.to(torch.float64)
    reference = model.heads.energy.reference(batch.atomic_numbers, batch.system_index, counts.shape[0])
    e_pred = ((prediction.energy - reference) / counts).to(energy_scale.dtype) / energy_scale
    e_true = ((batch.energy - reference) / counts).to(energy_scale.dtype) / energy_scale
    terms = {
        "energy": weights.energy * F.huber_loss(e_pred, e_true, delta=HUBER_DELTA),
        "forces": weights.forces
        * F.huber_loss(prediction.forces / force_scale, batch.forces / force_scale, delta=HUBER_DELTA),
    }
    if bool(batch.has_stress.any()):
        mask = batch.has_stress
        terms["stress"] = weights.stress * F.huber_loss(
            prediction.stress[mask] / stress_scale, batch.stress[mask] / stress_scale, delta=HUBER_DELTA
        )
    if weights.equigrad > 0:
        per_atom = torch.linalg.matrix_norm(prediction.rotational_gradient) / counts.to(energy_scale.dtype)
        terms["equigrad"] = weights.equigrad * (per_atom / energy_scale).mean()
    if weights.confidence > 0:
        error = (prediction.forces.detach() - batch.forces).abs().mean(dim=1)
        bins = force_error_bins(error, model.heads.confidence.bin_edges)
        if bool((bins != IGNORE_BIN).any()):
            log_p = torch.log(prediction.confidence.clamp(min=1e-30))
            terms["confidence"] = weights.confidence * F.nll_loss(log_p, bins, ignore_index=IGNORE_BIN)
    terms["total"] = torch.stack([v for v in terms.values()]).sum()
    return terms


def force_and_stress_scales(model: OrbModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard deviations of forces and stress stored in the model's normalisers."""
    if model.conservative:
        return (
            model.grad_forces_normalizer.bn.running_var.sqrt(),
            model.grad_stress_normalizer.bn.running_var.sqrt(),
        )
    force_head, stress_head = model.heads.forces, model.heads.stress
    assert force_head is not None
    stress_scale = (
        stress_head.diag_normalizer.bn.running_var.sqrt() if stress_head is not None else torch.ones(1)
    )
    return force_head.normalizer.bn.running_var.sqrt(), stress_scale
