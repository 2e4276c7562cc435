"""Bundled models know their training elements (JSON sidecar) and every engine warns once for the others;
shipped sidecars hold only portable facts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from importlib.resources import files
from pathlib import Path

import ase.build
import ase.data
import ase.io
import pytest
from openmm import app

from orb_md import BUNDLED_MODELS, build_model, load_model
from orb_md.calculator import OrbCalculator
from orb_md.training import peptide_data, reference_data
from orb_md.training_elements import UntrainedElementWarning, warn_untrained_elements

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

WEIGHTS = Path(str(files("orb_md") / "weights"))
DEMO = "orb-md-demo-v1"
REQUIRED_KEYS = {"config", "elements", "training", "validation", "history"}


def uranium() -> ase.Atoms:
    """bcc uranium: an element no bundled model was trained on."""
    return ase.build.bulk("U", "bcc", a=3.47, cubic=True) * (2, 2, 2)


def _untrained(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, UntrainedElementWarning)]


@pytest.fixture(scope="module")
def demo():
    return load_model(DEMO, precision="float64")


@pytest.mark.parametrize("sidecar", sorted(WEIGHTS.glob("*.json")), ids=lambda p: p.name)
def test_shipped_sidecars_are_portable_and_complete(sidecar: Path):
    text = sidecar.read_text()
    record = json.loads(text)
    assert REQUIRED_KEYS <= set(record), REQUIRED_KEYS - set(record)
    assert all(symbol in ase.data.atomic_numbers for symbol in record["elements"])
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
    machine_specific = [s for s in strings if s.startswith(("/", "~")) or re.match(r"^[A-Za-z]:\\", s)
                        or re.search(r"/(home|root|Users|tmp)/|\.cache", s)]
    assert not machine_specific, f"{sidecar.name} records paths of the machine that built it: {machine_specific}"


def test_sidecar_elements_are_those_of_the_training_recipes():
    """orb-md-demo-v1: EMT metals (and alloys), water and the villin pentapeptide; the bio model adds the windows
    of villin (residues 11-15 hold a methionine: S) to what it was fine-tuned from."""
    metals = set(reference_data.METALS) | {e for pair in reference_data.ALLOYS for e in pair}
    windows = set()
    for first in peptide_data.WINDOW_FIRST_RESIDUES:
        topology, _ = reference_data.villin_fragment(peptide_data.WINDOW_RESIDUES, first)
        windows |= {atom.element.symbol for atom in topology.atoms()}
    pentapeptide = {atom.element.symbol for atom in reference_data.villin_fragment()[0].atoms()}
    demo = metals | pentapeptide | {"H", "O"}
    assert set(json.loads((WEIGHTS / f"{DEMO}.json").read_text())["elements"]) == demo
    assert set(json.loads((WEIGHTS / "orb-md-demo-bio-v1.json").read_text())["elements"]) == demo | windows
    assert "S" in windows - demo
    for name in BUNDLED_MODELS:
        assert load_model(name).training_elements.numbers == {
            ase.data.atomic_numbers[s] for s in json.loads((WEIGHTS / f"{name}.json").read_text())["elements"]}


def test_ase_calculator_warns_once_naming_element_and_model(demo):
    atoms = uranium()
    atoms.calc = OrbCalculator(demo)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        atoms.get_potential_energy()
        atoms.positions[0] += 0.05
        atoms.get_potential_energy()
    messages = _untrained(caught)
    assert len(messages) == 1, messages
    assert DEMO in messages[0] and "U (Z=92)" in messages[0]



def test_phonons_warn_once_naming_element_and_model():
    """Phonons evaluate the displaced supercells in batched model calls, not through the calculator: the
    warning comes from the shared evaluation all the same (a fresh model: warnings are once per model)."""
    from orb_md.phonons import compute_phonons

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compute_phonons(load_model(DEMO, precision="float64"), uranium(), (1, 1, 1))
    messages = _untrained(caught)
    assert len(messages) == 1, messages
    assert DEMO in messages[0] and "U (Z=92)" in messages[0]

def test_trained_elements_and_models_without_a_list_give_no_warning(demo):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_untrained_elements(demo, [1, 8, 29])
        warn_untrained_elements(build_model("orb-v3-direct-20-omat", seed=0, latent_dim=8, mlp_hidden_dim=16),
                                [92])
    assert not _untrained(caught)


def test_orb_md_run_warns_once(tmp_path):
    ase.io.write(tmp_path / "u.extxyz", uranium())
    result = subprocess.run(
        [sys.executable, "-m", "orb_md.cli", "run", str(tmp_path / "u.extxyz"), "-m", DEMO, "--steps", "3",
         "--report-every", "1", "-o", str(tmp_path / "out"), "--no-progress", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("UntrainedElementWarning") == 1, result.stderr
    assert f"{DEMO} was not trained on U (Z=92)" in result.stderr


def _topology(symbols: list[str]) -> app.Topology:
    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    for symbol in symbols:
        topology.addAtom(symbol, app.Element.getBySymbol(symbol), residue)
    return topology


@pytest.mark.parametrize("implementation", ["torchforce", "pythonforce"])
def test_openmm_mlpotential_warns_once(implementation):
    import openmm
    from openmmml import MLPotential

    topology = _topology(["U", "U", "O", "H"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MLPotential(f"orb_md/{DEMO}").createSystem(topology, implementation=implementation)
    messages = _untrained(caught)
    assert len(messages) == 1 and DEMO in messages[0] and "U (Z=92)" in messages[0] and "O (" not in messages[0]
    assert openmm.System  # the system was built: a warning, not an error


def test_lammps_export_warns_for_named_untrained_elements(tmp_path):
    from orb_md_lammps.export import export

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export(DEMO, str(tmp_path / "demo.pt"), elements=["Cu", "U"])
    messages = _untrained(caught)
    assert len(messages) == 1 and DEMO in messages[0] and "U (Z=92)" in messages[0]
