"""``python -m orb_md.training``: train the bundled demo models, or fine-tune any model on labelled data.

    python -m orb_md.training demo --out orb_md/weights/orb-md-demo-v1.ckpt
    python -m orb_md.training bio --out orb_md/weights/orb-md-demo-bio-v1.ckpt
    python -m orb_md.training fit --model orb-v3-direct-20-omat --data mine.extxyz --out tuned.ckpt
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from orb_md.cache import cache_root
from orb_md.errors import OrbMDError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m orb_md.training", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="generate the reference data and train the bundled demo model from scratch")
    demo.add_argument("--out", required=True, help="checkpoint to write (a .json sidecar with metrics goes next to it)")
    demo.add_argument("--cache", default=str(cache_root() / "training"),
                      help="folder for the generated training data (regenerated when missing)")
    demo.add_argument("--epochs", type=int, help="override the number of epochs of stage 1 (training from scratch)")
    demo.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    bio = sub.add_parser("bio", help="generate peptide-window data and fine-tune the demo model into the bundled "
                         "biomolecular model (stage 1), then on its minimiser's contacts (stage 2)")
    bio.add_argument("--out", required=True, help="checkpoint to write (a .json sidecar with metrics goes next to it)")
    bio.add_argument("--start", default="orb-md-demo-v1", help="model to fine-tune: bundled name or .ckpt path "
                     "of the demo architecture")
    bio.add_argument("--cache", default=str(cache_root() / "training"),
                     help="folder for the generated training data (regenerated when missing)")
    bio.add_argument("--epochs", type=int, help="override the number of stage-1 epochs")
    bio.add_argument("--stage-1", help="checkpoint of a finished stage 1 (same data and seed): run stage 2 only, "
                     "the contact frames of its minimiser path")
    bio.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    fit = sub.add_parser("fit", help="fine-tune a model (released name, bundled name or .ckpt) on an extxyz file "
                         "with energy, forces (and stress) labels")
    fit.add_argument("--model", required=True, help="starting model: name or .ckpt path")
    fit.add_argument("--architecture", help="released/bundled name the .ckpt follows (default: from its file name)")
    fit.add_argument("--data", required=True, help="extxyz file, as written by orb_md.training.reference_data")
    fit.add_argument("--out", required=True, help="checkpoint to write")
    fit.add_argument("--epochs", type=int, default=10)
    fit.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    fit.add_argument("--equigrad", type=float, default=1.0, help="equigrad loss weight (0: off)")
    fit.add_argument("--refit-statistics", action="store_true",
                     help="refit reference energies and normalisers to the data (new chemistry); default keeps them")
    fit.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        record = {"demo": _demo, "bio": _bio, "fit": _fit}[args.command](args)
    except OrbMDError as exc:
        print(f"orb_md.training: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(record["validation"], indent=2))
    return 0


def _demo(args: argparse.Namespace) -> dict:
    from orb_md.training.recipe import DEMO_TRAINING, train_demo

    training = DEMO_TRAINING if args.epochs is None else dataclasses.replace(DEMO_TRAINING, epochs=args.epochs)
    record = train_demo(Path(args.out), Path(args.cache), training=training, threads=args.threads)
    print(f"wall {record['training']['wall_s']:.0f} s, CPU {record['training']['cpu_s']:.0f} s", file=sys.stderr)
    return record


def _bio(args: argparse.Namespace) -> dict:
    from orb_md.training.recipe import BIO_FINE_TUNING, train_bio

    training = BIO_FINE_TUNING if args.epochs is None else dataclasses.replace(BIO_FINE_TUNING, epochs=args.epochs)
    record = train_bio(Path(args.out), Path(args.cache), start=args.start, fine_tuning=training,
                       stage_1=args.stage_1, threads=args.threads)
    print(f"wall {record['training']['wall_s']:.0f} s, CPU {record['training']['cpu_s']:.0f} s", file=sys.stderr)
    return record


def _fit(args: argparse.Namespace) -> dict:
    from orb_md.checkpoints import load_model
    from orb_md.training.objectives import LossWeights
    from orb_md.training.recipe import split
    from orb_md.training.reference_data import read_dataset
    from orb_md.training.samples import to_samples
    from orb_md.training.statistics import fit_statistics
    from orb_md.training.trainer import TrainingConfig, save_checkpoint, train, trained_elements
    from orb_md.training.validation import validation_errors

    torch.set_num_threads(args.threads)
    model = load_model(args.model, architecture=args.architecture, precision="float32-highest")
    train_set, validation_set = split(read_dataset(args.data), seed=0)
    train_samples, validation_samples = to_samples(model, train_set), to_samples(model, validation_set)
    if args.refit_statistics:
        fit_statistics(model, train_samples)
    config = TrainingConfig(epochs=args.epochs, learning_rate=args.lr, min_learning_rate=args.lr / 100,
                            weights=LossWeights(equigrad=args.equigrad))
    history = train(model, train_samples, config)
    record = {"validation": validation_errors(model, validation_samples), "history": history,
              "training": {"from": Path(args.model).name, "data": Path(args.data).name, **dataclasses.asdict(config)}}
    save_checkpoint(model, args.out, trained_elements(model, train_set), record)
    return record


if __name__ == "__main__":
    raise SystemExit(main())
