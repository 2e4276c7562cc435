"""orb_md: Orb-v3 interatomic potentials for MD engines.

Data flow: checkpoint (:mod:`orb_md.checkpoints`) -> model (:mod:`orb_md.model`) ->
graph (:mod:`orb_md.graph`) -> engine adapter (ASE :mod:`orb_md.calculator`, OpenMM, LAMMPS).
"""

from orb_md.checkpoints import load_model
from orb_md.errors import CheckpointError, InputError, OrbMDError
from orb_md.model import RELEASED_MODELS, OrbConfig, OrbModel
from orb_md.model.factory import build_model

__all__ = [
    "CheckpointError",
    "InputError",
    "OrbConfig",
    "OrbMDError",
    "OrbModel",
    "RELEASED_MODELS",
    "build_model",
    "load_model",
]
