"""Total charge and spin multiplicity of the OMol models (``orb-v3-*-omol``) under LAMMPS.

``pair_style mliap unified <file> <ghostneigh>`` takes no further words: LAMMPS's ``PairMLIAP::settings``
stops on any other one with "Unknown pair_style mliap keyword". The values therefore come from the exported
file (``export --charge Q --spin S``) or, overriding it, from the LAMMPS variables ``orb_charge`` and
``orb_spin``, read at every force call. The OMol conditioning is one vector per system, from Q and S alone:
every rank conditions its atoms with the global Q and S, whatever number of atoms it holds.
"""

from __future__ import annotations

import math

import torch

from orb_md.errors import InputError
from orb_md_lammps.graph import OrbLammpsError

VARIABLES = {"charge": "orb_charge", "spin": "orb_spin"}
"""LAMMPS variable (equal, internal, index or string style) giving each value at run time."""


def check_charge_spin(config, charge: float | None, spin: float | None) -> None:
    """Refuse a total charge or spin for a model that takes none, and values the embedding cannot take
    (spin multiplicity 2S+1 >= 1, or 0 for 'unspecified' as in orb-models)."""
    given = [name for name, value in (("charge", charge), ("spin", spin)) if value is not None]
    if given and not config.charge_spin:
        raise InputError(
            f"{config.name} takes no total charge or spin multiplicity (got --{' --'.join(given)}); "
            "only the OMol models (orb-v3-*-omol) do"
        )
    for name, value in (("charge", charge), ("spin", spin)):
        if value is not None and not math.isfinite(value):
            raise InputError(f"the total {name} must be a finite number, got {value}")
    if spin is not None and spin < 0:
        raise InputError(f"the spin multiplicity (2S+1) must be >= 1, or 0 for unspecified; got {spin}")


def _variable(lmp, name: str) -> float | None:
    """The value of LAMMPS variable ``name`` as a number, None when it is not defined."""
    if not lmp.has_id("variable", name):
        return None
    value = lmp.extract_variable(name)
    try:
        return float(value)
    except (TypeError, ValueError):
        got = repr(value) if isinstance(value, str) else "a per-atom or vector variable"
        raise OrbLammpsError(
            f"orb_md: LAMMPS variable {name} must be one number (e.g. 'variable {name} equal 1'), got {got}"
        ) from None


def system_charge_spin(
    lmp, config, exported: dict[str, float | None], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(total charge, spin multiplicity) as (1,) tensors on ``device`` for an OMol model, None for the others.

    The LAMMPS variables override the ``exported`` values; an OMol model with neither, or another model with
    the variables defined, stops with an error naming what to set."""
    from_lammps = {key: _variable(lmp, name) for key, name in VARIABLES.items()}
    defined = [VARIABLES[key] for key, value in from_lammps.items() if value is not None]
    if not config.charge_spin:
        if defined:
            raise OrbLammpsError(
                f"orb_md: {config.name} takes no total charge or spin multiplicity (LAMMPS variable "
                f"{' and '.join(defined)} is defined); only the OMol models (orb-v3-*-omol) do"
            )
        return None
    values = {key: exported.get(key) if value is None else value for key, value in from_lammps.items()}
    missing = [key for key, value in values.items() if value is None]
    if missing:
        what = {"charge": "total charge Q (e)", "spin": "spin multiplicity S (2S+1)"}
        raise OrbLammpsError(
            f"orb_md: {config.name} needs the system's {' and '.join(what[key] for key in missing)}: export "
            "the model with --charge Q --spin S, or define "
            f"{' and '.join(f'variable {VARIABLES[key]} equal ...' for key in missing)} in the LAMMPS input"
        )
    try:
        check_charge_spin(config, values["charge"], values["spin"])
    except InputError as error:
        raise OrbLammpsError(f"orb_md: {error}") from None
    return tuple(torch.tensor([values[key]], dtype=torch.float64, device=device) for key in ("charge", "spin"))
