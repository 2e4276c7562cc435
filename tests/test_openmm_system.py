"""MLPotential("orb_md/...") systems in real OpenMM: parity with the ASE calculator, mixed ML/MM,
XML round trip, barostat, NVE drift, bad inputs and the PythonForce fallback.

Models are random reduced-width variants of released architectures (latent 32, MLP 64, 2
message-passing steps), float64, so every test stays a few seconds on 2 CPU cores.
"""

from __future__ import annotations

import copy
import re
import signal
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
torch = pytest.importorskip("torch")
pytest.importorskip("openmmtorch")
pytest.importorskip("openmmml")

import ase  # noqa: E402
import openmm.app as app  # noqa: E402
import openmm.unit as unit  # noqa: E402
from openmmml import MLPotential  # noqa: E402
from openmmtorch import TorchForce  # noqa: E402

from orb_md import build_model  # noqa: E402
from orb_md.calculator import OrbCalculator  # noqa: E402
from orb_md.errors import InputError  # noqa: E402
from orb_md.units import EV_IN_KJ_PER_MOL  # noqa: E402
from orb_md_openmm.force import create_torch_force  # noqa: E402
from orb_md_openmm.serialization import deserialize  # noqa: E402
from tests.openmm_systems import ca2_fragment, water  # noqa: E402

TINY = {"latent_dim": 32, "mlp_hidden_dim": 64, "num_message_passing": 2}
KJ_NM = unit.kilojoule_per_mole / unit.nanometer


def tiny(name: str, dtype: torch.dtype = torch.float64):
    return build_model(name, seed=0, dtype=dtype, **TINY)


@pytest.fixture(scope="module")
def water_box() -> app.Modeller:
    """45 TIP3P atoms in a 0.8 nm periodic cube."""
    return water(0.8)


@pytest.fixture(scope="module")
def fragment() -> app.Modeller:
    return ca2_fragment()


def _energy_forces(system: openmm.System, positions, platform: str = "Reference", groups: int = -1, box=None):
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform))
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    return state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole), state.getForces(asNumpy=True).value_in_unit(KJ_NM)


def _ase(model, topology: app.Topology, positions_nm: np.ndarray, box_nm=None) -> tuple[float, np.ndarray]:
    """Energy (kJ/mol) and forces (kJ/mol/nm) from the ASE OrbCalculator."""
    numbers = [a.element.atomic_number for a in topology.atoms()]
    atoms = ase.Atoms(numbers=numbers, positions=np.asarray(positions_nm) * 10.0)
    if box_nm is not None:
        atoms.cell = np.asarray(box_nm) * 10.0
        atoms.pbc = True
    atoms.calc = OrbCalculator(model)
    return atoms.get_potential_energy() * EV_IN_KJ_PER_MOL, atoms.get_forces() * EV_IN_KJ_PER_MOL * 10.0


def _nm(quantity) -> np.ndarray:
    return np.asarray(quantity.value_in_unit(unit.nanometer))


def _assert_close(got: tuple[float, np.ndarray], want: tuple[float, np.ndarray], rel: float = 1e-8) -> None:
    assert got[0] == pytest.approx(want[0], rel=rel)
    np.testing.assert_allclose(got[1], want[1], rtol=rel, atol=rel * np.abs(want[1]).max())


@pytest.mark.parametrize("implementation", ["torchforce", "pythonforce"])
def test_water_box_matches_ase(water_box: app.Modeller, implementation: str) -> None:
    model = tiny("orb-v3-direct-20-omat")
    system = MLPotential("orb_md/orb-v3-direct-20-omat").createSystem(water_box.topology, model=model, implementation=implementation)
    assert system.usesPeriodicBoundaryConditions()
    want = _ase(model, water_box.topology, _nm(water_box.positions), _nm(water_box.topology.getPeriodicBoxVectors()))
    platforms = ("Reference", "CPU") if implementation == "torchforce" else ("Reference",)
    for platform in platforms:
        _assert_close(_energy_forces(system, water_box.positions, platform), want)


def test_protein_fragment_matches_ase(fragment: app.Modeller) -> None:
    model = tiny("orb-v3-conservative-inf-omat")
    system = MLPotential("orb_md/orb-v3-conservative-inf-omat").createSystem(fragment.topology, model=model)
    assert not system.usesPeriodicBoundaryConditions()
    want = _ase(model, fragment.topology, _nm(fragment.positions))
    _assert_close(_energy_forces(system, fragment.positions), want)


def test_checkpoint_path_is_loaded_with_the_potentials_architecture(water_box: app.Modeller, tmp_path: Path) -> None:
    model = tiny("orb-v3-direct-20-omat")
    path = tmp_path / "my-finetune.ckpt"
    torch.save(model.state_dict(), path)
    potential = MLPotential("orb_md/orb-v3-direct-20-omat")
    with pytest.raises(Exception, match="num_message_passing|size mismatch|missing|unexpected|shape"):
        potential.createSystem(water_box.topology, model=str(path))  # the released width, not TINY


def test_mixed_system_energy_is_mm_rest_plus_ml_subset(water_box: app.Modeller) -> None:
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    mm = forcefield.createSystem(water_box.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.35 * unit.nanometer, rigidWater=False)
    ml_atoms = [0, 1, 2]  # the first water
    model = tiny("orb-v3-direct-20-omat")
    mixed = MLPotential("orb_md/orb-v3-direct-20-omat").createMixedSystem(water_box.topology, mm, ml_atoms, model=model, forceGroup=1)
    # MM(rest): the MM system without the bonded terms inside the ML water (its intramolecular
    # pairs are already nonbonded exclusions; one molecule has no other ML–ML pairs).
    rest = copy.deepcopy(mm)
    for force in rest.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for i in range(force.getNumBonds()):
                a, b, r0, _ = force.getBondParameters(i)
                if a in ml_atoms and b in ml_atoms:
                    force.setBondParameters(i, a, b, r0, 0.0)
        elif isinstance(force, openmm.HarmonicAngleForce):
            for i in range(force.getNumAngles()):
                a, b, c, t0, _ = force.getAngleParameters(i)
                if {a, b, c} <= set(ml_atoms):
                    force.setAngleParameters(i, a, b, c, t0, 0.0)
    mm_rest, _ = _energy_forces(rest, water_box.positions)
    ml_positions = _nm(water_box.positions)[ml_atoms]
    subset = app.Topology()
    residue = subset.addResidue("ML", subset.addChain())
    for atom in list(water_box.topology.atoms())[:3]:
        subset.addAtom(atom.name, atom.element, residue)
    ml_energy, _ = _ase(model, subset, ml_positions, _nm(water_box.topology.getPeriodicBoxVectors()))
    assert _energy_forces(mixed, water_box.positions, groups={1})[0] == pytest.approx(ml_energy, rel=1e-8)
    assert _energy_forces(mixed, water_box.positions, groups={0})[0] == pytest.approx(mm_rest, rel=1e-6)
    assert _energy_forces(mixed, water_box.positions)[0] == pytest.approx(mm_rest + ml_energy, rel=1e-6)



def test_mixed_system_takes_the_box_of_a_periodic_system(water_box: app.Modeller) -> None:
    """A topology without box vectors and a periodic (PME) MM System: the ML part uses the System's default box,
    as openmm-ml users expect, and gives the same energy as with the boxed topology."""
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    mm = forcefield.createSystem(water_box.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.35 * unit.nanometer, rigidWater=False)
    boxless = copy.copy(water_box.topology)
    boxless.setPeriodicBoxVectors(None)
    assert boxless.getPeriodicBoxVectors() is None and water_box.topology.getPeriodicBoxVectors() is not None
    model, potential = tiny("orb-v3-direct-20-omat"), MLPotential("orb_md/orb-v3-direct-20-omat")
    with_box = potential.createMixedSystem(water_box.topology, mm, [0, 1, 2], model=model, forceGroup=1)
    without_box = potential.createMixedSystem(boxless, mm, [0, 1, 2], model=model, forceGroup=1)
    want = _energy_forces(with_box, water_box.positions, groups={1})
    _assert_close(_energy_forces(without_box, water_box.positions, groups={1}), want, rel=1e-12)

@pytest.mark.parametrize("implementation", ["torchforce", "pythonforce"])
def test_xml_round_trip(water_box: app.Modeller, implementation: str) -> None:
    system = MLPotential("orb_md/orb-v3-direct-20-omat").createSystem(
        water_box.topology, model=tiny("orb-v3-direct-20-omat"), implementation=implementation
    )
    xml = openmm.XmlSerializer.serialize(system)
    copy_ = deserialize(xml)
    assert [TorchForce.isinstance(f) for f in copy_.getForces()] == [TorchForce.isinstance(f) for f in system.getForces()]
    want = _energy_forces(system, water_box.positions)
    _assert_close(_energy_forces(copy_, water_box.positions), want, rel=1e-12)
    if implementation == "pythonforce":  # OpenMM's own deserializer handles everything but TorchForce
        _assert_close(_energy_forces(openmm.XmlSerializer.deserialize(xml), water_box.positions), want, rel=1e-12)


def test_torchforce_fields_survive_deserialize(water_box: app.Modeller) -> None:
    force = create_torch_force(tiny("orb-v3-direct-20-omat"), water_box.topology, cuda_graphs=True)
    force.setForceGroup(3)
    force.addGlobalParameter("scale", 0.5)
    force.addEnergyParameterDerivative("scale")
    force.setProperty("CUDAGraphWarmupSteps", "4")
    xml = openmm.XmlSerializer.serialize(force)
    copy_ = deserialize(xml)
    assert TorchForce.isinstance(copy_)
    # Every field but the TorchScript archive (re-saved, so its bytes differ) is written back as read.
    archive = re.compile(r'encodedFileContents="[0-9a-f]+"')
    assert archive.sub("", openmm.XmlSerializer.serialize(copy_)) == archive.sub("", xml)
    for field in ('forceGroup="3"', 'outputsForces="1"', 'usesPeriodic="1"', 'name="scale"', 'value="4"', 'value="true"'):
        assert field in xml


def test_deserialize_rejects_other_documents() -> None:
    with pytest.raises(InputError, match="expected an OpenMM <System> or <Force>"):
        deserialize(openmm.XmlSerializer.serialize(openmm.VerletIntegrator(0.001)))
    with pytest.raises(InputError, match="not OpenMM XML"):
        deserialize("<System")


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2])


FRESH_CHILD = """
import sys
import numpy as np
import openmm, openmm.unit as unit
assert "vesin_torch" not in sys.modules
from orb_md_openmm.serialization import deserialize
system = deserialize(open(sys.argv[1]).read())
context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
context.setPositions(np.load(sys.argv[2]))
print(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
"""


def test_deserialize_in_a_fresh_process(water_box: app.Modeller, tmp_path: Path) -> None:
    """A process that has built no model reads the System back: the TorchScript module holds
    vesin-torch's class, which orb_md_openmm registers before loading it."""
    system = MLPotential("orb_md/orb-v3-direct-20-omat").createSystem(water_box.topology, model=tiny("orb-v3-direct-20-omat"))
    (tmp_path / "system.xml").write_text(openmm.XmlSerializer.serialize(system))
    np.save(tmp_path / "positions.npy", _nm(water_box.positions))
    child = subprocess.run(
        [sys.executable, "-c", FRESH_CHILD, str(tmp_path / "system.xml"), str(tmp_path / "positions.npy")],
        capture_output=True, text=True, timeout=600,
    )
    assert child.returncode == 0, f"deserialize failed in a fresh process (exit status {child.returncode}):\n{child.stderr[-2000:]}"
    assert float(child.stdout.split()[-1]) == pytest.approx(_energy_forces(system, water_box.positions)[0], rel=1e-12)


NATIVE_CHILD = """
import sys
import torch, openmm, openmm.unit as unit  # torch first: openmm-torch's kernels link it
import numpy as np
import openmmtorch
import orb_md_openmm.force  # registers the TorchScript classes orb_md's modules hold (documented requirement)
system = openmm.XmlSerializer.deserialize(open(sys.argv[1]).read())
context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
context.setPositions(np.load(sys.argv[2]))
print(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
"""


@pytest.mark.parametrize("implementation", ["torchforce", "pythonforce"])
def test_openmm_deserializer_in_a_fresh_process(water_box: app.Modeller, tmp_path: Path, implementation: str) -> None:
    """openmm.XmlSerializer.deserialize itself, in a child process that has imported nothing of
    the model yet (so a crash fails this test only).

    PythonForce must read back there. TorchForce: documented limitation (orb_md_openmm.serialization),
    with OpenMM >= 8.6 and openmm-torch <= 1.5 it dies with SIGSEGV; with other versions it must work.
    """
    system = MLPotential("orb_md/orb-v3-direct-20-omat").createSystem(
        water_box.topology, model=tiny("orb-v3-direct-20-omat"), implementation=implementation
    )
    (tmp_path / "system.xml").write_text(openmm.XmlSerializer.serialize(system))
    np.save(tmp_path / "positions.npy", _nm(water_box.positions))
    child = subprocess.run(
        [sys.executable, "-c", NATIVE_CHILD, str(tmp_path / "system.xml"), str(tmp_path / "positions.npy")],
        capture_output=True, text=True, timeout=600,
    )
    abi_break = _release(openmm.__version__) >= (8, 6) and _release(metadata.version("openmmtorch")) <= (1, 5)
    if implementation == "torchforce" and abi_break:
        assert child.returncode == -signal.SIGSEGV, (
            f"expected the documented SIGSEGV of openmm-torch {metadata.version('openmmtorch')} on OpenMM {openmm.__version__}, "
            f"got exit status {child.returncode}: if openmm-torch fixed it, update orb_md_openmm.serialization's note\n{child.stderr[-2000:]}"
        )
    else:
        assert child.returncode == 0, f"XmlSerializer.deserialize failed in a fresh process (exit status {child.returncode}, -11 = SIGSEGV):\n{child.stderr[-2000:]}"
        assert float(child.stdout.split()[-1]) == pytest.approx(_energy_forces(system, water_box.positions)[0], rel=1e-12)


def test_barostat_changes_box_and_energy_follows(water_box: app.Modeller) -> None:
    model = tiny("orb-v3-conservative-20-omat")
    system = MLPotential("orb_md/orb-v3-conservative-20-omat").createSystem(water_box.topology, model=model)
    system.addForce(openmm.MonteCarloBarostat(1000.0 * unit.bar, 300 * unit.kelvin, 1))
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.0005 * unit.picoseconds)
    integrator.setRandomNumberSeed(1)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(water_box.positions)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    volume0 = context.getState().getPeriodicBoxVolume().value_in_unit(unit.nanometer**3)
    integrator.step(6)
    state = context.getState(getEnergy=True, getPositions=True)
    volume = state.getPeriodicBoxVolume().value_in_unit(unit.nanometer**3)
    assert volume != pytest.approx(volume0, rel=1e-9)
    want, _ = _ase(model, water_box.topology, _nm(state.getPositions()), _nm(state.getPeriodicBoxVectors()))
    assert state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) == pytest.approx(want, rel=1e-8)


def test_nve_energy_conservation_conservative_inf() -> None:
    """3 waters, orb-v3-conservative-inf architecture (smooth), float64, 0.25 fs, 200 steps."""
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(app.ForceField("amber14/tip3p.xml"), boxSize=openmm.Vec3(0.8, 0.8, 0.8) * unit.nanometer)
    modeller.delete(list(modeller.topology.residues())[3:])
    modeller.topology.setPeriodicBoxVectors(None)
    system = MLPotential("orb_md/orb-v3-conservative-inf-omat").createSystem(
        modeller.topology, model=tiny("orb-v3-conservative-inf-omat"), removeCMMotion=False
    )
    integrator = openmm.VerletIntegrator(0.00025)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(modeller.positions)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 7)
    energies = []
    for i in range(11):
        if i:
            integrator.step(20)
        state = context.getState(getEnergy=True)
        energies.append((state.getPotentialEnergy() + state.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole))
    kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
    drift = max(energies) - min(energies)
    print(f"NVE 9 atoms, 200 x 0.25 fs: total-energy spread {drift:.3e} kJ/mol, end-start {energies[-1] - energies[0]:+.3e} kJ/mol, kinetic {kinetic:.2f} kJ/mol")
    assert drift < 1e-3 * max(kinetic, 1.0)


# ---- bad input -------------------------------------------------------------------------------


def test_particle_without_element_is_rejected(water_box: app.Modeller) -> None:
    topology = app.Topology()
    residue = topology.addResidue("TIP4", topology.addChain())
    for name, element in (("O", app.element.oxygen), ("H1", app.element.hydrogen), ("H2", app.element.hydrogen), ("EP", None)):
        topology.addAtom(name, element, residue)
    with pytest.raises(ValueError, match=r"atom 3 \(EP in TIP4 .*\) has no element"):
        MLPotential("orb_md/orb-v3-direct-20-omat").createSystem(topology, model=tiny("orb-v3-direct-20-omat"))


def test_periodic_requested_without_box_is_rejected(water_box: app.Modeller) -> None:
    topology = copy.deepcopy(water_box.topology)
    topology.setPeriodicBoxVectors(None)
    with pytest.raises(ValueError, match="periodic=True but the topology has no periodic box vectors"):
        MLPotential("orb_md/orb-v3-direct-20-omat").createSystem(topology, model=tiny("orb-v3-direct-20-omat"), periodic=True)


def test_model_dtype_is_independent_of_platform_precision(water_box: app.Modeller) -> None:
    """OpenMM passes float64 (Reference, CPU) or float32 (single/mixed GPU) positions; the module
    casts them to the model dtype and the results back, so no mismatch error exists: a float32
    model on a double platform gives float32 accuracy, a float64 model is float64 throughout."""
    potential = MLPotential("orb_md/orb-v3-direct-20-omat")
    e64, f64 = _energy_forces(potential.createSystem(water_box.topology, model=tiny("orb-v3-direct-20-omat")), water_box.positions)
    e32, f32 = _energy_forces(
        potential.createSystem(water_box.topology, model=tiny("orb-v3-direct-20-omat", torch.float32)), water_box.positions, "CPU"
    )
    assert e32 == pytest.approx(e64, rel=1e-4) and e32 != e64
    np.testing.assert_allclose(f32, f64, atol=1e-3 * np.abs(f64).max())


@pytest.mark.parametrize("implementation", ["torchforce", "pythonforce"])
def test_exploding_positions_raise_a_clear_error(water_box: app.Modeller, implementation: str) -> None:
    system = MLPotential("orb_md/orb-v3-direct-20-omat").createSystem(
        water_box.topology, model=tiny("orb-v3-direct-20-omat"), implementation=implementation
    )
    positions = _nm(water_box.positions).copy()
    positions[4] = np.nan
    with pytest.raises(openmm.OpenMMException, match="positions contain NaN or inf"):
        _energy_forces(system, positions)


def test_missing_openmmtorch_points_to_pythonforce(water_box: app.Modeller, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openmmtorch", None)
    monkeypatch.delitem(sys.modules, "orb_md_openmm.force", raising=False)
    with pytest.raises(ImportError, match="openmm-torch cannot be loaded .*implementation='pythonforce'"):
        MLPotential("orb_md/orb-v3-direct-20-omat").createSystem(water_box.topology, model=tiny("orb-v3-direct-20-omat"))


def test_unknown_options_are_rejected(water_box: app.Modeller) -> None:
    potential = MLPotential("orb_md/orb-v3-direct-20-omat")
    with pytest.raises(ValueError, match="implementation='cuda'"):
        potential.createSystem(water_box.topology, implementation="cuda")
    with pytest.raises(TypeError, match="unknown option"):
        potential.createSystem(water_box.topology, modle=None)
