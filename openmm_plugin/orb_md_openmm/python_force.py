"""Fallback without openmm-torch: the same Orb wrapper behind OpenMM core's ``openmm.PythonForce``.

Chosen explicitly (``implementation="pythonforce"``). Each step OpenMM hands the positions to
Python on the host, the model runs (on ``device``), and the forces come back as NumPy: a host
round trip per step, but no openmm-torch / TorchScript / libtorch ABI coupling. The compute
object pickles as the model and its arguments, so the System serialises to XML and reads back
in a fresh process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openmm
import openmm.app
import openmm.unit as unit
import torch

from orb_md import OrbModel
from orb_md.devices import resolve_device
from orb_md_openmm.common import make_wrapper, resolve_model, resolve_periodic, topology_atomic_numbers


class OrbPythonCompute:
    """``compute(state) -> (energy kJ/mol, forces (n,3) kJ/mol/nm)`` for ``openmm.PythonForce``.

    Pickles as its constructor arguments (the model, not the wrapper): the wrapper holds a vesin
    TorchScript object that only unpickles once ``vesin_torch`` is imported, which a fresh process
    reading the System XML has not done (OpenMM then crashes instead of raising).
    """

    def __init__(
        self,
        model: OrbModel,
        atomic_numbers: list[int],
        periodic: bool,
        charge: float,
        multiplicity: float,
        device: str | torch.device,
    ):
        self.arguments = (model, atomic_numbers, periodic, charge, multiplicity, str(device))
        self.device = resolve_device(device)
        self.wrapper = make_wrapper(model, atomic_numbers, None, periodic, charge, multiplicity).to(self.device)
        self.periodic = periodic
        self.direct = model.config.kind == "direct"
        self.dtype = self.wrapper.evaluator.default_cell.dtype

    def __reduce__(self) -> tuple[type, tuple]:
        return OrbPythonCompute, self.arguments

    def __call__(self, state: openmm.State) -> tuple[float, np.ndarray]:
        positions = torch.as_tensor(
            state.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=self.dtype
        ).to(self.device)
        box = None
        if self.periodic:
            box = torch.as_tensor(
                np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)), dtype=self.dtype
            ).to(self.device)
        if self.direct:
            with torch.no_grad():
                energy, forces = self.wrapper(positions, box)
        else:
            positions.requires_grad_(True)
            energy = self.wrapper(positions, box)
            (gradient,) = torch.autograd.grad(energy, positions)
            forces = -gradient
        return float(energy.detach()), forces.detach().cpu().double().numpy()


def create_python_force(
    model: str | Path | torch.nn.Module,
    topology: openmm.app.Topology,
    atoms: list[int] | None = None,
    periodic: bool | None = None,
    precision: str = "float32-high",
    charge: int = 0,
    multiplicity: int = 1,
    device: str | torch.device | None = None,
    architecture: str | None = None,
) -> openmm.PythonForce:
    """An ``openmm.PythonForce`` evaluating ``model`` on ``atoms`` (same arguments as :func:`create_torch_force`)."""
    if not hasattr(openmm, "PythonForce"):
        raise ImportError(f"implementation='pythonforce' needs OpenMM >= 8.5 (openmm.PythonForce); this is OpenMM {openmm.__version__}")
    periodic = resolve_periodic(topology, periodic)
    model = resolve_model(model, precision, architecture)
    if device is None:
        device = next(model.parameters()).device
    numbers = topology_atomic_numbers(topology, atoms)
    # The subset is selected by OpenMM (setParticles), so the wrapper sees only the ML atoms.
    force = openmm.PythonForce(OrbPythonCompute(model, numbers, periodic, charge, multiplicity, device))
    if atoms is not None:
        force.setParticles(list(atoms))
    force.setUsesPeriodicBoundaryConditions(periodic)
    force.setName(f"orb_md {model.config.name} (PythonForce)")
    return force
