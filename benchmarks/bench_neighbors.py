"""Neighbour-list benchmark: time and peak memory per backend, against ASE and orb-models 0.5.5.

Systems: random positions at water number density (0.1 atoms/Å³, cubic) and rattled fcc Cu (a = 3.61 Å),
~1k, 10k and 100k atoms; ``water_batch``: a batch of small water-density boxes of 8-64 atoms (64 systems for
--sizes 2304), searched in one call by the orb_md backends and one call per system by ASE and orb-models.
Cutoff 6 Å, k = 20. Each (system, method) runs in a fresh subprocess so the peak resident memory (ru_maxrss minus
the level after building the inputs and loading the backend) belongs to that method alone. "first" is the first
call in that process. ``vesin`` is the default (vesin-torch search + the selection of orb_md.graph.knn);
``fixed_capacity`` is the static-shape graph of
orb_md.graph.fixed_capacity (the CUDA-graph form, N·k padded edges; built once, outside the timing; one system only).
Ratios are ASE time / ours and orb time / ours for the fastest orb_md backend (">1" = orb_md faster), and each
orb_md backend's time / the default's (``vesin``, what choose_backend picks) measured in the same run.

Usage: nice python benchmarks/bench_neighbors.py [--sizes 1000 10000 100000] [--threads 1] [--kinds water cu_fcc water_batch]
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
OURS = ("vesin", "brute_force", "fixed_capacity")
DEFAULT = "vesin"  # choose_backend's pick
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


def build_systems(kind: str, n_atoms: int) -> list:
    """One system of about ``n_atoms`` atoms, or for ``water_batch`` water-density boxes of 8-64 atoms (~n_atoms in all)."""
    if kind != "water_batch":
        return [build(kind, n_atoms)]
    from ase import Atoms

    count = max(2, round(n_atoms / 36))
    systems = []
    for i in range(count):
        n = 8 + round(56 * i / (count - 1))
        box = (n / 0.1) ** (1 / 3)
        positions = np.random.default_rng(i).random((n, 3)) * box
        systems.append(Atoms("X" * n, positions=positions, cell=[box] * 3, pbc=True))
    return systems


def run_one(kind: str, n_atoms: int, method: str, repeats: int) -> dict:
    systems = build_systems(kind, n_atoms)
    positions = torch.tensor(np.concatenate([a.positions for a in systems]))
    cell = torch.tensor(np.stack([a.cell.array for a in systems]))
    pbc = torch.tensor(np.stack([a.pbc for a in systems]))
    system_index = torch.repeat_interleave(torch.arange(len(systems)), torch.tensor([len(a) for a in systems]))
    start = time.perf_counter()
    if method == "fixed_capacity":
        from orb_md.graph.fixed_capacity import FixedCapacityNeighborList

        if len(systems) != 1:
            raise SystemExit("fixed_capacity builds the graph of one system")
        module = FixedCapacityNeighborList(positions.shape[0], CUTOFF, K, cell=cell[0], raise_on_overflow=False)

        def call():
            senders, _, _, overflow = module(positions, cell)
            if int(overflow) != 0:
                raise SystemExit(f"fixed_capacity overflow {int(overflow)}: {module.layout}")
            return senders.shape[0]
    elif method in OURS:
        from orb_md.graph import neighbor_list

        def call():
            return neighbor_list(positions, cell, pbc, system_index, CUTOFF, K, backend=method)[0].shape[0]
    elif method == "ase":
        from ase.neighborlist import primitive_neighbor_list

        def call():
            return sum(len(primitive_neighbor_list("i", a.pbc, a.cell.array, a.positions, CUTOFF)) for a in systems)
    else:
        from orb_models.forcefield.featurization_utilities import compute_pbc_radius_graph

        edge_method = {"orb_scipy": "knn_scipy", "orb_brute_force": "knn_brute_force"}[method]
        singles = [(torch.tensor(a.positions), torch.tensor(a.cell.array), torch.tensor(a.pbc)) for a in systems]

        def call():
            return sum(
                compute_pbc_radius_graph(
                    positions=p, cell=c, pbc=b, radius=CUTOFF, max_number_neighbors=K, edge_method=edge_method,
                    device="cpu",
                )[0].shape[1]
                for p, c, b in singles
            )
    setup = time.perf_counter() - start
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        n_edges = call()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"time_s": min(times), "cpu_s": min(cpu_times), "first_s": first, "setup_s": setup,
            "peak_mb": (peak - base) / 1024, "edges": n_edges, "atoms": positions.shape[0], "systems": len(systems)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kinds", nargs="+", default=["water", "cu_fcc"], help="water, cu_fcc, water_batch")
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
    print(f"{'system':>14} {'atoms':>7} {'method':>16} {'time [ms]':>10} {'cpu [ms]':>9} {'first [ms]':>10} {'peak [MB]':>10} {'edges':>9}")
    rows = []
    for n in args.sizes:
        for kind in args.kinds:
            results = {}
            for method in OURS + ("ase", "orb_scipy", "orb_brute_force"):
                if n > LIMITS.get(method, 10**9) or (args.methods and method not in args.methods):
                    continue
                repeats = args.repeats or (5 if n <= 1000 else (3 if n <= 10000 else 2))
                env = {"OMP_NUM_THREADS": str(args.threads), "PATH": "/usr/bin:/bin", "HOME": os.path.expanduser("~"),
                       **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}  # the code the parent runs
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
                print(f"{kind:>14} {r['atoms']:>7} {method:>16} {1e3 * r['time_s']:>10.1f} {1e3 * r['cpu_s']:>9.1f} "
                      f"{1e3 * r['first_s']:>10.1f} {r['peak_mb']:>10.1f} {r['edges']:>9}")
            if not any(m in results for m in OURS):
                continue
            ours = min((results[m]["time_s"], m) for m in OURS if m in results)
            for other in ("ase", "orb_scipy", "orb_brute_force"):
                if other in results:
                    cpu_ratio = results[other]["cpu_s"] / results[ours[1]]["cpu_s"]
                    print(f"{'':>14} {'':>7} {other + ' / ' + ours[1]:>30} = {results[other]['time_s'] / ours[0]:.1f}x (cpu time {cpu_ratio:.1f}x)")
            if DEFAULT in results:
                default = results[DEFAULT]
                for method in OURS:
                    if method != DEFAULT and method in results:
                        r = results[method]
                        print(f"{'':>14} {'':>7} {method + ' / ' + DEFAULT:>30} = {r['time_s'] / default['time_s']:.2f}x "
                              f"(cpu time {r['cpu_s'] / default['cpu_s']:.2f}x, peak memory {r['peak_mb'] / max(default['peak_mb'], 0.1):.2f}x)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
