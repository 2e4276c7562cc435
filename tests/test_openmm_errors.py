"""What a user reads when orb_md's force stops OpenMM: NaN positions, a periodic module run without a box.

The text is checked exactly as a user sees it: the engine's own message (TorchScript's interpreter leads it, orb_md's
sentence is its last line) and, through :func:`orb_md_openmm.errors.engine_errors`, orb_md's sentence alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
torch = pytest.importorskip("torch")
pytest.importorskip("openmmtorch")
pytest.importorskip("openmmml")

import openmm.app as app  # noqa: E402
import openmm.unit as unit  # noqa: E402
from openmmml import MLPotential  # noqa: E402
from openmmtorch import TorchForce  # noqa: E402

from orb_md import build_model  # noqa: E402
from orb_md.errors import OrbMDError  # noqa: E402
from orb_md_openmm.errors import OrbMDForceError, engine_errors  # noqa: E402
from orb_md_openmm.force import build_module  # noqa: E402
from tests.openmm_systems import water  # noqa: E402

NAN = (
    "orb_md: ML atom positions contain NaN or inf (the simulation blew up: reduce the time step, minimise first, "
    "or check the starting structure)"
)
NO_BOX = (
    "orb_md: this module was built for a periodic system but OpenMM passed no box vectors: "
    "call setUsesPeriodicBoundaryConditions(True) on its TorchForce"
)
ROOT = Path(__file__).resolve().parents[1]
INTERPRETER = "The following operation failed in the TorchScript interpreter."


def _model():
    return build_model("orb-v3-direct-20-omat", seed=0, dtype=torch.float64, latent_dim=32, mlp_hidden_dim=64, num_message_passing=2)


def _simulation(system: openmm.System, modeller: app.Modeller, positions=None) -> app.Simulation:
    simulation = app.Simulation(
        modeller.topology, system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference")
    )
    simulation.context.setPositions(modeller.positions if positions is None else positions)
    return simulation


def _nan_positions(modeller: app.Modeller) -> np.ndarray:
    positions = np.asarray(modeller.positions.value_in_unit(unit.nanometer)).copy()
    positions[4] = np.nan
    return positions


def _periodic_module_without_box(modeller: app.Modeller):
    """A periodic module (as ``orb-md export openmm`` writes one) in a TorchForce left non-periodic."""
    module = build_module(_model(), [a.element.atomic_number for a in modeller.topology.atoms()], None, True)
    force = TorchForce(module)
    force.setOutputsForces(True)
    system = openmm.System()
    for atom in modeller.topology.atoms():
        system.addParticle(atom.element.mass)
    system.addForce(force)
    return module, system


def user_sees(case: str) -> dict[str, str | bool]:
    """The error of one blow-up, run through engine_errors: its message, the engine's own, and its types."""
    modeller = water(0.8)
    potential = MLPotential("orb_md/orb-v3-direct-20-omat")
    try:
        with engine_errors():
            if case == "module without box":
                module, _ = _periodic_module_without_box(modeller)
                module(torch.tensor(np.asarray(modeller.positions.value_in_unit(unit.nanometer))))
            elif case == "torchforce without box":
                _simulation(_periodic_module_without_box(modeller)[1], modeller).step(1)
            else:
                system = potential.createSystem(modeller.topology, model=_model(), implementation=case.split()[-1])
                _simulation(system, modeller, _nan_positions(modeller)).step(1)
    except OrbMDForceError as error:
        return {
            "message": str(error), "engine": str(error.__context__),
            "types": isinstance(error, openmm.OpenMMException) and isinstance(error, OrbMDError),
        }
    raise AssertionError(f"{case}: no error")


CHILD = """
import json, sys
from tests.test_openmm_errors import user_sees
print(json.dumps(user_sees(sys.argv[1])))
"""


@pytest.mark.parametrize(
    ("case", "sentence", "interpreter"),
    [
        ("NaN under torchforce", NAN, True),
        ("NaN under pythonforce", NAN, False),
        ("torchforce without box", NO_BOX, True),
        ("module without box", NO_BOX, True),
    ],
)
def test_user_reads_orb_md_sentence_alone(case: str, sentence: str, interpreter: bool) -> None:
    """Each blow-up in its own process: with openmm-torch 1.5, a second TorchScript error in another Context of the
    same process can kill it (SIGSEGV), which would hide what this test checks."""
    child = subprocess.run([sys.executable, "-c", CHILD, case], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert child.returncode == 0, f"{case}: exit status {child.returncode}\n{child.stderr[-3000:]}"
    seen = json.loads(child.stdout.splitlines()[-1])
    assert seen["message"] == sentence and seen["types"]
    # What the engine raised (hidden by ``from None``): with TorchScript, the interpreter's line leads it.
    lines = seen["engine"].strip().splitlines()
    if interpreter:
        assert lines[0] == INTERPRETER and lines[-1] == f"builtins.ValueError: {sentence}"
    else:
        assert lines == [sentence]


def test_other_engine_errors_pass_unchanged() -> None:
    modeller = water(0.8)
    simulation = _simulation(MLPotential("orb_md/orb-v3-direct-20-omat").createSystem(modeller.topology, model=_model()), modeller)
    with pytest.raises(openmm.OpenMMException) as engine, engine_errors():
        simulation.context.setParameter("no_such_parameter", 1.0)
    assert not isinstance(engine.value, OrbMDError)
