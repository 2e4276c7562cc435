"""Shared fixtures: the project's real data folder and structure builders."""

from __future__ import annotations

import os
from pathlib import Path

import ase.db
import pytest
import torch

from orb_md.cpus import omp_num_threads, usable_cpus

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per usable CPU (not per visible CPU; see orb_md.cpus)."""
    return usable_cpus()


def pytest_configure(config: pytest.Config) -> None:
    """The usable CPUs shared among the test processes (xdist workers): threads for torch here and for
    OpenMP/OpenMM in subprocesses, unless set already. The xdist controller runs no tests and sets nothing
    (its environment is its workers')."""
    if getattr(config.option, "numprocesses", None) and "PYTEST_XDIST_WORKER" not in os.environ:
        return
    threads = _threads_per_process(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("OPENMM_CPU_THREADS", str(threads))
    torch.set_num_threads(threads)


def _threads_per_process(workers: int) -> int:
    """Threads of each test process: ``OMP_NUM_THREADS`` if set, else an equal share of the usable CPUs."""
    return omp_num_threads() or max(1, usable_cpus() // workers)


NOT_RUN = "not run: "
"""Prefix of the skip reason of tests that need what no CI machine has (a GPU, the official weights):
the only skips CI allows, reported as not run in the summary."""


def _missing_hardware_or_weights(item: pytest.Item) -> str | None:
    """Why a test marked ``cuda`` or ``official_weights`` cannot run on this machine, or None."""
    if item.get_closest_marker("cuda") is not None and not torch.cuda.is_available():
        return "no CUDA GPU on this machine (torch.cuda.is_available() is False)"
    if item.get_closest_marker("official_weights") is not None:
        folder = os.environ.get("ORB_MD_OFFICIAL_CHECKPOINTS")
        if not folder:
            return "ORB_MD_OFFICIAL_CHECKPOINTS is not set (a folder holding the released Orb-v3 .ckpt files)"
        if not Path(folder).is_dir():
            return f"ORB_MD_OFFICIAL_CHECKPOINTS={folder} is not a folder"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files marked ``heavy`` (minutes of MD) first, the rest in their usual order: with one xdist worker
    per CPU (``--dist loadfile --no-loadscope-reorder``) the longest files then start at once, not last.
    Tests needing a GPU or the official weights are skipped as "not run" where those are missing."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)
    for item in items:
        reason = _missing_hardware_or_weights(item)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=NOT_RUN + reason))


@pytest.fixture
def one_thread():
    """Tiny tensors: one torch thread avoids OpenMP stalls on a shared, oversubscribed CPU (50x slower there);
    the previous count is restored for later tests."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_report_header(config: pytest.Config) -> str:
    workers = getattr(config.option, "numprocesses", None)
    share = (f"{workers} xdist workers, {_threads_per_process(workers)} threads each" if workers
             else f"torch threads {torch.get_num_threads()}, OPENMM_CPU_THREADS={os.environ['OPENMM_CPU_THREADS']}")
    return f"CPUs: {os.cpu_count()} visible, {usable_cpus()} usable; {share}"


def _skips(config: pytest.Config) -> tuple[list, list]:
    """The skipped reports split into (not run for want of a GPU or the official weights, other skips)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    not_run = [report for report in skipped if report.longrepr[-1].startswith("Skipped: " + NOT_RUN)]
    return not_run, [report for report in skipped if report not in not_run]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI every test must run, except those needing a GPU or the official weights: any other skip
    there (a missing install, data file or build) fails the session."""
    if os.environ.get("CI") and _skips(session.config)[1]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    not_run, other = _skips(config)
    if not_run:
        terminalreporter.write_line(f"NOT RUN (needs a GPU or the official weights): {len(not_run)} tests, "
                                    "counted as skipped, never as passed", yellow=True)
    for report in other if os.environ.get("CI") else []:
        terminalreporter.write_line(f"CI does not allow skips: {report.nodeid}: {report.longrepr[-1]}", red=True)


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
