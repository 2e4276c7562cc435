"""Bad structures end in one clear InputError, never a traceback from inside torch."""

from __future__ import annotations

import ase
import ase.build
import numpy as np
import pytest
import torch

from orb_md import InputError, build_model
from orb_md.calculator import OrbCalculator

MODEL = build_model("orb-v3-direct-20-omat", dtype=torch.float64, latent_dim=32, mlp_hidden_dim=64)


def energy(atoms: ase.Atoms, model=MODEL) -> float:
    atoms.calc = OrbCalculator(model)
    return atoms.get_potential_energy()


@pytest.mark.parametrize("z", [0, 118, 200])
def test_unsupported_atomic_number(z):
    atoms = ase.Atoms(numbers=[8, z], positions=[[0, 0, 0], [1.5, 0, 0]])
    with pytest.raises(InputError, match=f"unsupported atomic number.*{z}"):
        energy(atoms)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_positions(value):
    atoms = ase.build.molecule("H2O")
    atoms.positions[1, 0] = value
    with pytest.raises(InputError, match="NaN or inf"):
        energy(atoms)


def test_overlapping_atoms():
    atoms = ase.Atoms("OH", positions=[[0, 0, 0], [0, 0, 0]])
    with pytest.raises(InputError, match="atoms 0 and 1 overlap"):
        energy(atoms)


def test_zero_volume_periodic_cell():
    atoms = ase.Atoms("Cu2", positions=[[0, 0, 0], [1.2, 1.2, 0]], cell=[[3, 0, 0], [0, 3, 0], [3, 3, 0]], pbc=True)
    with pytest.raises(InputError, match="cell"):
        energy(atoms)


def test_empty_structure():
    with pytest.raises(InputError, match="no atoms"):
        energy(ase.Atoms())


def test_omol_model_needs_charge_and_spin():
    model = build_model("orb-v3-conservative-omol", latent_dim=32, mlp_hidden_dim=64)
    with pytest.raises(InputError, match=r"atoms.info\['charge'\]"):
        energy(ase.build.molecule("H2O"), model)
    atoms = ase.build.molecule("H2O")
    atoms.info.update(charge=0, spin=1)
    assert np.isfinite(energy(atoms, model))
