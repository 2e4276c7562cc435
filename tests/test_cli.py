"""The orb-md command line: --help everywhere, a tiny run, info, one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys

import ase.build
import ase.io
import pytest

from orb_md.cli import main
from tests.benchmark_scripts import load_benchmark

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


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
        (["run", "{structure}", "--random-weights", "--chunk", "-5"], "edge chunk must be a positive number"),
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
    assert "neighbour-list backends: " in out and "brute_force" in out


def test_export_lammps_missing_plugin_is_clear(tmp_path, capsys):
    pytest.importorskip("torch")
    code = main(["export", "lammps", "--random-weights", "--width", "small", "-o", str(tmp_path / "m.pt")])
    if code == 0:
        assert (tmp_path / "m.pt").exists()
    else:
        assert "orb-md: error:" in capsys.readouterr().err



def test_report_renders_suite_rows(tmp_path):
    table = load_benchmark("report_table")
    cpu = {"cpu": 10.0, "peak_mb": 300.0}
    outcomes = [
        table.SuiteOutcome("model", "ok", "bench_model.py", data={"rows": [
            {"system": "cu", "atoms": 1008, "model": "direct-20", "variant": "full", "orb_md": cpu,
             "orb-models": {"cpu": 16.0, "peak_mb": 310.0}},
            {"system": "cu", "atoms": 1008, "model": "direct-inf", "variant": "full", "orb_md": cpu,
             "orb-models": {"cpu": 16.0, "peak_mb": 290.0}},
            {"system": "cu", "atoms": 1008, "model": "direct-inf", "variant": "net", "orb_md": {"error": "MemoryError"},
             "orb-models": cpu},
        ]}),
        table.SuiteOutcome("neighbors", "ok", "bench_neighbors.py", data={"rows": [
            {"kind": "water", "size": 10000, "atoms": 10000, "method": "vesin", "ours": True, "cpu_s": 0.3,
             "peak_mb": 180},
            {"kind": "water", "size": 10000, "atoms": 10000, "method": "cell_list", "ours": True, "cpu_s": 0.6,
             "peak_mb": 500},
            {"kind": "water", "size": 10000, "atoms": 10000, "method": "orb_scipy", "ours": False, "cpu_s": 0.45,
             "peak_mb": 90},
        ]}),
        table.SuiteOutcome("openmm", "ok", "bench_openmm.py", data={
            "atoms": 999, "model": "orb-v3-direct-inf-omat", "width": "reduced", "platform": "CPU", "peak_rss_mib": 900,
            "rows": [{"path": "direct call", "wall_s": 0.6, "cpu_s": 0.5}, {"path": "TorchForce", "wall_s": 0.5,
                     "cpu_s": 0.525}, {"path": "PythonForce", "wall_s": 0.7, "cpu_s": 0.6}]}),
        table.SuiteOutcome("lammps", "ok", "bench_lammps.py", data={"arch": "orb-v3-direct-20-omat", "rows": [
            {"system": "copper", "atoms": 864, "ranks": 1, "direct_s": 2.0, "direct_cpu_s": 1.0, "lammps_s": 1.0,
             "lammps_cpu_s": 1.25, "lammps_rss_gib": 1.0, "direct_rss_gib": 0.5}]}),
        table.SuiteOutcome("lammps", "failed", "bench_lammps.py", reason="exit status 1: RuntimeError: lmp crashed"),
        table.SuiteOutcome("batch", "unavailable", "bench_batch.py", reason="missing orb_models"),
    ]
    rows = table.report_rows(outcomes)
    text = table.render_markdown(rows, outcomes, ["- machine line"], "report.png")
    lines = text.splitlines()

    def row(*parts):
        found = [line for line in lines if line.startswith("| ") and all(p in line for p in parts)]
        assert len(found) == 1, (parts, found)
        return [cell.strip() for cell in found[0].strip("|").split("|")]

    direct20 = row("model", "direct-20")
    assert direct20[6] == "1.60" and direct20[8] == "**yes**" and direct20[9] == "300 / 310"
    assert row("model", "direct-inf, incl. graph")[8] == "**no**"  # faster, but more memory than orb-models
    assert "failed: MemoryError" in row("model", "direct-inf, network only")[2]
    knn = row("neighbors", "knn_scipy")
    assert knn[2] == "orb_md vesin" and knn[6] == "1.50" and knn[8] == "**no**"
    assert row("openmm", "direct call")[6] == "0.95" and row("openmm", "direct call")[8] == "**yes**"
    assert row("openmm", "PythonForce")[8] == "n/a here"  # the ≥ 2× target is for GPUs
    lammps = row("lammps", "copper 864 atoms")  # CPU times, not wall, where the suite gives both
    assert lammps[6] == "0.80" and lammps[8] == "**no**" and lammps[9] == "1024 / 512"
    assert row("lammps", "(whole suite)")[2] == "failed: exit status 1: RuntimeError: lmp crashed"
    assert row("batch", "(whole suite)")[8] == "unavailable"
    assert "- machine line" in lines
    plot = tmp_path / "report.png"
    table.render_plot(rows, plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_report_runs_a_suite_and_records_failures(tmp_path):
    """A real (small) neighbour suite through `orb-md bench --report`, plus a suite that fails on its arguments."""
    out = tmp_path / "results"
    code = main(["bench", "--report", "--", "--suites", "neighbors", "model", "--out", str(out), "--work",
                 str(tmp_path / "work"), "--suite-args", "neighbors", "--sizes 300 --kinds water --methods vesin "
                 "orb_scipy --repeats 1", "--suite-args", "model", "--threads many"])
    assert code == 0
    text = (out / "report.md").read_text()
    knn = [line for line in text.splitlines() if line.startswith("| neighbors | water 300 atoms")]
    assert len(knn) == 1 and "orb-models 0.5.5 knn_scipy" in knn[0] and " s CPU |" in knn[0]
    assert "| model | (whole suite) | failed: exit status 2:" in text and "invalid int value: 'many'" in text
    assert "Load average" in text and "torch 2." in text
    assert (out / "report.png").is_file() and (tmp_path / "work" / "neighbors.json").is_file()
