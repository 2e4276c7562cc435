"""The one folder orb_md caches things in: ``$ORB_MD_CACHE``, default ``~/.cache/orb-md``.

Under it: ``checkpoints/`` (downloaded official weights), ``training/`` (generated training data),
and what ``scripts/bootstrap.sh`` and
``scripts/build_lammps.sh`` build (``venv/``, ``lammps-*/``, ``src/``), which read the same variable.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ORB_MD_CACHE"


def cache_root() -> Path:
    """``$ORB_MD_CACHE`` if set (and not empty), else ``~/.cache/orb-md``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "orb-md")
