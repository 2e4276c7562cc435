"""Total charge and spin multiplicity of the OMol models (``orb-v3-*-omol``): one set of rules for every engine.

Only models with ``config.charge_spin`` take them, and those need both; the values enter a sinusoidal embedding,
so they must be finite, and the multiplicity 2S+1 is >= 1 (0: 'unspecified', as in orb-models). Each engine says
how its user gives the values (``source``, ``how_to_set``), so the messages name the option to change.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from orb_md.errors import InputError
from orb_md.model.config import OrbConfig

OMOL_ONLY = "only the OMol models (orb-v3-*-omol) do"
NEEDED = {"charge": "total charge Q (e)", "spin": "spin multiplicity S (2S+1)"}


def refuse_charge_spin(config: OrbConfig, source: str) -> None:
    """InputError for a model without conditioning that was given a charge or spin (``source``: how)."""
    if not config.charge_spin:
        raise InputError(f"{config.name} takes no total charge or spin multiplicity ({source}); {OMOL_ONLY}")


def check_charge_spin(config: OrbConfig, charge: float | None, spin: float | None) -> None:
    """Refuse a charge or spin for a model that takes none, and values the embedding cannot take."""
    given = [name for name, value in (("charge", charge), ("spin", spin)) if value is not None]
    if given:
        refuse_charge_spin(config, f"got --{' --'.join(given)}")
    for name, value in (("charge", charge), ("spin", spin)):
        if value is not None and not math.isfinite(value):
            raise InputError(f"the total {name} must be a finite number, got {value}")
    if spin is not None and spin < 0:
        raise InputError(f"the spin multiplicity (2S+1) must be >= 1, or 0 for unspecified; got {spin}")


def require_charge_spin(
    config: OrbConfig, charge: float | None, spin: float | None, how_to_set: Callable[[list[str]], str]
) -> None:
    """:func:`check_charge_spin`, and an InputError naming what an OMol model is missing; ``how_to_set(missing
    keys)`` says how this engine's user gives it."""
    check_charge_spin(config, charge, spin)
    missing = [key for key, value in (("charge", charge), ("spin", spin)) if value is None]
    if config.charge_spin and missing:
        raise InputError(f"{config.name} needs the system's {' and '.join(NEEDED[key] for key in missing)}: "
                         f"{how_to_set(missing)}")


def charge_spin_tensors(
    config: OrbConfig,
    charge: float | None,
    spin: float | None,
    device: str | torch.device,
    how_to_set: Callable[[list[str]], str],
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(total charge, spin) as (1,) float64 tensors on ``device`` for an OMol model, (None, None) for the others,
    after :func:`require_charge_spin`."""
    require_charge_spin(config, charge, spin, how_to_set)
    if not config.charge_spin:
        return None, None
    return tuple(torch.tensor([value], dtype=torch.float64, device=device) for value in (charge, spin))


def model_charge_spin(
    config: OrbConfig, total_charge: torch.Tensor | None, spin: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The conditioning a model takes from a batch's per-system values: both for OMol models, neither otherwise."""
    return (total_charge, spin) if config.charge_spin else (None, None)
