"""Carbonic anhydrase II preparation (examples/carbonic_anhydrase/prepare.py) on small variants."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_data

pytest.importorskip("pdbfixer")

ROOT = Path(__file__).resolve().parents[1]


def _load_prepare():
    spec = importlib.util.spec_from_file_location("caii_prepare", ROOT / "examples" / "carbonic_anhydrase" / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


prepare = _load_prepare()


@pytest.fixture(scope="module")
def pdb() -> str:
    return str(shared_data("structures/3ks3.pdb"))


def test_periodic_fragment_is_neutral_and_protonated(pdb: str) -> None:
    system = prepare.prepare(pdb, residues=(94, 96), padding_nm=0.5)
    counts = system.counts
    assert counts["protein"] == 57 and counts["ZN"] == 1 and counts["total"] < 700
    assert counts["water"] % 3 == 0 and system.topology.getPeriodicBoxVectors() is not None
    assert prepare.total_charge(system.topology) == pytest.approx(0.0, abs=1e-6)


def test_zinc_histidines_protonated_away_from_zinc(pdb: str) -> None:
    system = prepare.prepare(pdb, residues=(91, 120), shell_nm=0.3)
    assert system.topology.getPeriodicBoxVectors() is None
    hydrogens = {
        int(r.id): {a.name for a in r.atoms() if a.name in ("HD1", "HE2")}
        for r in system.topology.residues()
        if r.name == "HIS" and int(r.id) in (94, 96, 119)
    }
    assert hydrogens == {94: {"HD1"}, 96: {"HD1"}, 119: {"HE2"}}
    assert system.counts["total"] < 1000


def test_bad_inputs_are_one_line_errors(pdb: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither an existing PDB file nor a 4-character PDB id"):
        prepare.resolve_source(str(tmp_path / "missing.pdb"), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="no protein residue numbered"):
        prepare.prepare(pdb, residues=(900, 950))
    with pytest.raises(ValueError, match="--max-atoms 100"):
        prepare.prepare(pdb, residues=(94, 96), padding_nm=0.5, max_atoms=100)


def test_pdb_id_uses_cache_before_network(tmp_path: Path) -> None:
    cached = tmp_path / "3KS3.pdb"
    cached.write_text("")
    assert prepare.resolve_source("3ks3", cache_dir=tmp_path) == cached


def test_preparation_is_reproducible(pdb: str) -> None:
    """Hydrogen and ion placement are seeded: the same inputs give the same positions, bit for bit."""
    first, second = (prepare.prepare(pdb, residues=(94, 96), padding_nm=0.5, ionic_strength_molar=0.5)
                     for _ in range(2))
    assert first.counts["NA"] + first.counts["CL"] > 0  # ions were placed (a random choice of waters)
    assert [a.name for a in first.topology.atoms()] == [a.name for a in second.topology.atoms()]
    assert np.array_equal(np.asarray(first.positions._value), np.asarray(second.positions._value))
