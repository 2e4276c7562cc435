"""Per-system output during a run: thermo CSV files and trajectories (extxyz via ASE, DCD/XTC via mdtraj).

Files are ``<out>/thermo/<label>.csv`` and ``<out>/traj/<label>.<format>``; reporters append when the files
exist (continuing a restart) and write a header only to new files.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import ase.io
import numpy as np

from orb_md.errors import InputError
from orb_md.md.state import MDState
from orb_md.md.units import BAR

THERMO_COLUMNS = (
    "step", "time_fs", "potential_eV", "kinetic_eV", "total_eV", "temperature_K", "pressure_bar", "volume_A3",
)
TRAJECTORY_FORMATS = ("extxyz", "dcd", "xtc")


class Reporter:
    """Called every ``every`` steps with the state; ``close`` at the end of a run."""

    def __init__(self, every: int = 10) -> None:
        if every < 1:
            raise InputError(f"report interval must be at least 1 step, got {every}")
        self.every = every

    def report(self, state: MDState) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def thermo_rows(state: MDState) -> list[dict[str, float]]:
    """One row of THERMO_COLUMNS per system for the current state."""
    kinetic = state.kinetic_energy().cpu().tolist()
    temperature = state.instantaneous_temperature().cpu().tolist()
    volume = state.volume().cpu().tolist()
    pressure = (state.pressure_now() / BAR).cpu().tolist() if state.stress is not None else [math.nan] * state.n_systems
    rows = []
    for b in range(state.n_systems):
        potential = float(state.energy[b]) if state.energy is not None else math.nan
        rows.append({
            "step": state.step, "time_fs": float(state.time[b]), "potential_eV": potential,
            "kinetic_eV": kinetic[b], "total_eV": potential + kinetic[b], "temperature_K": temperature[b],
            "pressure_bar": pressure[b], "volume_A3": volume[b],
        })
    return rows


class ThermoReporter(Reporter):
    """``thermo/<label>.csv`` per system with THERMO_COLUMNS (pressure and volume NaN without full periodicity)."""

    def __init__(self, out_dir: str | Path, every: int = 10) -> None:
        super().__init__(every)
        self.dir = Path(out_dir) / "thermo"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, object] = {}

    def report(self, state: MDState) -> None:
        for label, row in zip(state.labels, thermo_rows(state)):
            handle = self.files.get(label)
            if handle is None:
                path = self.dir / f"{label}.csv"
                new = not path.exists() or path.stat().st_size == 0
                handle = self.files[label] = path.open("a", newline="")
                if new:
                    handle.write(",".join(THERMO_COLUMNS) + "\n")
            csv.writer(handle).writerow([_format(row[c]) for c in THERMO_COLUMNS])
            handle.flush()

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
        self.files.clear()


def _format(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.10g}"


class TrajectoryReporter(Reporter):
    """``traj/<label>.<fmt>`` per system: extxyz (ASE; velocities, energy, forces) or DCD/XTC (mdtraj).

    DCD stores Å, XTC nm (mdtraj's conventions); both store the cell of every frame (zero box if none).
    """

    def __init__(self, out_dir: str | Path, fmt: str = "extxyz", every: int = 10) -> None:
        super().__init__(every)
        if fmt not in TRAJECTORY_FORMATS:
            raise InputError(f"unknown trajectory format {fmt!r}; choose one of {', '.join(TRAJECTORY_FORMATS)}")
        if fmt in ("dcd", "xtc"):
            try:
                import mdtraj  # noqa: F401
            except ImportError:
                raise InputError(f"the {fmt} format needs mdtraj (pip install mdtraj)") from None
        self.fmt = fmt
        self.dir = Path(out_dir) / "traj"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, object] = {}

    def report(self, state: MDState) -> None:
        if self.fmt == "extxyz":
            for atoms in state.to_atoms():
                ase.io.write(self.dir / f"{atoms.info['label']}.extxyz", atoms, format="extxyz", append=True)
            return
        positions = state.positions.cpu().numpy()
        cells = state.cell.cpu().numpy()
        for b, sl in enumerate(state.slices()):
            handle = self._open(state.labels[b])
            lengths, angles = _lengths_angles(cells[b])
            xyz = positions[sl][None].astype(np.float32)
            if self.fmt == "dcd":
                handle.write(xyz, cell_lengths=lengths[None], cell_angles=angles[None])
            else:
                box = (cells[b] / 10.0)[None].astype(np.float32)
                handle.write((xyz / 10.0).astype(np.float32), time=np.array([float(state.time[b]) / 1000.0], np.float32),
                             step=np.array([state.step], np.int32), box=box)

    def _open(self, label: str):
        handle = self.files.get(label)
        if handle is None:
            from mdtraj.formats import DCDTrajectoryFile, XTCTrajectoryFile

            path = self.dir / f"{label}.{self.fmt}"
            mode = "a" if path.exists() and path.stat().st_size > 0 else "w"
            opener = DCDTrajectoryFile if self.fmt == "dcd" else XTCTrajectoryFile
            handle = self.files[label] = opener(str(path), mode)
        return handle

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
        self.files.clear()


def _lengths_angles(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.linalg.norm(cell, axis=1)
    if np.any(lengths == 0):
        return np.zeros(3), np.full(3, 90.0)
    cos = lambda i, j: np.dot(cell[i], cell[j]) / (lengths[i] * lengths[j])  # noqa: E731
    angles = np.degrees(np.arccos([cos(1, 2), cos(0, 2), cos(0, 1)]))
    return lengths, angles


def write_topology_pdb(state: MDState, out_dir: str | Path) -> None:
    """``traj/<label>.pdb`` (first frame) so that DCD/XTC files can be loaded with their topology."""
    directory = Path(out_dir) / "traj"
    directory.mkdir(parents=True, exist_ok=True)
    for atoms in state.to_atoms():
        path = directory / f"{atoms.info['label']}.pdb"
        if not path.exists():
            ase.io.write(path, atoms, format="proteindatabank")
