"""Relaxation results on disk, written as each system finishes: nothing finished is lost if a run stops.

``<out>/relaxed.extxyz``: one frame per system in the order they finish (``index`` in the frame's info is
its position in the input), with energy, forces and stress (periodic systems) and ``relax_status``,
``relax_steps``, ``relax_fmax``, ``relax_message``. ``<out>/status.csv``: one row per system with the same fields.
"""

from __future__ import annotations

import csv
from pathlib import Path

import ase.io

from orb_md.relax.driver import RelaxResult

STATUS_COLUMNS = ("index", "label", "status", "steps", "energy_eV", "fmax_eV_per_A", "atoms", "message")


class ResultWriter:
    """Appends each result to ``relaxed.extxyz`` and ``status.csv`` under ``out_dir`` (new files each run)."""

    def __init__(self, out_dir: str | Path) -> None:
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.structures = self.dir / "relaxed.extxyz"
        self.structures.unlink(missing_ok=True)
        self.status = self.dir / "status.csv"
        with self.status.open("w", newline="") as handle:
            csv.writer(handle).writerow(STATUS_COLUMNS)

    def __call__(self, result: RelaxResult) -> None:
        atoms = result.atoms.copy()
        atoms.calc = result.atoms.calc
        atoms.info.update(index=result.index, label=result.label, relax_status=result.status,
                          relax_steps=result.steps, relax_fmax=result.fmax, relax_message=result.message or "-")
        ase.io.write(self.structures, atoms, format="extxyz", append=True)
        with self.status.open("a", newline="") as handle:
            csv.writer(handle).writerow([result.index, result.label, result.status, result.steps,
                                         f"{result.energy:.10g}", f"{result.fmax:.6g}", len(result.atoms),
                                         result.message])
