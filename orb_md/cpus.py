"""How many CPU threads to use: the CPUs a process may really run on, not the ones it can see."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from orb_md.errors import InputError

CGROUP_V2_QUOTA = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")


def usable_cpus() -> int:
    """The process's affinity mask, capped by a cgroup CPU quota. Containers often show every host CPU while
    granting two; torch and OpenMM then start one spinning thread per visible CPU, and small-system MD slows
    down many times over."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        if CGROUP_V2_QUOTA.exists():
            quota, period = CGROUP_V2_QUOTA.read_text().split()  # "<quota> <period>" or "max <period>"
        else:
            quota = CGROUP_V1_QUOTA.read_text()
            period = (CGROUP_V1_QUOTA.parent / "cpu.cfs_period_us").read_text()
    except (OSError, ValueError):
        return count
    if quota.strip() in ("max", "-1"):
        return count
    return min(count, max(1, int(quota) // int(period)))


def set_torch_threads(threads: int = 0) -> int:
    """Set torch's intra-op threads to ``threads``; 0 means ``OMP_NUM_THREADS`` where it is set (the
    convention of OpenMP programs), else :func:`usable_cpus`. Returns the count."""
    if threads < 0:
        raise InputError(f"thread count must be >= 0 (0: OMP_NUM_THREADS, else one per usable CPU), got {threads}")
    count = threads or omp_num_threads() or usable_cpus()
    torch.set_num_threads(count)
    return count


def omp_num_threads() -> int:
    """``OMP_NUM_THREADS`` as a positive count, 0 where it is unset; anything else is a clear error."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not value:
        return 0
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"OMP_NUM_THREADS must be a positive integer, got {value!r}")
    return int(value)
