"""BatchMD: an MDState, a ForceField and an integrator, with reporters, checkpoints and a progress bar."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from orb_md.errors import InputError
from orb_md.md.forcefield import ForceField
from orb_md.md.integrators import Integrator, make_integrator
from orb_md.md.reporters import Reporter
from orb_md.md.restart import save_checkpoint
from orb_md.md.state import MDState
from orb_md.model.orb import OrbModel


class BatchMD:
    """Runs every system of ``state`` together: one model call per step for the whole batch.

    ``checkpoint`` (a path) is rewritten every ``checkpoint_every`` steps and at the end of :meth:`run`;
    loading it with :func:`~orb_md.md.restart.load_checkpoint` and running on gives bit-identical results.
    """

    def __init__(
        self,
        state: MDState,
        model: OrbModel | ForceField,  # or any object with compute(state) setting energy/forces/stress
        *,
        integrator: Integrator | None = None,
        reporters: Sequence[Reporter] = (),
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 0,
        skin: float = 1.0,
        chunk: int = 0,
        progress: bool = True,
    ) -> None:
        self.state = state
        self.forcefield = ForceField(model, skin=skin, chunk=chunk) if isinstance(model, OrbModel) else model
        self.integrator = integrator or make_integrator(state.ensemble)
        if self.integrator.ensemble != state.ensemble:
            raise InputError(f"integrator is {self.integrator.ensemble} but the state was made for {state.ensemble}")
        if state.ensemble == "npt" and not bool(state.periodic().all()):
            raise InputError("NPT needs every system periodic in all three directions")
        self.reporters = list(reporters)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.checkpoint_every = int(checkpoint_every)
        self.progress = progress

    def run(self, steps: int) -> MDState:
        """Advance ``steps`` steps (reporting the initial state first when starting at step 0)."""
        if steps < 0:
            raise InputError(f"steps must not be negative, got {steps}")
        state = self.state
        model = getattr(self.forcefield, "model", None)
        grad = torch.enable_grad() if getattr(model, "conservative", False) else torch.no_grad()
        with grad:
            self.integrator.initialize(state, self.forcefield)
            if state.step == 0:
                self._report(force=True)
            bar = tqdm(total=steps, disable=not self.progress, unit="step", dynamic_ncols=True,
                       desc=f"{len(state.labels)} systems, {state.positions.shape[0]} atoms")
            try:
                for _ in range(steps):
                    self.integrator.step(state, self.forcefield)
                    self._report()
                    if self.checkpoint and self.checkpoint_every and state.step % self.checkpoint_every == 0:
                        save_checkpoint(state, self.checkpoint)
                    bar.update(1)
                    if self.progress and state.step % 10 == 0:
                        bar.set_postfix(T=f"{float(state.instantaneous_temperature().mean()):.0f}K")
            finally:
                bar.close()
                for reporter in self.reporters:
                    reporter.close()
        if self.checkpoint:
            save_checkpoint(state, self.checkpoint)
        return state

    def _report(self, force: bool = False) -> None:
        for reporter in self.reporters:
            if force or self.state.step % reporter.every == 0:
                reporter.report(self.state)
