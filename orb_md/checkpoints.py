"""Finding, downloading, caching and loading official orb-models checkpoints.

A model is named either by its orb-models name (``orb-v3-direct-20-omat``...), in which case
the file is looked up in ``$ORB_MD_CACHE/checkpoints`` (:mod:`orb_md.cache`; default
``~/.cache/orb-md/checkpoints``, then the folder of orb_md <= 0.1, ``~/.cache/orb_md/checkpoints``) and
downloaded from the official address when missing, by the name of a model bundled with orb_md
(``orb-md-demo-v1``, ``orb-md-demo-bio-v1``, in ``orb_md/weights/``), or by the path of a ``.ckpt`` file (a plain
``torch.save``-d state dict).

A download goes to a temporary file next to its destination and is renamed only once complete (its length as the
server announced it, and its SHA-256 where one is published), with a progress bar on a terminal.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.resources
import os
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from tqdm import tqdm

from orb_md.cache import CACHE_ENV, cache_root
from orb_md.errors import CheckpointError
from orb_md.model.config import BUNDLED_MODELS, RELEASED_MODELS, OrbConfig, model_config
from orb_md.model.orb import OrbModel
from orb_md.precision import apply_precision
from orb_md.training_elements import read_training_elements

DOWNLOAD_TIMEOUT_S = 60.0
DOWNLOAD_BLOCK = 1 << 20
LEGACY_CHECKPOINT_DIR = Path.home() / ".cache" / "orb_md" / "checkpoints"
"""Where orb_md <= 0.1 downloaded to: still read (no second download of the same weights), never written."""
PUBLISHED_SHA256: Mapping[str, str] = {}
"""SHA-256 of released checkpoint files by file name. orb-models publishes none (its URLs and file names carry a
date, not a digest), so downloads are checked for completeness only; add a digest here when one is published."""


def checkpoint_dir() -> Path:
    """Directory downloaded checkpoints go to: ``$ORB_MD_CACHE/checkpoints``."""
    return cache_root() / "checkpoints"


def checkpoint_path(config: OrbConfig, download: bool = True) -> Path:
    """Local path of a released or bundled model's weights, downloading released ones if allowed and missing."""
    if config.name in BUNDLED_MODELS:
        path = Path(str(importlib.resources.files("orb_md") / "weights" / f"{config.name}.ckpt"))
        if not path.is_file():
            raise CheckpointError(f"bundled weights of {config.name} missing at {path}; reinstall orb_md")
        return path
    if config.weights_file is None or config.weights_url is None:
        raise CheckpointError(f"model {config.name!r} has no released weights")
    name = Path(config.weights_file).name
    path = checkpoint_dir() / name
    if path.is_file():
        return path
    if (LEGACY_CHECKPOINT_DIR / name).is_file():
        return LEGACY_CHECKPOINT_DIR / name
    hint = (
        f"weights of {config.name} not found at {path}; download {config.weights_url} "
        f"and put it there (${CACHE_ENV}/checkpoints), or pass the file path"
    )
    if not download:
        raise CheckpointError(hint)
    try:
        download_file(config.weights_url, path, PUBLISHED_SHA256.get(name))
    except (CheckpointError, urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
        raise CheckpointError(f"{hint}; the download failed: {exc}") from None
    return path


def download_file(url: str, path: Path, sha256: str | None = None) -> None:
    """Fetch ``url`` into ``path`` through a temporary file in the same folder, renamed only when complete: as
    long as the server's Content-Length and, if ``sha256`` is given, with that digest (else CheckpointError). An
    interrupted or failed download leaves nothing behind. A progress bar shows when stderr is a terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, part = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None else None
            received = 0
            with tqdm(total=expected, unit="B", unit_scale=True, desc=path.name, disable=not sys.stderr.isatty()) as bar:
                while block := response.read(DOWNLOAD_BLOCK):
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
        if expected is not None and received != expected:
            raise CheckpointError(f"download of {url} stopped after {received} of {expected} bytes; nothing was saved")
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise CheckpointError(
                f"download of {url} has SHA-256 {digest.hexdigest()}, expected {sha256}; nothing was saved"
            )
        os.replace(part, path)
    finally:
        if os.path.exists(part):
            os.remove(part)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict stored in a checkpoint file, with a clear error if it is unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt archives
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} does not hold a state dict of tensors")
    return dict(state)


def load_weights(model: OrbModel, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Copy an orb-models state dict into ``model``, checking every key and shape.

    Extra ``heads.*`` keys (heads this model does not evaluate) are ignored with a warning,
    as orb-models does; any other missing, unexpected or mis-shaped entry is an error.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    ignored = [k for k in extra if k.startswith("heads.")]
    unexpected = [k for k in extra if not k.startswith("heads.")]
    wrong_shape = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and not _fits(k, state[k], own[k])
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_shorten(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_shorten(unexpected)}")
    if wrong_shape:
        problems.append(f"shape mismatches {_shorten(wrong_shape)}")
    if problems:
        raise CheckpointError(
            f"{source} does not fit {model.config.name} ({model.config.kind}, "
            f"charge_spin={model.config.charge_spin}): " + "; ".join(problems)
        )
    if ignored:
        warnings.warn(f"{source}: ignoring weights of heads this model does not use: {_shorten(ignored)}")
    with torch.no_grad():
        for key, value in own.items():
            value.copy_(state[key].reshape(value.shape).to(value.dtype))


def _fits(key: str, stored: torch.Tensor, own: torch.Tensor) -> bool:
    """Same shape; training counters may be stored as () or (1,) depending on the head."""
    if key.endswith("num_batches_tracked"):
        return stored.numel() == own.numel() == 1
    return stored.shape == own.shape


def _shorten(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def load_model(
    name_or_path: str | Path,
    *,
    architecture: str | OrbConfig | None = None,
    precision: str = "float32-high",
    device: str | torch.device = "cpu",
    zero_net_force: bool = True,
    download: bool = True,
) -> OrbModel:
    """Load a released model by name, or a checkpoint file by path, ready for inference.

    ``architecture`` names the configuration the network is built with. For a path it defaults to the
    released or bundled name the file name starts with (e.g. ``orb-v3-direct-20-omat-2025.ckpt``); for a
    name, to that model's own. The weights always come from ``name_or_path``.
    """
    dtype = apply_precision(precision)
    path = Path(name_or_path)
    if path.suffix == ".ckpt" or path.is_file():
        config = _config_for_file(path, architecture)
    else:
        named = model_config(str(name_or_path))
        config = _as_config(architecture) if architecture is not None else named
        path = checkpoint_path(named, download=download)
    model = OrbModel(config, zero_net_force=zero_net_force)
    load_weights(model, read_state_dict(path), source=str(path))
    label = str(name_or_path) if path != Path(name_or_path) else path.name
    model.training_elements = read_training_elements(path, label)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _as_config(architecture: str | OrbConfig) -> OrbConfig:
    return architecture if isinstance(architecture, OrbConfig) else model_config(architecture)


def _config_for_file(path: Path, architecture: str | OrbConfig | None) -> OrbConfig:
    if architecture is not None:
        return _as_config(architecture)
    matches = [name for name in RELEASED_MODELS | BUNDLED_MODELS if path.name.startswith(name)]
    if not matches:
        raise CheckpointError(
            f"cannot tell which architecture {path.name} follows; pass architecture=<model name>"
        )
    return model_config(max(matches, key=len))
