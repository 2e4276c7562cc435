"""Exceptions raised by orb_md for bad input, missing files and unsupported requests."""


class OrbMDError(Exception):
    """Base class of every error orb_md raises on purpose."""


class InputError(OrbMDError, ValueError):
    """A structure, cell or argument that orb_md cannot evaluate (NaN positions, unknown element...)."""


class CheckpointError(OrbMDError, RuntimeError):
    """A checkpoint that is missing, truncated, or does not fit the requested architecture."""
