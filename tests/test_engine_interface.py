"""The model's engine interface: the parts an engine assembles (LAMMPS over MPI ranks) give forward's numbers.

Reduced-width released architectures in float64 on a rattled periodic crystal; the parts are put together here as
one process would, so every identity must hold to round-off.
"""

from __future__ import annotations

import pytest
import torch
from ase.build import bulk

from orb_md import build_model
from orb_md.batch import atoms_to_batch, build_graph
from orb_md.model.inputs import system_inputs
from orb_md.model.layers import segment_sum
from orb_md.model.orb import edge_vectors

REDUCED = {"latent_dim": 16, "mlp_hidden_dim": 32}
ARCHITECTURES = ("orb-v3-conservative-20-omat", "orb-v3-direct-20-omat")


def _case(name: str):
    model = build_model(name, seed=1, dtype=torch.float64, **REDUCED)
    atoms = bulk("CuAu", "rocksalt", a=3.4, cubic=True) * (2, 2, 2)
    atoms.rattle(0.1, seed=2)
    batch = atoms_to_batch([atoms])
    inputs = system_inputs(model.config, batch, build_graph(model, batch))
    vectors = edge_vectors(inputs.positions, inputs.cell, inputs.senders, inputs.receivers,
                           inputs.unit_shifts.to(torch.float64), inputs.system_index[inputs.senders])
    return model, inputs, vectors


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_per_atom_energies_sum_to_the_energy(name: str) -> None:
    model, inputs, vectors = _case(name)
    z, s, r = inputs.atomic_numbers, inputs.senders, inputs.receivers
    with torch.no_grad():
        energy = model(inputs, compute_forces=False, compute_stress=False)["energy"]
        nodes = model.node_features(z, vectors, s, r, inputs.system_index)
        count = torch.tensor([float(z.shape[0])], dtype=torch.float64)
        interaction = model.energy_from_pooled(nodes.mean(0, keepdim=True), count)
        repulsion = model.repulsion_per_atom(vectors, z, s, r)
        per_atom = model.per_atom_energies(interaction, count, z, repulsion)
    assert float(repulsion.abs().max()) > 0  # the rattled crystal has atoms inside each other's ZBL range
    torch.testing.assert_close(per_atom.sum(), energy[0], rtol=1e-13, atol=0.0)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_layer_wise_split_with_no_ghosts_is_the_network(name: str) -> None:
    """One process owning every atom: the exchanges have nothing to do, the features are the network's."""
    model, inputs, vectors = _case(name)
    z, s, r = inputs.atomic_numbers, inputs.senders, inputs.receivers
    calls = []

    def unchanged(rows: torch.Tensor) -> torch.Tensor:
        calls.append(rows.shape)
        return rows

    with torch.no_grad():
        whole = model.node_features(z, vectors, s, r, inputs.system_index)
        owned = model.owned_node_features(z, vectors, s, r, z.shape[0], unchanged, unchanged)
    assert len(calls) == 2 * model.config.num_message_passing - 1
    torch.testing.assert_close(owned, whole, rtol=0.0, atol=0.0)


def test_direct_forces_from_parts() -> None:
    model, inputs, vectors = _case("orb-v3-direct-20-omat")
    z, s, r = inputs.atomic_numbers, inputs.senders, inputs.receivers
    with torch.no_grad():
        expected = model(inputs, compute_stress=False)["forces"]
        head = model.heads.forces(model.node_features(z, vectors, s, r, inputs.system_index))
        forces = model.without_net_force(head, head.mean(0))
        edge = model.repulsion_edge_forces(vectors, z, s, r)
        forces = forces + segment_sum(torch.cat([edge, -edge]), torch.cat([r, s]), z.shape[0])
    torch.testing.assert_close(forces, expected, rtol=0.0, atol=1e-12 * float(expected.abs().max()))
