"""The torch device a model runs on, checked once with a clear error instead of torch's deep one."""

from __future__ import annotations

import torch

from orb_md.errors import InputError


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device; a CUDA device this process cannot use is an :class:`InputError`."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InputError(f"unknown device {device!r}: {error}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r}: no CUDA GPU is usable here (torch.cuda.is_available() is False)")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise InputError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return resolved
