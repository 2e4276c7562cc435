"""Thread counts follow the CPUs a process may use (affinity mask and cgroup quota), not the visible ones."""

from __future__ import annotations

import os

import pytest
import torch

from orb_md import cpus
from orb_md.errors import InputError


@pytest.mark.parametrize(
    ("quota", "expected"),
    [("max 100000", None), ("150000 100000", 1), ("400000 100000", 4), ("50000 100000", 1)],
)
def test_cgroup_v2_quota_caps_the_affinity_mask(tmp_path, monkeypatch, quota, expected):
    (tmp_path / "cpu.max").write_text(quota + "\n")
    monkeypatch.setattr(cpus, "CGROUP_V2_QUOTA", tmp_path / "cpu.max")
    affinity = len(os.sched_getaffinity(0))
    assert cpus.usable_cpus() == (affinity if expected is None else min(affinity, expected))


def test_cgroup_v1_quota(tmp_path, monkeypatch):
    (tmp_path / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    monkeypatch.setattr(cpus, "CGROUP_V2_QUOTA", tmp_path / "absent")
    monkeypatch.setattr(cpus, "CGROUP_V1_QUOTA", tmp_path / "cpu.cfs_quota_us")
    assert cpus.usable_cpus() == 1


def test_set_torch_threads(monkeypatch):
    previous = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert cpus.set_torch_threads(0) == cpus.usable_cpus() == torch.get_num_threads()
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert cpus.set_torch_threads(0) == 3 == torch.get_num_threads()
        assert cpus.set_torch_threads(1) == 1 == torch.get_num_threads()
        with pytest.raises(InputError, match="thread count must be >= 0"):
            cpus.set_torch_threads(-1)
        monkeypatch.setenv("OMP_NUM_THREADS", "two")
        with pytest.raises(InputError, match="OMP_NUM_THREADS must be a positive integer, got 'two'"):
            cpus.set_torch_threads(0)
    finally:
        torch.set_num_threads(previous)
