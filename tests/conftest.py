"""Shared fixtures: the project's real data folder and structure builders."""

from __future__ import annotations

import os
from pathlib import Path

import ase.db
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def usable_cpus() -> int:
    """CPUs this process may really use: its affinity mask, capped by a cgroup CPU quota (containers often
    show every host CPU while granting two; torch and OpenMM would then start one spinning thread per host
    CPU, and small-system MD gets tens of times slower)."""
    count = len(os.sched_getaffinity(0))
    v2, v1 = Path("/sys/fs/cgroup/cpu.max"), Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    try:
        if v2.exists():
            quota, period = v2.read_text().split()  # "<quota> <period>" or "max <period>"
        else:
            quota, period = v1.read_text(), (v1.parent / "cpu.cfs_period_us").read_text()
    except (OSError, ValueError):
        return count
    if quota.strip() in ("max", "-1"):
        return count
    return min(count, max(1, int(quota) // int(period)))


def pytest_configure(config: pytest.Config) -> None:
    """One thread per usable CPU for torch here and for OpenMP/OpenMM in subprocesses (unless set already)."""
    cpus = usable_cpus()
    os.environ.setdefault("OMP_NUM_THREADS", str(cpus))
    os.environ.setdefault("OPENMM_CPU_THREADS", str(cpus))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_report_header(config: pytest.Config) -> str:
    return (f"CPUs: {os.cpu_count()} visible, {usable_cpus()} usable; torch threads {torch.get_num_threads()}, "
            f"OPENMM_CPU_THREADS={os.environ['OPENMM_CPU_THREADS']}")


def shared_data(relative: str) -> Path:
    """Path of a file in ../shared/data; CI must have it (fail there), elsewhere skip with the reason."""
    path = SHARED_DATA / relative
    if not path.exists():
        message = f"shared data file {path} is missing"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def mptraj_crystals() -> list:
    """The 10 Materials Project trajectory frames (10-82 atoms) with DFT labels."""
    with ase.db.connect(shared_data("mptraj/10_mptraj_systems.db")) as db:
        return [row.toatoms() for row in db.select()]
