"""Alchemical ML/MM interpolation (openmm-ml's ``interpolate=True``) with orb_md's TorchForce.

λ = ``lambda_interpolate``: 1 is the mixed ML/MM system, 0 the MM system, anything between their linear mix, in
energy and forces, also after ``Context.setParameter``; and at every λ the same as openmm-ml's own route, which
runs the PythonForce inside its ``CustomCVForce``. With PME, openmm-ml's λ=0 differs from the MM system by its own
approximation (the ML-ML pairs' MM interaction comes back as plain Coulomb and Lennard-Jones of the minimum image,
not Ewald with a cutoff), so the MM end is checked exactly on the cluster only.

The TorchForce system is built and evaluated in a child process: openmm-ml's own route with the TorchForce (a
``CustomCVForce`` cloning it through XML) kills the process with SIGSEGV under openmm-torch 1.5 and OpenMM 8.6,
which must fail this test, not end pytest.
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

from orb_md import build_model  # noqa: E402
from tests.openmm_systems import energy_forces, water  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAMBDAS = (0.0, 0.4, 1.0)
ML_ATOMS = [0, 1, 2, 3, 4, 5]  # two waters: ML-ML bonded terms and ML-ML nonbonded pairs between them


def case(model_name: str, periodic: bool) -> tuple[app.Modeller, openmm.System, MLPotential, torch.nn.Module]:
    """45 TIP3P atoms (0.8 nm cube, PME, or the same atoms as a cluster), a random reduced-width model."""
    modeller = water(0.8)
    if not periodic:
        modeller.topology.setPeriodicBoxVectors(None)
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    method = {"nonbondedMethod": app.PME, "nonbondedCutoff": 0.35 * unit.nanometer} if periodic else {"nonbondedMethod": app.NoCutoff}
    mm = forcefield.createSystem(modeller.topology, rigidWater=False, **method)
    model = build_model(model_name, seed=0, dtype=torch.float64, latent_dim=32, mlp_hidden_dim=64, num_message_passing=2)
    return modeller, mm, MLPotential(f"orb_md/{model_name}"), model


def _context(system: openmm.System, modeller: app.Modeller) -> openmm.Context:
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(modeller.positions)
    return context


def interpolated(model_name: str, periodic: bool, implementation: str) -> dict[str, tuple[float, np.ndarray]]:
    """Energy and forces of the interpolated System: its default λ, then each of LAMBDAS set on the same Context."""
    modeller, mm, potential, model = case(model_name, periodic)
    system = potential.createMixedSystem(
        modeller.topology, mm, ML_ATOMS, interpolate=True, model=model, forceGroup=1, implementation=implementation
    )
    context = _context(system, modeller)
    results = {"default": energy_forces(context)}
    for value in LAMBDAS:
        context.setParameter("lambda_interpolate", value)
        results[str(value)] = energy_forces(context)
    return results


CHILD = """
import json, sys
from tests.test_openmm_interpolation import interpolated
results = interpolated(sys.argv[1], sys.argv[2] == "periodic", "torchforce")
print(json.dumps({key: [energy, forces.tolist()] for key, (energy, forces) in results.items()}))
"""


def _assert_close(got: tuple[float, np.ndarray], want: tuple[float, np.ndarray], what: str) -> None:
    assert got[0] == pytest.approx(want[0], rel=1e-8, abs=1e-6), f"energy {what}"
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-7 * np.abs(want[1]).max(), err_msg=f"forces {what}")


@pytest.mark.parametrize(("model_name", "periodic"), [("orb-v3-direct-20-omat", True), ("orb-v3-conservative-20-omat", False)])
def test_interpolation_mixes_mm_and_ml_systems(model_name: str, periodic: bool) -> None:
    """Direct models (TorchForce returning forces) periodic, conservative (autograd forces) as a cluster: the λ
    parameter arrives after the box, or right after the positions."""
    child = subprocess.run(
        [sys.executable, "-c", CHILD, model_name, "periodic" if periodic else "cluster"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert child.returncode == 0, f"interpolated ML/MM system failed (exit status {child.returncode}, -11 = SIGSEGV):\n{child.stderr[-3000:]}"
    got = {key: (energy, np.array(forces)) for key, (energy, forces) in json.loads(child.stdout.splitlines()[-1]).items()}

    openmm_ml = interpolated(model_name, periodic, "pythonforce")
    modeller, mm, potential, model = case(model_name, periodic)
    mixed = potential.createMixedSystem(modeller.topology, mm, ML_ATOMS, model=model, forceGroup=1)
    mm_end, ml_end = energy_forces(_context(mm, modeller)), energy_forces(_context(mixed, modeller))
    assert abs(ml_end[0] - mm_end[0]) > 10.0  # the two ends differ, so each comparison below can fail
    for key, value in [("default", 1.0), *((str(x), x) for x in LAMBDAS)]:
        _assert_close(got[key], openmm_ml[key], f"at lambda_interpolate {key} (openmm-ml's route)")
        if value == 1.0 or not periodic:
            mix = (value * ml_end[0] + (1 - value) * mm_end[0], value * ml_end[1] + (1 - value) * mm_end[1])
            _assert_close(got[key], mix, f"at lambda_interpolate {key} (the plain systems)")
