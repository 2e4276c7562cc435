"""Batched FIRE: ASE's ``FIRE`` step applied to many systems at once, each with its own step size and mixing.

A system's degrees of freedom are rows of three numbers (atoms, then the three cell rows of the cell filter);
``row_system`` names the system of every row. Per system, the update is exactly ASE's (ase/optimize/fire.py,
``downhill_check=False``): velocity mixing while P = F·v > 0, reset after an uphill step, time-step growth after
``n_min`` downhill steps, and the whole system's step clipped to ``max_step`` in norm (all its rows together).
"""

from __future__ import annotations

import dataclasses

import torch

from orb_md.errors import InputError
from orb_md.model.layers import segment_sum


@dataclasses.dataclass(frozen=True)
class FireParameters:
    """ASE ``FIRE``'s parameters, with its defaults (``maxstep`` 0.2 Å; ``a`` is the initial mixing)."""

    dt: float = 0.1
    max_step: float = 0.2
    dt_max: float = 1.0
    n_min: int = 5
    f_inc: float = 1.1
    f_dec: float = 0.5
    a_start: float = 0.1
    f_a: float = 0.99
    a: float = 0.1

    def __post_init__(self) -> None:
        positive = {"dt": self.dt, "max_step": self.max_step, "dt_max": self.dt_max, "f_inc": self.f_inc}
        bad = [f"{k}={v}" for k, v in positive.items() if not v > 0]
        if bad or not 0 < self.f_dec <= 1 or not 0 < self.f_a <= 1 or self.n_min < 0:
            raise InputError(f"invalid FIRE parameters: {', '.join(bad) or self}")


@dataclasses.dataclass
class FireState:
    """FIRE's memory per system: velocities (R, 3) of the rows, time step, mixing, downhill count, started."""

    velocity: torch.Tensor
    dt: torch.Tensor
    a: torch.Tensor
    downhill: torch.Tensor
    started: torch.Tensor

    @classmethod
    def new(cls, rows: int, systems: int, params: FireParameters, device: torch.device | str = "cpu") -> FireState:
        f64 = dict(dtype=torch.float64, device=device)
        return cls(
            velocity=torch.zeros(rows, 3, **f64), dt=torch.full((systems,), params.dt, **f64),
            a=torch.full((systems,), params.a, **f64), downhill=torch.zeros(systems, dtype=torch.int64, device=device),
            started=torch.zeros(systems, dtype=torch.bool, device=device),
        )

    def select(self, keep_rows: torch.Tensor, keep_systems: torch.Tensor) -> FireState:
        """The state of the kept rows and systems (boolean masks)."""
        return FireState(self.velocity[keep_rows], self.dt[keep_systems], self.a[keep_systems],
                         self.downhill[keep_systems], self.started[keep_systems])

    def step(self, forces: torch.Tensor, row_system: torch.Tensor, params: FireParameters) -> torch.Tensor:
        """Update the state for ``forces`` (R, 3: minus the gradient) and return the displacement of every row."""
        n = self.dt.shape[0]
        v = self.velocity
        vf = segment_sum((forces * v).sum(1), row_system, n)
        f2 = segment_sum((forces * forces).sum(1), row_system, n)
        v2 = segment_sum((v * v).sum(1), row_system, n)
        downhill = self.started & (vf > 0.0)
        uphill = self.started & ~downhill
        safe_f = torch.where(downhill, f2.sqrt(), torch.ones_like(f2))
        mixed = ((1.0 - self.a)[row_system, None] * v
                 + self.a[row_system, None] * forces / safe_f[row_system, None] * v2.sqrt()[row_system, None])
        v = torch.where(downhill[row_system, None], mixed, v)
        grow = downhill & (self.downhill > params.n_min)
        self.dt = torch.where(grow, torch.clamp(self.dt * params.f_inc, max=params.dt_max), self.dt)
        self.a = torch.where(grow, self.a * params.f_a, self.a)
        self.downhill = torch.where(downhill, self.downhill + 1, self.downhill)
        v = torch.where(uphill[row_system, None], torch.zeros_like(v), v)
        self.a = torch.where(uphill, torch.full_like(self.a, params.a_start), self.a)
        self.dt = torch.where(uphill, self.dt * params.f_dec, self.dt)
        self.downhill = torch.where(uphill, torch.zeros_like(self.downhill), self.downhill)
        self.started = torch.ones_like(self.started)
        dt = self.dt[row_system, None]
        self.velocity = v + dt * forces
        dr = dt * self.velocity
        norm = segment_sum((dr * dr).sum(1), row_system, n).sqrt()
        clip = norm > params.max_step
        safe_norm = torch.where(clip, norm, torch.ones_like(norm))[row_system, None]
        return torch.where(clip[row_system, None], params.max_step * dr / safe_norm, dr)
