"""Fragmentation checks of the 0123D protocol: a relaxed structure that grew beyond a size limit along its
non-periodic directions has come apart (or evaporated atoms).

Sizes, measured only across the non-periodic directions, so that they do not depend on how atoms are
wrapped into the cell along the periodic ones (a lattice translation has no component there):

- 2D *thickness*: the range of positions along the normal of the plane of the two periodic vectors;
- 1D *width*: the largest distance between two atoms projected onto the plane normal to the periodic axis;
- 0D *diameter*: the largest distance between two atoms.

Limits (0123D): thickness 7.5 Å, width 12.5 Å, diameter 20 Å; a structure is fragmented when its size is
larger. They are absolute, as in the paper; the report lists each reference's own size beside the relaxed
one, so a reference already beyond its limit (a thick slab) is visible there.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist

from orb_md.dimensionality.geometry import lattice_vectors
from orb_md.dimensionality.parameters import SIZE_LIMITS

SIZE_NAMES = {0: "diameter", 1: "width", 2: "thickness"}


def size(positions: np.ndarray, cell: np.ndarray, periodic: np.ndarray) -> float | None:
    """Diameter (0D), width (1D) or thickness (2D) in Å; None for 3D. ``positions`` must be contiguous
    along the non-periodic directions (see :func:`orb_md.dimensionality.periodicity.make_contiguous`)."""
    positions = np.asarray(positions, dtype=float)
    vectors = lattice_vectors(cell, periodic)
    if len(vectors) == 3:
        return None
    if len(vectors) == 2:
        normal = np.cross(vectors[0], vectors[1])
        heights = positions @ (normal / np.linalg.norm(normal))
        return float(heights.max() - heights.min())
    if len(vectors) == 1:
        axis = vectors[0] / np.linalg.norm(vectors[0])
        positions = positions - np.outer(positions @ axis, axis)
    return float(pdist(positions).max()) if len(positions) > 1 else 0.0


def is_fragmented(value: float | None, dimensionality: int, limits: dict[int, float] = SIZE_LIMITS) -> bool:
    """True when the size exceeds the limit of that dimensionality (never for 3D)."""
    return value is not None and dimensionality in limits and value > limits[dimensionality]
