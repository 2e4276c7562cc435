"""The carbonic anhydrase II example (examples/carbonic_anhydrase/run.py) as a user runs it on a CPU: a few
Langevin steps of the small variant (residues 91-120 in a water shell) with random reduced-width weights of
orb-v3-direct-inf-omat, every atom ML; the DCD trajectory, the ns/day line and the mdtraj RMSD plot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_data

mdtraj = pytest.importorskip("mdtraj")

RUN = Path(__file__).resolve().parents[1] / "examples" / "carbonic_anhydrase" / "run.py"


def test_small_caii_runs_on_the_cpu(tmp_path):
    pdb = shared_data("structures/3ks3.pdb")
    out = tmp_path / "run"
    cmd = [sys.executable, str(RUN), str(pdb), "--small", "--random-architecture", "--platform", "CPU",
           "--steps", "5", "--report-interval", "2", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    atoms = int(re.search(r"^(\d+) atoms, all under orb_md/orb-v3-direct-inf-omat", log, re.MULTILINE)[1])
    assert re.search(r"[\d.]+ steps/s, [\d.]+ ns/day \(4 steps", log), log[-2000:]
    trajectory = mdtraj.load(str(out / "trajectory.dcd"), top=str(out / "start.pdb"))
    assert trajectory.n_atoms == atoms and trajectory.n_frames == 2  # steps 2 and 4
    assert (out / "rmsd.png").stat().st_size > 1000
