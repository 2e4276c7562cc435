"""Total charge and spin multiplicity of the OMol models (``orb-v3-*-omol``) under LAMMPS.

``pair_style mliap unified <file> <ghostneigh>`` takes no further words: LAMMPS's ``PairMLIAP::settings``
stops on any other one with "Unknown pair_style mliap keyword". The values therefore come from the exported
file (``export --charge Q --spin S``) or, overriding it, from the LAMMPS variables ``orb_charge`` and
``orb_spin``, read at every force call. The OMol conditioning is one vector per system, from Q and S alone:
every rank conditions its atoms with the global Q and S, whatever number of atoms it holds.
"""

from __future__ import annotations

import torch

from orb_md.charge_spin import charge_spin_tensors, refuse_charge_spin
from orb_md.errors import InputError
from orb_md_lammps.graph import OrbLammpsError

VARIABLES = {"charge": "orb_charge", "spin": "orb_spin"}
"""LAMMPS variable (equal, internal, index or string style) giving each value at run time."""


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


def _how_to_set(missing: list[str]) -> str:
    return ("export the model with --charge Q --spin S, or define "
            f"{' and '.join(f'variable {VARIABLES[key]} equal ...' for key in missing)} in the LAMMPS input")


def system_charge_spin(
    lmp, config, exported: dict[str, float | None], device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(total charge, spin multiplicity) as (1,) tensors on ``device`` for an OMol model, (None, None) for the
    others (:mod:`orb_md.charge_spin`).

    The LAMMPS variables override the ``exported`` values; an OMol model with neither, or another model with
    the variables defined, stops with an error naming what to set."""
    from_lammps = {key: _variable(lmp, name) for key, name in VARIABLES.items()}
    defined = [VARIABLES[key] for key, value in from_lammps.items() if value is not None]
    values = {key: exported.get(key) if value is None else value for key, value in from_lammps.items()}
    try:
        if defined:
            refuse_charge_spin(config, f"LAMMPS variable {' and '.join(defined)} is defined")
        return charge_spin_tensors(config, values["charge"], values["spin"], device, _how_to_set)
    except InputError as error:
        raise OrbLammpsError(f"orb_md: {error}") from None
