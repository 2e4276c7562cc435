"""Reading a 0D–3D benchmark set: structures, their dimensionality and reference energies.

Takes the 0123D dataset unchanged: an ASE database (``0123D_pbe.db``) whose rows carry the key-value pairs
``mat_id``, ``id_dimension`` ("0D".."3D") and ``uncorrected_energy`` (total energy, eV), as its authors'
public notebooks read it. Also extxyz (or any ASE-readable file) with the same keys in ``atoms.info``, or
other key names given by the caller; the energy may also be the file's calculator ``energy``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import ase
import ase.db

from orb_md.dimensionality.periodicity import make_contiguous, parse_dimensionality, periodic_directions
from orb_md.errors import InputError, OrbMDError

ENERGY_KEYS = ("uncorrected_energy", "energy")  # tried in this order unless one is named
DIMENSION_KEY = "id_dimension"
NAME_KEY = "mat_id"


@dataclasses.dataclass(frozen=True)
class Reference:
    """One reference structure: contiguous along its non-periodic directions, ``atoms.pbc`` set to its
    periodic ones."""

    name: str
    atoms: ase.Atoms
    dimensionality: int
    energy: float  # eV, total


def _lookup(atoms: ase.Atoms, key: str) -> object | None:
    """``key`` from atoms.info, the database row's key-value pairs or the attached calculator's results."""
    if key in atoms.info:
        return atoms.info[key]
    pairs = atoms.info.get("key_value_pairs") or {}
    if key in pairs:
        return pairs[key]
    results = getattr(atoms.calc, "results", None) or {}
    return results.get(key)


def _frames(path: Path) -> list[tuple[ase.Atoms, str]]:
    if path.suffix == ".db":
        if not path.is_file():
            raise InputError(f"input file {path} does not exist")
        try:
            with ase.db.connect(path) as db:
                return [(row.toatoms(add_additional_information=True), f"{path.stem}_{row.id}") for row in db.select()]
        except Exception as exc:  # ASE raises many types for unreadable databases
            raise InputError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    from orb_md.cli import read_structures

    structures, labels = read_structures([str(path)])
    return list(zip(structures, labels))


def read_references(
    paths: Sequence[str | Path],
    *,
    energy_key: str | None = None,
    dimension_key: str = DIMENSION_KEY,
    name_key: str = NAME_KEY,
) -> list[Reference]:
    """Every structure of ``paths``. The dimensionality is the ``dimension_key`` label if present, else the
    number of periodic directions; the energy is the first of ``energy_key`` (or ``ENERGY_KEYS``) found."""
    keys = (energy_key,) if energy_key else ENERGY_KEYS
    references: list[Reference] = []
    for path in map(Path, paths):
        for atoms, label in _frames(path):
            name = str(_lookup(atoms, name_key) or label)
            energy = next((v for v in (_lookup(atoms, k) for k in keys) if v is not None), None)
            if energy is None:
                raise InputError(f"{path}: structure {name} has no reference energy (looked for {', '.join(keys)}; "
                                 "name the key with --energy-key)")
            try:
                label_value = _lookup(atoms, dimension_key)
                dimensionality = (int(atoms.pbc.sum()) if label_value is None
                                  else parse_dimensionality(label_value, name))
                periodic = periodic_directions(atoms, dimensionality)
            except OrbMDError as exc:
                raise InputError(f"{path}: structure {name}: {exc}") from None
            clean = make_contiguous(atoms, periodic)
            clean.calc = None
            clean.info = {name_key: name, DIMENSION_KEY: f"{dimensionality}D"}
            references.append(Reference(name, clean, dimensionality, float(energy)))
    if not references:
        raise InputError("no structures given")
    return references
