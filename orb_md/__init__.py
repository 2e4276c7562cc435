"""orb_md: Orb-v3 interatomic potentials for MD engines.

Data flow: checkpoint (:mod:`orb_md.checkpoints`) -> model (:mod:`orb_md.model`) ->
graph (:mod:`orb_md.graph`) -> engine adapter (ASE :mod:`orb_md.calculator`, OpenMM, LAMMPS).
"""

from orb_md.checkpoints import load_model
from orb_md.errors import CheckpointError, InputError, OrbMDError
from orb_md.model import BUNDLED_MODELS, RELEASED_MODELS, OrbConfig, OrbInputs, OrbModel
from orb_md.model.factory import build_model

__all__ = [
    "BUNDLED_MODELS",
    "CheckpointError",
    "InputError",
    "OrbConfig",
    "OrbInputs",
    "OrbMDError",
    "OrbModel",
    "RELEASED_MODELS",
    "build_model",
    "load_model",
]
