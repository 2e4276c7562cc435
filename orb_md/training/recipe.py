"""The recipe of the bundled demo model: data, architecture, split, training, validation, checkpoint."""

from __future__ import annotations

import dataclasses
import json
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


def main_summary(record: dict) -> str:
    """One line per validation family, for the command line."""
    return json.dumps({"validation": record["validation"], "by_family": record["validation_by_family"]}, indent=2)


def model_card(record: dict, config: OrbConfig = DEMO_MODEL) -> str:
    """The Markdown model card of a demo training run (numbers from its JSON record)."""
    t, v = record["training"], record["validation"]
    params = sum(p.numel() for p in OrbModel(config).parameters())
    rows = "\n".join(
        f"| {family} | {m['energy_mae_per_atom'] * 1000:.3g} | {m['force_mae']:.3g} | "
        f"{m['stress_mae'] * 160.21766:.3g} | {m['confidence_spearman']:.3g} |"
        for family, m in record["validation_by_family"].items()
    )
    return f"""# Model card: {config.name}

**What it is.** A small model of the Orb-v3 architecture (`orb-v3-conservative-inf`: conservative forces and
stress by autograd, up to {config.max_neighbors} neighbours within {config.cutoff} Å) at reduced size: latent width
{config.latent_dim}, MLP width {config.mlp_hidden_dim}, {config.num_message_passing} message-passing steps
({params:,} parameters). It was trained by orb_md itself (`orb_md.training`) on data generated offline from
classical potentials, and ships inside the package so that offline runs, examples and tests behave like matter.
**It is a demo stand-in, not Orb-v3**: its accuracy is bounded by the classical potentials it learned.

**Good for:** trying orb_md and its engines offline (ASE, OpenMM TorchForce, LAMMPS ML-IAP, batched MD) with
physically sensible dynamics of fcc metals Al, Ni, Cu, Pd, Ag, Pt, Au and their alloys (EMT quality), liquid
water (flexible TIP3P quality) and small solvated peptides (amber14 quality, non-periodic clusters).
**Not good for:** any scientific conclusion; elements or chemistry outside the training data (it will answer,
but the numbers mean nothing there: check the confidence head); long-range electrostatics beyond its
{config.num_message_passing * config.cutoff:.0f} Å receptive field; charged or spin-polarised systems.

## Training data (regenerated deterministically by `orb_md.training.reference_data`, version 1, seed {t['seed']})
- ASE EMT: per metal, a 9-point equation of state, 20 strained (up to 4 % normal, 3 % shear) and rattled
  32-atom fcc cells, 6 vacancies, 6 (111) slabs periodic in x, y only, and 25 snapshots of Langevin MD at 300,
  800, 1500, 2500 and 4000 K (solid to liquid); Cu drawn twice; 4 binary alloys (Cu-Au, Cu-Ni, Ag-Pd, Pt-Ni)
  with 18 structures each. Labels: energy, forces, stress.
- OpenMM amber14 + flexible TIP3P (no constraints), labelled on the Reference platform (float64): a 32-molecule
  water box (PME) sampled by NPT MD at 280, 300, 330 and 360 K (stress from central finite differences of the
  energy under strain), and villin headpiece's first 5 residues with their first water shell (non-periodic,
  195 atoms) at 300 and 360 K.
- {t['structures']} training and {t['validation_structures']} held-out structures (seeded random split).

## Recipe (Orb-v3's losses)
Huber loss (delta 0.01) on normalised energy per atom, forces and stress; equigrad (the norm of the
rotational gradient dE/dG of positions and cell rotated by exp(G - G^T), per atom); the confidence head
trained by cross entropy on detached node features against binned per-atom force errors (50 bins up to
0.3 eV/Å, larger errors ignored). Weights {t['loss_weights']}. AdamW, warm-up and cosine decay,
{t['epochs']} epochs, batches of up to 256 atoms, seed {t['seed']}, float32.

Command: `python -m orb_md.training demo --threads {t['threads']} --out orb_md/weights/{config.name}.ckpt`.
Wall time {t['wall_s'] / 60:.1f} min ({t['cpu_s'] / 60:.1f} min CPU) on a shared 2-core x86_64 VM, torch {t['torch']}
(data read from the cache; generating it takes about 12 min more the first time).

## Held-out validation
All held-out structures: energy MAE {v['energy_mae_per_atom']:.3g} eV/atom, force MAE {v['force_mae']:.3g} eV/Å,
stress MAE {v['stress_mae']:.3g} eV/Å^3, RMS rotational gradient {v['rotational_gradient_rms']:.3g} eV,
confidence Spearman rho {v['confidence_spearman']:.3g} (predicted mean force error vs actual, per atom).

| family | energy MAE [meV/atom] | force MAE [eV/Å] | stress MAE [GPa] | confidence rho |
|---|---|---|---|---|
{rows}
"""
