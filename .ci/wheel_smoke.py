"""One check of the installed wheel per process (run by .ci/wheel_smoke.sh inside the fresh environment).

    python wheel_smoke.py wheel|ase|openmm|lammps WHEEL

Every check first asserts that orb_md and its engine plugins are imported from this environment (the wheel), not
from a checkout; the engine checks compare their energy of a 32-atom Cu crystal with the bundled model's ASE energy.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import ase.build

RELATIVE_TOLERANCE = 1e-6  # float64 throughout: engines and ASE differ by round-off only
PACKAGE_DATA = ("orb_md/weights/orb-md-demo-v1.ckpt", "orb_md/weights/orb-md-demo-v1.json",
                "orb_md/weights/orb-md-demo-bio-v1.ckpt", "orb_md/weights/orb-md-demo-bio-v1.json",
                "orb_md/weights/MODEL_CARD.md", "orb_md/dimensionality/data/")


def assert_installed() -> None:
    """orb_md, orb_md_openmm and orb_md_lammps come from this environment's site-packages."""
    import orb_md
    import orb_md_lammps
    import orb_md_openmm

    for module in (orb_md, orb_md_openmm, orb_md_lammps):
        where = Path(module.__file__).resolve()
        assert where.is_relative_to(Path(sys.prefix).resolve()), f"{module.__name__} imported from {where}, not the wheel"


def crystal() -> ase.Atoms:
    return ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))


def ase_energy() -> float:
    from orb_md import load_model
    from orb_md.calculator import OrbCalculator

    atoms = crystal()
    atoms.calc = OrbCalculator(load_model("orb-md-demo-v1", precision="float64"))
    return float(atoms.get_potential_energy())


def assert_close(name: str, energy: float, reference: float) -> None:
    print(f"{name}: {energy:.10f} eV, ASE {reference:.10f} eV")
    assert abs(energy - reference) <= RELATIVE_TOLERANCE * abs(reference), f"{name} energy differs from ASE's"


def check_wheel(wheel: Path) -> None:
    """The bundled weights, their sidecars and the license are inside the wheel and installed."""
    names = zipfile.ZipFile(wheel).namelist()
    for data in PACKAGE_DATA:
        assert any(n.startswith(data) for n in names), f"{data} is missing from {wheel.name}"
    assert any(re.match(r"orb_md-[^/]+\.dist-info/(licenses/)?LICENSE$", n) for n in names), "no LICENSE in the wheel"
    from importlib.resources import files

    from orb_md import BUNDLED_MODELS, load_model

    for name in BUNDLED_MODELS:
        assert (files("orb_md") / "weights" / f"{name}.ckpt").is_file(), f"{name}.ckpt is not installed"
        load_model(name)
    print(f"{wheel.name}: {len(names)} files, bundled models {', '.join(BUNDLED_MODELS)}")


def check_ase() -> None:
    energy = ase_energy()
    print(f"ASE: {energy:.10f} eV for 32 Cu atoms")
    assert energy == energy and energy != 0.0


def check_openmm() -> None:
    import openmm
    from openmm import app, unit

    from orb_md import load_model
    from orb_md.units import EV_IN_KJ_PER_MOL
    from orb_md_openmm.force import create_torch_force

    atoms = crystal()
    topology = app.Topology()
    residue = topology.addResidue("CU", topology.addChain())
    for _ in atoms:
        topology.addAtom("Cu", app.Element.getBySymbol("Cu"), residue)
    topology.setPeriodicBoxVectors([openmm.Vec3(*row) * 0.1 for row in atoms.cell.array] * unit.nanometer)
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    for _ in atoms:
        system.addParticle(63.546)
    system.addForce(create_torch_force(load_model("orb-md-demo-v1", precision="float64"), topology))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions * 0.1)
    kj_per_mol = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert_close("OpenMM TorchForce", kj_per_mol / EV_IN_KJ_PER_MOL, ase_energy())


LAMMPS_INPUT = '''python source here """
import sys
from pathlib import Path
import orb_md, orb_md_lammps
for module in (orb_md, orb_md_lammps):
    assert Path(module.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()), module.__file__
print("embedded python:", sys.prefix)
"""
units           metal
atom_style      atomic
lattice         fcc 3.61
region          box block 0 2 0 2 0 2
create_box      1 box
create_atoms    1 box
mass            1 63.546
pair_style      mliap unified orb.pt 0
pair_coeff      * * Cu
thermo_style    custom step pe
thermo_modify   format float %.10f
run             0
velocity        all create 300 1
fix             1 all nve
run             5
'''


def check_lammps() -> None:
    """``lmp`` (one rank) with orb_md's pair style; the file is exported by the installed command."""
    subprocess.run([sys.executable, "-m", "orb_md_lammps.export", "orb-md-demo-v1", "orb.pt"], check=True)
    Path("in.smoke").write_text(LAMMPS_INPUT)
    proc = subprocess.run(["lmp", "-nocite", "-log", "none", "-in", "in.smoke"], capture_output=True, text=True)
    assert proc.returncode == 0, f"lmp failed:\n{(proc.stdout + proc.stderr)[-3000:]}"
    assert "embedded python: " + sys.prefix in proc.stdout, proc.stdout[-3000:]
    step0 = re.search(r"^\s+Step\s+PotEng\s*\n\s+0\s+(\S+)", proc.stdout, flags=re.M)
    assert step0, proc.stdout[-3000:]
    assert_close("LAMMPS pair_style mliap unified", float(step0.group(1)), ase_energy())


if __name__ == "__main__":
    assert_installed()
    check, wheel = sys.argv[1], Path(sys.argv[2])
    {"wheel": lambda: check_wheel(wheel), "ase": check_ase, "openmm": check_openmm, "lammps": check_lammps}[check]()
