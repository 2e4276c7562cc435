"""The Orb-v3 network re-implemented over plain tensors."""

from orb_md.model.config import BUNDLED_MODELS, RELEASED_MODELS, OrbConfig, model_config
from orb_md.model.inputs import OrbInputs
from orb_md.model.orb import OrbModel

__all__ = ["BUNDLED_MODELS", "OrbConfig", "OrbInputs", "OrbModel", "RELEASED_MODELS", "model_config"]
