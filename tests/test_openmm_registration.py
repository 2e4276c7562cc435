"""openmm-ml entry-point registration of orb_md potentials, and import-failure safety."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openmmml")

from orb_md_openmm.names import MODEL_NAMES, POTENTIAL_PREFIX, model_name, potential_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FACTORY = "orb_md_openmm.potential:OrbMDPotentialImplFactory"
BUILTIN_ORB = ("orb-v3-conservative-inf-omat", "orb-v3-conservative-omol")


def _fake_distribution(tmp_path: Path) -> Path:
    """A dist-info declaring our entry points, as pyproject.toml will once installed."""
    info = tmp_path / "orb_md_openmm_probe-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: orb-md-openmm-probe\nVersion: 0\n")
    lines = [f"{potential_name(m)} = {FACTORY}" for m in MODEL_NAMES]
    (info / "entry_points.txt").write_text("[openmmml.potentials]\n" + "\n".join(lines) + "\n")
    return tmp_path


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(_fake_distribution(tmp_path)), str(ROOT / "openmm_plugin"), str(ROOT)])
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


# Makes every import of torch, openmmtorch and orb_md fail, as on a broken install.
BLOCK_HEAVY = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'openmmtorch', 'orb_md'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
"""


def test_names_are_the_models_orb_md_knows() -> None:
    """names.py must stay importable without orb_md (openmm-ml imports it on every `import openmmml`), so it spells
    the names out; they must be exactly the registry's (orb_md.model.config), released and bundled."""
    from orb_md import BUNDLED_MODELS, RELEASED_MODELS

    assert sorted(MODEL_NAMES) == sorted(RELEASED_MODELS | BUNDLED_MODELS)


def test_names_do_not_collide_with_openmmml_builtins() -> None:
    names = {potential_name(m) for m in MODEL_NAMES}
    assert len(names) == len(MODEL_NAMES) and not names & set(BUILTIN_ORB)
    assert all(model_name(potential_name(m)) == m for m in MODEL_NAMES)


@pytest.mark.parametrize("bad", ["orb-v3-direct-inf-omat", POTENTIAL_PREFIX + "orb-v9", "mace"])
def test_unknown_name_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="not an orb_md potential"):
        model_name(bad)


def test_entry_points_register_all_names(tmp_path: Path) -> None:
    code = (
        "import sys, openmmml\n"
        "from openmmml.mlpotential import MLPotential\n"
        "print(sorted(n for n in MLPotential._implFactories if n.startswith('orb')))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'orb_md', 'openmmtorch')))\n"
    )
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    registered, heavy = result.stdout.strip().splitlines()
    assert eval(registered) == sorted([*BUILTIN_ORB, *(potential_name(m) for m in MODEL_NAMES)])
    assert eval(heavy) == []


def test_broken_heavy_dependencies_do_not_break_openmmml(tmp_path: Path) -> None:
    code = BLOCK_HEAVY + (
        "import openmm.app as app\n"
        "from openmmml import MLPotential\n"
        "potential = MLPotential('orb_md/orb-v3-direct-inf-omat')\n"
        "top = app.Topology(); top.addAtom('O', app.element.oxygen, top.addResidue('HOH', top.addChain()))\n"
        "try:\n"
        "    potential.createSystem(top)\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "needs torch, openmmtorch and orb_md" in result.stdout


def test_installed_entry_points_match_names() -> None:
    ours = {e.name: e.value for e in importlib.metadata.entry_points(group="openmmml.potentials") if e.name.startswith(POTENTIAL_PREFIX)}
    if not ours:
        pytest.skip("orb_md is not installed with its openmmml entry points")
    assert ours == {potential_name(m): FACTORY for m in MODEL_NAMES}
