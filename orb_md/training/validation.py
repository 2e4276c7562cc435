"""Held-out errors of a trained model: energy/force/stress MAE, rotational gradient, confidence ranking."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import spearmanr

from orb_md.model.orb import OrbModel
from orb_md.training.objectives import predict
from orb_md.training.samples import Sample, collate, pack_by_atoms


def validation_errors(model: OrbModel, samples: Sequence[Sample], batch_atoms: int = 512) -> dict[str, float]:
    """Mean absolute errors on ``samples`` and two diagnostics of the Orb-v3 recipe:

    ``energy_mae_per_atom`` (eV/atom), ``force_mae`` (eV/Å, over components), ``stress_mae`` (eV/Å^3, over
    labelled systems), ``rotational_gradient_rms`` (eV: RMS over systems of ||Delta_rot||_F),
    ``confidence_spearman``: Spearman rho between each atom's predicted mean force error (the confidence
    head's expected bin centre) and its actual mean absolute force-component error.
    """
    model.eval()
    energy_err, force_err, stress_err, rot, expected, actual = [], [], [], [], [], []
    edges = model.heads.confidence.bin_edges.double()
    centres = 0.5 * (edges[1:] + edges[:-1])
    for group in pack_by_atoms(samples, batch_atoms):
        batch = collate(group)
        prediction = predict(model, batch, create_graph=False)
        counts = batch.counts.double()
        energy_err.append(((prediction.energy.detach() - batch.energy).abs() / counts).numpy())
        error = (prediction.forces.detach() - batch.forces).abs().double()
        force_err.append(error.reshape(-1).numpy())
        if bool(batch.has_stress.any()):
            mask = batch.has_stress
            stress_err.append((prediction.stress.detach()[mask] - batch.stress[mask]).abs().reshape(-1).numpy())
        rot.append(torch.linalg.matrix_norm(prediction.rotational_gradient.detach()).double().numpy())
        expected.append((prediction.confidence.detach().double() @ centres).numpy())
        actual.append(error.mean(dim=1).numpy())
    rho = spearmanr(np.concatenate(expected), np.concatenate(actual)).statistic
    return {
        "energy_mae_per_atom": float(np.concatenate(energy_err).mean()),
        "force_mae": float(np.concatenate(force_err).mean()),
        "stress_mae": float(np.concatenate(stress_err).mean()) if stress_err else float("nan"),
        "rotational_gradient_rms": float(np.sqrt(np.mean(np.concatenate(rot) ** 2))),
        "confidence_spearman": float(rho),
    }

