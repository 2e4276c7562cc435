"""Build an openmm-torch ``TorchForce`` that evaluates an Orb-v3 model inside OpenMM."""

from __future__ import annotations

import re
from pathlib import Path

import openmm
import openmm.app
import openmm.unit
import torch

# isort: split
# openmmtorch links libnvrtc & co. that only `import torch` (CUDA wheels) puts on the loader path.
from openmmtorch import TorchForce

from orb_md.graph.vesin_search import vesin_available
from orb_md_openmm.common import (
    evaluator_inputs,
    make_wrapper,
    resolve_model,
    resolve_periodic,
    topology_atomic_numbers,
    wrap_evaluator,
)
from orb_md_openmm.module import CapturableOrbEvaluator

__all__ = ["build_capturable_module", "build_module", "create_torch_force", "topology_atomic_numbers"]


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
# orb_md's scripted modules hold vesin-torch's TorchScript class (the neighbour search): registering it here lets a
# process load such a module (orb_md_openmm.serialization.deserialize, or openmm.XmlSerializer.deserialize with an
# openmm-torch that does not crash) without having built one first.
vesin_available()


def build_module(
    model: torch.nn.Module,
    atomic_numbers: list[int],
    atoms: list[int] | None,
    periodic: bool,
    charge: int = 0,
    multiplicity: int = 1,
    scaled: bool = False,
) -> torch.jit.ScriptModule:
    """Script the TorchForce module: energy+forces for direct models, energy only for conservative ones
    (``scaled``: times a global parameter, see :func:`create_torch_force`)."""
    return torch.jit.script(make_wrapper(model, atomic_numbers, atoms, periodic, charge, multiplicity, scaled))


def build_capturable_module(
    model: torch.nn.Module,
    atomic_numbers: list[int],
    atoms: list[int] | None,
    box: torch.Tensor | None,
    charge: int = 0,
    multiplicity: int = 1,
    bin_capacity: int = 0,
    candidate_capacity: int = 0,
    scaled: bool = False,
) -> torch.jit.ScriptModule:
    """Script the CUDA-graph-ready TorchForce module (:class:`CapturableOrbEvaluator`; ``box`` (3,3) Å or None)."""
    total_charge, spin = evaluator_inputs(model, atomic_numbers, atoms, charge, multiplicity)
    evaluator = CapturableOrbEvaluator(
        model.eval(), atomic_numbers, atoms, box, total_charge, spin, bin_capacity, candidate_capacity
    )
    return torch.jit.script(wrap_evaluator(model, evaluator, scaled))


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
    bin_capacity: int = 0,
    candidate_capacity: int = 0,
    scale_parameter: str | None = None,
) -> TorchForce:
    """A TorchForce for ``model`` (a released name, checkpoint path or OrbModel) on ``atoms`` of ``topology``.

    ``periodic`` defaults to whether the topology has a box (True without a box is an error);
    ``precision`` ("float32-high", "float32-highest" or "float64", see :mod:`orb_md.precision`)
    applies to a loaded model only. The module casts OpenMM's positions to the model's dtype and
    its forces back, so any model dtype runs on single, mixed and double platforms; the accuracy
    is that of the model's dtype.

    ``cuda_graphs``: openmm-torch captures the module in a CUDA graph (``useCUDAGraphs``), so the module is
    :class:`orb_md_openmm.module.CapturableOrbEvaluator`: a padded graph of fixed capacities sized for the number
    of ML atoms and the topology's box, no host synchronisation, the same energy and forces. A capacity it
    overflows (a crowded cell-list bin: ``bin_capacity``; a sender with too many candidates: ``candidate_capacity``;
    a box shrunk by more than 10 %) turns energy and forces into NaN, so the positions become NaN and OpenMM stops
    with "Particle coordinate is NaN" when it next checks them (the CPU platform at the next step; Reference carries
    on with NaN): raise the capacity (defaults and their measured margins: ``orb_md.graph.fixed_capacity``) or build
    the force for the new box.

    ``scale_parameter``: the name of a global parameter (default 1) that multiplies the energy and forces, read
    by the module itself (openmm-ml's ``lambda_interpolate``; see
    :meth:`orb_md_openmm.potential.OrbMDPotentialImpl.createMixedSystem`).
    """
    periodic = resolve_periodic(topology, periodic)
    scaled = scale_parameter is not None
    model = resolve_model(model, precision, architecture)
    numbers = topology_atomic_numbers(topology, atoms)
    if cuda_graphs:
        box = None
        if periodic:
            vectors = topology.getPeriodicBoxVectors().value_in_unit(openmm.unit.angstrom)
            box = torch.tensor([[v[0], v[1], v[2]] for v in vectors], dtype=torch.float64)
        module = build_capturable_module(model, numbers, atoms, box, charge, multiplicity, bin_capacity,
                                         candidate_capacity, scaled)
    elif bin_capacity or candidate_capacity:
        raise ValueError("bin_capacity and candidate_capacity size the fixed-capacity graph of cuda_graphs=True")
    else:
        module = build_module(model, numbers, atoms, periodic, charge, multiplicity, scaled)
    direct = model.config.kind == "direct"
    force = TorchForce(module, {"useCUDAGraphs": "true" if cuda_graphs else "false"})
    force.setOutputsForces(direct)
    force.setUsesPeriodicBoundaryConditions(periodic)
    if scale_parameter is not None:
        force.addGlobalParameter(scale_parameter, 1.0)
    force.setName(f"orb_md {model.config.name} (TorchForce)")
    return force
