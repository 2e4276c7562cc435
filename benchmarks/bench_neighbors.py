"""Neighbour-list benchmark: time and peak memory per backend, against ASE and orb-models 0.5.5.

Systems: random positions at water number density (0.1 atoms/Å³, cubic) and rattled fcc Cu (a = 3.61 Å),
~1k, 10k and 100k atoms; cutoff 6 Å, k = 20. Each (system, method) runs in a fresh subprocess so the peak
resident memory (ru_maxrss minus the level after building the inputs) belongs to that method alone.
Ratios are ASE time / ours and orb time / ours for the fastest orb_md backend (">1" = orb_md faster).

Usage: nice python benchmarks/bench_neighbors.py [--sizes 1000 10000 100000] [--threads 1] [--kinds water cu_fcc]
       [--methods vesin orb_scipy ...] [--repeats N]
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import torch

CUTOFF, K = 6.0, 20
OURS = ("native", "brute_force", "cell_list", "vesin", "vesin_torchsel")
# native: the compiled cell list + selection (the CPU default); vesin: vesin search + compiled selection;
# vesin_torchsel: vesin search + the pure-torch k-NN selection (ORB_MD_NATIVE_KNN=0), i.e. the TorchScript/CUDA path
# methods too slow/large to run at a size (brute force is O(N^2); ASE is pure numpy)
LIMITS = {"brute_force": 2_000, "ase": 20_000, "orb_scipy": 100_000, "orb_brute_force": 2_000}


def build(kind: str, n_atoms: int):
    from ase import Atoms
    from ase.build import bulk

    if kind == "water":
        box = (n_atoms / 0.1) ** (1 / 3)
        rng = np.random.default_rng(0)
        atoms = Atoms("X" * n_atoms, positions=rng.random((n_atoms, 3)) * box, cell=[box] * 3, pbc=True)
    else:
        reps = max(1, round((n_atoms / 4) ** (1 / 3)))
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (reps, reps, reps)
        atoms.rattle(0.05, seed=0)
    return atoms


def run_one(kind: str, n_atoms: int, method: str, repeats: int) -> dict:
    atoms = build(kind, n_atoms)
    positions = torch.tensor(atoms.positions)
    cell = torch.tensor(atoms.cell.array)[None]
    pbc = torch.tensor(atoms.pbc)[None]
    system_index = torch.zeros(len(atoms), dtype=torch.int64)
    if method in OURS:
        from orb_md.graph import native, neighbor_list

        native.native_available()  # load (or build) the compiled ops before measuring
        backend = "vesin" if method == "vesin_torchsel" else method

        def call():
            return neighbor_list(positions, cell, pbc, system_index, CUTOFF, K, backend=backend)[0].shape[0]
    elif method == "ase":
        from ase.neighborlist import primitive_neighbor_list

        def call():
            return len(primitive_neighbor_list("i", atoms.pbc, atoms.cell.array, atoms.positions, CUTOFF))
    else:
        from orb_models.forcefield.featurization_utilities import compute_pbc_radius_graph

        edge_method = {"orb_scipy": "knn_scipy", "orb_brute_force": "knn_brute_force"}[method]

        def call():
            edges = compute_pbc_radius_graph(
                positions=positions, cell=cell[0], pbc=pbc[0], radius=CUTOFF, max_number_neighbors=K,
                edge_method=edge_method, device="cpu",
            )
            return edges[0].shape[1]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        n_edges = call()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"time_s": min(times), "cpu_s": min(cpu_times), "peak_mb": (peak - base) / 1024, "edges": n_edges, "atoms": len(atoms)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kinds", nargs="+", default=["water", "cu_fcc"])
    parser.add_argument("--methods", nargs="+", default=None, help="subset of methods to run (default: all)")
    parser.add_argument("--repeats", type=int, default=0, help="timed calls per method (default 5 / 3 / 2 by size)")
    parser.add_argument("--one", nargs=4, metavar=("KIND", "N", "METHOD", "REPEATS"))
    parser.add_argument("--json", metavar="PATH", help="also write the printed rows to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        kind, n, method, repeats = args.one
        print(json.dumps(run_one(kind, int(n), method, int(repeats))))
        return
    import ase
    import orb_models
    import vesin

    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, vesin {vesin.__version__}, ase {ase.__version__}, "
          f"orb-models {getattr(orb_models, '__version__', '?')}")
    print(f"cutoff {CUTOFF} Å, k={K}, torch threads {args.threads}; time = min wall time over repeats, cpu = min process CPU time (robust to load); memory = peak RSS growth")
    print(f"{'system':>14} {'atoms':>7} {'method':>16} {'time [ms]':>10} {'cpu [ms]':>9} {'peak [MB]':>10} {'edges':>9}")
    rows = []
    for n in args.sizes:
        for kind in args.kinds:
            results = {}
            for method in OURS + ("ase", "orb_scipy", "orb_brute_force"):
                if n > LIMITS.get(method, 10**9) or (args.methods and method not in args.methods):
                    continue
                repeats = args.repeats or (5 if n <= 1000 else (3 if n <= 10000 else 2))
                env = {"OMP_NUM_THREADS": str(args.threads), "PATH": "/usr/bin:/bin", "HOME": os.path.expanduser("~")}
                if method == "vesin_torchsel":
                    env["ORB_MD_NATIVE_KNN"] = "0"
                out = subprocess.run(
                    [sys.executable, __file__, "--threads", str(args.threads), "--one", kind, str(n), method, str(repeats)],
                    capture_output=True, text=True, env=env,
                )
                if out.returncode != 0:
                    print(f"{kind:>14} {n:>7} {method:>16} failed: {out.stderr.strip().splitlines()[-1]}")
                    rows.append({"kind": kind, "size": n, "method": method, "ours": method in OURS,
                                 "error": out.stderr.strip().splitlines()[-1]})
                    continue
                r = results[method] = json.loads(out.stdout)
                rows.append({"kind": kind, "size": n, "method": method, "ours": method in OURS, **r})
                print(f"{kind:>14} {r['atoms']:>7} {method:>16} {1e3 * r['time_s']:>10.1f} {1e3 * r['cpu_s']:>9.1f} {r['peak_mb']:>10.1f} {r['edges']:>9}")
            if not any(m in results for m in OURS):
                continue
            ours = min((results[m]["time_s"], m) for m in OURS if m in results)
            for other in ("ase", "orb_scipy", "orb_brute_force"):
                if other in results:
                    cpu_ratio = results[other]["cpu_s"] / results[ours[1]]["cpu_s"]
                    print(f"{'':>14} {'':>7} {other + ' / ' + ours[1]:>30} = {results[other]['time_s'] / ours[0]:.1f}x (cpu time {cpu_ratio:.1f}x)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
