"""Build an openmm-torch ``TorchForce`` that evaluates an Orb-v3 model inside OpenMM."""

from __future__ import annotations

import re
from pathlib import Path

import openmm
import openmm.app
import torch

# isort: split
# openmmtorch links libnvrtc & co. that only `import torch` (CUDA wheels) puts on the loader path.
from openmmtorch import TorchForce

from orb_md_openmm.common import make_wrapper, resolve_model, resolve_periodic, topology_atomic_numbers

__all__ = ["build_module", "create_torch_force", "topology_atomic_numbers"]


def _load_torch_kernels() -> None:
    """Retry openmm-torch kernel plugins that failed at ``import openmm`` because torch was not imported yet.

    With CUDA builds of torch, ``libOpenMMTorchReference.so`` needs libnvrtc, which only
    ``import torch`` makes loadable; without this, TorchForce has no kernel on Reference/CPU.
    """
    for failure in openmm.Platform.getPluginLoadFailures():
        match = re.match(r"Error loading library (\S*OpenMMTorch\S*): ", failure)
        if match:
            try:
                openmm.Platform.loadPluginLibrary(match[1])
            except openmm.OpenMMException:
                pass  # still unloadable for its own reason, e.g. no OpenCL runtime


_load_torch_kernels()


def build_module(
    model: torch.nn.Module,
    atomic_numbers: list[int],
    atoms: list[int] | None,
    periodic: bool,
    charge: int = 0,
    multiplicity: int = 1,
    check_finite: bool = True,
) -> torch.jit.ScriptModule:
    """Script the TorchForce module: energy+forces for direct models, energy only for conservative ones."""
    return torch.jit.script(make_wrapper(model, atomic_numbers, atoms, periodic, charge, multiplicity, check_finite))


def create_torch_force(
    model: str | Path | torch.nn.Module,
    topology: openmm.app.Topology,
    atoms: list[int] | None = None,
    periodic: bool | None = None,
    precision: str = "float32-high",
    charge: int = 0,
    multiplicity: int = 1,
    cuda_graphs: bool = False,
    architecture: str | None = None,
) -> TorchForce:
    """A TorchForce for ``model`` (a released name, checkpoint path or OrbModel) on ``atoms`` of ``topology``.

    ``periodic`` defaults to whether the topology has a box (True without a box is an error);
    ``precision`` ("float32-high", "float32-highest" or "float64", see :mod:`orb_md.precision`)
    applies to a loaded model only. The module casts OpenMM's positions to the model's dtype and
    its forces back, so any model dtype runs on single, mixed and double platforms; the accuracy
    is that of the model's dtype. With ``cuda_graphs`` the per-step NaN check (a host sync) is off.
    """
    periodic = resolve_periodic(topology, periodic)
    model = resolve_model(model, precision, architecture)
    module = build_module(model, topology_atomic_numbers(topology, atoms), atoms, periodic, charge, multiplicity, not cuda_graphs)
    force = TorchForce(module, {"useCUDAGraphs": "true" if cuda_graphs else "false"})
    force.setOutputsForces(model.config.kind == "direct")
    force.setUsesPeriodicBoundaryConditions(periodic)
    force.setName(f"orb_md {model.config.name} (TorchForce)")
    return force
