"""Create the inputs of the LAMMPS examples (offline): a reduced-width random Orb-v3 model per
kind, exported with `python -m orb_md_lammps.export`, and the water data file.

    python examples/lammps/prepare.py     # from the repository root

With released weights use e.g. `python -m orb_md_lammps.export orb-v3-conservative-inf-omat
orb-conservative.pt` instead (the inputs only need the file name).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ase.build
import ase.io
import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = {
    "orb-conservative.pt": "orb-v3-conservative-inf-omat",
    "orb-direct.pt": "orb-v3-direct-20-omat",
}


def water(n: int = 3, seed: int = 0) -> ase.Atoms:
    """n^3 water molecules at ~1 g/cm^3 (3.1 Å per molecule), random orientations."""
    rng = np.random.default_rng(seed)
    box = ase.Atoms(cell=[3.1 * n] * 3, pbc=True)
    for index in np.ndindex(n, n, n):
        molecule = ase.build.molecule("H2O")
        molecule.rotate(rng.uniform(0, 360), rng.normal(size=3))
        molecule.translate(np.array(index) * 3.1 + 1.55)
        box += molecule
    box.wrap()
    return box


def main() -> None:
    for out, arch in MODELS.items():
        subprocess.run(
            [sys.executable, "-m", "orb_md_lammps.export", arch, str(HERE / out), "--random-weights",
             "--latent-dim", "32", "--mlp-hidden-dim", "64"],
            check=True,
        )
    ase.io.write(HERE / "water.data", water(), format="lammps-data", specorder=["O", "H"], masses=True, atom_style="atomic")
    print(f"wrote {HERE / 'water.data'}")


if __name__ == "__main__":
    main()
