"""orb-models 0.5.5 twins of orb_md models, used as the numerical reference in parity tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import ase
import torch
from orb_models.forcefield import pretrained
from orb_models.forcefield.atomic_system import SystemConfig, ase_atoms_to_atom_graphs

from orb_md import OrbInputs, OrbModel


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """orb-models reads the global default dtype (its load_model sets it); restore it afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def orb_models_twin(model: OrbModel) -> torch.nn.Module:
    """The orb-models 0.5.5 regressor of the same architecture holding the same weights.

    It is built under float32 defaults and then cast, as ``load_model`` does in a fresh process.
    """
    config = model.config
    builder = (
        pretrained.orb_v3_direct_architecture
        if config.kind == "direct"
        else pretrained.orb_v3_conservative_architecture
    )
    with default_dtype(torch.float32):
        twin = builder(
            latent_dim=config.latent_dim,
            base_mlp_hidden_dim=config.mlp_hidden_dim,
            base_mlp_depth=config.mlp_depth,
            head_mlp_hidden_dim=config.head_hidden_dim,
            head_mlp_depth=config.head_depth,
            num_message_passing_steps=config.num_message_passing,
            has_charge_spin_cond=config.charge_spin,
            has_stress=config.has_stress,
            system_config=SystemConfig(radius=config.cutoff, max_num_neighbors=config.max_neighbors),
        )
    twin.load_state_dict({k: v.float() for k, v in model.state_dict().items()}, strict=True)
    dtype = next(model.parameters()).dtype
    return twin.to(dtype).eval()


def orb_models_graph(model: OrbModel, atoms: ase.Atoms, dtype: torch.dtype):
    """orb-models' AtomGraphs of ``atoms`` for ``model`` (brute-force kNN, computed in fp64)."""
    with default_dtype(dtype):
        return ase_atoms_to_atom_graphs(
            atoms,
            SystemConfig(radius=model.config.cutoff, max_num_neighbors=model.config.max_neighbors),
            edge_method="knn_brute_force",
            output_dtype=dtype,
            graph_construction_dtype=torch.float64,
        )


def orb_models_predict(twin: torch.nn.Module, graph, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Energy, forces, stress (if any) and confidence as orb_md names them."""
    with default_dtype(dtype):
        out = twin.predict(graph)
    result = {
        "energy": out["energy"].detach(),
        "forces": out.get("forces", out.get("grad_forces")).detach(),
        "confidence": out["confidence"].detach(),
    }
    stress = out.get("stress", out.get("grad_stress"))
    if stress is not None:
        result["stress"] = stress.detach()
    return result


def orb_md_predict_on_graph(model: OrbModel, graph, pbc: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run orb_md on orb-models' own graph (isolates the network from graph construction)."""
    n = graph.n_node.sum()
    system = graph.system_features
    out = model(OrbInputs(
        graph.node_features["positions"],
        graph.node_features["atomic_numbers"],
        system["cell"].view(-1, 3, 3),
        pbc.view(-1, 3),
        graph.senders,
        graph.receivers,
        graph.edge_features["unit_shifts"],
        torch.zeros(int(n), dtype=torch.long),
        system.get("total_charge"),
        system.get("total_spin"),
    ))
    return {k: v.detach() for k, v in out.items()}
