"""How close a model call is to this CPU's matrix-multiply floor, for orb_md and orb-models 0.5.5.

For one model and system of ``bench_model.py`` (graph construction included, same weights and threads):
  * the GEMM work of one call of each implementation, counted from torch.profiler's recorded shapes
    (``mm``, ``addmm``, ``addmm_``, ``bmm``, ``baddbmm``: 2 M N K FLOP each), and the profiled GEMM time;
  * this CPU's float32 GEMM throughput on the backbone's dominant shape (2048 x 1024 by 1024 x 1024), at each
    float32 matmul precision torch offers, with its error against float64, and the time of linear + SiLU there,
    unfused and fused;
  * the ratios that follow: measured (orb-models / orb_md wall time), and the bound if orb_md's non-GEMM time
    were zero (orb-models wall time / orb_md's GEMM FLOP at the measured peak).

Usage: python benchmarks/bench_gemm_floor.py [--system cu] [--model conservative-20] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
GEMMS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm")


def gemm_flop(name: str, shapes: list[list[int]]) -> float:
    """2 M N K of one GEMM call from its recorded input shapes."""
    if name == "aten::mm":
        (m, k), (_, n) = shapes[0], shapes[1]
        return 2.0 * m * n * k
    if name in ("aten::addmm", "aten::addmm_"):
        (m, k), (_, n) = shapes[1], shapes[2]
        return 2.0 * m * n * k
    a, b = (shapes[0], shapes[1]) if name == "aten::bmm" else (shapes[1], shapes[2])
    return 2.0 * a[0] * a[1] * a[2] * b[2]


def profile_gemms(run: Callable[[], object]) -> tuple[float, float, int]:
    """(GEMM FLOP, GEMM seconds, GEMM calls) of one call of ``run``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        run()
    flop = seconds = 0.0
    calls = 0
    for event in prof.events():
        if event.name in GEMMS:
            flop += gemm_flop(event.name, event.input_shapes)
            seconds += event.self_cpu_time_total / 1e6
            calls += 1
    return flop, seconds, calls


def best_time(run: Callable[[], object], repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def gemm_throughput(repeats: int = 20) -> list[tuple[str, float, float]]:
    """(precision, GFLOP/s, max relative error vs float64) of the backbone's 2048x1024x1024 product."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(2048, 1024, generator=gen)
    b = torch.randn(1024, 1024, generator=gen) / 32
    exact = a.double() @ b.double()
    scale = exact.abs().max()
    previous = torch.get_float32_matmul_precision()
    rows = []
    try:
        for precision in ("highest", "high", "medium"):
            torch.set_float32_matmul_precision(precision)
            seconds = best_time(lambda: a @ b, repeats)
            error = float(((a @ b).double() - exact).abs().max() / scale)
            rows.append((precision, 2 * 2048 * 1024 * 1024 / seconds / 1e9, error))
    finally:
        torch.set_float32_matmul_precision(previous)
    return rows


def fused_silu_linear() -> tuple[float, float]:
    """Milliseconds of ``silu(linear(x))`` unfused (MKL GEMM, then SiLU) and fused (oneDNN's linear with a swish
    post-op, the only fused form PyTorch offers on the CPU) on the backbone's dominant shape."""
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 1024, generator=gen)
    weight, bias = torch.randn(1024, 1024, generator=gen) / 32, torch.randn(1024, generator=gen)
    unfused = best_time(lambda: F.silu(F.linear(x, weight, bias)), 20)
    fused = best_time(lambda: torch.ops.mkldnn._linear_pointwise(x, weight, bias, "swish", [], ""), 20)
    return unfused * 1e3, fused * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", default="cu", choices=["cu", "water"])
    parser.add_argument("--model", default="conservative-20")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_model import build_system, versions
    from orb_models.forcefield.atomic_system import SystemConfig, ase_atoms_to_atom_graphs

    from orb_md import build_model
    from orb_md.batch import atoms_to_batch, evaluate
    from tests.orb_reference import default_dtype, orb_models_twin

    torch.set_num_threads(args.threads)
    dtype = torch.float32
    atoms = build_system(args.system)
    model = build_model(f"orb-v3-{args.model}-omat", dtype=dtype)
    twin = orb_models_twin(model)
    config = SystemConfig(radius=model.config.cutoff, max_num_neighbors=model.config.max_neighbors)

    def run_orb_md() -> object:
        return evaluate(model, atoms_to_batch([atoms], dtype=dtype))

    def run_orb_models() -> object:
        with default_dtype(dtype), torch.set_grad_enabled(model.conservative):
            graph = ase_atoms_to_atom_graphs(atoms, config, output_dtype=dtype)
            return twin.predict(graph)

    print(versions())
    print(f"{args.model}, {args.system} ({len(atoms)} atoms), float32, threads={args.threads}, "
          f"wall = min of {args.repeats}")
    print("\n| precision | GFLOP/s (2048x1024 @ 1024x1024) | max error / max value |\n|---|---|---|")
    throughput = gemm_throughput()
    for precision, gflops, error in throughput:
        print(f"| {precision} | {gflops:.0f} | {error:.1e} |")
    peak = throughput[0][1] * 1e9
    unfused_ms, fused_ms = fused_silu_linear()
    print(f"\nsilu(linear(x)) on the same shape: {unfused_ms:.1f} ms unfused, {fused_ms:.1f} ms fused (oneDNN swish)")

    print("\n| implementation | wall s | GEMM calls | GEMM TFLOP | GEMM s (profiled) | GEMM GFLOP/s | "
          "GEMM TFLOP / peak, s | other s (wall - GEMM) |\n|---|---|---|---|---|---|---|---|")
    results = {}
    for name, run in (("orb_md", run_orb_md), ("orb-models", run_orb_models)):
        wall = best_time(run, args.repeats)
        flop, gemm_s, calls = profile_gemms(run)
        results[name] = (wall, flop)
        print(f"| {name} | {wall:.2f} | {calls} | {flop / 1e12:.3f} | {gemm_s:.2f} | {flop / gemm_s / 1e9:.0f} "
              f"| {flop / peak:.2f} | {max(wall - gemm_s, 0.0):.2f} |")
    (wall_md, flop_md), (wall_ref, flop_ref) = results["orb_md"], results["orb-models"]
    print(f"\nmeasured ratio (orb-models / orb_md wall): {wall_ref / wall_md:.2f}")
    print(f"GEMM work ratio (orb-models / orb_md FLOP): {flop_ref / flop_md:.2f}")
    print(f"bound if orb_md's non-GEMM time were zero (orb-models wall / orb_md FLOP at peak): "
          f"{wall_ref / (flop_md / peak):.2f}")


if __name__ == "__main__":
    main()
