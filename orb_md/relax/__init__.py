"""Batched structure relaxation: FIRE (and ASE's Fréchet cell filter) for many structures, one model call per step.

Modules, one job each: :mod:`~orb_md.relax.fire` (batched FIRE), :mod:`~orb_md.relax.cell` (batched
FrechetCellFilter, strain along periodic axes only), :mod:`~orb_md.relax.batch` (the shrinking batch),
:mod:`~orb_md.relax.driver` (:func:`relax`).

Example::

    results = relax(structures, model, fmax=0.05, relax_cell=True, max_force=1e4)
    for r in results:
        print(r.label, r.status, r.steps, r.energy, r.message)
"""

from orb_md.relax.driver import STATUSES, RelaxResult, relax
from orb_md.relax.fire import FireParameters

__all__ = ["STATUSES", "FireParameters", "RelaxResult", "relax"]
