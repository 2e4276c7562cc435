"""Training and fine-tuning loop: seeded batches, AdamW with a warm-up + cosine schedule, checkpoints in
the official orb-models state-dict layout (so every loader and engine adapter takes them unchanged)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import ase
import torch
from tqdm import tqdm

from orb_md.model.orb import OrbModel
from orb_md.training.objectives import LossWeights, losses, predict
from orb_md.training.samples import Sample, collate, pack_by_atoms
from orb_md.training_elements import SIDECAR_KEY, element_symbols


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings. ``max_batch_atoms`` caps the atoms per batch (batches are built greedily)."""

    epochs: int = 20
    max_batch_atoms: int = 256
    learning_rate: float = 3e-3
    min_learning_rate: float = 3e-5
    warmup_fraction: float = 0.03
    weight_decay: float = 1e-6
    gradient_clip: float = 10.0
    seed: int = 0
    weights: LossWeights = dataclasses.field(default_factory=LossWeights)


def batches(samples: Sequence[Sample], max_atoms: int, generator: torch.Generator) -> list[list[Sample]]:
    """A seeded shuffle of ``samples`` cut into batches of at most ``max_atoms`` atoms (at least one sample)."""
    order = torch.randperm(len(samples), generator=generator).tolist()
    return pack_by_atoms([samples[i] for i in order], max_atoms)


def trainable_parameters(model: OrbModel) -> list[torch.nn.Parameter]:
    """Every parameter except the per-element reference energies (fitted, not trained), with gradients on
    (loaded models come with them off)."""
    reference = model.heads.energy.reference.linear.weight
    reference.requires_grad_(False)
    parameters = [p for p in model.parameters() if p is not reference]
    for parameter in parameters:
        parameter.requires_grad_(True)
    return parameters


def learning_rate(step: int, total: int, config: TrainingConfig) -> float:
    """Linear warm-up then cosine decay from ``learning_rate`` to ``min_learning_rate``."""
    warmup = max(1, int(config.warmup_fraction * total))
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return config.min_learning_rate + 0.5 * (config.learning_rate - config.min_learning_rate) * (
        1.0 + math.cos(math.pi * progress)
    )


def train(
    model: OrbModel,
    samples: Sequence[Sample],
    config: TrainingConfig,
    log: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``samples``; returns one record of mean losses per epoch."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    parameters = trainable_parameters(model)
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    plan = [batches(samples, config.max_batch_atoms, generator) for _ in range(config.epochs)]
    total = sum(len(epoch) for epoch in plan)
    history: list[dict[str, float]] = []
    model.train()
    step = 0
    start = time.perf_counter()
    bar = tqdm(total=total, disable=not progress, desc="training", unit="batch")
    for epoch, epoch_batches in enumerate(plan):
        sums: dict[str, float] = {}
        for group in epoch_batches:
            for param_group in optimizer.param_groups:
                param_group["lr"] = learning_rate(step, total, config)
            batch = collate(group)
            terms = losses(model, batch, predict(model, batch), config.weights)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(parameters, config.gradient_clip)
            optimizer.step()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            step += 1
            bar.update()
        record = {k: v / len(epoch_batches) for k, v in sums.items()}
        record.update(epoch=float(epoch + 1), wall_s=time.perf_counter() - start)
        history.append(record)
        bar.set_postfix(loss=f"{record['total']:.4f}")
        if log is not None:
            log(record)
    bar.close()
    model.eval()
    return history


def trained_elements(model: OrbModel, structures: Iterable[ase.Atoms]) -> set[int]:
    """Atomic numbers of ``structures`` plus those ``model`` was trained on before (fine-tuning keeps them)."""
    earlier = model.training_elements.numbers if model.training_elements is not None else frozenset()
    return set(earlier).union(*(set(atoms.numbers.tolist()) for atoms in structures))


def save_checkpoint(model: OrbModel, path: str | Path, elements: Iterable[int], metadata: dict | None = None) -> None:
    """Save the state dict (official layout, float32) and a JSON sidecar with the configuration, the training
    ``elements`` (atomic numbers; see :mod:`orb_md.training_elements`) and ``metadata``. The sidecar is shipped
    with the weights: keep machine-specific facts (absolute paths, user names) out of ``metadata``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float32) if v.is_floating_point() else v.detach() for k, v in model.state_dict().items()}
    torch.save(state, path)
    sidecar = {"config": dataclasses.asdict(model.config), SIDECAR_KEY: element_symbols(elements), **(metadata or {})}
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
