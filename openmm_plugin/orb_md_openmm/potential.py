"""openmm-ml registration: ``MLPotential("orb_md/orb-v3-...")`` builds an orb_md TorchForce.

This module is imported by ``import openmmml`` (entry point group ``openmmml.potentials``), so it
must import nothing that can fail or is slow: torch, openmm-torch and orb_md are imported only
when a System is built.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import openmm
import openmm.app
from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory

from orb_md_openmm.names import model_name


class OrbMDPotentialImplFactory(MLPotentialImplFactory):
    """Creates :class:`OrbMDPotentialImpl` for every ``orb_md/...`` name."""

    def createImpl(self, name: str, **args) -> MLPotentialImpl:
        if args:
            raise TypeError(f"MLPotential({name!r}) takes no extra arguments, got {sorted(args)}; pass options to createSystem")
        return OrbMDPotentialImpl(model_name(name))


IMPLEMENTATIONS = ("torchforce", "pythonforce")
MECHANICAL = "mechanical"
LAMBDA_INTERPOLATE = "lambda_interpolate"  # openmm-ml's name: 1 = the mixed ML/MM system, 0 = the MM system


class OrbMDPotentialImpl(MLPotentialImpl):
    """An Orb-v3 model evaluated inside OpenMM.

    ``createSystem`` / ``createMixedSystem`` options:

    - ``model``: what to evaluate. Default (None): the released weights of the potential's name,
      loaded with ``precision``. Or an :class:`orb_md.OrbModel` (e.g. ``orb_md.build_model(...)``,
      used as is, in its own dtype/device), or a checkpoint path (loaded with ``precision``;
      its architecture is the potential's name).
    - ``implementation``: ``"torchforce"`` (default; openmm-torch TorchForce, scripted module
      running inside OpenMM) or ``"pythonforce"`` (OpenMM core ``PythonForce``; host round trip
      per step, no openmm-torch needed).
    - ``precision``: "float32-high" (default), "float32-highest", "float64" (loaded models only).
    - ``periodic``: default = topology has a box (or the System is periodic); a box-less topology then takes the
      System's default box. True with neither a topology box nor a periodic System is an error.
    - ``charge`` (total charge in e, OMol models only, default 0), ``multiplicity`` (2S+1, OMol only, default 1).
    - ``cudaGraphs`` (bool, default False, torchforce only): a CUDA-graph-ready module with a fixed-capacity graph;
      ``binCapacity`` and ``candidateCapacity`` (int, 0: defaults) raise its capacities (see
      :func:`orb_md_openmm.force.create_torch_force`). ``device`` (pythonforce only; default: the model's).
    """

    def __init__(self, model: str):
        self.model = model

    def addForces(
        self, topology: openmm.app.Topology, system: openmm.System, atoms: Iterable[int] | None, forceGroup: int, **args
    ) -> None:
        force = self._create_force(topology, system, atoms, **args)
        force.setForceGroup(forceGroup)
        system.addForce(force)

    def getSupportedEmbeddings(self) -> list[str]:
        """openmm-ml's ``mechanical`` embedding, run by :meth:`createMixedSystem` (same name, same physics)."""
        return [MECHANICAL]

    def createMixedSystem(
        self,
        topology: openmm.app.Topology,
        system: openmm.System,
        atoms: list[int],
        forceGroup: int,
        interpolate: bool,
        embedding: str,
        returnInfo: bool = False,
        **args,
    ) -> openmm.System | dict:
        """openmm-ml's mechanical embedding; with ``interpolate=True`` and the TorchForce, the ML energy is
        λ·E_ML from a TorchForce reading the global parameter ``lambda_interpolate`` itself.

        openmm-ml puts the ML forces in a ``CustomCVForce``, which clones them through XML: with openmm-torch 1.5
        on OpenMM >= 8.6 that kills the process (see :mod:`orb_md_openmm.serialization`). Here openmm-ml builds
        everything else (the MM terms of the ML region scaled by 1-λ, link atoms, long-range corrections) with a
        stand-in potential that records where the ML force goes, and the λ-scaled TorchForce is added after.
        The PythonForce and ``interpolate=False`` take openmm-ml's own path.
        """
        from openmmml.embeddings.mechanicalembedding import MechanicalEmbedding

        mechanical = MechanicalEmbedding()
        if not interpolate or args.get("implementation", "torchforce") != "torchforce":
            return mechanical.createMixedSystem(self, topology, system, atoms, forceGroup, interpolate, returnInfo, **args)
        recorder = _RecordedMLForces(self)
        info = mechanical.createMixedSystem(recorder, topology, system, atoms, forceGroup, True, True, **args)
        ((ml_topology, ml_atoms, group, options),) = recorder.calls
        force = self._create_force(ml_topology, info["system"], ml_atoms, scale_parameter=LAMBDA_INTERPOLATE, **options)
        force.setForceGroup(group)
        info["system"].addForce(force)
        return info if returnInfo else info["system"]

    def _create_force(
        self,
        topology: openmm.app.Topology,
        system: openmm.System,
        atoms: Iterable[int] | None,
        model=None,
        implementation: str = "torchforce",
        precision: str = "float32-high",
        periodic: bool | None = None,
        charge: int = 0,
        multiplicity: int = 1,
        cudaGraphs: bool = False,
        binCapacity: int = 0,
        candidateCapacity: int = 0,
        device=None,
        scale_parameter: str | None = None,
        **args,
    ) -> openmm.Force:
        """The ML force (TorchForce or PythonForce) for the createSystem options; ``scale_parameter``: see
        :func:`orb_md_openmm.force.create_torch_force`."""
        if args:
            raise TypeError(f"MLPotential('orb_md/{self.model}'): unknown option(s) {sorted(args)}")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation={implementation!r}; choose one of {IMPLEMENTATIONS}")
        try:
            import torch  # noqa: F401

            import orb_md  # noqa: F401
        except ImportError as err:
            raise ImportError(f"MLPotential('orb_md/{self.model}') needs torch, openmmtorch and orb_md: {err}") from err
        if periodic is None:
            periodic = topology.getPeriodicBoxVectors() is not None or system.usesPeriodicBoundaryConditions()
        if periodic and topology.getPeriodicBoxVectors() is None and system.usesPeriodicBoundaryConditions():
            topology = _with_box(topology, system)
        source = self.model if model is None else model
        architecture = None if model is None or not isinstance(model, (str, Path)) else self.model
        atoms = None if atoms is None else list(atoms)
        options = dict(atoms=atoms, periodic=periodic, precision=precision, charge=charge, multiplicity=multiplicity, architecture=architecture)
        if implementation == "torchforce":
            if device is not None:
                raise ValueError("device= applies to implementation='pythonforce'; TorchForce runs on the Context's device")
            try:
                from orb_md_openmm.force import create_torch_force
            except ImportError as err:
                raise ImportError(
                    f"openmm-torch cannot be loaded ({err}); use createSystem(..., implementation='pythonforce') "
                    "for OpenMM's PythonForce fallback"
                ) from err
            return create_torch_force(
                source, topology, cuda_graphs=cudaGraphs, bin_capacity=binCapacity, candidate_capacity=candidateCapacity,
                scale_parameter=scale_parameter, **options,
            )
        if binCapacity or candidateCapacity:
            raise ValueError("binCapacity and candidateCapacity apply to implementation='torchforce' with cudaGraphs=True")
        from orb_md_openmm.python_force import create_python_force

        return create_python_force(source, topology, device=device, **options)

    def getMLLongRange(self) -> bool:
        """Orb-v3 has a finite 6 Å receptive field per layer and no explicit long-range term."""
        return False


class _RecordedMLForces(MLPotentialImpl):
    """Stands in for an orb_md potential inside openmm-ml's embedding: records each addForces call, adds nothing."""

    def __init__(self, potential: OrbMDPotentialImpl):
        self.potential = potential
        self.calls: list[tuple[openmm.app.Topology, list[int], int, dict]] = []

    def addForces(self, topology: openmm.app.Topology, system: openmm.System, atoms, forceGroup: int, **args) -> None:
        self.calls.append((topology, list(atoms), forceGroup, args))

    def getMLLongRange(self) -> bool:
        return self.potential.getMLLongRange()


def _with_box(topology: openmm.app.Topology, system: openmm.System) -> openmm.app.Topology:
    """A copy of ``topology`` with the System's default box (for createMixedSystem on a box-less topology)."""
    copy = openmm.app.Topology()
    copy.__dict__.update(topology.__dict__)
    copy.setPeriodicBoxVectors(system.getDefaultPeriodicBoxVectors())
    return copy
