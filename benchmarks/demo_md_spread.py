"""Spread over seeds of the statistics that tests/test_demo_model.py's MD tests decide from, in their protocols:
32-atom fcc Cu at 300 K and 4000 K (fcc order over the last 5 ps, MSD at 10 ps), orb-md-demo-v1 and EMT; the
O-O RDF first peak of the 32-molecule water box in flexible TIP3P (OpenMM). Each seed changes the initial
velocities and the Langevin noise. The tests' bounds are judged against these spreads.

Usage: OMP_NUM_THREADS=1 nice python benchmarks/demo_md_spread.py [--seeds 1-8] [--parts copper water]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def copper(model, seeds: list[int]) -> None:
    import ase.build

    from tests import test_demo_model as t

    a = 3.59
    crystal = ase.build.bulk("Cu", "fcc", a=a, cubic=True) * (2, 2, 2)
    for temperature in (300.0, 4000.0):
        began = time.perf_counter()
        runs = {"orb-md-demo-v1": t._orb_md_frames(model, crystal, temperature, 5.0, 2000, 100, seeds),
                "EMT": [t._emt_frames(crystal, temperature, 5.0, 2000, 100, seed) for seed in seeds]}
        print(f"\nCu {temperature:.0f} K ({time.perf_counter() - began:.0f} s, load {os.getloadavg()})")
        print("| engine | seed | late fcc order min | late fcc order mean | MSD at 10 ps [Å^2] |\n|---|---|---|---|---|")
        for engine, per_seed in runs.items():
            for seed, frames in zip(seeds, per_seed):
                order = [t._fcc_order(x, a) for x in frames[len(frames) // 2:]]
                msd = t._mean_square_displacement(frames[-1], crystal.positions)
                print(f"| {engine} | {seed} | {min(order):.2f} | {np.mean(order):.2f} | {msd:.2f} |", flush=True)


def water(seeds: list[int]) -> None:
    from tests import test_demo_model as t

    peaks = []
    for seed in seeds:
        frames, box, cell = t._tip3p_water_frames(seed)
        peaks.append(t._oo_first_peak(frames, np.flatnonzero(box.numbers == 8), cell))
        print(f"TIP3P seed {seed}: O-O first peak {peaks[-1]:.3f} Å (load {os.getloadavg()})", flush=True)
    print(f"TIP3P: mean {np.mean(peaks):.3f} Å, sd {np.std(peaks, ddof=1):.3f} Å, range {min(peaks):.3f}-"
          f"{max(peaks):.3f} Å over {len(peaks)} seeds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=_seeds, default=_seeds("1-8"))
    parser.add_argument("--parts", nargs="+", choices=("copper", "water"), default=["copper", "water"])
    args = parser.parse_args()

    import torch

    from orb_md import load_model

    torch.set_num_threads(1)
    print(f"CPU {Path('/proc/cpuinfo').read_text().split('model name')[1].split(':')[1].splitlines()[0].strip()}, "
          f"load average {os.getloadavg()}, seeds {args.seeds[0]}-{args.seeds[-1]}")
    if "copper" in args.parts:
        copper(load_model("orb-md-demo-v1", precision="float32-highest"), args.seeds)
    if "water" in args.parts:
        water(args.seeds)


if __name__ == "__main__":
    main()
