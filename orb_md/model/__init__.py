"""The Orb-v3 network re-implemented over plain tensors."""

from orb_md.model.config import RELEASED_MODELS, OrbConfig, released_config
from orb_md.model.orb import OrbModel

__all__ = ["OrbConfig", "OrbModel", "RELEASED_MODELS", "released_config"]
