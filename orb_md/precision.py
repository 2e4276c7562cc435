"""The three precision modes of orb-models and what each one sets."""

from __future__ import annotations

import torch

from orb_md.errors import InputError

PRECISIONS: dict[str, torch.dtype] = {
    "float32-high": torch.float32,
    "float32-highest": torch.float32,
    "float64": torch.float64,
}


def apply_precision(mode: str) -> torch.dtype:
    """Model dtype of a precision mode; float32 modes also set the float32 matmul precision.

    "float32-high" allows TF32 matrix products on GPUs (~1e-3 relative), "float32-highest"
    forbids them. Unlike orb-models, the process-wide default dtype is left alone.
    """
    try:
        dtype = PRECISIONS[mode]
    except KeyError:
        raise InputError(f"unknown precision {mode!r}; use one of {', '.join(PRECISIONS)}") from None
    if dtype == torch.float32:
        torch.set_float32_matmul_precision(mode.removeprefix("float32-"))
    return dtype
