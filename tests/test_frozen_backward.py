"""The hand-written backward of frozen models (orb_md.model.frozen) gives autograd's forces and stress."""

from __future__ import annotations

import pytest
import torch
from ase.build import bulk, molecule

from orb_md import OrbInputs, build_model
from orb_md.batch import atoms_to_batch, build_graph, evaluate
from orb_md.model import frozen

REDUCED = {"latent_dim": 16, "mlp_hidden_dim": 32}
CONSERVATIVE = ["orb-v3-conservative-20-omat", "orb-v3-conservative-inf-mpa", "orb-v3-conservative-omol"]


@pytest.fixture(scope="module")
def batch():
    """A rattled periodic crystal and a molecule in vacuum, in one batch."""
    crystal = bulk("NaCl", "rocksalt", a=5.64) * (2, 2, 2)
    crystal.rattle(0.1, seed=1)
    ethanol = molecule("CH3CH2OH")
    ethanol.info.update(charge=0, spin=1)
    crystal.info.update(charge=0, spin=1)
    return atoms_to_batch([crystal, ethanol])


def _model(name: str) -> torch.nn.Module:
    model = build_model(name, dtype=torch.float64, **REDUCED)
    model.model.edge_chunk = 64  # several chunks per layer, so the node-row gradients of chunks are summed
    return model


@pytest.mark.parametrize("name", CONSERVATIVE)
def test_hand_backward_matches_autograd(name: str, batch, monkeypatch) -> None:
    model = _model(name)
    assert frozen.hand_backward(model)
    calls = []
    tail_backward = frozen._tail_backward
    monkeypatch.setattr(frozen, "_tail_backward", lambda *a: calls.append(1) or tail_backward(*a))
    by_hand = evaluate(model, batch)
    assert len(calls) > 2 * model.config.num_message_passing  # every chunk of every layer went through it
    calls.clear()
    model.requires_grad_(True)  # autograd's own backward (only position and strain gradients are asked for)
    assert not frozen.hand_backward(model)
    reference = evaluate(model, batch)
    assert not calls
    assert torch.equal(by_hand["energy"], reference["energy"])  # the very same forward ops
    for key in ("forces", "stress"):
        scale = float(reference[key].abs().max())
        assert scale > 0, key
        torch.testing.assert_close(by_hand[key], reference[key], rtol=0, atol=1e-13 * scale, msg=key)


def test_second_derivatives_match_autograd(batch) -> None:
    """create_graph=True (Hessians, force losses) recomputes through autograd and differentiates again."""
    model = _model("orb-v3-conservative-inf-omat")
    senders, receivers, shifts = build_graph(model, batch)

    def hessian_row() -> tuple[torch.Tensor, torch.Tensor]:
        positions = batch.positions.clone().requires_grad_(True)
        energy = model(
            OrbInputs(positions, batch.atomic_numbers, batch.cell, batch.pbc, senders, receivers, shifts,
                      batch.system_index),
            compute_forces=False, compute_stress=False,
        )["energy"].sum()
        gradient, = torch.autograd.grad(energy, positions, create_graph=True)
        row, = torch.autograd.grad(gradient[0, 0], positions)
        return gradient.detach(), row

    with torch.enable_grad():
        gradient, row = hessian_row()
        model.train()  # the twice-differentiable autograd path of training
        assert not frozen.hand_backward(model)
        reference_gradient, reference_row = hessian_row()
    assert float(reference_row.abs().max()) > 0
    torch.testing.assert_close(gradient, reference_gradient, rtol=0, atol=1e-14)
    torch.testing.assert_close(row, reference_row, rtol=0, atol=1e-14)


def test_backward_twice_on_one_graph(batch) -> None:
    """retain_graph=True: the shared node-row gradient starts from zero in every backward pass."""
    model = _model("orb-v3-conservative-20-omat")
    senders, receivers, shifts = build_graph(model, batch)
    positions = batch.positions.clone().requires_grad_(True)
    with torch.enable_grad():
        energy = model(
            OrbInputs(positions, batch.atomic_numbers, batch.cell, batch.pbc, senders, receivers, shifts,
                      batch.system_index),
            compute_forces=False, compute_stress=False,
        )["energy"].sum()
        first, = torch.autograd.grad(energy, positions, retain_graph=True)
        second, = torch.autograd.grad(energy, positions)
    assert float(first.abs().max()) > 0
    assert torch.equal(first, second)


def test_hand_backward_only_where_it_applies() -> None:
    model = _model("orb-v3-conservative-20-omat")
    with torch.enable_grad():
        assert frozen.hand_backward(model)
        model.train()
        assert not frozen.hand_backward(model)  # training: twice-differentiable losses
        model.eval()
        next(model.parameters()).requires_grad_(True)
        assert not frozen.hand_backward(model)  # a weight gradient is wanted
    with torch.no_grad():
        assert not frozen.hand_backward(model.requires_grad_(False))


def test_torch_func_transforms_use_autograd(batch) -> None:
    """torch.func.grad of the energy (a functorch transform) works and gives the forces."""
    model = _model("orb-v3-conservative-20-omat")
    senders, receivers, shifts = build_graph(model, batch)

    def energy(positions: torch.Tensor) -> torch.Tensor:
        return model(
            OrbInputs(positions, batch.atomic_numbers, batch.cell, batch.pbc, senders, receivers, shifts,
                      batch.system_index),
            compute_forces=False, compute_stress=False,
        )["energy"].sum()

    gradient = torch.func.grad(energy)(batch.positions.clone())
    forces = evaluate(model, batch)["forces"]
    torch.testing.assert_close(-gradient, forces, rtol=0, atol=1e-13 * float(forces.abs().max()))
