"""TorchScript: every released configuration scripts, saves, reloads and reproduces eager's numbers."""

from __future__ import annotations

import io

import pytest
import torch
from ase.build import bulk

from orb_md import RELEASED_MODELS, OrbInputs, build_model
from orb_md.graph import neighbor_list

REDUCED = {"latent_dim": 16, "mlp_hidden_dim": 32}


@pytest.fixture(scope="module")
def inputs() -> dict:
    """Rattled periodic NaCl (triclinic primitive cell x2x2x2, 16 atoms), graph from orb_md's neighbour list."""
    atoms = bulk("NaCl", "rocksalt", a=5.64) * (2, 2, 2)
    atoms.rattle(0.05, seed=1)
    positions = torch.tensor(atoms.positions, dtype=torch.float64)
    cell = torch.tensor(atoms.cell.array, dtype=torch.float64)[None]
    pbc = torch.tensor(atoms.pbc)[None]
    system_index = torch.zeros(len(atoms), dtype=torch.long)
    return {
        "positions": positions, "atomic_numbers": torch.tensor(atoms.numbers), "cell": cell, "pbc": pbc,
        "system_index": system_index, "total_charge": torch.tensor([1.0], dtype=torch.float64),
        "spin": torch.tensor([2.0], dtype=torch.float64),
    }


def _run(model: torch.nn.Module, charge_spin: bool, max_neighbors: int, x: dict) -> dict[str, torch.Tensor]:
    senders, receivers, shifts = neighbor_list(
        x["positions"], x["cell"], x["pbc"], x["system_index"], cutoff=6.0, max_neighbors=max_neighbors
    )
    out = model(OrbInputs(
        x["positions"], x["atomic_numbers"], x["cell"], x["pbc"], senders, receivers, shifts, x["system_index"],
        x["total_charge"] if charge_spin else None, x["spin"] if charge_spin else None,
    ))
    return {k: v.detach() for k, v in out.items()}


@pytest.mark.parametrize("name", sorted(RELEASED_MODELS))
def test_script_save_load_bit_identical(name: str, inputs: dict) -> None:
    model = build_model(name, dtype=torch.float64, **REDUCED)
    config = model.config
    scripted = torch.jit.script(model)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)

    eager = _run(model, config.charge_spin, config.max_neighbors, inputs)
    reloaded = _run(loaded, config.charge_spin, config.max_neighbors, inputs)
    expected_keys = {"energy", "forces", "confidence"} | ({"stress"} if config.has_stress else set())
    assert expected_keys <= set(eager)
    assert set(reloaded) == set(eager)
    # Autograd gradients of conservative models (forces, stress) go through TorchScript's own backward
    # graph, which orders a few floating-point sums differently: they agree to round-off (~1e-16), not
    # bit for bit. Everything else must be bit-identical.
    gradients = {"forces", "stress"} if model.conservative else set()
    for key, value in eager.items():
        assert reloaded[key].dtype == value.dtype, key
        assert torch.isfinite(value).all(), key
        if key in gradients:
            torch.testing.assert_close(reloaded[key], value, rtol=1e-12, atol=1e-14, msg=f"{name} {key}")
        else:
            assert torch.equal(reloaded[key], value), f"{name} {key}: max |diff| {float((reloaded[key] - value).abs().max()):.1e}"
