"""scripts/gpu_check.sh and benchmarks/bench_gpu.py on a machine without a GPU: the check says "no GPU" and fails
instead of pretending; the benchmark script's smoke mode (tiny sizes, reduced width, CPU) runs every stage and writes
its report, so the script is known to work before GPU time is spent on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.benchmark_scripts import load_benchmark

REPO = Path(__file__).resolve().parents[1]
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")


@no_gpu
def test_gpu_check_says_no_gpu_and_fails() -> None:
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no GPU" in proc.stdout and "nothing was run" in proc.stdout


@no_gpu
def test_bench_gpu_refuses_cuda_without_a_gpu(tmp_path, capsys) -> None:
    bench = load_benchmark("bench_gpu")
    assert bench.main(["--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "no GPU" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


@pytest.fixture
def matmul_precision():
    """The benchmark sets float32-high process-wide (as a GPU run should); later tests get the previous mode back."""
    previous = torch.get_float32_matmul_precision()
    yield
    torch.set_float32_matmul_precision(previous)


def test_bench_gpu_quick_on_cpu_writes_every_stage(tmp_path, one_thread, matmul_precision) -> None:
    bench = load_benchmark("bench_gpu")
    assert bench.main(["--device", "cpu", "--quick", "--out", str(tmp_path), "--repeats", "1", "--openmm-steps", "1"]) == 0
    result = json.loads((tmp_path / "gpu-quick.json").read_text())
    assert result["device_name"].startswith("CPU") and result["quick"]
    assert {row["model"] for row in result["a_model_steps"]} == set(bench.PAPER_H200_STEPS_PER_S)
    assert all(row["steps_per_s"] > 0 for row in result["a_model_steps"])
    assert result["b_large_direct"]["atoms"] >= 2000 and result["b_large_direct"]["time_s"] > 0
    assert set(result["c_openmm"]["paths"]) == {"TorchForce", "TorchForce + CUDA graphs", "PythonForce"}
    assert [row["atoms"] for row in result["d_graph"]] == [108, 1008]
    assert all("fixed_capacity" in row["seconds"] and "vesin" in row["seconds"] for row in result["d_graph"])
    report = (tmp_path / "gpu-quick.md").read_text()
    assert "## (d) graph construction" in report and "CPU" in report


def test_gpu_report_adds_test_outcomes(tmp_path) -> None:
    """The report stage reads pytest's JUnit XML: failures count, a missing file is named, properties are kept."""
    (tmp_path / "gpu.json").write_text(json.dumps({"device_name": "test"}))
    xml = tmp_path / "gpu-tests.xml"
    xml.write_text('<testsuites><testsuite><testcase classname="a" name="ok" time="1.5"><properties>'
                   '<property name="float32_high_forces_abs" value="0.002"/></properties></testcase>'
                   '<testcase classname="a" name="bad" time="0.1"><failure message="assert 1 == 2">x</failure></testcase>'
                   '</testsuite></testsuites>')
    report = load_benchmark("gpu_report")
    assert report.main([str(tmp_path), str(xml), str(tmp_path / "gpu-lammps-tests.xml")]) == 1
    tests = json.loads((tmp_path / "gpu.json").read_text())["tests"]
    assert [t["outcome"] for t in tests] == ["passed", "failed"]
    assert tests[0]["properties"] == {"float32_high_forces_abs": "0.002"}
    text = (tmp_path / "gpu.md").read_text()
    assert "gpu-lammps-tests.xml: not written" in text and "assert 1 == 2" in text


def test_gpu_report_fails_when_every_test_was_skipped(tmp_path) -> None:
    """All skipped (e.g. the GPU was not seen) is not a GPU check that passed."""
    xml = tmp_path / "gpu-tests.xml"
    xml.write_text('<testsuites><testsuite><testcase classname="a" name="s" time="0">'
                   '<skipped message="not run: no CUDA GPU"/></testcase></testsuite></testsuites>')
    assert load_benchmark("gpu_report").main([str(tmp_path), str(xml)]) == 1
    xml.write_text('<testsuites><testsuite><testcase classname="a" name="ok" time="0"/></testsuite></testsuites>')
    assert load_benchmark("gpu_report").main([str(tmp_path), str(xml)]) == 0


def test_torch_abi_shim_defines_the_torch_2_9_symbol(tmp_path) -> None:
    """The shim compiles here and exports c10_cuda_check_implementation with an int line number (the symbol
    openmm-torch 1.5's CUDA plugin needs), calling the unsigned one (torch 2.11's)."""
    from shutil import which

    if which("g++") is None or which("nm") is None:
        pytest.skip("no g++/nm here")
    library = tmp_path / "libshim.so"
    subprocess.run(["g++", "-O2", "-shared", "-fPIC", "-o", str(library), str(REPO / "scripts" / "gpu" / "torch_abi_shim.cpp")],
                   check=True, timeout=120)
    symbols = subprocess.run(["nm", "-D", str(library)], capture_output=True, text=True, check=True).stdout
    assert " T _ZN3c104cuda29c10_cuda_check_implementationEiPKcS2_ib" in symbols
    assert " U _ZN3c104cuda29c10_cuda_check_implementationEiPKcS2_jb" in symbols
