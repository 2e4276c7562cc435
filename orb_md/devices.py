"""The torch device a model runs on, checked once with a clear error instead of torch's deep one."""

from __future__ import annotations

import torch

from orb_md.errors import InputError


def parse_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device, not yet checked against this machine (a file exported for a GPU elsewhere);
    a name torch does not know is an :class:`InputError`."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {device!r}: device must be cpu, cuda or cuda:N, got {device!r}") from None


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device; a CUDA device this process cannot use is an :class:`InputError`."""
    resolved = parse_device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r}: no CUDA GPU is usable here (torch.cuda.is_available() is False)")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise InputError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return resolved
