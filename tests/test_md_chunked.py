"""Edge-chunked inference (the CPU default, and the memory bound of direct models) equals one pass."""

import ase.build
import pytest
import torch

from orb_md import build_model
from orb_md.batch import atoms_to_batch, evaluate


@pytest.mark.parametrize("kind", ["direct-20", "conservative-inf"])
def test_edge_chunks_match_one_pass(kind):
    model = build_model(f"orb-v3-{kind}-omat", seed=1, dtype=torch.float64, latent_dim=16, mlp_hidden_dim=32)
    cu = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    cu.rattle(0.1, seed=0)
    batch = atoms_to_batch([cu, ase.build.molecule("H2O"), ase.Atoms("O")])
    model.model.edge_chunk = 1 << 30
    reference = evaluate(model, batch)
    model.model.edge_chunk = 37
    chunked = evaluate(model, batch)
    assert set(chunked) == set(reference)
    for key, value in reference.items():
        torch.testing.assert_close(chunked[key], value, rtol=1e-12, atol=1e-12)
