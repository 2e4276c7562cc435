"""orb_md on a CUDA GPU against the CPU: the four released omat architectures (random weights, float64), the
float32-high error, every neighbour backend's edges, the ASE calculator's device and batched MD over 20 steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orb_md import build_model
from orb_md.calculator import OrbCalculator
from orb_md.graph.backends import usable_backends
from tests.gpu import checks

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def cpu_reference() -> dict:
    """Float64 CPU outputs per architecture, computed once (full width: the released architectures)."""
    return {name: checks.model_outputs(name, "cpu") for name in checks.OMAT}


@pytest.mark.parametrize("name", checks.OMAT)
def test_float64_cuda_matches_cpu(name: str, cpu_reference: dict) -> None:
    errors = checks.relative_errors(checks.model_outputs(name, "cuda"), cpu_reference[name])
    assert errors["energy_relative"] <= 1e-10, errors
    assert errors["forces_abs"] <= 1e-9, errors
    assert errors["stress_abs"] <= 1e-9, errors


@pytest.mark.parametrize("name", checks.OMAT)
def test_float32_high_error_against_float64(name: str, cpu_reference: dict, record_property) -> None:
    """TF32 matrix products on the GPU: the error is recorded (JUnit property, read into gpu.md), bounded loosely."""
    errors = checks.relative_errors(checks.model_outputs(name, "cuda", "float32-high"), cpu_reference[name])
    for key, value in errors.items():
        record_property(f"float32_high_{key}", value)
    print(f"{name} float32-high vs float64: {errors}")
    assert errors["energy_relative"] < 1e-2 and errors["forces_abs"] < 1.0, errors


@pytest.mark.parametrize("backend", usable_backends(torch.device("cuda")) + ["fixed_capacity"])
def test_neighbour_backend_edges_on_cuda_equal_cpu(backend: str) -> None:
    for atoms in checks.structures():
        want = checks.edges(atoms, "brute_force", "cpu")
        got = checks.edges(atoms, backend, "cuda")
        for a, b, what in zip(got, want, ("senders", "receivers", "shifts")):
            np.testing.assert_array_equal(a, b, err_msg=f"{backend} {what} ({len(atoms)} atoms)")


def test_ase_calculator_device_moves_the_model() -> None:
    model = build_model("orb-v3-conservative-inf-omat", seed=1, dtype=torch.float64, latent_dim=64, mlp_hidden_dim=128)
    atoms = checks.structures()[0]
    atoms.calc = OrbCalculator(model)
    cpu = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = OrbCalculator(model, device="cuda")
    assert next(atoms.calc.model.parameters()).device.type == "cuda"
    assert atoms.get_potential_energy() == pytest.approx(cpu[0], rel=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), cpu[1], atol=1e-9, rtol=0)


@pytest.mark.parametrize("name", ["orb-v3-conservative-20-omat", "orb-v3-direct-20-omat"])
def test_batched_md_on_cuda_follows_cpu(name: str) -> None:
    """20 Langevin steps of a periodic crystal and a molecule in one batch: CUDA and CPU trajectories agree to
    round-off (float64; 20 steps are too few for the chaos to amplify 1e-12 differences visibly)."""
    cpu, cuda = checks.batched_md("cpu", 20, name), checks.batched_md("cuda", 20, name)
    np.testing.assert_allclose(cuda["positions"], cpu["positions"], atol=1e-8, rtol=0)
    np.testing.assert_allclose(cuda["velocities"], cpu["velocities"], atol=1e-8, rtol=0)
    np.testing.assert_allclose(cuda["energy"], cpu["energy"], rtol=1e-9)
