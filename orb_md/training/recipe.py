"""The recipe of the bundled demo model: data, architecture, split, training, validation, checkpoint."""

from __future__ import annotations

import dataclasses
import platform
import time
from pathlib import Path

import ase
import torch

from orb_md.model.config import DEMO_MODEL, OrbConfig
from orb_md.model.orb import OrbModel
from orb_md.training import reference_data
from orb_md.training.samples import to_samples
from orb_md.training.statistics import fit_statistics
from orb_md.training.trainer import TrainingConfig, save_checkpoint, train
from orb_md.training.validation import validation_errors

VALIDATION_FRACTION = 0.1
DEMO_TRAINING = TrainingConfig(epochs=30, max_batch_atoms=256, learning_rate=3e-3, seed=0)


def dataset_path(cache: Path, seed: int) -> Path:
    """Cached training data, keyed by the generator's DATA_VERSION and the seed."""
    return cache / f"demo-data-v{reference_data.DATA_VERSION}-seed{seed}.extxyz"


def demo_dataset(cache: Path, seed: int = 0) -> list[ase.Atoms]:
    """The demo training set, generated (minutes) or read from ``cache``."""
    path = dataset_path(cache, seed)
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        structures = reference_data.generate(seed)
        reference_data.write_dataset(structures, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
    return reference_data.read_dataset(path)


def split(structures: list[ase.Atoms], seed: int) -> tuple[list[ase.Atoms], list[ase.Atoms]]:
    """Seeded train/validation split (VALIDATION_FRACTION held out)."""
    order = torch.randperm(len(structures), generator=torch.Generator().manual_seed(seed)).tolist()
    held = int(round(VALIDATION_FRACTION * len(structures)))
    return [structures[i] for i in order[held:]], [structures[i] for i in order[:held]]


def train_demo(
    out: Path,
    cache: Path,
    config: OrbConfig = DEMO_MODEL,
    training: TrainingConfig = DEMO_TRAINING,
    threads: int = 2,
    progress: bool = True,
) -> dict:
    """Train the demo model from scratch and write ``out`` (.ckpt) with a JSON sidecar of metrics."""
    torch.set_num_threads(threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    structures = demo_dataset(cache, training.seed)
    data_s = time.perf_counter() - start
    train_set, validation_set = split(structures, training.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(training.seed)
        model = OrbModel(config)
    train_samples = to_samples(model, train_set)
    validation_samples = to_samples(model, validation_set)
    fit_statistics(model, train_samples)
    history = train(model, train_samples, training, progress=progress)
    metrics = validation_errors(model, validation_samples)
    by_source = {}
    for family in ("emt", "tip3p", "amber14-peptide"):
        chosen = [s for s, a in zip(validation_samples, validation_set) if a.info["source"].startswith(family)]
        if chosen:
            by_source[family] = validation_errors(model, chosen)
    record = {
        "training": {
            "structures": len(train_set),
            "validation_structures": len(validation_set),
            "epochs": training.epochs,
            "seed": training.seed,
            "loss_weights": dataclasses.asdict(training.weights),
            "threads": threads,
            "data_wall_s": data_s,
            "wall_s": time.perf_counter() - start,
            "cpu_s": time.process_time() - cpu_start,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "torch": torch.__version__,
        },
        "validation": metrics,
        "validation_by_family": by_source,
        "history": history,
    }
    save_checkpoint(model, out, record)
    return record

