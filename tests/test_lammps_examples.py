"""The LAMMPS examples (examples/lammps) as a user runs them: prepare.py, then `lmp -in` for each input,
`mpirun -np 2` on the metal input (same thermo as one rank), and run_from_python.py. Runs on a copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_lammps_orb import LMP, REPO, env, thermo

EXAMPLES = REPO / "examples" / "lammps"


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("examples") / "lammps"
    shutil.copytree(EXAMPLES, work, ignore=shutil.ignore_patterns("*.pt", "*.data"))
    proc = subprocess.run([sys.executable, "prepare.py"], cwd=work, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work


def lmp(work: Path, name: str, ranks: int = 0) -> str:
    cmd = [str(LMP), "-nocite", "-log", "none", "-in", name]
    if ranks:
        cmd = [shutil.which("mpirun", path=env()["PATH"]), "-np", str(ranks), *cmd]
    proc = subprocess.run(cmd, cwd=work, env=env(), capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.mark.parametrize("name", ["in.nvt_metal", "in.npt", "in.water"])
def test_input_runs(examples, name):
    rows = thermo(lmp(examples, name))
    assert rows.shape[0] >= 2 and np.all(np.isfinite(rows)), rows
    if name == "in.npt":  # step temp pe press vol lx
        volume = rows[:, 4]
        assert abs(volume[-1] - volume[0]) / volume[0] > 1e-5, volume


def test_metal_input_on_two_ranks_matches_one(examples):
    one = thermo(lmp(examples, "in.nvt_metal"))
    two = thermo(lmp(examples, "in.nvt_metal", ranks=2))
    np.testing.assert_allclose(two, one, rtol=1e-7, atol=1e-6)  # thermo prints ~8 significant digits


def test_run_from_python(examples):
    proc = subprocess.run([sys.executable, "run_from_python.py"], cwd=examples, env=env(), capture_output=True,
                          text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for name in ("in.nvt_metal", "in.npt", "in.water"):
        assert f"{name}: step" in out, out[-4000:]
