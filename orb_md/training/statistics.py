"""Reference energies and normaliser statistics fitted to a training set (from scratch, or for new elements)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from orb_md.model.backbone import NUM_ELEMENTS
from orb_md.model.layers import ScalarNormalizer
from orb_md.model.orb import OrbModel
from orb_md.training.objectives import predict
from orb_md.training.samples import Sample, collate, pack_by_atoms


def fit_reference_energies(samples: Sequence[Sample]) -> torch.Tensor:
    """Per-element energies (NUM_ELEMENTS,) minimising sum_b (E_b - sum_i c_{Z_i})^2 (elements absent: 0)."""
    counts = torch.zeros(len(samples), NUM_ELEMENTS, dtype=torch.float64)
    for b, sample in enumerate(samples):
        counts[b] += torch.bincount(sample.atomic_numbers, minlength=NUM_ELEMENTS)[:NUM_ELEMENTS].double()
    present = counts.sum(0) > 0
    energies = torch.tensor([s.energy for s in samples], dtype=torch.float64)
    solution = torch.linalg.lstsq(counts[:, present], energies[:, None], driver="gelsd").solution[:, 0]
    reference = torch.zeros(NUM_ELEMENTS, dtype=torch.float64)
    reference[present] = solution
    return reference


def _set(normalizer: ScalarNormalizer, mean: float, var: float) -> None:
    normalizer.bn.running_mean.fill_(mean)
    normalizer.bn.running_var.fill_(max(var, 1e-12))


@torch.no_grad()
def fit_statistics(model: OrbModel, samples: Sequence[Sample]) -> None:
    """Set reference energies, the energy normaliser and the force/stress normalisers from the samples.

    Energy: mean of the per-atom residual after reference energies; its scale is the larger of the
    residual's standard deviation and the RMS force times 1 Å. Forces are -dE/dr of N * scale * MLP, so a
    scale set by tiny energy spreads (rattled crystals: ~10 meV/atom) would leave forces ~100x too small at
    initialisation and slow to learn (the RMS-force scaling of MACE). Forces/stress: zero mean, RMS scale."""
    reference = fit_reference_energies(samples)
    model.heads.energy.reference.linear.weight.copy_(reference.to(model.heads.energy.reference.linear.weight.dtype))
    per_atom = torch.tensor(
        [(s.energy - float(reference[s.atomic_numbers].sum())) / s.num_atoms for s in samples], dtype=torch.float64
    )
    forces = torch.cat([s.forces for s in samples]).double()
    force_var = float(forces.pow(2).mean())
    _set(model.heads.energy.normalizer, float(per_atom.mean()), max(float(per_atom.var()), force_var))
    stresses = [s.stress for s in samples if s.stress is not None]
    stress = torch.stack(stresses).double() if stresses else torch.ones(1, 6, dtype=torch.float64)
    if model.conservative:
        _set(model.grad_forces_normalizer, 0.0, force_var)
        _set(model.grad_stress_normalizer, 0.0, float(stress.pow(2).mean()))
        return
    assert model.heads.forces is not None
    _set(model.heads.forces.normalizer, 0.0, force_var)
    if model.heads.stress is not None:
        _set(model.heads.stress.diag_normalizer, float(stress[:, :3].mean()), float(stress[:, :3].var()))
        _set(model.heads.stress.offdiag_normalizer, 0.0, float(stress[:, 3:].pow(2).mean()))


def fit_new_reference_energies(model: OrbModel, samples: Sequence[Sample], batch_atoms: int = 512) -> list[int]:
    """For fine-tuning on new chemistry: least-squares reference energies of the elements in ``samples`` whose
    reference is still 0 (absent from the model's training data), fitted to the model's energy errors on the
    samples that contain them. Returns those atomic numbers; the other references and normalisers are kept."""
    weight = model.heads.energy.reference.linear.weight
    reference = weight.detach().reshape(-1).double()
    fresh = (reference[:NUM_ELEMENTS] == 0).nonzero().flatten()
    chosen = [s for s in samples if bool(torch.isin(s.atomic_numbers, fresh).any())]
    if not chosen:
        return []
    counts = torch.stack([torch.bincount(s.atomic_numbers, minlength=NUM_ELEMENTS)[:NUM_ELEMENTS] for s in chosen])
    new = fresh[counts[:, fresh].sum(0) > 0]
    model.eval()
    residual = []
    for group in pack_by_atoms(chosen, batch_atoms):
        batch = collate(group)
        residual.append(batch.energy - predict(model, batch, create_graph=False).energy.detach().double())
    solution = torch.linalg.lstsq(counts[:, new].double(), torch.cat(residual)[:, None], driver="gelsd").solution
    updated = reference.clone()
    updated[new] = solution[:, 0]
    with torch.no_grad():
        weight.copy_(updated.reshape(weight.shape).to(weight.dtype))
    return new.tolist()
