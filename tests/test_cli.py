"""The orb-md command line: --help everywhere, a tiny run, info, one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys

import ase.build
import ase.io
import pytest
import torch

from orb_md.cli import main


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread avoids OpenMP stalls on a shared, oversubscribed CPU (50x slower there)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("command", [[], ["run"], ["export"], ["bench"], ["info"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: orb-md" in capsys.readouterr().out


def test_entry_point_help():
    exe = shutil.which("orb-md") or shutil.which("orb-md", path=str(__import__("pathlib").Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "orb_md.cli"]
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "run" in result.stdout and "export" in result.stdout


def test_tiny_run_and_restart(tmp_path, capsys):
    cu = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
    cu.rattle(0.05, seed=0)
    ase.io.write(tmp_path / "in.extxyz", [cu, ase.build.molecule("H2O")])
    out = tmp_path / "out"
    args = ["run", str(tmp_path / "in.extxyz"), "--random-weights", "--width", "small", "-m", "orb-v3-direct-20-omat",
            "--steps", "4", "--report-every", "2", "--dt", "1,0.5", "-T", "300", "-o", str(out), "--no-progress"]
    assert main(args) == 0
    assert "2 systems, 7 atoms, 4 steps" in capsys.readouterr().out
    for name in ("thermo/000_in_0.csv", "thermo/001_in_1.csv", "traj/000_in_0.extxyz", "restart.pt", "energy.png",
                 "temperature.png", "pressure.png"):
        assert (out / name).is_file(), name
    assert main([*args[:1], "--restart", str(out / "restart.pt"), *args[2:]]) == 0
    rows = (out / "thermo/000_in_0.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and [r.split(",")[0] for r in rows[1:]] == ["0", "2", "4", "6", "8"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "missing.xyz", "--random-weights"], "input file missing.xyz does not exist"),
        (["run", "{structure}", "--random-weights", "--dt", "300 K"], "is a temperature, expected a time"),
        (["run", "{structure}", "--random-weights", "--ensemble", "npt"], "NPT needs a periodic cell"),
        (["run", "{structure}", "-m", "orb-v9"], "unknown Orb-v3 model"),
        (["bench", "--suite", "nope"], "no benchmark suite"),
        (["run", "--random-weights"], "give at least one structure file"),
        (["export", "openmm", "--random-weights", "-o", "{tmp}/m.pt"], "needs --structure"),
    ],
)
def test_errors_are_one_line(args, message, tmp_path, capsys):
    ase.io.write(tmp_path / "h2o.xyz", ase.build.molecule("H2O"))
    args = [a.format(structure=tmp_path / "h2o.xyz", tmp=tmp_path) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("orb-md: error:") and message in err and "\n" not in err


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "orb-v3-direct-20-omat" in out and "engines:" in out and "devices: cpu" in out


def test_export_lammps_missing_plugin_is_clear(tmp_path, capsys):
    pytest.importorskip("torch")
    code = main(["export", "lammps", "--random-weights", "--width", "small", "-o", str(tmp_path / "m.pt")])
    if code == 0:
        assert (tmp_path / "m.pt").exists()
    else:
        assert "orb-md: error:" in capsys.readouterr().err
