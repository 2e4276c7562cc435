"""Pieces shared by the TorchForce and the PythonForce paths (no openmm-torch import here)."""

from __future__ import annotations

from pathlib import Path

import openmm
import openmm.app
import torch

from orb_md import OrbModel, load_model
from orb_md.charge_spin import check_charge_spin
from orb_md.training_elements import warn_untrained_elements
from orb_md.units import MAX_ATOMIC_NUMBER
from orb_md_openmm.module import EnergyForcesModule, EnergyModule, OrbEvaluator


def topology_atomic_numbers(topology: openmm.app.Topology, atoms: list[int] | None) -> list[int]:
    """Atomic numbers of the ML atoms; ValueError (one line) for an atom Orb cannot handle."""
    all_atoms = list(topology.atoms())
    selected = all_atoms if atoms is None else [all_atoms[i] for i in atoms]
    for atom in selected:
        where = f"atom {atom.index} ({atom.name} in {atom.residue.name} {atom.residue.id})"
        if atom.element is None:
            raise ValueError(
                f"{where} has no element (a virtual site or dummy particle?); Orb needs Z = 1..{MAX_ATOMIC_NUMBER} "
                "for every ML atom: leave it out of the ML region (createMixedSystem atoms=...)"
            )
        if not 1 <= atom.element.atomic_number <= MAX_ATOMIC_NUMBER:
            raise ValueError(f"{where} has atomic number {atom.element.atomic_number}; Orb handles Z = 1..{MAX_ATOMIC_NUMBER}")
    return [atom.element.atomic_number for atom in selected]


def resolve_periodic(topology: openmm.app.Topology, periodic: bool | None) -> bool:
    """``periodic`` defaults to whether the topology has a box; periodic=True without a box is an error."""
    has_box = topology.getPeriodicBoxVectors() is not None
    if periodic is None:
        return has_box
    if periodic and not has_box:
        raise ValueError(
            "periodic=True but the topology has no periodic box vectors: call topology.setPeriodicBoxVectors(...) "
            "or pass periodic=False for a non-periodic (cluster) system"
        )
    return bool(periodic)


def resolve_model(model: str | Path | torch.nn.Module, precision: str = "float32-high", architecture: str | None = None) -> OrbModel:
    """An OrbModel as is, or a released name / checkpoint path loaded with ``precision``."""
    if isinstance(model, torch.nn.Module):
        if not isinstance(model, OrbModel):
            raise TypeError(f"model must be an orb_md OrbModel, a released model name or a checkpoint path, got {type(model).__name__}")
        return model.eval()
    if not isinstance(model, (str, Path)):
        raise TypeError(f"model must be an orb_md OrbModel, a released model name or a checkpoint path, got {type(model).__name__}")
    return load_model(model, precision=precision, architecture=architecture)


def charge_spin(model: OrbModel, charge: float, multiplicity: float) -> tuple[float | None, float | None]:
    """(total charge, spin multiplicity) for OMol models (checked by :mod:`orb_md.charge_spin`); ValueError if a
    model without those inputs is given other than OpenMM's defaults (0, 1)."""
    if model.config.charge_spin:
        check_charge_spin(model.config, float(charge), float(multiplicity))
        return float(charge), float(multiplicity)
    if (charge, multiplicity) != (0, 1):
        raise ValueError(f"{model.config.name} takes no total charge/spin; charge={charge}, multiplicity={multiplicity} unsupported")
    return None, None


def make_wrapper(
    model: OrbModel,
    atomic_numbers: list[int],
    atoms: list[int] | None,
    periodic: bool,
    charge: float = 0,
    multiplicity: float = 1,
    scaled: bool = False,
) -> torch.nn.Module:
    """The eager TorchForce-style wrapper: energy+forces for direct models, energy only for conservative ones."""
    total_charge, spin = evaluator_inputs(model, atomic_numbers, atoms, charge, multiplicity)
    evaluator = OrbEvaluator(model.eval(), atomic_numbers, atoms, periodic, total_charge, spin)
    return wrap_evaluator(model, evaluator, scaled)


def evaluator_inputs(
    model: OrbModel, atomic_numbers: list[int], atoms: list[int] | None, charge: float, multiplicity: float
) -> tuple[float | None, float | None]:
    """(total charge, spin) for an evaluator, after checking them and the ML atoms against the model (and warning
    for elements it was not trained on)."""
    if atoms is not None and len(atoms) != len(atomic_numbers):
        raise ValueError(f"{len(atoms)} ML atoms but {len(atomic_numbers)} atomic numbers")
    warn_untrained_elements(model, atomic_numbers)
    return charge_spin(model, charge, multiplicity)


def wrap_evaluator(model: OrbModel, evaluator: torch.nn.Module, scaled: bool = False) -> torch.nn.Module:
    """The TorchForce module around an evaluator: energy+forces (direct models) or energy only (conservative);
    ``scaled``: multiplied by a global parameter (:class:`orb_md_openmm.module.EnergyModule`)."""
    return (EnergyForcesModule if model.config.kind == "direct" else EnergyModule)(evaluator, scaled)
