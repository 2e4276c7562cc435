"""The LAMMPS plugin with the model on the GPU (exported with device="cuda"): 1 rank, and 2 ranks under mpirun."""

from __future__ import annotations

import shutil

import pytest

from tests.gpu import checks
from tests.test_lammps_orb import _lammps_ok, env

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not _lammps_ok(), reason="LAMMPS not built here (scripts/gpu_check.sh builds it)")]

WIDTH = {"latent_dim": 32, "mlp_hidden_dim": 64}


@pytest.mark.parametrize("ranks", [0, 2], ids=["1-rank", "2-ranks"])
@pytest.mark.parametrize("name", ["orb-v3-conservative-20-omat", "orb-v3-direct-20-omat"])
def test_lammps_model_on_cuda_matches_ase(tmp_path, name: str, ranks: int) -> None:
    if ranks and shutil.which("mpirun", path=env()["PATH"]) is None:
        pytest.skip("no mpirun on this machine")
    errors = checks.lammps_parity(tmp_path, name, "cuda", ranks, **WIDTH)
    assert errors["energy_relative"] <= 1e-9, errors
    assert errors["forces_abs"] <= 1e-8, errors
    assert errors["stress_abs"] <= 1e-9, errors
