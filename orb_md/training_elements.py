"""The elements a model was trained on, and the one warning every engine gives for the others.

orb_md's own models (the bundled demo models, models written by :mod:`orb_md.training`) list their training
elements in the JSON sidecar next to the checkpoint (``"elements": ["H", "C", ...]``). Their embeddings of
other elements are untrained, so they answer silently with numbers that mean nothing; each entry point
(:func:`orb_md.batch.evaluate`, which the ASE calculator and phonons use; ``orb-md run``, OpenMM forces, LAMMPS
export) calls :func:`warn_untrained_elements`, which warns once per model and element. Released Orb-v3 models cover Z = 1..117 (outside: an error, :mod:`orb_md.batch`).
"""

from __future__ import annotations

import json
import warnings
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import ase.data
import torch

from orb_md.errors import CheckpointError

SIDECAR_KEY = "elements"


class UntrainedElementWarning(UserWarning):
    """A structure holds an element the model never saw in training: its energies and forces are not physical."""


@dataclass(frozen=True)
class TrainingElements:
    """The atomic numbers ``model`` (its name, for messages) was trained on."""

    model: str
    numbers: frozenset[int]


def element_symbols(numbers: Iterable[int]) -> list[str]:
    """Chemical symbols of ``numbers``, sorted by atomic number, each once (the sidecar's ``elements``)."""
    return [ase.data.chemical_symbols[z] for z in sorted({int(z) for z in numbers})]


def read_training_elements(checkpoint: str | Path, model: str) -> TrainingElements | None:
    """The training elements listed in the JSON sidecar of ``checkpoint``, or None (no sidecar, or no list:
    released Orb-v3 weights and checkpoints from elsewhere)."""
    sidecar = Path(checkpoint).with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        symbols = json.loads(sidecar.read_text()).get(SIDECAR_KEY)
    except (OSError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"cannot read the sidecar {sidecar}: {exc}") from None
    if symbols is None:
        return None
    unknown = [s for s in symbols if s not in ase.data.atomic_numbers]
    if unknown:
        raise CheckpointError(f"sidecar {sidecar}: unknown element symbol(s) {unknown} in {SIDECAR_KEY!r}")
    return TrainingElements(model, frozenset(ase.data.atomic_numbers[s] for s in symbols))


_WARNED: weakref.WeakKeyDictionary[torch.nn.Module, set[int]] = weakref.WeakKeyDictionary()


def warn_untrained_elements(model: torch.nn.Module, atomic_numbers: Iterable[int] | torch.Tensor) -> None:
    """Warn (UntrainedElementWarning) once per ``model`` and element for the elements of ``atomic_numbers`` the
    model was not trained on; nothing for models without a training-element list."""
    known: TrainingElements | None = getattr(model, "training_elements", None)
    if known is None:
        return
    if isinstance(atomic_numbers, torch.Tensor):
        atomic_numbers = torch.unique(atomic_numbers).tolist()
    warned = _WARNED.setdefault(model, set())
    new = sorted({int(z) for z in atomic_numbers} - known.numbers - warned)
    if not new:
        return
    warned.update(new)
    names = ", ".join(f"{ase.data.chemical_symbols[z]} (Z={z})" for z in new)
    warnings.warn(
        f"{known.model} was not trained on {names}: its energies and forces there are not physical "
        f"(trained on {', '.join(element_symbols(known.numbers))})",
        UntrainedElementWarning,
        stacklevel=2,
    )
