"""Phonon wall time: all displaced supercells in batched model calls (orb_md.phonons) against phonopy's usual
loop, one OrbCalculator call per displaced supercell; fcc Cu supercells, 1 and 2 torch threads, in one run.

    nice python benchmarks/bench_phonons.py                          # orb-md-demo-v1, 2x2x2 and 3x3x3, float64
    nice python benchmarks/bench_phonons.py --model orb-v3-conservative-inf-omat --random-weights

Structures: fcc Cu (conventional 4-atom cell, a = 3.61 Å), whose symmetry leaves phonopy 1 displacement
('auto') or 2 (is_plusminus=True), and the same cell rattled by 0.03 Å (no symmetry: 24 displacements), the
case where batching has work to share. Times are the median of --repeats runs after one warm-up run.
--max-atoms-per-batch bounds the batched calls (0: one call).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable


def structures() -> dict[str, object]:
    import ase.build

    copper = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True)
    rattled = copper.copy()
    rattled.rattle(0.03, seed=3)
    return {"fcc Cu": copper, "rattled Cu (P1)": rattled}


def median_time(work: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` runs after one warm-up run (a new batch size first pays for its memory)."""
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(model, atoms, supercell: int, plusminus, repeats: int, max_atoms: int) -> dict[str, object]:
    """Timings of one phonon run: batched forces + force constants, the same plus the diagnostics
    (compute_phonons: undisplaced supercell, rotational gradient, Γ frequencies), phonopy's loop, and phonopy's
    own share of each (displacements and force constants, the forces handed over precomputed)."""
    from orb_md.calculator import OrbCalculator
    from orb_md.phonons import batched_forces, calculator_forces, compute_phonons, displacement_run
    from orb_md.phonons.displacements import ase_atoms

    size = (supercell,) * 3

    def force_constants(evaluate) -> None:
        run = displacement_run(atoms, size, is_plusminus=plusminus)
        run.forces = evaluate([ase_atoms(cell) for cell in run.supercells_with_displacements])
        run.produce_force_constants(show_drift=False)

    run = displacement_run(atoms, size, is_plusminus=plusminus)
    batched = median_time(lambda: force_constants(lambda cells: batched_forces(model, cells, max_atoms)[0]), repeats)
    full = median_time(lambda: compute_phonons(model, atoms, size, is_plusminus=plusminus,
                                                       max_atoms_per_batch=max_atoms), repeats)
    # a fresh calculator per run: ASE would return a reused one's cached forces for an unchanged structure
    loop = median_time(lambda: force_constants(lambda cells: calculator_forces(OrbCalculator(model), cells)), repeats)
    forces = batched_forces(model, [ase_atoms(cell) for cell in run.supercells_with_displacements])[0]
    phonopy_share = median_time(lambda: force_constants(lambda cells: forces), repeats)
    return {"supercell": f"{supercell}x{supercell}x{supercell}", "atoms": len(run.supercell),
            "is_plusminus": plusminus, "displacements": len(run.supercells_with_displacements),
            "batched_s": batched, "compute_phonons_s": full, "loop_s": loop, "phonopy_s": phonopy_share,
            "speedup": loop / batched, "model_speedup": (loop - phonopy_share) / (batched - phonopy_share)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="orb-md-demo-v1")
    parser.add_argument("--random-weights", action="store_true", help="random weights of --model's architecture")
    parser.add_argument("--precision", default="float64", choices=("float32-highest", "float64"))
    parser.add_argument("--supercells", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-atoms-per-batch", type=int, default=0)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)

    import torch

    from orb_md import build_model, load_model
    from orb_md.precision import apply_precision

    if args.random_weights:
        model = build_model(args.model, seed=0, dtype=apply_precision(args.precision))
    else:
        model = load_model(args.model, precision=args.precision)
    rows = []
    print(f"{args.model}{' (random weights)' if args.random_weights else ''}, {args.precision}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start")
    print("| threads | structure | supercell | atoms | is_plusminus | displacements | batched [s] | "
          "compute_phonons [s] | phonopy loop [s] | phonopy's share [s] | loop / batched | model time: loop / batched |")
    print("|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, atoms in structures().items():
            for supercell in args.supercells:
                for plusminus in (("auto", True) if name == "fcc Cu" else ("auto",)):
                    row = {"threads": threads, "structure": name,
                           **measure(model, atoms, supercell, plusminus, args.repeats,
                                                   args.max_atoms_per_batch),
                           "load_average_1min": os.getloadavg()[0]}
                    rows.append(row)
                    print(f"| {threads} | {name} | {row['supercell']} | {row['atoms']} | {plusminus} | "
                          f"{row['displacements']} | {row['batched_s']:.3f} | {row['compute_phonons_s']:.3f} | "
                          f"{row['loop_s']:.3f} | {row['phonopy_s']:.3f} | {row['speedup']:.2f}x | {row['model_speedup']:.2f}x |",
                          flush=True)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"model": args.model, "precision": args.precision, "rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
