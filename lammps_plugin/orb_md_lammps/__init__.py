"""Orb-v3 (orb_md) in LAMMPS through ``pair_style mliap unified``.

``python -m orb_md_lammps.export <model|ckpt> out.pt`` writes the file that
``pair_style mliap unified out.pt 0|1`` loads; see lammps_plugin/README.md.
"""

from orb_md_lammps.unified import OrbMLIAPUnified, make_unified

__all__ = ["OrbMLIAPUnified", "make_unified"]
