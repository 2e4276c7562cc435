"""Chunked (memory-bounded) inference gives the same results as one call."""

import ase.build
import pytest
import torch

from orb_md import build_model
from orb_md.batch import atoms_to_batch, evaluate
from orb_md.md.chunked import chunked_inference


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread avoids OpenMP stalls on a shared, oversubscribed CPU (50x slower there)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_chunked_inference_matches_unchunked():
    model = build_model("orb-v3-direct-20-omat", seed=1, dtype=torch.float64, latent_dim=16, mlp_hidden_dim=32)
    cu = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    cu.rattle(0.1, seed=0)
    batch = atoms_to_batch([cu, ase.build.molecule("H2O")])
    with torch.no_grad():
        reference = evaluate(model, batch)
        with chunked_inference(model, chunk=37):
            chunked = evaluate(model, batch)
    assert model.model.__class__.__name__ == "GraphNetwork"  # restored
    for key, value in reference.items():
        torch.testing.assert_close(chunked[key], value, rtol=1e-12, atol=1e-12)
