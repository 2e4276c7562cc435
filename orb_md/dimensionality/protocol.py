"""The 0123D protocol: relax every reference geometry with the model, then score it against the reference.

FIRE (batched, :func:`orb_md.relax.relax`) from the reference geometry to a largest force of 40 meV/Å, at
most 15,000 steps; a structure fails when an atomic force exceeds 10,000 eV/Å, and is fragmented when its
size across the non-periodic directions exceeds the 0123D limit (checked while it relaxes and at the end).
Positions only by default (the reference cell is kept, as the metrics compare positions in it); the cell
along the periodic directions with ``relax_cell`` (molecules and clusters keep theirs: they have none).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import ase

from orb_md.dimensionality.dataset import Reference
from orb_md.dimensionality.fragmentation import SIZE_NAMES, is_fragmented, size
from orb_md.dimensionality.geometry import energy_error_per_atom, geometry_error
from orb_md.dimensionality.parameters import FMAX, MAX_FORCE, MAX_STEPS, SIZE_LIMITS
from orb_md.errors import InputError
from orb_md.relax import RelaxResult, relax

FRAGMENT_EVERY = 100  # steps between fragmentation checks during the relaxation


@dataclasses.dataclass
class Outcome:
    """The protocol's result for one structure; errors are None unless the relaxation converged intact."""

    name: str
    dimensionality: int
    n_atoms: int
    status: str  # converged, max_steps, blow_up, fragmented or failed (orb_md.relax.STATUSES)
    steps: int
    message: str
    size: float | None  # Å, of the relaxed structure (diameter 0D, width 1D, thickness 2D)
    reference_size: float | None
    geometry_error: float | None  # Å, MAE of position components
    energy_error: float | None  # eV/atom, signed (model minus reference)
    atoms: ase.Atoms


def _size_of(atoms: ase.Atoms) -> float | None:
    return size(atoms.positions, atoms.cell.array, atoms.pbc)


def run_protocol(
    references: Sequence[Reference],
    model,
    *,
    fmax: float = FMAX,
    max_steps: int = MAX_STEPS,
    max_force: float = MAX_FORCE,
    relax_cell: bool = False,
    limits: dict[int, float] = SIZE_LIMITS,
    batch_size: int = 0,
    on_result: Callable[[RelaxResult], None] | None = None,
    progress: bool = True,
) -> list[Outcome]:
    """Relax ``references`` with ``model`` (an OrbModel), ``batch_size`` structures at a time (0: all in one
    batch), and score each one. ``on_result`` gets each relaxation result as it finishes (e.g.
    :class:`orb_md.relax.output.ResultWriter`)."""
    if batch_size < 0:
        raise InputError(f"batch_size must not be negative, got {batch_size}")
    step = batch_size or max(len(references), 1)
    references = list(references)
    results = []

    def fragmented(atoms: ase.Atoms) -> str | None:
        d = int(atoms.pbc.sum())  # references carry pbc = their periodic directions
        value = _size_of(atoms)
        if is_fragmented(value, d, limits):
            return f"{SIZE_NAMES[d]} {value:.2f} Å > {limits[d]} Å"
        return None

    for start in range(0, len(references), step):
        chunk = references[start:start + step]
        results += relax([r.atoms for r in chunk], model, fmax=fmax, max_steps=max_steps, max_force=max_force,
                         relax_cell=[relax_cell and bool(r.atoms.pbc.any()) for r in chunk],
                         fragmented=fragmented, fragment_every=FRAGMENT_EVERY, labels=[r.name for r in chunk],
                         on_result=on_result, progress=progress)
    outcomes = []
    for reference, result in zip(references, results):
        atoms = result.atoms
        intact = result.status == "converged"
        outcomes.append(Outcome(
            name=reference.name, dimensionality=reference.dimensionality, n_atoms=len(reference.atoms),
            status=result.status, steps=result.steps, message=result.message,
            size=_size_of(atoms), reference_size=_size_of(reference.atoms),
            geometry_error=geometry_error(atoms.positions, reference.atoms.positions, reference.atoms.cell.array,
                                          reference.atoms.pbc) if intact else None,
            energy_error=energy_error_per_atom(result.energy, reference.energy, len(atoms)) if intact else None,
            atoms=atoms,
        ))
    return outcomes
