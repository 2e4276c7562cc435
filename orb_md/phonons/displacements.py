"""Finite displacements with phonopy; the displaced supercells evaluated together in batched model calls.

phonopy generates the displacements and turns forces into force constants. An OrbModel evaluates all
displaced supercells (and the undisplaced one, for its residual forces) in one call, or in calls of at most
``max_atoms_per_batch`` atoms to bound memory; any ASE calculator goes through phonopy's usual loop, one
supercell at a time.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import ase
import numpy as np
from ase.calculators.calculator import Calculator

from orb_md.batch import atoms_to_batch, evaluate
from orb_md.equigrad import rotational_gradient
from orb_md.errors import InputError
from orb_md.model.orb import OrbModel

if TYPE_CHECKING:
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

PlusMinus = Literal["auto"] | bool
Supercell = Sequence[int] | Sequence[Sequence[int]]


@dataclasses.dataclass
class PhononResult:
    """A phonopy run with force constants, and the diagnostics of the model that produced them.

    ``rotational_gradient`` is Delta_rot (eV) of the undisplaced supercell (NaN for a plain ASE calculator);
    ``residual_forces`` (eV/Å) are its forces, zero by symmetry in a crystal: what a model that is not exactly
    rotation invariant leaves there, central differences (``is_plusminus=True``) cancel.
    """

    phonopy: Phonopy
    gamma_frequencies: np.ndarray  # THz, ascending; imaginary ones negative (phonopy's convention)
    rotational_gradient: np.ndarray  # (3, 3)
    residual_forces: np.ndarray  # (N, 3)
    model_calls: int  # batched calls that evaluated the supercells (0: an ASE calculator's loop)

    def summary(self) -> dict[str, object]:
        """The numbers worth keeping, as plain JSON-ready values."""
        run = self.phonopy
        return {
            "formula": run.unitcell.formula,
            "supercell_matrix": run.supercell_matrix.tolist(),
            "atoms_in_supercell": len(run.supercell),
            "displacements": len(run.supercells_with_displacements),
            "model_calls": self.model_calls,
            "gamma_frequencies_THz": self.gamma_frequencies.tolist(),
            "rotational_gradient_eV": self.rotational_gradient.tolist(),
            "rotational_gradient_norm_eV": float(np.linalg.norm(self.rotational_gradient)),
            "residual_force_max_eV_per_A": float(np.abs(self.residual_forces).max()),
        }


def _phonopy():
    try:
        return importlib.import_module("phonopy")
    except ImportError as exc:
        raise InputError(f"phonons need phonopy (pip install 'orb-md[phonons]'): {exc}") from None


def phonopy_atoms(atoms: ase.Atoms) -> PhonopyAtoms:
    """The structure as phonopy's PhonopyAtoms (masses kept); InputError unless a 3D-periodic cell with volume."""
    _phonopy()
    from phonopy.structure.atoms import PhonopyAtoms

    label = atoms.get_chemical_formula() or "empty structure"
    if len(atoms) == 0:
        raise InputError("phonons: the structure has no atoms")
    if not atoms.pbc.all():
        raise InputError(f"phonons need a crystal periodic in all three directions; {label} has pbc={atoms.pbc.tolist()}")
    if abs(atoms.cell.volume) < 1e-6:
        raise InputError(f"phonons: the cell of {label} has no volume ({abs(atoms.cell.volume):.2e} Å^3)")
    if not np.all(np.isfinite(atoms.positions)):
        raise InputError(f"phonons: positions of {label} contain NaN or inf")
    return PhonopyAtoms(numbers=atoms.numbers, cell=atoms.cell.array, scaled_positions=atoms.get_scaled_positions(),
                        masses=atoms.get_masses())


def ase_atoms(cell: PhonopyAtoms) -> ase.Atoms:
    """A phonopy cell as periodic ASE Atoms with the masses phonopy uses."""
    return ase.Atoms(numbers=cell.numbers, cell=cell.cell, positions=cell.positions, masses=cell.masses, pbc=True)


def displacement_run(
    atoms: ase.Atoms,
    supercell: Supercell,
    *,
    distance: float = 0.01,
    is_plusminus: PlusMinus = "auto",
    primitive_matrix: str | Sequence[Sequence[float]] = "auto",
    symprec: float = 1e-5,
) -> Phonopy:
    """A phonopy run of ``atoms`` with its displaced supercells generated (``distance`` in Å)."""
    matrix = np.array(supercell)
    if matrix.shape not in ((3,), (3, 3)) or not np.issubdtype(matrix.dtype, np.integer):
        raise InputError(f"phonons: the supercell must be 3 integers or a 3x3 integer matrix, got {supercell!r}")
    if round(np.linalg.det(np.diag(matrix) if matrix.ndim == 1 else matrix)) < 1:
        raise InputError(f"phonons: the supercell {matrix.tolist()} has no positive determinant")
    if not distance > 0:
        raise InputError(f"phonons: the displacement distance must be positive, got {distance} Å")
    if is_plusminus not in ("auto", True, False):
        raise InputError(f"phonons: is_plusminus must be 'auto', True or False, got {is_plusminus!r}")
    unitcell = phonopy_atoms(atoms)
    with warnings.catch_warnings():  # phonopy 4 notes that its default changed; 'auto' is chosen here on purpose
        warnings.filterwarnings("ignore", message="primitive_matrix defaulted to 'auto'")
        run = _phonopy().Phonopy(unitcell, supercell_matrix=matrix, primitive_matrix=primitive_matrix, symprec=symprec)
    run.generate_displacements(distance=distance, is_plusminus=is_plusminus)
    return run


def batched_forces(
    model: OrbModel, structures: Sequence[ase.Atoms], max_atoms_per_batch: int = 0
) -> tuple[np.ndarray, int]:
    """Forces (S, N, 3) in eV/Å of same-size structures and the number of model calls that gave them.

    ``max_atoms_per_batch`` 0 evaluates all in one call; otherwise each call holds at most that many atoms
    (and at least one structure).
    """
    if max_atoms_per_batch < 0:
        raise InputError(f"max_atoms_per_batch must be 0 (one batch) or positive, got {max_atoms_per_batch}")
    size = len(structures[0])
    per_call = len(structures) if max_atoms_per_batch == 0 else max(1, max_atoms_per_batch // size)
    parameter = next(model.parameters())
    forces = []
    for start in range(0, len(structures), per_call):
        group = structures[start:start + per_call]
        out = evaluate(model, atoms_to_batch(group, dtype=parameter.dtype, device=parameter.device), stress=False)
        forces.append(out["forces"].cpu().double().numpy().reshape(len(group), size, 3))
    stacked = np.concatenate(forces)
    if not np.isfinite(stacked).all():
        raise InputError("phonons: the model returned non-finite forces for a displaced supercell")
    return stacked, len(forces)


def calculator_forces(calculator: Calculator, structures: Sequence[ase.Atoms]) -> np.ndarray:
    """Forces (S, N, 3) in eV/Å from an ASE calculator, one structure at a time (phonopy's usual loop)."""
    forces = []
    for atoms in structures:
        atoms.calc = calculator
        forces.append(atoms.get_forces())
    return np.array(forces)


def compute_phonons(
    model: OrbModel | Calculator,
    atoms: ase.Atoms,
    supercell: Supercell = (2, 2, 2),
    *,
    distance: float = 0.01,
    is_plusminus: PlusMinus = "auto",
    primitive_matrix: str | Sequence[Sequence[float]] = "auto",
    max_atoms_per_batch: int = 0,
    symprec: float = 1e-5,
) -> PhononResult:
    """Force constants of ``atoms`` from finite displacements, Γ frequencies and the model's diagnostics.

    ``model``: an OrbModel (batched, see :func:`batched_forces`) or any ASE calculator (one call per supercell).
    The other arguments are phonopy's (``is_plusminus``: 'auto', True or False; ``distance`` in Å).
    """
    run = displacement_run(atoms, supercell, distance=distance, is_plusminus=is_plusminus,
                           primitive_matrix=primitive_matrix, symprec=symprec)
    perfect = ase_atoms(run.supercell)
    structures = [perfect] + [ase_atoms(cell) for cell in run.supercells_with_displacements]
    if isinstance(model, OrbModel):
        forces, calls = batched_forces(model, structures, max_atoms_per_batch)
        gradient = rotational_gradient(model, perfect)
    else:
        forces, calls = calculator_forces(model, structures), 0
        gradient = np.full((3, 3), np.nan)
    run.forces = forces[1:]
    run.produce_force_constants(show_drift=False)
    return PhononResult(run, frequencies(run, [[0.0, 0.0, 0.0]])[0], gradient, forces[0], calls)


def frequencies(run: Phonopy, qpoints: Sequence[Sequence[float]]) -> np.ndarray:
    """Frequencies (Q, bands) in THz at q-points in reduced coordinates of the primitive cell's reciprocal
    lattice, ascending per q-point (imaginary ones negative, phonopy's convention)."""
    run.run_qpoints(np.asarray(qpoints, dtype=np.float64))
    return np.array(run.qpoints.frequencies, dtype=np.float64)
