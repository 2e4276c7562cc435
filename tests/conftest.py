"""Shared fixtures: the project's real data folder and structure builders."""

from __future__ import annotations

import os
from pathlib import Path

import ase.db
import pytest
import torch

from orb_md.cpus import usable_cpus

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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
