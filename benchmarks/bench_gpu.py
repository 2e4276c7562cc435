"""GPU benchmarks of orb_md, each an absolute time or a ratio measured in one run, with the device's name.

    python benchmarks/bench_gpu.py [--device cuda] [--out benchmarks/results] [--pdb .gpu/3ks3.pdb]
    python benchmarks/bench_gpu.py --device cpu --quick     # smoke run: tiny sizes, reduced width (tests)

(a) energy + forces at ~1,000 atoms (fcc Cu, benchmarks/bench_model.py's "cu" system) for the four omat
    architectures at full width, ``evaluate`` = graph construction + model, float32-high: steps/s beside the
    Orb-v3 paper's H200 figures, which exclude the graph;
(b) one direct-20 step on ~100,000 atoms of fcc Cu: time and peak GPU memory (torch's allocator) beside the paper's
    < 0.5 s and 32.8 GB;
(c) solvated carbonic anhydrase II (PDB 3KS3 prepared by examples/carbonic_anhydrase/prepare.py, ~25k atoms) in
    OpenMM on the CUDA platform, orb-v3-direct-inf-omat architecture (full width, float32): ns/day (0.5 fs) of
    TorchForce with and without CUDA graphs and of the PythonForce path, in one run, and torch's peak GPU memory;
(d) graph construction (6 Å, 20 nearest) at 1k/10k/100k atoms of fcc Cu for each backend usable on the device,
    the fixed-capacity list included: median time and the fastest backend per size (the data for ``auto``).
Times: median of ``--repeats`` calls after 2 warm-up calls, each ended by a device synchronisation. Writes
gpu.json (or gpu-quick.json; rewritten after every stage) and gpu.md into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench_model import build_system  # noqa: E402

from orb_md import build_model  # noqa: E402
from orb_md.batch import atoms_to_batch, evaluate  # noqa: E402
from orb_md.precision import apply_precision  # noqa: E402

PAPER_H200_STEPS_PER_S = {"orb-v3-direct-20-omat": 216.5, "orb-v3-direct-inf-omat": 125.0,
                          "orb-v3-conservative-20-omat": 41.2, "orb-v3-conservative-inf-omat": 28.1}
PAPER_100K = {"time_s": 0.5, "memory_gb": 32.8, "target_memory_gb": 16.0}
TIME_STEP_FS = 0.5
TINY = {"latent_dim": 16, "mlp_hidden_dim": 32, "num_message_passing": 2}
UNMEASURED_ON_DEVICE = {  # CUDA backends whose wheels cannot travel to the device (64 MiB per call, no registry)
    "cuML RBC": "libcuml-cu13 26.10 alone is 65.8 MB, before cudf, raft and rmm",
}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(call: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median wall time (s) of ``call`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def fcc_copper(atoms: int):
    """fcc Cu (a = 3.61 Å, rattled 0.05 Å) of about ``atoms`` atoms."""
    from ase.build import bulk

    n = max(1, round((atoms / 4) ** (1 / 3)))
    crystal = bulk("Cu", "fcc", a=3.61, cubic=True) * (n, n, max(1, round(atoms / (4 * n * n))))
    crystal.rattle(0.05, seed=0)
    return crystal


def model_steps(device: torch.device, quick: bool, repeats: int) -> list[dict]:
    """(a) steps/s of evaluate (graph + energy + forces) at ~1k atoms, per architecture."""
    dtype = apply_precision("float32-high")
    atoms = fcc_copper(108) if quick else build_system("cu")
    rows = []
    for name, paper in PAPER_H200_STEPS_PER_S.items():
        model = build_model(name, seed=0, dtype=dtype, device=device, **(TINY if quick else {}))
        batch = atoms_to_batch([atoms], dtype=dtype, device=device)
        reset_peak(device)
        seconds = median_time(lambda: evaluate(model, batch, forces=True, stress=False), device, repeats)
        rows.append({"model": name, "atoms": len(atoms), "steps_per_s": 1.0 / seconds, "paper_h200_steps_per_s": paper,
                     "peak_gib": peak_gib(device)})
    return rows


def large_direct(device: torch.device, quick: bool) -> dict:
    """(b) one direct-20 step on ~100k atoms: time and peak memory."""
    dtype = apply_precision("float32-high")
    atoms = fcc_copper(2000 if quick else 100_000)
    model = build_model("orb-v3-direct-20-omat", seed=0, dtype=dtype, device=device, **(TINY if quick else {}))
    batch = atoms_to_batch([atoms], dtype=dtype, device=device)
    reset_peak(device)
    seconds = median_time(lambda: evaluate(model, batch, forces=True, stress=False), device, repeats=3, warmup=1)
    return {"atoms": len(atoms), "time_s": seconds, "peak_gib": peak_gib(device), **{f"paper_{k}": v for k, v in PAPER_100K.items()}}


def openmm_rates(device: torch.device, quick: bool, pdb: Path, steps: int) -> dict:
    """(c) ns/day of TorchForce (with and without CUDA graphs) and PythonForce on solvated CA II (or, --quick, water)."""
    from bench_openmm import openmm_step, solvated_caii, water_box

    platform_name = "CUDA" if device.type == "cuda" else "CPU"
    modeller = water_box(300) if quick else solvated_caii(pdb)
    model = build_model("orb-v3-direct-inf-omat", seed=0, dtype=torch.float32, device=device, **(TINY if quick else {}))
    reset_peak(device)
    paths = {
        "TorchForce": openmm_step(model, modeller, "torchforce", platform_name, 1),
        "TorchForce + CUDA graphs": openmm_step(model, modeller, "torchforce", platform_name, 1, cudaGraphs=True),
        "PythonForce": openmm_step(model, modeller, "pythonforce", platform_name, 1),
    }
    rates = {}
    for name, step in paths.items():
        seconds = median_time(step, torch.device("cpu"), repeats=steps, warmup=3)  # the step waits for the GPU itself
        rates[name] = {"s_per_step": seconds, "ns_per_day": TIME_STEP_FS * 1e-6 * 86400 / seconds}
    return {"atoms": modeller.topology.getNumAtoms(), "platform": platform_name, "paths": rates,
            "torchforce_over_pythonforce": rates["PythonForce"]["s_per_step"] / rates["TorchForce"]["s_per_step"],
            "graphs_over_pythonforce": rates["PythonForce"]["s_per_step"] / rates["TorchForce + CUDA graphs"]["s_per_step"],
            "peak_gib": peak_gib(device)}


def graph_times(device: torch.device, quick: bool, repeats: int) -> list[dict]:
    """(d) neighbour-list construction per backend and size."""
    from orb_md.graph import FixedCapacityNeighborList, neighbor_list
    from orb_md.graph.backends import usable_backends

    rows = []
    for target in (100, 1000) if quick else (1000, 10_000, 100_000):
        atoms = fcc_copper(target)
        positions = torch.tensor(atoms.positions, dtype=torch.float32, device=device)
        cell = torch.tensor(atoms.cell.array, dtype=torch.float32, device=device)[None]
        pbc = torch.ones(1, 3, dtype=torch.bool, device=device)
        index = torch.zeros(len(atoms), dtype=torch.int64, device=device)
        calls = {}
        for backend in usable_backends(device):
            if backend == "auto" or (backend == "brute_force" and len(atoms) > 1000):
                continue
            calls[backend] = lambda b=backend: neighbor_list(positions, cell, pbc, index, 6.0, 20, backend=b)
        fixed = FixedCapacityNeighborList(len(atoms), 6.0, 20, cell=cell[0].double().cpu()).to(device)
        calls["fixed_capacity"] = lambda: fixed(positions, cell)
        times = {name: median_time(call, device, repeats) for name, call in calls.items()}
        rows.append({"atoms": len(atoms), "seconds": times, "fastest": min(times, key=times.get)})
    return rows


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} visible)"


def markdown(result: dict) -> str:
    """gpu.md: the tables of one run."""
    lines = [f"# GPU benchmarks ({result['date']})", "", f"Device: **{result['device_name']}**; torch {result['torch']}; "
             f"load average before {result['load_before']:.2f}; command: `{result['command']}`", "",
             "## (a) evaluate (graph + energy + forces), float32-high", "",
             "| model | atoms | steps/s | paper H200 (graph excluded) | peak GiB |", "|---|---|---|---|---|"]
    for row in result.get("a_model_steps", []):
        lines.append(f"| {row['model']} | {row['atoms']} | {row['steps_per_s']:.1f} | {row['paper_h200_steps_per_s']} | {_gib(row['peak_gib'])} |")
    if "b_large_direct" in result:
        b = result["b_large_direct"]
        lines += ["", "## (b) one orb-v3-direct-20-omat step", "", f"{b['atoms']} atoms: {b['time_s']:.3f} s, peak "
                  f"{_gib(b['peak_gib'])} GiB (paper: < {b['paper_time_s']} s, {b['paper_memory_gb']} GB; target ≤ "
                  f"{b['paper_target_memory_gb']} GB)"]
    if "c_openmm" in result:
        c = result["c_openmm"]
        lines += ["", f"## (c) OpenMM {c['platform']} platform, {c['atoms']} atoms, orb-v3-direct-inf-omat", "",
                  "| path | s/step | ns/day |", "|---|---|---|"]
        lines += [f"| {name} | {p['s_per_step']:.4f} | {p['ns_per_day']:.3f} |" for name, p in c["paths"].items()]
        lines += ["", f"TorchForce / PythonForce speed-up {c['torchforce_over_pythonforce']:.2f}x (with CUDA graphs "
                  f"{c['graphs_over_pythonforce']:.2f}x; target ≥ 2x); torch's peak {_gib(c['peak_gib'])} GiB"]
    lines += ["", "## (d) graph construction (6 Å, 20 nearest), median s", ""]
    backends = sorted({name for row in result.get("d_graph", []) for name in row["seconds"]})
    lines += ["| atoms | " + " | ".join(backends) + " | fastest |", "|---" * (len(backends) + 2) + "|"]
    for row in result.get("d_graph", []):
        cells = [f"{row['seconds'][b]:.5f}" if b in row["seconds"] else "–" for b in backends]
        lines.append(f"| {row['atoms']} | " + " | ".join(cells) + f" | {row['fastest']} |")
    if result["device"].startswith("cuda"):
        lines += [""] + [f"Not measured: {name} ({why})." for name, why in UNMEASURED_ON_DEVICE.items() if name not in backends]
    return "\n".join(lines) + "\n"


def _gib(value: float | None) -> str:
    return "n/a (CPU)" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and reduced width (a smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--pdb", type=Path, default=ROOT / ".gpu" / "3ks3.pdb", help="PDB 3KS3 for (c)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--openmm-steps", type=int, default=20)
    parser.add_argument("--skip", nargs="*", default=[], choices=("a", "b", "c", "d"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no GPU (torch.cuda.is_available() is False); use --device cpu --quick for a smoke run")
        return 2
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": str(device),
              "device_name": device_name(device), "torch": torch.__version__, "quick": args.quick,
              "load_before": os.getloadavg()[0], "command": "python benchmarks/bench_gpu.py " + " ".join(argv or sys.argv[1:])}
    stages = {"a": ("a_model_steps", lambda: model_steps(device, args.quick, args.repeats)),
              "b": ("b_large_direct", lambda: large_direct(device, args.quick)),
              "c": ("c_openmm", lambda: openmm_rates(device, args.quick, args.pdb, args.openmm_steps)),
              "d": ("d_graph", lambda: graph_times(device, args.quick, args.repeats))}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "gpu-quick" if args.quick else "gpu"
    for key, (name, run) in stages.items():
        if key in args.skip:
            continue
        start = time.perf_counter()
        result[name] = run()
        print(f"({key}) {time.perf_counter() - start:.1f} s: {json.dumps(result[name])}", flush=True)
        (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1))  # after each stage: a stopped run keeps some
    (args.out / f"{stem}.md").write_text(markdown(result))
    print(f"wrote {args.out / stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
