"""Equigrad ablation on the demo recipe: the same data, split, seed and schedule with and without the equigrad
loss; prints the held-out RMS rotational gradient of both and their ratio (Orb-v3 paper: ~5x).

    python benchmarks/equigrad_ablation.py            # the recipe's 30 epochs; --epochs N for a shorter check

The arm with equigrad at the recipe's 30 epochs is the demo recipe's stage 1 (same seed, data and schedule):
its held-out metrics are ``validation_after_stage_1`` in ``orb_md/weights/orb-md-demo-v1.json``, so
``--arms without`` alone completes the comparison in half the time.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from orb_md.model.config import DEMO_MODEL
from orb_md.model.orb import OrbModel
from orb_md.training.objectives import LossWeights
from orb_md.training.recipe import DEMO_TRAINING, demo_dataset, split
from orb_md.training.samples import to_samples
from orb_md.training.statistics import fit_statistics
from orb_md.training.trainer import train
from orb_md.training.validation import validation_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=DEMO_TRAINING.epochs)
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "orb-md" / "training"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--arms", nargs="+", choices=("with", "without"), default=["with", "without"],
                        help="which trainings to run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_set, validation_set = split(demo_dataset(Path(args.cache), DEMO_TRAINING.seed), DEMO_TRAINING.seed)
    results = {}
    arms = {"with": ("with equigrad", LossWeights().equigrad), "without": ("without", 0.0)}
    for label, weight in (arms[arm] for arm in args.arms):
        start = time.process_time()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(DEMO_TRAINING.seed)
            model = OrbModel(DEMO_MODEL)
        samples = to_samples(model, train_set)
        fit_statistics(model, samples)
        config = dataclasses.replace(DEMO_TRAINING, epochs=args.epochs, weights=LossWeights(equigrad=weight))
        train(model, samples, config, progress=False)
        results[label] = validation_errors(model, to_samples(model, validation_set))
        m = results[label]
        print(f"{label:14s} rot.grad RMS {m['rotational_gradient_rms']:.4g} eV  force MAE {m['force_mae']:.4g} eV/Å  "
              f"energy MAE {m['energy_mae_per_atom'] * 1000:.3g} meV/atom  ({time.process_time() - start:.0f} s CPU)",
              flush=True)
    if len(results) == 2:
        ratio = results["without"]["rotational_gradient_rms"] / results["with equigrad"]["rotational_gradient_rms"]
        print(f"without / with equigrad: {ratio:.2f}x ({args.epochs} epochs, held-out set of {len(validation_set)})")


if __name__ == "__main__":
    main()
