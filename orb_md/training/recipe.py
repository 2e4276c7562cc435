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
# Stage 1: every training structure once per epoch, from scratch.
DEMO_TRAINING = TrainingConfig(epochs=30, max_batch_atoms=256, learning_rate=3e-3, seed=0)
# Stage 2: fine-tuning with water and peptide structures repeated (FAMILY_REPEATS) at a lower learning rate.
# Measured: stage 1 alone left water's O-O RDF peak 0.15 Å beyond flexible TIP3P's; after stage 2 it is within
# 0.1 Å (tests/test_demo_model.py). See orb_md/weights/MODEL_CARD.md.
# Learning rate chosen on the held-out force MAE (0.104 eV/Å from 2e-3 against 0.136 from 1e-3, data version 1).
DEMO_FINE_TUNING = TrainingConfig(epochs=8, max_batch_atoms=256, learning_rate=2e-3, min_learning_rate=2e-5,
                                  warmup_fraction=0.0, seed=0)
FAMILY_REPEATS = {"tip3p": 3, "amber14-peptide": 2}
FAMILIES = ("emt", "tip3p", "amber14-peptide")


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else the machine type: training is reproducible bit for bit
    on one CPU model, not across models (their float reductions differ)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{platform.machine()} {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return platform.machine()


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


def family(atoms: ase.Atoms) -> str:
    """The reference-data family of a structure (``info["source"]`` prefix)."""
    source = atoms.info["source"]
    for name in FAMILIES:
        if source.startswith(name):
            return name
    raise ValueError(f"structure source {source!r} belongs to none of the demo families {FAMILIES}")


def train_demo(
    out: Path,
    cache: Path,
    config: OrbConfig = DEMO_MODEL,
    training: TrainingConfig = DEMO_TRAINING,
    fine_tuning: TrainingConfig = DEMO_FINE_TUNING,
    threads: int = 2,
    progress: bool = True,
) -> dict:
    """Train the demo model from scratch (stage 1, then the fine-tuning stage 2) and write ``out`` (.ckpt)
    with a JSON sidecar of metrics."""
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
    stage_1 = validation_errors(model, validation_samples)
    weighted = [sample for sample, atoms in zip(train_samples, train_set)
                for _ in range(FAMILY_REPEATS.get(family(atoms), 1))]
    fine_tuning_history = train(model, weighted, fine_tuning, progress=progress)
    metrics = validation_errors(model, validation_samples)
    by_source = {}
    for name in FAMILIES:
        chosen = [s for s, a in zip(validation_samples, validation_set) if family(a) == name]
        if chosen:
            by_source[name] = validation_errors(model, chosen)
    record = {
        "training": {
            "structures": len(train_set),
            "validation_structures": len(validation_set),
            "epochs": training.epochs,
            "fine_tuning_epochs": fine_tuning.epochs,
            "fine_tuning_learning_rate": fine_tuning.learning_rate,
            "family_repeats": FAMILY_REPEATS,
            "seed": training.seed,
            "loss_weights": dataclasses.asdict(training.weights),
            "threads": threads,
            "data_wall_s": data_s,
            "wall_s": time.perf_counter() - start,
            "cpu_s": time.process_time() - cpu_start,
            "machine": cpu_model(),
            "torch": torch.__version__,
        },
        "validation": metrics,
        "validation_after_stage_1": stage_1,
        "validation_by_family": by_source,
        "history": history,
        "fine_tuning_history": fine_tuning_history,
    }
    save_checkpoint(model, out, record)
    return record

