"""relax(): many structures relaxed together with batched FIRE, one model call per step for all of them.

Each system converges, stops and leaves the batch on its own: at every evaluation a system whose largest
generalised force is below ``fmax`` (ASE's test), that reached ``max_steps``, blew up (non-finite results, or an
atomic force above ``max_force``) or fragmented is finished, its result handed to ``on_result``, and the others
go on in a smaller batch. A structure that cannot be relaxed (bad input) fails alone with a one-line message.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import ase
import numpy as np
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from tqdm.auto import tqdm

from orb_md.batch import atoms_to_batch, build_graph
from orb_md.errors import InputError, OrbMDError
from orb_md.md.forcefield import ForceField
from orb_md.model.layers import segment_sum
from orb_md.model.orb import OrbModel
from orb_md.relax.batch import RelaxBatch
from orb_md.relax.cell import generalised_forces, strain_mask, working_cell
from orb_md.relax.fire import FireParameters, FireState

STATUSES = ("converged", "max_steps", "blow_up", "fragmented", "failed")


@dataclasses.dataclass
class RelaxResult:
    """One system's outcome; ``atoms`` is a relaxed copy whose SinglePointCalculator holds energy, forces, stress.

    ``fmax`` is the largest generalised force (eV/Å) of the returned structure: the atoms' forces (fixed atoms
    excluded), and with the cell filter also its cell rows, as ASE's convergence test. ``message`` is "" or one
    line saying what went wrong.
    """

    atoms: ase.Atoms
    status: str  # one of STATUSES
    steps: int
    energy: float  # eV
    fmax: float  # eV/Å
    message: str = ""
    index: int = 0  # position in the list given to relax()
    label: str = ""


@dataclasses.dataclass
class _Plan:
    """What validation found out about one structure: its atoms, fixed atoms and the cell to relax."""

    atoms: ase.Atoms
    free: np.ndarray
    cell: np.ndarray
    replaced: np.ndarray  # cell rows replaced by unit vectors (zero in the output)
    mask: np.ndarray
    exp_cell_factor: float


def relax(
    structures: Sequence[ase.Atoms],
    model: OrbModel | ForceField,
    *,
    fmax: float = 0.05,
    max_steps: int = 1000,
    relax_cell: bool | Sequence[bool] = False,
    max_force: float | None = None,
    fragmented: Callable[[ase.Atoms], str | None] | None = None,
    fragment_every: int = 0,
    fire: FireParameters | None = None,
    exp_cell_factor: float | None = None,
    labels: Sequence[str] | None = None,
    on_result: Callable[[RelaxResult], None] | None = None,
    progress: bool = True,
    skin: float = 1.0,
    chunk: int = 0,
) -> list[RelaxResult]:
    """Relax every structure (positions; with ``relax_cell`` also the cell along its periodic directions).

    ``relax_cell`` is one flag or one per structure (a structure without a periodic direction given the cell
    filter fails with a message). FixAtoms constraints are honoured; other constraints fail the structure.
    ``fragmented(atoms)`` returns a reason or None; it is asked when a system stops and, with
    ``fragment_every`` > 0, every that many steps. ``on_result`` receives each result as its system finishes
    (write it there to lose nothing if the run is interrupted). Returns the results in input order.
    """
    structures = list(structures)
    if not structures:
        raise InputError("no structures given")
    if not fmax > 0 or max_steps < 0 or (max_force is not None and not max_force > 0) or fragment_every < 0:
        raise InputError(f"fmax and max_force must be positive and max_steps, fragment_every not negative; got "
                         f"fmax={fmax}, max_steps={max_steps}, max_force={max_force}, fragment_every={fragment_every}")
    single = isinstance(relax_cell, (bool, np.bool_))
    flags = [bool(relax_cell)] * len(structures) if single else [bool(flag) for flag in relax_cell]
    if labels is None:
        labels = [f"{i:03d}_{atoms.get_chemical_formula()}" for i, atoms in enumerate(structures)]
    labels = list(labels)
    if len(flags) != len(structures) or len(labels) != len(structures):
        raise InputError(f"{len(structures)} structures but {len(flags)} relax_cell flags and {len(labels)} labels")
    forcefield = model if isinstance(model, ForceField) else ForceField(model, skin=skin, chunk=chunk)
    run = _Run(structures, labels, forcefield, fire or FireParameters(), fmax, max_steps, max_force,
               fragmented, fragment_every, on_result, progress)
    plans = {}
    for i, (atoms, cell_on) in enumerate(zip(structures, flags)):
        try:
            plans[i] = _plan(atoms, cell_on, forcefield.model, exp_cell_factor)
        except OrbMDError as exc:
            run.finish_failed(i, str(exc).splitlines()[0])
    run.relax(plans)
    return [run.results[i] for i in range(len(structures))]


def _plan(atoms: ase.Atoms, relax_cell: bool, model: OrbModel, exp_cell_factor: float | None) -> _Plan:
    """Check one structure alone (raises InputError with the reason) and decide its cell variables."""
    batch = atoms_to_batch([atoms])
    if len(atoms) > 1 or atoms.pbc.any():
        build_graph(model, batch)  # overlapping atoms
    free = np.ones(len(atoms), dtype=bool)
    for constraint in atoms.constraints:
        if not isinstance(constraint, FixAtoms):
            raise InputError(f"constraint {type(constraint).__name__} is not supported (only FixAtoms)")
        free[constraint.get_indices()] = False
    if not relax_cell:
        if not free.any():
            raise InputError(f"all {len(atoms)} atoms are fixed (FixAtoms) and the cell is not relaxed: "
                             "nothing to relax")
        return _Plan(atoms, free, atoms.cell.array.copy(), np.zeros(3, bool), np.zeros((3, 3)), float(len(atoms)))
    cell, replaced = working_cell(atoms.cell.array, atoms.pbc)
    factor = float(len(atoms)) if exp_cell_factor is None else float(exp_cell_factor)
    if not factor > 0:
        raise InputError(f"exp_cell_factor must be positive, got {exp_cell_factor}")
    return _Plan(atoms, free, cell, replaced, strain_mask(atoms.pbc), factor)


class _Run:
    """The relaxation loop and the bookkeeping of finished systems."""

    def __init__(self, structures: list[ase.Atoms], labels: list[str], forcefield: ForceField,
                 fire: FireParameters, fmax: float, max_steps: int, max_force: float | None,
                 fragmented: Callable[[ase.Atoms], str | None] | None, fragment_every: int,
                 on_result: Callable[[RelaxResult], None] | None, progress: bool) -> None:
        self.structures, self.labels, self.forcefield, self.fire = structures, labels, forcefield, fire
        self.fmax, self.max_steps, self.max_force = fmax, max_steps, max_force
        self.fragmented, self.fragment_every, self.on_result = fragmented, fragment_every, on_result
        self.results: dict[int, RelaxResult] = {}
        self.replaced: dict[int, np.ndarray] = {}  # per structure: cell rows to write back as zero
        self.bar = tqdm(total=len(structures), disable=not progress, unit="system", dynamic_ncols=True, desc="relax")

    def finish(self, result: RelaxResult) -> None:
        self.results[result.index] = result
        if self.on_result is not None:
            self.on_result(result)
        self.bar.update(1)

    def finish_failed(self, index: int, message: str) -> None:
        atoms = self.structures[index].copy()
        self.finish(RelaxResult(atoms, "failed", 0, math.nan, math.nan, message, index, self.labels[index]))

    def relax(self, plans: dict[int, _Plan]) -> None:
        self.replaced = {i: plan.replaced for i, plan in plans.items()}
        try:
            if plans:
                self._loop(_build(plans, self.labels))
        finally:
            self.bar.close()

    def _loop(self, batch: RelaxBatch) -> None:
        state = FireState.new(batch.coordinates().shape[0], batch.n_systems, self.fire)
        previous = None
        with torch.no_grad():
            self.forcefield.compute(batch, stress=True, check_finite=False)
            while True:
                forces = _generalised_forces(batch)
                fmax = _row_max(torch.linalg.vector_norm(forces, dim=1), batch.row_system(), batch.n_systems)
                keep = self._assess(batch, previous, fmax)
                if not bool(keep.any()):
                    return
                if not bool(keep.all()):
                    rows = keep[batch.row_system()]
                    batch, state, forces, fmax = batch.select(keep), state.select(rows, keep), forces[rows], fmax[keep]
                previous = (dataclasses.replace(batch), fmax)
                step = state.step(forces, batch.row_system(), self.fire)
                batch.set_coordinates(batch.coordinates() + step)
                batch.steps = batch.steps + 1
                self.forcefield.compute(batch, stress=True, check_finite=False)
                self.bar.set_postfix(step=int(batch.steps.max()), active=batch.n_systems, refresh=False)

    def _assess(self, batch: RelaxBatch, previous, fmax: torch.Tensor) -> torch.Tensor:
        """Finish the systems that are done; the (B,) mask of those that go on."""
        n = batch.n_systems
        bad_atoms = (~torch.isfinite(batch.forces).all(1)).to(torch.int64)
        finite = segment_sum(bad_atoms, batch.system_index, n) == 0
        finite &= torch.isfinite(batch.energy) & torch.isfinite(batch.stress).all(1) & torch.isfinite(fmax)
        largest = _row_max(torch.linalg.vector_norm(batch.forces, dim=1), batch.system_index, n)
        keep = torch.ones(n, dtype=torch.bool)
        steps, finite, largest, fmaxes = batch.steps.tolist(), finite.tolist(), largest.tolist(), fmax.tolist()
        for b in range(n):
            step, fmax_b = steps[b], fmaxes[b]
            if not finite[b]:
                if previous is None:
                    index = batch.indices[b]
                    self.finish(RelaxResult(self.structures[index].copy(), "blow_up", 0, math.nan, math.nan,
                                            "non-finite energy, forces or stress at the start", index,
                                            batch.labels[b]))
                else:
                    before, before_fmax = previous
                    self.finish(self._result(before, b, "blow_up", float(before_fmax[b]),
                                             f"non-finite energy, forces or stress after step {step}; "
                                             f"the structure of step {step - 1} is returned"))
            elif self.max_force is not None and largest[b] > self.max_force:
                self.finish(self._result(batch, b, "blow_up", fmax_b,
                                         f"force {largest[b]:.4g} eV/Å above max_force {self.max_force:g} "
                                         f"at step {step}"))
            elif fmax_b < self.fmax or step >= self.max_steps:
                status = "converged" if fmax_b < self.fmax else "max_steps"
                message = "" if status == "converged" else f"fmax {fmax_b:.4g} eV/Å after {step} steps"
                self.finish(self._checked(self._result(batch, b, status, fmax_b, message)))
            elif self.fragmented and self.fragment_every and step % self.fragment_every == 0:
                result = self._result(batch, b, "fragmented", fmax_b, "")
                reason = self.fragmented(result.atoms)
                if not reason:
                    continue
                self.finish(dataclasses.replace(result, message=str(reason).splitlines()[0]))
            else:
                continue
            keep[b] = False
        return keep

    def _checked(self, result: RelaxResult) -> RelaxResult:
        """``result`` marked fragmented if the fragmentation test says so."""
        reason = self.fragmented(result.atoms) if self.fragmented else None
        if reason:
            return dataclasses.replace(result, status="fragmented", message=str(reason).splitlines()[0])
        return result

    def _result(self, batch: RelaxBatch, b: int, status: str, fmax: float, message: str) -> RelaxResult:
        index = batch.indices[b]
        atoms_of = (batch.system_index == b).nonzero().squeeze(1)
        start, stop = int(atoms_of[0]), int(atoms_of[-1]) + 1
        atoms = self.structures[index].copy()
        replaced = self.replaced[index]
        cell = batch.cell[b].cpu().numpy().copy()
        cell[replaced] = 0.0
        atoms.set_cell(cell, scale_atoms=False)
        atoms.positions = batch.positions[start:stop].cpu().numpy()
        energy = float(batch.energy[b])
        results = {"energy": energy, "free_energy": energy, "forces": batch.forces[start:stop].cpu().numpy().copy()}
        if atoms.pbc.any():
            results["stress"] = np.zeros(6) if replaced.any() else batch.stress[b].cpu().numpy().copy()
        atoms.calc = SinglePointCalculator(atoms, **results)
        return RelaxResult(atoms, status, int(batch.steps[b]), energy, fmax, message, index, batch.labels[b])


def _build(plans: dict[int, _Plan], labels: list[str]) -> RelaxBatch:
    """The batch of the validated structures, in input order, at their starting geometry."""
    order = sorted(plans)
    structures = [plans[i].atoms for i in order]
    flat = atoms_to_batch(structures, dtype=torch.float64)
    f64 = lambda values: torch.tensor(np.asarray(values), dtype=torch.float64)  # noqa: E731
    cell = f64(np.stack([plans[i].cell for i in order]))
    return RelaxBatch(
        indices=order, labels=[labels[i] for i in order], positions=flat.positions,
        reference_positions=flat.positions.clone(), atomic_numbers=flat.atomic_numbers, system_index=flat.system_index,
        free=torch.tensor(np.concatenate([plans[i].free for i in order])), pbc=flat.pbc, cell=cell,
        reference_cell=cell.clone(), log_strain=torch.zeros(len(order), 3, 3, dtype=torch.float64),
        mask=f64(np.stack([plans[i].mask for i in order])),
        exp_cell_factor=f64([plans[i].exp_cell_factor for i in order]), total_charge=flat.total_charge,
        spin=flat.spin, steps=torch.zeros(len(order), dtype=torch.int64),
    )


def _generalised_forces(batch: RelaxBatch) -> torch.Tensor:
    """(N + 3B, 3) minus the gradient in the optimiser's coordinates (fixed atoms: zero)."""
    forces = torch.where(batch.free[:, None], batch.forces, torch.zeros_like(batch.forces))
    atom_rows, cell_rows = generalised_forces(
        forces, batch.stress, batch.cell, batch.deform_t(), batch.log_strain, batch.mask, batch.exp_cell_factor,
        batch.system_index)
    return torch.cat([atom_rows, cell_rows.reshape(-1, 3)])


def _row_max(values: torch.Tensor, row_system: torch.Tensor, n_systems: int) -> torch.Tensor:
    """(B,) the largest of the non-negative ``values`` of each system's rows (NaN propagates)."""
    out = torch.zeros(n_systems, dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, row_system, values, reduce="amax", include_self=True)
