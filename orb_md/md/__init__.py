"""Batched molecular dynamics: many independent systems advanced together, one model call per step.

Modules, one job each: :mod:`~orb_md.md.units` (unit parsing), :mod:`~orb_md.md.state` (the batch state),
:mod:`~orb_md.md.forcefield` (model + Verlet neighbour list), :mod:`~orb_md.md.integrators` (NVE, Langevin
BAOAB, NPT stochastic cell rescaling), :mod:`~orb_md.md.reporters` (CSV, trajectories),
:mod:`~orb_md.md.restart` (checkpoints), :mod:`~orb_md.md.plots` (PNG), :mod:`~orb_md.md.simulation` (the
run loop). Edges per edge-MLP call (speed on the CPU, memory bound of very large systems on a GPU):
``chunk``, see :class:`orb_md.model.backbone.GraphNetwork`.

Example::

    state = create_state(structures, ensemble="nvt", temperature=[300, 600], dt="1 fs", friction="0.01 1/fs")
    BatchMD(state, model, reporters=[ThermoReporter("out")], checkpoint="out/restart.pt").run(1000)
"""

from orb_md.md.forcefield import ForceField
from orb_md.md.integrators import LangevinBAOAB, StochasticCellRescaling, VelocityVerlet, make_integrator
from orb_md.md.reporters import ThermoReporter, TrajectoryReporter, write_topology_pdb
from orb_md.md.restart import load_checkpoint, save_checkpoint
from orb_md.md.simulation import BatchMD
from orb_md.md.state import ENSEMBLES, MDState, create_state

__all__ = [
    "BatchMD", "ENSEMBLES", "ForceField", "LangevinBAOAB", "MDState", "StochasticCellRescaling", "ThermoReporter",
    "TrajectoryReporter", "VelocityVerlet", "create_state", "load_checkpoint", "make_integrator", "save_checkpoint",
    "write_topology_pdb",
]
