"""Whether a potential keeps the solvated villin cluster folded, over several seeds (the protocol of
``orb_md.training.peptide_folding``): per seed, the heavy-atom RMSD from the folded structure (its maximum and
its mean over the run's second half), the radius of gyration and the largest heavy-atom bond change, then the
spread over seeds. amber14, the potential that labelled the training data, gives the reference spread.

Usage: OMP_NUM_THREADS=1 nice python benchmarks/peptide_folding.py amber14 orb-md-demo-bio-v1 --seeds 1-8 --steps 2500
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def _system(potential: str, topology):
    from orb_md.training.peptide_folding import amber14_system

    if potential == "amber14":
        return amber14_system(topology)
    from openmmml import MLPotential

    from orb_md import load_model

    return MLPotential(f"orb_md/{potential}").createSystem(topology, model=load_model(potential,
                                                                                       precision="float32-highest"))


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("potentials", nargs="+", help="amber14 or a bundled model name")
    parser.add_argument("--seeds", type=_seeds, default=_seeds("1-8"), help="a range, e.g. 1-8")
    parser.add_argument("--steps", type=int, default=2500, help="2 fs steps per seed")
    parser.add_argument("--every", type=int, default=50, help="steps between frames")
    parser.add_argument("--threads", type=int, default=1, help="OpenMM CPU platform and torch threads")
    parser.add_argument("--save", help="write each potential's per-frame RMSD and bond change to SAVE-NAME.npz")
    args = parser.parse_args()

    import torch

    from orb_md.training import reference_data
    from orb_md.training.peptide_folding import folding_runs

    torch.set_num_threads(args.threads)
    print(f"CPU {_cpu_model()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}, threads {args.threads}, "
          f"{args.steps} steps x {len(args.seeds)} seeds, frames every {args.every} steps")
    topology, positions = reference_data.villin_fragment()
    for potential in args.potentials:
        began = time.perf_counter()
        print(f"\n{potential}")
        print("| seed | RMSD start [Å] | RMSD max [Å] | RMSD late mean [Å] | Rg late mean [Å] | bond change max |")
        print("|---|---|---|---|---|---|", flush=True)
        runs = []
        for run in folding_runs(_system(potential, topology), topology, positions, args.seeds, args.steps,
                                every=args.every, threads=args.threads):
            late = len(run.gyration) // 2 + 1
            print(f"| {run.seed} | {run.rmsd[0]:.2f} | {run.rmsd.max():.2f} | {run.late_rmsd:.2f} | "
                  f"{run.gyration[late:].mean():.2f} | {run.stretch.max():.3f} |", flush=True)
            runs.append(run)
        print(f"{potential}: {time.perf_counter() - began:.0f} s wall, load average {os.getloadavg()}")
        if args.save:
            np.savez(f"{args.save}-{potential}.npz", seeds=[run.seed for run in runs],
                     rmsd=np.array([run.rmsd for run in runs]), stretch=np.array([run.stretch for run in runs]))
        late = np.array([run.late_rmsd for run in runs])
        peak = np.array([run.rmsd.max() for run in runs])
        print(f"late mean over seeds: mean {late.mean():.2f}, sd {late.std(ddof=1):.2f}, median {np.median(late):.2f}, "
              f"min {late.min():.2f}, max {late.max():.2f}; RMSD max: mean {peak.mean():.2f}, "
              f"sd {peak.std(ddof=1):.2f}, max {peak.max():.2f}")
        print("late-mean series: " + " ".join(f"{x:.3f}" for x in late))


if __name__ == "__main__":
    main()
