"""Model benchmark: energy + forces + stress at ~1,000 atoms, orb_md against orb-models 0.5.5.

Systems (periodic, ~1k atoms):
  * ``cu``    rattled fcc Cu, a = 3.61 Å, cubic cell x (6, 6, 7) = 1008 atoms, rattle 0.05 Å (seed 0);
  * ``water`` 7x7x7 grid of randomly oriented H2O at 1.0 g/cm³ (343 molecules = 1029 atoms, seed 0).
Models: orb-v3-{direct,conservative}-{20,inf}-omat at full released width, float32, random weights
(``build_model(name, dtype=torch.float32)``); orb-models 0.5.5 gets the same weights
(``tests/orb_reference.orb_models_twin``).

Variants:
  * ``full``: graph construction included. orb_md: ``evaluate(model, atoms_to_batch([atoms]))``;
    orb-models: ``ase_atoms_to_atom_graphs`` (its CPU default edge method, knn_scipy) + ``predict``.
  * ``net``: the network alone on the same prebuilt graph (orb-models' graph for both).
  * ``autograd``: as ``full``, but orb_md's weights require gradients, so conservative forces go through
    autograd's own backward instead of the hand-written one of frozen models (``orb_md.model.frozen``);
    orb-models runs as in ``full``. Only position and strain gradients are asked for either way.
Both implementations run with autograd enabled only for conservative models (as ``evaluate`` does).

Every (system, model, implementation, variant) runs in a fresh subprocess: time = min over the
timed repeats (wall clock, and process CPU time = user+sys of all threads, which is far less sensitive
to other jobs on a shared machine) after ``--warmup`` untimed calls; memory = peak resident set during the evaluations
minus the resident set just before them (the high-water mark is reset via /proc/self/clear_refs
after the model and inputs are built, so construction transients do not count; falls back to
ru_maxrss). Ratios are orb-models / orb_md (> 1 means orb_md is faster / leaner).

Usage: nice python benchmarks/bench_model.py [--quick] [--threads 2] [--systems cu water]
       [--models direct-20 ...] [--variants full net autograd] [--warmup 1] [--repeats 2] [--tuned-malloc]
       python benchmarks/bench_model.py --chunks 512 1024 2048 4096 0 ...   (orb_md alone: edge-chunk sweep)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("direct-20", "direct-inf", "conservative-20", "conservative-inf")
IMPLS = ("orb_md", "orb-models")


def build_system(kind: str):
    from ase import Atoms
    from ase.build import bulk, molecule

    if kind == "cu":
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (6, 6, 7)
        atoms.rattle(0.05, seed=0)
        return atoms
    if kind == "water":
        n = 7
        volume = n**3 * 18.015 / 0.60221  # Å^3 at 1 g/cm^3
        box = volume ** (1 / 3)
        rng = np.random.default_rng(0)
        water = molecule("H2O")
        water.positions -= water.get_center_of_mass()
        positions, symbols = [], []
        for i in range(n):
            for j in range(n):
                for k in range(n):
                    q = rng.normal(size=4)
                    q /= np.linalg.norm(q)
                    a, b, c, d = q
                    rot = np.array([
                        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                        [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
                        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
                    ])
                    centre = (np.array([i, j, k]) + 0.5 + rng.uniform(-0.1, 0.1, 3)) * box / n
                    positions.append(water.positions @ rot.T + centre)
                    symbols.extend(water.get_chemical_symbols())
        return Atoms(symbols, positions=np.concatenate(positions), cell=[box] * 3, pbc=True)
    raise ValueError(kind)


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def worker(args: argparse.Namespace) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from orb_models.forcefield.atomic_system import SystemConfig, ase_atoms_to_atom_graphs

    from orb_md import build_model
    from orb_md.batch import atoms_to_batch, evaluate
    from tests.orb_reference import default_dtype, orb_md_predict_on_graph, orb_models_twin

    torch.set_num_threads(args.threads)
    dtype = torch.float32
    name = f"orb-v3-{args.model}-omat"
    atoms = build_system(args.system)
    model = build_model(name, dtype=dtype)
    conservative = model.conservative
    config = SystemConfig(radius=model.config.cutoff, max_num_neighbors=model.config.max_neighbors)

    def orb_graph():
        with default_dtype(dtype):
            return ase_atoms_to_atom_graphs(atoms, config, output_dtype=dtype)

    if args.impl == "orb-models":
        twin = orb_models_twin(model)
        del model
        gc.collect()

        def predict(graph):
            with default_dtype(dtype), torch.set_grad_enabled(conservative):
                out = twin.predict(graph)
            return float(out["energy"].detach().sum())

        if args.variant in ("full", "autograd"):
            def run():
                return predict(orb_graph())
        else:
            graph = orb_graph()

            def run():
                return predict(graph)
    else:
        model.model.edge_chunk = args.chunk
        if args.variant == "autograd":
            model.requires_grad_(True)
        if args.variant in ("full", "autograd"):
            def run():
                return float(evaluate(model, atoms_to_batch([atoms], dtype=dtype))["energy"].sum())
        else:
            graph = orb_graph()
            pbc = torch.tensor(atoms.pbc)

            def run():
                with torch.set_grad_enabled(conservative):
                    return float(orb_md_predict_on_graph(model, graph, pbc)["energy"].sum())

    gc.collect()
    baseline = _rss_kb("VmRSS")
    reset = _reset_peak()
    times, cpu_times = [], []
    energy = float("nan")
    for i in range(args.warmup + args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        energy = run()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if i >= args.warmup:
            times.append(elapsed)
            cpu_times.append(cpu)
    peak = _rss_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "time": min(times), "times": times, "cpu": min(cpu_times), "energy": energy,
        "peak_mb": (peak - baseline) / 1024, "baseline_mb": baseline / 1024, "atoms": len(atoms),
        "hwm_reset": reset,
    }


TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def run_case(args, system, model, impl, variant, chunk: int = 0) -> dict:
    cmd = [
        sys.executable, __file__, "--worker", "--system", system, "--model", model, "--impl", impl,
        "--variant", variant, "--threads", str(args.threads), "--warmup", str(args.warmup),
        "--repeats", str(args.repeats), "--chunk", str(chunk),
    ]
    env = {**os.environ, **TUNED_MALLOC} if args.tuned_malloc else None
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.stderr.write(proc.stderr)
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def versions() -> str:
    import importlib.metadata as md

    import torch

    cpu = platform.processor()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:
        pass
    return (
        f"CPU {cpu}, {os.cpu_count()} cores; python {platform.python_version()}, torch {torch.__version__}, "
        f"orb-models {md.version('orb-models')}, numpy {np.__version__}, ase {md.version('ase')}"
    )


def sweep_chunks(args: argparse.Namespace) -> None:
    """orb_md's time and memory against the number of edges per edge-MLP call (graph included)."""
    print("| system | model | edge chunk | wall s | CPU s | MB |")
    print("|" + "---|" * 6, flush=True)
    for system in args.systems:
        for model in args.models:
            for chunk in args.chunks:
                r = run_case(args, system, model, "orb_md", "full", chunk)
                if "error" in r:
                    print(f"| {system} | {model} | {chunk} | {r['error']} |", flush=True)
                    continue
                print(f"| {system} ({r['atoms']}) | {model} | {chunk or 'default'} | {r['time']:.2f} "
                      f"| {r['cpu']:.2f} | {r['peak_mb']:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--system", default="cu")
    parser.add_argument("--model", default="direct-20")
    parser.add_argument("--impl", default="orb_md")
    parser.add_argument("--variant", default="full")
    parser.add_argument("--systems", nargs="+", default=["cu", "water"])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--variants", nargs="+", default=["full", "net"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1 warm-up + 1 timed call; water: direct-20 full only")
    parser.add_argument("--json", metavar="PATH", help="also write the table's rows to this JSON file")
    parser.add_argument("--chunk", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--chunks", type=int, nargs="+", metavar="EDGES",
                        help="instead of the comparison: orb_md alone at each edge-chunk size (0: the default)")
    parser.add_argument("--tuned-malloc", action="store_true",
                        help="run every worker with glibc's mmap and trim thresholds at 1 GiB (large tensors "
                             "then reuse freed heap memory instead of being paged in afresh on every call)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.quick:
        args.warmup, args.repeats = 1, 1
    print(versions())
    print(f"threads={args.threads} warmup={args.warmup} repeats={args.repeats} (time = min of repeats)"
          + ("; glibc malloc thresholds 1 GiB" if args.tuned_malloc else "; default glibc malloc"))
    if args.chunks:
        sweep_chunks(args)
        return
    header = (
        "| system | model | variant | orb_md wall s | orb-models wall s | wall ratio | orb_md CPU s "
        "| orb-models CPU s | CPU ratio | orb_md MB | orb-models MB | mem ratio | ΔE/E |"
    )
    print(header)
    print("|" + "---|" * 13, flush=True)
    rows = []
    for system in args.systems:
        for variant in args.variants:
            for model in args.models:
                if args.quick and system == "water" and (variant == "net" or model != "direct-20"):
                    continue
                res = {impl: run_case(args, system, model, impl, variant) for impl in IMPLS}
                a, b = res["orb_md"], res["orb-models"]
                rows.append({"system": system, "atoms": a.get("atoms", b.get("atoms")), "model": model,
                             "variant": variant, **res})
                if "error" in a or "error" in b:
                    print(f"| {system} | {model} | {variant} | {a.get('error', '')} | {b.get('error', '')} |", flush=True)
                    continue
                de = abs(a["energy"] - b["energy"]) / max(abs(b["energy"]), 1e-12)
                print(
                    f"| {system} ({a['atoms']}) | {model} | {variant} | {a['time']:.2f} | {b['time']:.2f} "
                    f"| {b['time'] / a['time']:.2f} | {a['cpu']:.2f} | {b['cpu']:.2f} | {b['cpu'] / a['cpu']:.2f} "
                    f"| {a['peak_mb']:.0f} | {b['peak_mb']:.0f} "
                    f"| {b['peak_mb'] / max(a['peak_mb'], 1e-9):.2f} | {de:.1e} |",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
