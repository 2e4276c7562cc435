"""Loading official-layout checkpoints: round trip, cache lookup, and clear errors."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import ase.build
import pytest
import torch

from orb_md import CheckpointError, build_model, load_model
from orb_md.batch import atoms_to_batch, evaluate
from orb_md.cache import CACHE_ENV, cache_root
from orb_md.checkpoints import checkpoint_dir, checkpoint_path, download_file
from orb_md.model.config import BIO_MODEL, model_config
from tests.orb_reference import orb_models_graph, orb_models_predict, orb_models_twin

SMALL = {"latent_dim": 32, "mlp_hidden_dim": 64}


def crystal() -> ase.Atoms:
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.6) * (2, 1, 1)
    atoms.rattle(0.05, seed=1)
    return atoms


def test_orb_models_state_dict_round_trip(tmp_path):
    """An orb-models model saved as .ckpt, loaded by path in orb_md: same numbers."""
    template = build_model("orb-v3-direct-20-omat", dtype=torch.float64, zero_net_force=False)
    twin = orb_models_twin(template)
    with torch.no_grad():
        for p in twin.parameters():  # orb-models' own weights, not ours
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "orb-v3-direct-20-omat-20250404.ckpt"
    torch.save({k: v.float() for k, v in twin.state_dict().items()}, path)
    twin = twin.float().double()  # the values the float32 file holds
    ours = load_model(path, precision="float64", zero_net_force=False)
    atoms = crystal()
    ref = orb_models_predict(twin, orb_models_graph(ours, atoms, torch.float64), torch.float64)
    out = evaluate(ours, atoms_to_batch([atoms]))
    for key in ("energy", "forces", "stress"):
        assert torch.allclose(out[key], ref[key], rtol=1e-10, atol=1e-9), key


def test_load_by_name_from_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    model = build_model("orb-v3-conservative-inf-mpa", seed=4)
    config = model_config("orb-v3-conservative-inf-mpa")
    (tmp_path / "checkpoints").mkdir()
    torch.save(model.state_dict(), tmp_path / "checkpoints" / "orb-v3-conservative-inf-mpa-20250404.ckpt")
    loaded = load_model("orb-v3-conservative-inf-mpa", precision="float32-highest", download=False)
    assert checkpoint_path(config, download=False).parent == tmp_path / "checkpoints"
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k


def test_missing_offline_checkpoint_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(CheckpointError) as info:
        load_model("orb-v3-direct-inf-omat", download=False)
    message = str(info.value)
    assert "orb-v3-direct-inf-omat-20250404.ckpt" in message and str(tmp_path) in message
    assert "orbitalmaterials-public-models" in message


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setattr("orb_md.model.config.WEIGHTS_URL", "http://127.0.0.1:9/")
    config = model_config("orb-v3-direct-20-mpa").replace(weights_file="x/orb-v3-direct-20-mpa.ckpt")
    with pytest.raises(CheckpointError, match="download failed"):
        checkpoint_path(config)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "orb-v3-direct-20-omat.ckpt"
    torch.save(build_model("orb-v3-direct-20-omat", **SMALL).state_dict(), path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_model(path)


def test_wrong_architecture_names_keys_and_shapes(tmp_path):
    path = tmp_path / "orb-v3-direct-20-omat.ckpt"
    torch.save(build_model("orb-v3-direct-20-omat", **SMALL).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"shape mismatches model\.atom_emb\.embeddings\.weight"):
        load_model(path)
    conservative = tmp_path / "conservative.ckpt"
    torch.save(build_model("orb-v3-conservative-20-omat").state_dict(), conservative)
    with pytest.raises(CheckpointError, match="missing keys heads.forces"):
        load_model(conservative, architecture="orb-v3-direct-20-omat")


def test_a_name_with_another_architecture_keeps_its_own_weights():
    """The bio model's recipe builds orb-md-demo-v1's weights into the BIO_MODEL configuration."""
    by_name = load_model("orb-md-demo-v1", architecture=BIO_MODEL)
    by_path = load_model(checkpoint_path(model_config("orb-md-demo-v1")), architecture=BIO_MODEL)
    own = load_model("orb-md-demo-v1").state_dict()
    assert by_name.config == BIO_MODEL
    for state in (by_name.state_dict(), by_path.state_dict()):
        assert all(torch.equal(state[key], own[key]) for key in own)


def test_unknown_name():
    with pytest.raises(Exception, match="unknown Orb-v3 model 'orb-v4'"):
        load_model("orb-v4")
    with pytest.raises(Exception, match="unknown Orb-v3 model 'orb-v4'"):  # not the architecture's own weights
        load_model("orb-v4", architecture="orb-md-demo-v1")


def test_one_cache_root_shared_with_the_build_scripts(monkeypatch):
    """$ORB_MD_CACHE is the cache root for Python and for scripts/bootstrap.sh and build_lammps.sh alike, with the
    same default; checkpoints live in its checkpoints/ folder."""
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert cache_root() == Path.home() / ".cache" / "orb-md"
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    for script in ("bootstrap.sh", "build_lammps.sh"):
        assert "${ORB_MD_CACHE:-$HOME/.cache/orb-md}" in (scripts / script).read_text(), script
    monkeypatch.setenv(CACHE_ENV, "/somewhere/else")
    assert checkpoint_dir() == Path("/somewhere/else/checkpoints")


def test_weights_in_the_old_default_folder_are_still_found(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "new"))
    monkeypatch.setattr("orb_md.checkpoints.LEGACY_CHECKPOINT_DIR", tmp_path / "old")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "orb-v3-direct-20-omat-20250404.ckpt").write_bytes(b"x")
    path = checkpoint_path(model_config("orb-v3-direct-20-omat"), download=False)
    assert path == tmp_path / "old" / "orb-v3-direct-20-omat-20250404.ckpt"


PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Weights(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /whole.ckpt, and at /cut.ckpt announces all of it but stops halfway (a dropped link)."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD if self.path == "/whole.ckpt" else PAYLOAD[: len(PAYLOAD) // 2])

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def weights_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Weights)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_completes_through_a_temporary_file(tmp_path, weights_server):
    target = tmp_path / "cache" / "whole.ckpt"
    download_file(f"{weights_server}/whole.ckpt", target, sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert target.read_bytes() == PAYLOAD
    assert sorted(p.name for p in target.parent.iterdir()) == ["whole.ckpt"]


def test_interrupted_download_leaves_no_file(tmp_path, weights_server, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setattr("orb_md.model.config.WEIGHTS_URL", f"{weights_server}/")
    config = model_config("orb-v3-direct-20-mpa").replace(weights_file="x/cut.ckpt")
    with pytest.raises(CheckpointError, match="download failed"):
        checkpoint_path(config)
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_checksum_mismatch_is_a_clear_error_and_saves_nothing(tmp_path, weights_server):
    target = tmp_path / "whole.ckpt"
    with pytest.raises(CheckpointError, match="SHA-256 .* expected 0{64}; nothing was saved"):
        download_file(f"{weights_server}/whole.ckpt", target, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []
