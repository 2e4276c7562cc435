"""MDState: positions, velocities, cells and per-system settings of a batch of independent systems.

Everything is float64 on the state's device, in Å, Å/fs, amu, eV, K, fs. Each system owns a seeded
``torch.Generator`` so that its random numbers (initial velocities, Langevin and barostat noise) do not
depend on which other systems share the batch: a system run in a batch follows the same trajectory as alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import ase
import numpy as np
import torch

from orb_md.batch import atoms_to_batch
from orb_md.errors import InputError
from orb_md.md.units import BAR, EV_PER_MVV, KB, per_system

ENSEMBLES = ("nve", "nvt", "npt")


@dataclasses.dataclass
class MDState:
    """A batch of B systems (N atoms in all) being integrated; see module doc for units."""

    positions: torch.Tensor  # (N, 3)
    velocities: torch.Tensor  # (N, 3) Å/fs
    masses: torch.Tensor  # (N,) amu
    atomic_numbers: torch.Tensor  # (N,) int64
    system_index: torch.Tensor  # (N,) int64, sorted
    cell: torch.Tensor  # (B, 3, 3) rows = lattice vectors
    pbc: torch.Tensor  # (B, 3) bool
    total_charge: torch.Tensor  # (B,)
    spin: torch.Tensor  # (B,)
    dt: torch.Tensor  # (B,) fs
    temperature: torch.Tensor  # (B,) K, thermostat target (initial velocities for NVE)
    friction: torch.Tensor  # (B,) 1/fs
    pressure: torch.Tensor  # (B,) eV/Å³, barostat target
    tau_p: torch.Tensor  # (B,) fs, barostat relaxation time
    compressibility: torch.Tensor  # (B,) Å³/eV
    generators: list[torch.Generator]
    seeds: list[int]
    labels: list[str]
    ensemble: str = "nvt"
    step: int = 0
    time: torch.Tensor | None = None  # (B,) fs elapsed per system
    energy: torch.Tensor | None = None  # (B,) eV, potential energy at the current positions
    forces: torch.Tensor | None = None  # (N, 3) eV/Å
    stress: torch.Tensor | None = None  # (B, 6) eV/Å³, ASE sign (potential part only)

    @property
    def n_systems(self) -> int:
        return self.cell.shape[0]

    @property
    def counts(self) -> list[int]:
        return torch.bincount(self.system_index, minlength=self.n_systems).tolist()

    def slices(self) -> list[slice]:
        """Atom range of each system."""
        out, start = [], 0
        for n in self.counts:
            out.append(slice(start, start + n))
            start += n
        return out

    def degrees_of_freedom(self) -> torch.Tensor:
        """3N per system, minus 3 under NVE (the centre-of-mass momentum is removed and conserved)."""
        n = torch.bincount(self.system_index, minlength=self.n_systems).to(torch.float64)
        dof = 3.0 * n
        if self.ensemble == "nve":
            dof = torch.where(n > 1, dof - 3.0, dof)
        return dof

    def kinetic_energy(self) -> torch.Tensor:
        """(B,) eV."""
        per_atom = 0.5 * self.masses * (self.velocities**2).sum(dim=1) * EV_PER_MVV
        return torch.zeros(self.n_systems, dtype=torch.float64, device=per_atom.device).index_add(
            0, self.system_index, per_atom
        )

    def instantaneous_temperature(self) -> torch.Tensor:
        """(B,) K."""
        return 2.0 * self.kinetic_energy() / (self.degrees_of_freedom() * KB)

    def periodic(self) -> torch.Tensor:
        """(B,) bool: periodic in all three directions."""
        return self.pbc.all(dim=1)

    def volume(self) -> torch.Tensor:
        """(B,) Å³ for fully periodic systems, NaN otherwise."""
        volume = torch.linalg.det(self.cell).abs()
        return torch.where(self.periodic(), volume, torch.full_like(volume, float("nan")))

    def pressure_now(self) -> torch.Tensor:
        """(B,) eV/Å³: virial (from the stored stress) plus kinetic part; NaN for non-periodic systems."""
        if self.stress is None:
            raise RuntimeError("forces and stress have not been evaluated yet")
        volume = self.volume()
        return -self.stress[:, :3].sum(dim=1) / 3.0 + 2.0 * self.kinetic_energy() / (3.0 * volume)

    def to_atoms(self) -> list[ase.Atoms]:
        """The current configuration of every system as ASE Atoms (with velocities, energy and forces)."""
        out = []
        pos, vel = self.positions.cpu().numpy(), self.velocities.cpu().numpy()
        for b, sl in enumerate(self.slices()):
            atoms = ase.Atoms(
                numbers=self.atomic_numbers[sl].cpu().numpy(), positions=pos[sl],
                cell=self.cell[b].cpu().numpy(), pbc=self.pbc[b].cpu().numpy(),
                masses=self.masses[sl].cpu().numpy(),
            )
            atoms.set_velocities(vel[sl] * _ASE_VELOCITY)
            atoms.info["label"] = self.labels[b]
            atoms.info["step"] = self.step
            if self.energy is not None:
                atoms.info["energy"] = float(self.energy[b])
            if self.forces is not None:
                atoms.arrays["forces"] = self.forces[sl].cpu().numpy().copy()
            out.append(atoms)
        return out


_ASE_VELOCITY = 1.0 / ase.units.fs  # Å/fs -> ASE velocity unit


def create_state(
    structures: Sequence[ase.Atoms],
    *,
    ensemble: str = "nvt",
    temperature: object = 300.0,
    dt: object = 1.0,
    friction: object = 0.01,
    pressure: object = 1.0,
    tau_p: object = 1000.0,
    compressibility: object = 4.5e-5,
    seed: int | Sequence[int] = 0,
    init_velocities: bool = True,
    labels: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
) -> MDState:
    """A state for ``structures`` (any sizes, compositions, periodicity).

    Settings are one value or one per system, as numbers in internal units (fs, K, 1/fs; pressure in bar,
    tau_p in fs, compressibility in 1/bar) or strings with units ("2 fs", "0.1 1/ps", "1 GPa").
    ``seed`` is one integer (system i gets seed + i) or one per system. Initial velocities are drawn from
    Maxwell–Boltzmann at ``temperature`` unless the structures carry momenta or ``init_velocities`` is False;
    the centre-of-mass momentum of every system with more than one atom is removed.
    """
    if ensemble not in ENSEMBLES:
        raise InputError(f"unknown ensemble {ensemble!r}; choose one of {', '.join(ENSEMBLES)}")
    structures = list(structures)
    batch = atoms_to_batch(structures, dtype=torch.float64, device=device)
    count = len(structures)
    if ensemble == "npt":
        for i, atoms in enumerate(structures):
            volume = abs(np.linalg.det(atoms.cell.array)) if atoms.cell.rank == 3 else 0.0
            if not atoms.pbc.all() or volume < 1e-6:
                raise InputError(
                    f"structure {i} ({atoms.get_chemical_formula()}): NPT needs a periodic cell in all three "
                    f"directions (pbc={atoms.pbc.tolist()}, volume {volume:.3g} Å³); use nvt for it or give it a cell"
                )
    values = {
        "dt": per_system(dt, "time", count, "dt"),
        "temperature": per_system(temperature, "temperature", count, "temperature"),
        "friction": per_system(friction, "rate", count, "friction"),
        "pressure": per_system(pressure, "pressure", count, "pressure"),
        "tau_p": per_system(tau_p, "time", count, "tau_p"),
        "compressibility": per_system(compressibility, "compressibility", count, "compressibility"),
    }
    for key in ("dt", "tau_p", "compressibility"):
        if any(v <= 0 for v in values[key]):
            raise InputError(f"{key} must be positive, got {values[key]}")
    if any(v < 0 for v in values["temperature"]) or any(v < 0 for v in values["friction"]):
        raise InputError("temperature and friction must not be negative")
    if any(v > 10.0 for v in values["dt"]):
        raise InputError(f"dt {max(values['dt'])} fs is too large for atomistic MD (time steps are in fs)")
    seeds = [int(seed) + i for i in range(count)] if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != count:
        raise InputError(f"{len(seeds)} seeds given for {count} systems")
    masses = torch.tensor(np.concatenate([a.get_masses() for a in structures]), dtype=torch.float64, device=device)
    if not bool((masses > 0).all()):
        raise InputError("every atom needs a positive mass")
    tensor = lambda v: torch.tensor(v, dtype=torch.float64, device=device)  # noqa: E731
    state = MDState(
        positions=batch.positions, velocities=torch.zeros_like(batch.positions), masses=masses,
        atomic_numbers=batch.atomic_numbers, system_index=batch.system_index, cell=batch.cell, pbc=batch.pbc,
        total_charge=batch.total_charge, spin=batch.spin,
        dt=tensor(values["dt"]), temperature=tensor(values["temperature"]), friction=tensor(values["friction"]),
        pressure=tensor(values["pressure"]) * BAR, tau_p=tensor(values["tau_p"]),
        compressibility=tensor(values["compressibility"]) / BAR,
        generators=[torch.Generator(device="cpu").manual_seed(s) for s in seeds], seeds=seeds,
        labels=list(labels) if labels is not None else [f"{i:03d}_{a.get_chemical_formula()}" for i, a in enumerate(structures)],
        ensemble=ensemble, time=torch.zeros(count, dtype=torch.float64, device=device),
    )
    if len(state.labels) != count:
        raise InputError(f"{len(state.labels)} labels given for {count} systems")
    velocities = []
    for b, (atoms, sl) in enumerate(zip(structures, state.slices())):
        if atoms.has("momenta") and np.any(atoms.get_momenta()):
            v = torch.tensor(atoms.get_velocities() / _ASE_VELOCITY, dtype=torch.float64)
        elif init_velocities:
            v = maxwell_boltzmann(state.masses[sl].cpu(), state.temperature[b].item(), state.generators[b])
        else:
            v = torch.zeros(sl.stop - sl.start, 3, dtype=torch.float64)
        velocities.append(v)
    state.velocities = torch.cat(velocities).to(device)
    return state


def maxwell_boltzmann(masses: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """(n, 3) Å/fs velocities at ``temperature`` with zero centre-of-mass momentum (n > 1)."""
    sigma = torch.sqrt(KB * temperature / (masses * EV_PER_MVV))
    v = torch.randn(masses.shape[0], 3, dtype=torch.float64, generator=generator) * sigma[:, None]
    if masses.shape[0] > 1:
        v = v - (masses[:, None] * v).sum(0) / masses.sum()
    return v
