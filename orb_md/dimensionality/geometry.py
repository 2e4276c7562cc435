"""Geometry error of a relaxed structure against its reference: MAE of Cartesian position components.

Two steps come before the mean absolute error, so that only real changes of the geometry count:

1. *Periodic wrapping is undone*: each atom's displacement is reduced to its minimum image over the
   reference cell's periodic lattice vectors (an atom that left through one face and re-entered through the
   other has not moved).
2. *Rigid motions that the boundary conditions allow are removed* (Kabsch alignment, least squares):
   a translation always; a rotation only where it maps the periodic lattice onto itself, since a rotated
   slab or crystal in the same cell is a different structure: any proper rotation for 0D, a rotation about
   the axis for 1D, none for 2D and 3D. Reflections are never used.

The 0123D paper's full text was not at hand; its public code names the metric ``MAE_XYZ``, the mean absolute
error of xyz components, which this follows.
"""

from __future__ import annotations

import warnings

import numpy as np
from ase.geometry import find_mic
from scipy.spatial.transform import Rotation

from orb_md.errors import InputError


def lattice_vectors(cell: np.ndarray, periodic: np.ndarray) -> np.ndarray:
    """The periodic cell vectors, shape (k, 3)."""
    return np.asarray(cell, dtype=float)[np.asarray(periodic, dtype=bool)]


def minimum_image(displacements: np.ndarray, cell: np.ndarray, periodic: np.ndarray) -> np.ndarray:
    """Displacements reduced by whole periodic lattice vectors to their shortest image (ASE's ``find_mic``)."""
    d = np.asarray(displacements, dtype=float)
    if not np.any(periodic):
        return d.copy()
    return find_mic(d, np.asarray(cell, dtype=float), np.asarray(periodic, dtype=bool))[0]


def align(positions: np.ndarray, reference: np.ndarray, cell: np.ndarray, periodic: np.ndarray) -> np.ndarray:
    """``positions`` moved by the allowed rigid motion that best fits ``reference`` (least squares), after
    undoing periodic wrapping. Rotations: all (0D), about the periodic axis (1D), none (2D, 3D)."""
    reference = np.asarray(reference, dtype=float)
    unwrapped = reference + minimum_image(np.asarray(positions, dtype=float) - reference, cell, periodic)
    moved = unwrapped - unwrapped.mean(axis=0)
    target = reference - reference.mean(axis=0)
    vectors = lattice_vectors(cell, periodic)
    if len(vectors) == 0 and len(moved) > 1:
        with warnings.catch_warnings():  # a linear molecule's rotation about its axis is undetermined: any fits
            warnings.simplefilter("ignore", UserWarning)
            rotation, _ = Rotation.align_vectors(target, moved)
        moved = rotation.apply(moved)
    elif len(vectors) == 1:
        axis = vectors[0] / np.linalg.norm(vectors[0])
        along = np.outer(moved @ axis, axis)
        across, goal = moved - along, target - np.outer(target @ axis, axis)
        angle = np.arctan2(np.einsum("ij,ij->", np.cross(across, goal), np.broadcast_to(axis, goal.shape)),
                           np.einsum("ij,ij->", across, goal))
        moved = along + Rotation.from_rotvec(angle * axis).apply(across)
    return moved + reference.mean(axis=0)


def geometry_error(positions: np.ndarray, reference: np.ndarray, cell: np.ndarray, periodic: np.ndarray) -> float:
    """Mean absolute error (Å) of the 3N position components after :func:`align`."""
    positions, reference = np.asarray(positions, dtype=float), np.asarray(reference, dtype=float)
    if positions.shape != reference.shape:
        raise InputError(f"positions of shape {positions.shape} cannot be compared with a reference of "
                         f"shape {reference.shape}")
    return float(np.mean(np.abs(align(positions, reference, cell, periodic) - reference)))


def energy_error_per_atom(energy: float, reference_energy: float, n_atoms: int) -> float:
    """Signed error of the total energy per atom, eV/atom (model minus reference)."""
    return (float(energy) - float(reference_energy)) / int(n_atoms)
