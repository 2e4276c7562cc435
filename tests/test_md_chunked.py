"""Edge-chunked (memory-bounded) inference gives the same results as one pass."""

import ase.build
import torch

from orb_md import build_model
from orb_md.batch import atoms_to_batch, evaluate


def test_edge_chunks_match_one_pass():
    model = build_model("orb-v3-direct-20-omat", seed=1, dtype=torch.float64, latent_dim=16, mlp_hidden_dim=32)
    cu = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    cu.rattle(0.1, seed=0)
    batch = atoms_to_batch([cu, ase.build.molecule("H2O"), ase.Atoms("O")])
    reference = evaluate(model, batch)
    model.model.edge_chunk = 37
    chunked = evaluate(model, batch)
    for key, value in reference.items():
        torch.testing.assert_close(chunked[key], value, rtol=1e-12, atol=1e-12)
