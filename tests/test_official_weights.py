"""orb_md with the *trained* Orb-v3 weights against the gold values orb-models publishes in its own tests.

Gold values, tolerances and structures are those of orb-models v0.5.5,
tests/test_model_backward_compatibility.py (commit 8de9a8104484bbd943e0d8761ccec6f71f69dafb; unchanged in
tests/expensive_tests/test_backwards_compatibility.py of later releases). They run when ORB_MD_OFFICIAL_CHECKPOINTS
names a folder holding the released .ckpt files under their official names (``orb-v3-direct-inf-omat-20250404.ckpt``
...); elsewhere they are reported as not run (tests/conftest.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import ase
import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.optimize import BFGS

from orb_md import load_model
from orb_md.calculator import OrbCalculator
from orb_md.model.config import model_config

pytestmark = pytest.mark.official_weights


def official(name: str) -> OrbCalculator:
    """An ASE calculator of the released ``name`` read from $ORB_MD_OFFICIAL_CHECKPOINTS (orb-models' default
    precision, float32-high)."""
    config = model_config(name)
    path = Path(os.environ["ORB_MD_OFFICIAL_CHECKPOINTS"]) / Path(config.weights_file).name
    if not path.is_file():
        pytest.fail(f"ORB_MD_OFFICIAL_CHECKPOINTS has no {path.name} (download {config.weights_url})", pytrace=False)
    return OrbCalculator(load_model(path, precision="float32-high"))


def copper() -> ase.Atoms:
    return bulk("Cu", "fcc", a=3.58, cubic=True)


# (model, energy eV, forces of atom 0 eV/Å, stress Voigt eV/Å^3): orb-models' test_orb_v3_*_omat_predictions.
CRYSTAL_GOLD = {
    "orb-v3-direct-inf-omat": (
        -14.9910, [5.1031e-07, 3.7791e-07, 3.0662e-07],
        [-2.5220e-02, -2.5239e-02, -2.5593e-02, 6.7905e-05, 3.3452e-04, 1.5985e-04],
    ),
    "orb-v3-conservative-inf-omat": (
        -14.9525, [1.3970e-09, 1.0419e-08, -1.0361e-08],
        [-2.5326e-02, -2.5321e-02, -2.5328e-02, 1.2287e-06, 1.1870e-06, 6.1788e-06],
    ),
}
# (model, rattled energy, BFGS-optimised energy): orb-models' test_orbv3_*_omat_optimization.
OPTIMISATION_GOLD = {
    "orb-v3-direct-inf-omat": (-10.578043937683105, -14.991006851196289),
    "orb-v3-conservative-inf-omat": (-10.517223358154297, -14.952497482299805),
}


@pytest.mark.parametrize("name", list(CRYSTAL_GOLD))
def test_fcc_copper_matches_orb_models_gold(name):
    energy, forces, stress = CRYSTAL_GOLD[name]
    atoms = copper()
    atoms.calc = official(name)
    assert np.isclose(atoms.get_potential_energy(), energy, atol=1e-4)
    np.testing.assert_allclose(atoms.get_forces()[0], forces, atol=1e-5)
    np.testing.assert_allclose(atoms.get_stress(), stress, atol=1e-4)


@pytest.mark.parametrize("name", list(OPTIMISATION_GOLD))
def test_rattled_copper_relaxes_to_orb_models_gold(name):
    rattled, optimised = OPTIMISATION_GOLD[name]
    atoms = copper()
    atoms.calc = official(name)
    atoms.rattle(0.5, seed=42)
    assert np.isclose(atoms.get_potential_energy(), rattled, atol=1e-5)
    BFGS(atoms, logfile=None).run(fmax=0.01)
    assert np.isclose(atoms.get_potential_energy(), optimised, atol=1e-5)


def test_charged_benzene_matches_orb_models_gold():
    """orb-models' test_orb_v3_con_omol_predictions: C6H6 with total charge 1 and spin 0."""
    atoms = molecule("C6H6")
    atoms.info.update(charge=1.0, spin=0.0)
    atoms.calc = official("orb-v3-conservative-omol")
    assert np.isclose(atoms.get_potential_energy(), -6316.6646, atol=1e-4)
    np.testing.assert_allclose(atoms.get_forces()[0], [0.14257583, -0.2070809, 0.01658938], atol=1e-5)


def test_charged_benzene_relaxes_to_orb_models_gold():
    """orb-models' test_orbv3_con_omol_optimization."""
    atoms = molecule("C6H6")
    atoms.calc = official("orb-v3-conservative-omol")
    atoms.rattle(0.5, seed=42)
    atoms.info.update(charge=1.0, spin=0.0)
    assert np.isclose(atoms.get_potential_energy(), -6280.37646484375, atol=1e-5)
    BFGS(atoms, logfile=None).run(fmax=0.01)
    assert np.isclose(atoms.get_potential_energy(), -6311.3916015625, atol=1e-5)
