"""The recipes of the bundled models: data, architecture, split, training, validation, checkpoint.

``orb-md-demo-v1`` is trained from scratch on metals, water and one peptide cluster (:func:`train_demo`);
``orb-md-demo-bio-v1`` is ``orb-md-demo-v1`` fine-tuned on thermal and distorted peptide windows and water,
then on the contacts its own minimiser path runs into (:func:`train_bio`)."""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path

import ase
import torch

from orb_md.checkpoints import load_model
from orb_md.model.config import BIO_MODEL, DEMO_MODEL, OrbConfig
from orb_md.model.orb import OrbModel
from orb_md.training import peptide_data, reference_data
from orb_md.training.samples import to_samples
from orb_md.training.statistics import fit_new_reference_energies, fit_statistics
from orb_md.training.trainer import TrainingConfig, save_checkpoint, train, trained_elements
from orb_md.training.validation import validation_errors

VALIDATION_FRACTION = 0.1
# Stage 1: every training structure once per epoch, from scratch.
DEMO_TRAINING = TrainingConfig(epochs=30, max_batch_atoms=256, learning_rate=3e-3, seed=0)
# Stage 2: fine-tuning with water and peptide structures repeated (FAMILY_REPEATS) at a lower learning rate.
# Stage 1 alone leaves water's O-O RDF peak beyond flexible TIP3P's; stage 2 brings it within tests/test_demo_model.py's
# bound. The learning rate is the better of two on the held-out force MAE (figures: orb_md/weights/MODEL_CARD.md).
DEMO_FINE_TUNING = TrainingConfig(epochs=8, max_batch_atoms=256, learning_rate=2e-3, min_learning_rate=2e-5,
                                  warmup_fraction=0.0, seed=0)
FAMILY_REPEATS = {"tip3p": 3, "amber14-peptide": 2}
FAMILIES = ("emt", "tip3p", "amber14-peptide")
# The biomolecular model, stage 1: from orb-md-demo-v1's weights on all peptide-window and water structures,
# distorted ones included from the start. Residues 31-35 are never trained on: they measure an unseen sequence.
BIO_FINE_TUNING = TrainingConfig(epochs=14, max_batch_atoms=256, learning_rate=1e-3, min_learning_rate=1e-5,
                                 warmup_fraction=0.0, seed=0)
# Stage 2: the same training set plus the stage-1 model's minimiser contacts (peptide_data.minimiser_contacts).
# After stage 1 OpenMM's L-BFGS collapses hydrogens onto each other; after stage 2 it stays near amber14's minimum
# (tests/test_bio_model.py; figures: orb_md/weights/MODEL_CARD.md).
BIO_CONTACT_TUNING = TrainingConfig(epochs=3, max_batch_atoms=256, learning_rate=5e-4, min_learning_rate=1e-5,
                                    warmup_fraction=0.0, seed=0)
UNSEEN_WINDOW = peptide_data.WINDOW_FIRST_RESIDUES[-1]


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


def demo_dataset(cache: Path, seed: int = 0, processes: int = 1) -> list[ase.Atoms]:
    """The demo training set, generated (minutes, by up to ``processes`` processes) or read from ``cache``."""
    return _cached(dataset_path(cache, seed), lambda: reference_data.generate(seed, processes))


def bio_dataset(cache: Path, seed: int = 0) -> list[ase.Atoms]:
    """The biomolecular fine-tuning set (peptide windows, then water boxes), generated (minutes) or cached."""
    path = cache / (f"bio-data-v{peptide_data.PEPTIDE_DATA_VERSION}-water-v{reference_data.DATA_VERSION}"
                    f"-seed{seed}.extxyz")
    return _cached(path, lambda: peptide_data.peptide_windows(seed) + reference_data.water_boxes(seed))


def _cached(path: Path, generate) -> list[ase.Atoms]:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        reference_data.write_dataset(generate(), path.with_suffix(".tmp"))
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
    structures = demo_dataset(cache, training.seed, processes=threads)
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
            **_run_facts(threads, data_s, start, cpu_start),
        },
        "validation": metrics,
        "validation_after_stage_1": stage_1,
        "validation_by_family": _by_family(model, validation_samples, validation_set),
        "history": history,
        "fine_tuning_history": fine_tuning_history,
    }
    save_checkpoint(model, out, trained_elements(model, train_set), record)
    return record


def _run_facts(threads: int, data_s: float, wall_start: float, cpu_start: float) -> dict:
    """Where and how long a training run ran (for the JSON sidecar)."""
    return {"threads": threads, "data_wall_s": data_s, "wall_s": time.perf_counter() - wall_start,
            "cpu_s": time.process_time() - cpu_start, "machine": cpu_model(), "torch": torch.__version__}


def _by_family(model: OrbModel, samples: list, structures: list[ase.Atoms]) -> dict[str, dict[str, float]]:
    out = {}
    for name in FAMILIES:
        chosen = [s for s, a in zip(samples, structures) if family(a) == name]
        if chosen:
            out[name] = validation_errors(model, chosen)
    return out


def train_bio(
    out: Path,
    cache: Path,
    start: str | Path = DEMO_MODEL.name,
    fine_tuning: TrainingConfig = BIO_FINE_TUNING,
    contact_tuning: TrainingConfig = BIO_CONTACT_TUNING,
    stage_1: str | Path | None = None,
    threads: int = 2,
    progress: bool = True,
) -> dict:
    """Fine-tune ``start`` (default: the bundled demo model) on :func:`bio_dataset` (stage 1), then on the same
    training set plus the stage-1 model's minimiser contacts (stage 2), and write ``out`` (.ckpt) with a JSON
    sidecar of metrics: a seeded held-out 10 % of the trained windows and water, and every frame of the unseen
    window (residues 31-35), all and thermal only. ``stage_1`` (the .ckpt of a stage-1 run with the same data
    and seed; its JSON sidecar, if any, is kept in the record) skips stage 1."""
    torch.set_num_threads(threads)
    begin, cpu_start = time.perf_counter(), time.process_time()
    structures = bio_dataset(cache, fine_tuning.seed)
    data_s = time.perf_counter() - begin
    unseen_source = f"amber14-peptide-{UNSEEN_WINDOW + 1}-"
    unseen = [a for a in structures if a.info["source"].startswith(unseen_source)]
    seen = [a for a in structures if not a.info["source"].startswith(unseen_source)]
    train_set, validation_set = split(seen, fine_tuning.seed)
    model = load_model(start if stage_1 is None else stage_1, architecture=BIO_MODEL, precision="float32-highest")
    train_samples = to_samples(model, train_set)
    validation_samples, unseen_samples = to_samples(model, validation_set), to_samples(model, unseen)
    if stage_1 is not None:
        sidecar = Path(stage_1).with_suffix(".json")
        stage_1_record = {"checkpoint": Path(stage_1).name,
                          **(json.loads(sidecar.read_text()) if sidecar.is_file() else {})}
    else:
        new_elements = fit_new_reference_energies(model, train_samples)
        before = validation_errors(model, validation_samples)
        stage_1_record = {"new_reference_elements": new_elements, "validation_before": before,
                          "history": train(model, train_samples, fine_tuning, progress=progress)}
    stage_1_record["validation"] = validation_errors(model, validation_samples)
    contacts_begin = time.perf_counter()
    contacts = peptide_data.minimiser_contacts(model, train_set, seed=contact_tuning.seed)
    contact_samples = to_samples(model, contacts)
    contacts_s = time.perf_counter() - contacts_begin
    contacts_before = validation_errors(model, contact_samples)
    history = train(model, train_samples + contact_samples, contact_tuning, progress=progress)
    elements = trained_elements(model, train_set + contacts)
    record = {
        "training": {
            "from": Path(start).name,
            "structures": len(train_set),
            "contact_structures": len(contacts),
            "contacts_wall_s": contacts_s,
            "validation_structures": len(validation_set),
            "unseen_window_structures": len(unseen),
            "peptide_data_version": peptide_data.PEPTIDE_DATA_VERSION,
            "stage_1": _config_record(fine_tuning),
            "stage_2": _config_record(contact_tuning),
            **_run_facts(threads, data_s, begin, cpu_start),
        },
        "validation": validation_errors(model, validation_samples),
        "validation_by_family": _by_family(model, validation_samples, validation_set),
        "validation_unseen_window": validation_errors(model, unseen_samples),
        "validation_unseen_window_thermal": validation_errors(
            model, [s for s, a in zip(unseen_samples, unseen) if a.info["source"].endswith("K")]),
        "contacts_before_stage_2": contacts_before,
        "contacts_after_stage_2": validation_errors(model, contact_samples),
        "stage_1": stage_1_record,
        "history": history,
    }
    save_checkpoint(model, out, elements, record)
    return record


def _config_record(config: TrainingConfig) -> dict:
    return {**{k: v for k, v in dataclasses.asdict(config).items() if k != "weights"},
            "loss_weights": dataclasses.asdict(config.weights)}
