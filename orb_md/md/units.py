"""Internal units (Å, eV, fs, amu, K) and the parsing of user quantities such as ``"2 fs"`` or ``"1 GPa"``.

Plain numbers are taken in the internal unit of their kind (fs, K, 1/fs, bar for pressure, fs for
barostat time constants, 1/bar for compressibility); strings carry an explicit unit. A per-system list
must not mix bare numbers with unit strings ("mixed units"), and a unit of the wrong kind is an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from ase import units as ase_units

from orb_md.errors import InputError

KB = ase_units.kB  # eV / K
EV_PER_MVV = 1.0 / ase_units.fs**2  # 1 amu Å²/fs² in eV (≈ 103.64)
ACCELERATION = ase_units.fs**2  # (eV/Å)/amu -> Å/fs²
BAR = ase_units.bar  # eV/Å³
GPA = ase_units.GPa

_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")

# unit name -> (kind, factor to the internal unit of that kind)
UNITS: dict[str, tuple[str, float]] = {
    "fs": ("time", 1.0), "ps": ("time", 1e3), "ns": ("time", 1e6), "as": ("time", 1e-3),
    "K": ("temperature", 1.0),
    "1/fs": ("rate", 1.0), "1/ps": ("rate", 1e-3), "/fs": ("rate", 1.0), "/ps": ("rate", 1e-3),
    "bar": ("pressure", 1.0), "atm": ("pressure", 1.01325), "GPa": ("pressure", 1e4), "Pa": ("pressure", 1e-5),
    "MPa": ("pressure", 10.0), "eV/A3": ("pressure", 1.0 / BAR), "eV/Å3": ("pressure", 1.0 / BAR),
    "1/bar": ("compressibility", 1.0), "/bar": ("compressibility", 1.0), "1/GPa": ("compressibility", 1e-4),
}
DEFAULT_UNIT = {"time": "fs", "temperature": "K", "rate": "1/fs", "pressure": "bar", "compressibility": "1/bar"}


def parse_quantity(value: float | str, kind: str, name: str = "value") -> float:
    """``value`` in the internal unit of ``kind`` (see module doc); InputError for a wrong or unknown unit."""
    if isinstance(value, bool):
        raise InputError(f"{name}: expected a number or a '<number> <unit>' string, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        match = _QUANTITY.match(value)
        if match is None:
            raise InputError(f"{name}: cannot read {value!r} as '<number> <unit>'")
        number, unit = float(match.group(1)), match.group(2)
        if unit:
            if unit not in UNITS:
                raise InputError(f"{name}: unknown unit {unit!r} in {value!r}; known: {', '.join(UNITS)}")
            unit_kind, factor = UNITS[unit]
            if unit_kind != kind:
                raise InputError(
                    f"{name}: {value!r} is a {unit_kind}, expected a {kind} (e.g. '{DEFAULT_UNIT[kind]}')"
                )
            number *= factor
    else:
        raise InputError(f"{name}: expected a number or a '<number> <unit>' string, got {type(value).__name__}")
    if not math.isfinite(number):
        raise InputError(f"{name}: {value!r} is not finite")
    return number


def per_system(value: object, kind: str, count: int, name: str) -> list[float]:
    """One value per system in internal units; a scalar is broadcast, a list must have ``count`` items."""
    if isinstance(value, (str, int, float)):
        return [parse_quantity(value, kind, name)] * count
    if not isinstance(value, Sequence):
        raise InputError(f"{name}: expected a value or a list of {count} values, got {type(value).__name__}")
    if len(value) != count:
        raise InputError(f"{name}: {len(value)} values given for {count} systems")
    with_units = [isinstance(v, str) and any(c.isalpha() for c in v) for v in value]
    if any(with_units) and not all(with_units):
        raise InputError(
            f"{name}: mixed units — some values carry a unit and some are bare numbers ({list(value)!r}); "
            f"give every value a unit or none (bare numbers are {DEFAULT_UNIT[kind]})"
        )
    return [parse_quantity(v, kind, f"{name}[{i}]") for i, v in enumerate(value)]
