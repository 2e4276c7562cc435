"""The neighbour graph's share of a whole force step on the CPU, per graph path, measured in the same run.

A step is ``orb_md.batch.evaluate`` (graph rebuilt, model forward, forces and stress; the conservative model's
backward included) on one system; the graph alone is ``neighbor_list`` with the model's cutoff and k. Systems:
the 1029-atom water box and 864-atom rattled fcc Cu of bench_model.py. Models: full-width
``build_model(name, seed=0)``. Each graph path runs in its own subprocess (a path may be chosen by the environment),
with ``--threads`` torch threads. Times are process CPU times (all threads; robust on a shared machine), the
minimum over the repeats. Printed: step, graph, graph / step, and each path's step over the first path's.

Usage: nice python benchmarks/bench_graph_in_step.py [--graphs vesin brute_force] [--threads 1 2]
       [--models orb-v3-direct-20-omat orb-v3-conservative-20-omat] [--systems water cu] [--repeats 3]
"""

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

# graph path -> (neighbor_list backend, extra environment of its subprocess)
GRAPHS = {"vesin": ("vesin", {}), "brute_force": ("brute_force", {}), "auto": ("auto", {})}


def worker(system: str, model_name: str, graph: str, threads: int, repeats: int) -> dict:
    import torch
    from bench_model import build_system

    import orb_md
    import orb_md.batch as batch_module
    from orb_md.graph import neighbor_list

    torch.set_num_threads(threads)
    backend = GRAPHS[graph][0]
    batch_module.neighbor_list = functools.partial(neighbor_list, backend=backend)  # the step's graph path
    model = orb_md.build_model(model_name, seed=0)
    atoms = build_system(system)
    batch = batch_module.atoms_to_batch([atoms], dtype=torch.float32, device=torch.device("cpu"))
    cutoff, k = model.config.cutoff, model.config.max_neighbors

    def best(call, n: int) -> float:
        call()  # warm-up
        times = []
        for _ in range(n):
            start = time.process_time()
            call()
            times.append(time.process_time() - start)
        return min(times)

    step = best(lambda: batch_module.evaluate(model, batch), repeats)
    graph_s = best(lambda: neighbor_list(batch.positions, batch.cell, batch.pbc, batch.system_index, cutoff, k,
                                         backend=backend), 10 * repeats)
    return {"atoms": len(atoms), "step_s": step, "graph_s": graph_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", nargs="+", default=["vesin"], choices=sorted(GRAPHS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["orb-v3-direct-20-omat", "orb-v3-conservative-20-omat"])
    parser.add_argument("--systems", nargs="+", default=["water", "cu"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        system, model, graph, threads = args.worker
        print(json.dumps(worker(system, model, graph, int(threads), args.repeats)))
        return
    print(f"load average {os.getloadavg()}; min over {args.repeats} steps (graph: {10 * args.repeats} calls)")
    print(f"{'system':>6} {'model':>28} {'thr':>3} {'graph':>12} {'step [s]':>9} {'graph [ms]':>10} "
          f"{'graph/step':>10} {'step/first':>10}")
    for system in args.systems:
        for model in args.models:
            for threads in args.threads:
                first = None
                for graph in args.graphs:
                    env = dict(os.environ, OMP_NUM_THREADS=str(threads), **GRAPHS[graph][1])
                    out = subprocess.run(
                        [sys.executable, __file__, "--repeats", str(args.repeats), "--worker", system, model, graph,
                         str(threads)], env=env, capture_output=True, text=True, check=True,
                    ).stdout.splitlines()[-1]
                    row = json.loads(out)
                    first = first or row["step_s"]
                    print(f"{system:>6} {model:>28} {threads:>3} {graph:>12} {row['step_s']:>9.3f} "
                          f"{1e3 * row['graph_s']:>10.2f} {100 * row['graph_s'] / row['step_s']:>9.2f}% "
                          f"{row['step_s'] / first:>10.3f}", flush=True)
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
