"""Finite-displacement phonons on phonopy, all displaced supercells in one batched model call.

:func:`compute_phonons` gives force constants, Γ frequencies and the model's rotational gradient;
:func:`write_outputs` the band structure and DOS plots and a JSON summary. Needs ``orb-md[phonons]``.
"""

from orb_md.phonons.displacements import (
    PhononResult,
    batched_forces,
    calculator_forces,
    compute_phonons,
    displacement_run,
    frequencies,
)
from orb_md.phonons.outputs import run_band_path, write_outputs

__all__ = [
    "PhononResult",
    "batched_forces",
    "calculator_forces",
    "compute_phonons",
    "displacement_run",
    "frequencies",
    "run_band_path",
    "write_outputs",
]
