"""Checkpoints of an MDState: everything needed to continue bit-identically (including RNG states and the
forces/energy/stress of the current positions, so the next step does not depend on re-evaluating them)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from orb_md.errors import InputError
from orb_md.md.state import MDState

FORMAT = "orb_md.md/1"
_TENSORS = (
    "positions", "velocities", "masses", "atomic_numbers", "system_index", "cell", "pbc", "total_charge", "spin",
    "dt", "temperature", "friction", "pressure", "tau_p", "compressibility", "time", "energy", "forces", "stress",
)


def save_checkpoint(state: MDState, path: str | Path, extra: dict | None = None) -> None:
    """Write ``state`` atomically (temporary file + rename) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "ensemble": state.ensemble, "step": state.step, "labels": list(state.labels), "seeds": list(state.seeds),
        "rng": [g.get_state() for g in state.generators],
        "tensors": {k: (None if getattr(state, k) is None else getattr(state, k).cpu()) for k in _TENSORS},
        "extra": dict(extra or {}),
    }
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
        torch.save(payload, tmp)
    os.replace(tmp.name, path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[MDState, dict]:
    """The state saved by :func:`save_checkpoint` and its ``extra`` dict."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"restart file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file
        raise InputError(f"cannot read restart file {path}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path} is not an orb_md MD checkpoint ({FORMAT})")
    tensors = {k: (None if v is None else v.to(device)) for k, v in payload["tensors"].items()}
    generators = []
    for rng in payload["rng"]:
        g = torch.Generator(device="cpu")
        g.set_state(rng)
        generators.append(g)
    state = MDState(
        **tensors, generators=generators, seeds=list(payload["seeds"]), labels=list(payload["labels"]),
        ensemble=payload["ensemble"], step=int(payload["step"]),
    )
    return state, dict(payload["extra"])
