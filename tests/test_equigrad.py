"""Equigrad diagnostic: Delta_rot = dE(r R, h R)/dG at G = 0 against finite rotations."""

from __future__ import annotations

import ase.build
import numpy as np
import pytest
import torch

from orb_md import build_model
from orb_md.calculator import OrbCalculator
from orb_md.equigrad import rotational_gradient


def energy(model, atoms) -> float:
    atoms = atoms.copy()
    atoms.calc = OrbCalculator(model)
    return atoms.get_potential_energy()


@pytest.mark.parametrize("name", ["orb-v3-conservative-inf-omat", "orb-v3-direct-20-omat"])
def test_rotational_gradient_predicts_energy_change_under_rotation(name):
    model = build_model(name, dtype=torch.float64, latent_dim=32, mlp_hidden_dim=64)
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.numbers[::2] = 47
    atoms.rattle(0.1, seed=2)
    delta = rotational_gradient(model, atoms)
    assert np.allclose(delta, -delta.T, atol=1e-12)  # only the antisymmetric part of G acts
    assert np.abs(delta).max() > 1e-6  # random weights are not rotation invariant
    generator = np.array([[0.0, 0.3, -0.2], [0.0, 0.0, 0.5], [0.0, 0.0, 0.0]])
    step = 1e-4
    rotation = torch.linalg.matrix_exp(torch.tensor(step * (generator - generator.T))).numpy()
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ rotation, scale_atoms=False)
    rotated.positions = atoms.positions @ rotation
    finite_difference = (energy(model, rotated) - energy(model, atoms)) / step
    assert finite_difference == pytest.approx(float(np.sum(delta * generator)), rel=1e-3, abs=1e-9)
