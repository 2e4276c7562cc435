"""Integrators over a batch, each system with its own time step, temperature and friction.

- :class:`VelocityVerlet` — NVE.
- :class:`LangevinBAOAB` — NVT, the BAOAB splitting of Leimkuhler & Matthews (2013): half kick (B), half drift
  (A), exact Ornstein–Uhlenbeck velocity update v ← c v + sqrt((1−c²) kT/m) ξ with c = exp(−γ dt) (O), half
  drift, force evaluation, half kick.
- NPT (``barostat=StochasticCellRescaling()``): isotropic stochastic cell rescaling of Bernetti & Bussi,
  J. Chem. Phys. 153, 114107 (2020), on top of BAOAB. Once per step, after the drifts and before the force
  evaluation, ε = ln V moves by dε = −(β/τ_p)(P₀ − P − kT/V) dt + sqrt(2 kT β dt / (V τ_p)) ξ
  (Euler–Maruyama), where P = −tr(σ)/3 + 2K/(3V) is the instantaneous pressure (σ from the last evaluation,
  K now), β the compressibility and T the thermostat target; positions and cell are scaled by
  μ = exp(dε/3) and velocities by 1/μ. This samples the isothermal–isobaric ensemble with first-order
  accuracy in dt and needs fully periodic systems.

Random numbers come from each system's own generator in a fixed order (velocities, then barostat), so a
system's trajectory does not depend on the rest of the batch.
"""

from __future__ import annotations

import torch

from orb_md.md.forcefield import ForceField
from orb_md.md.state import MDState
from orb_md.md.units import ACCELERATION, EV_PER_MVV, KB


class Integrator:
    """Advances an MDState by one step of each system's ``dt``; forces are evaluated once per step."""

    ensemble = "nve"

    def initialize(self, state: MDState, forcefield: ForceField) -> None:
        """Evaluate forces for the first step (skipped when a restart already holds them)."""
        if state.forces is None:
            forcefield.compute(state)

    def step(self, state: MDState, forcefield: ForceField) -> None:
        raise NotImplementedError

    @staticmethod
    def _per_atom(state: MDState, values: torch.Tensor) -> torch.Tensor:
        return values[state.system_index][:, None]

    @staticmethod
    def _kick(state: MDState, half_dt: torch.Tensor) -> None:
        state.velocities += half_dt * ACCELERATION * state.forces / state.masses[:, None]

    @staticmethod
    def _finish(state: MDState) -> None:
        state.step += 1
        state.time = state.time + state.dt


class VelocityVerlet(Integrator):
    """NVE velocity Verlet."""

    ensemble = "nve"

    def step(self, state: MDState, forcefield: ForceField) -> None:
        half = 0.5 * self._per_atom(state, state.dt)
        self._kick(state, half)
        state.positions += 2.0 * half * state.velocities
        forcefield.compute(state)
        self._kick(state, half)
        self._finish(state)


class StochasticCellRescaling:
    """Isotropic Bernetti–Bussi barostat (see module doc); uses each system's pressure, tau_p, compressibility."""

    def apply(self, state: MDState) -> None:
        volume = torch.linalg.det(state.cell).abs()
        pressure = -state.stress[:, :3].sum(dim=1) / 3.0 + 2.0 * state.kinetic_energy() / (3.0 * volume)
        kt = KB * state.temperature
        beta, tau, dt = state.compressibility, state.tau_p, state.dt
        noise = torch.cat([torch.randn(1, dtype=torch.float64, generator=g) for g in state.generators]).to(volume.device)
        d_eps = -(beta / tau) * (state.pressure - pressure - kt / volume) * dt + torch.sqrt(
            2.0 * kt * beta * dt / (volume * tau)
        ) * noise
        mu = torch.exp(d_eps / 3.0)
        state.cell = state.cell * mu[:, None, None]
        atom_mu = mu[state.system_index][:, None]
        state.positions = state.positions * atom_mu
        state.velocities = state.velocities / atom_mu


class LangevinBAOAB(Integrator):
    """NVT Langevin (BAOAB); NPT with ``barostat``."""

    def __init__(self, barostat: StochasticCellRescaling | None = None) -> None:
        self.barostat = barostat
        self.ensemble = "npt" if barostat is not None else "nvt"

    def step(self, state: MDState, forcefield: ForceField) -> None:
        half = 0.5 * self._per_atom(state, state.dt)
        self._kick(state, half)
        state.positions += half * state.velocities
        self._thermostat(state)
        if self.barostat is not None:
            self.barostat.apply(state)  # its noise is drawn after the velocity noise, per system
        state.positions += half * state.velocities
        forcefield.compute(state)
        self._kick(state, half)
        self._finish(state)

    @staticmethod
    def _thermostat(state: MDState) -> None:
        c = torch.exp(-state.friction * state.dt)
        sigma = torch.sqrt((1.0 - c * c) * KB * state.temperature / EV_PER_MVV)  # sqrt(kT) in sqrt(amu) Å/fs
        noise = torch.cat(
            [torch.randn(sl.stop - sl.start, 3, dtype=torch.float64, generator=g) for sl, g in zip(state.slices(), state.generators)]
        ).to(state.velocities.device)
        per_atom_sigma = sigma[state.system_index][:, None] / torch.sqrt(state.masses)[:, None]
        state.velocities.mul_(c[state.system_index][:, None]).add_(per_atom_sigma * noise)


def make_integrator(ensemble: str) -> Integrator:
    """The integrator of an ensemble name: nve, nvt (Langevin) or npt (Langevin + stochastic cell rescaling)."""
    if ensemble == "nve":
        return VelocityVerlet()
    if ensemble == "nvt":
        return LangevinBAOAB()
    if ensemble == "npt":
        return LangevinBAOAB(StochasticCellRescaling())
    raise ValueError(f"unknown ensemble {ensemble!r}")


__all__ = ["Integrator", "LangevinBAOAB", "StochasticCellRescaling", "VelocityVerlet", "make_integrator"]
