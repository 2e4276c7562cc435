"""OMol models (total charge, spin multiplicity) in real LAMMPS: a charged water cluster in a non-periodic box
on 1 and 2 ranks against the ASE OrbCalculator with the same charge and spin, the run-time LAMMPS variables,
and the errors for missing or misplaced values. Reduced-width random float64 conservative-omol model.

Tolerances are the LAMMPS suite's (tests/test_lammps_orb.py): both sides are float64 and differ only in the
order of sums (per-rank partial sums, MPI_Allreduce), about 1e-13 relative; a wrong or missing condition
changes the energy by ~1e-2 relative (checked below).
"""

from __future__ import annotations

import re
from pathlib import Path

import ase
import ase.io
import numpy as np
import pytest
import torch

from orb_md.calculator import OrbCalculator
from orb_md.errors import InputError
from orb_md.model.factory import build_model
from tests.test_lammps_orb import _one_thread, make_unified, pytestmark, run_lmp, thermo  # noqa: F401

OMOL = "orb-v3-conservative-omol"
WIDTH = dict(latent_dim=16, mlp_hidden_dim=32)
BOX = 20.0  # Å, non-periodic: LAMMPS 'boundary f f f', ASE pbc=False

CLUSTER_RUN = """
units metal
atom_style atomic
atom_modify map yes
boundary f f f
read_data {data}
pair_style mliap unified {model} 0
pair_coeff * * O H
compute pe all pe/atom
compute peatoms all reduce sum c_pe
thermo_style custom step pe c_peatoms
thermo_modify format float %.17g
{extra}
run 0
write_dump all custom forces.dump id fx fy fz modify sort id format float %.17g
"""


def water_cluster(seed: int = 4) -> ase.Atoms:
    """Three water molecules ~2.8 Å apart around the box centre (the ranks' subdomains split it)."""
    rng = np.random.default_rng(seed)
    mol = ase.Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    atoms = ase.Atoms(cell=[BOX] * 3, pbc=False)
    for centre in ([-1.4, -0.8, 0.0], [1.4, -0.8, 0.3], [0.0, 1.6, -0.3]):
        m = mol.copy()
        m.rotate(rng.uniform(0, 360), rng.normal(size=3))
        m.translate(np.array(centre) + BOX / 2)
        atoms += m
    return atoms


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(folder, data file, model, atoms as LAMMPS reads them): H2O x 3, types O=1, H=2."""
    tmp = tmp_path_factory.mktemp("omol")
    data = tmp / "cluster.data"
    ase.io.write(data, water_cluster(), format="lammps-data", specorder=["O", "H"], masses=True, atom_style="atomic")
    atoms = ase.io.read(data, format="lammps-data", atom_style="atomic", Z_of_type={1: 8, 2: 1})
    atoms.pbc = False
    model = build_model(OMOL, seed=0, dtype=torch.float64, **WIDTH)
    return tmp, data, model, atoms


def reference(model, atoms: ase.Atoms, charge: float, spin: float) -> dict:
    atoms = atoms.copy()
    atoms.calc = OrbCalculator(model, charge=charge, spin=spin)
    return {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}


def export(tmp: Path, model, name: str, **charge_spin) -> Path:
    path = tmp / name
    torch.save(make_unified(model, **charge_spin), path)
    return path


def lammps_cluster(work: Path, data: Path, model: Path, ranks: int = 0, mode: str | None = None,
                   extra: str = "") -> list[dict]:
    """Energy (thermo and summed pe/atom) of every `run 0` in ``extra``'s script, forces of the last."""
    work.mkdir()
    script = CLUSTER_RUN.format(data=data, model=model, extra=extra)
    out = run_lmp(work, script, ranks, mode=mode)
    if mode:
        calls = re.findall(r"orb_md_lammps: rank (\d+) mode (\w+) nlocal (\d+)", out)
        assert {m for _, m, _ in calls} == {mode}, out[-3000:]
        assert all(int(n) > 0 for _, _, n in calls) and len({r for r, _, _ in calls}) == max(ranks, 1), calls
    forces = np.loadtxt(work / "forces.dump", skiprows=9)[:, 1:4]
    return [{"energy": row[1], "pe_atoms": row[2], "forces": forces} for row in _run0_rows(out)]


def _run0_rows(out: str) -> list[np.ndarray]:
    lines = out.splitlines()
    heads = [i for i, line in enumerate(lines) if line.split()[:2] == ["Step", "PotEng"]]
    return [np.array([float(v) for v in lines[i + 1].split()]) for i in heads]


def assert_parity(got: dict, ref: dict) -> None:
    assert got["energy"] == pytest.approx(ref["energy"], rel=1e-9)
    assert got["pe_atoms"] == pytest.approx(ref["energy"], rel=1e-9)
    np.testing.assert_allclose(got["forces"], ref["forces"], atol=1e-8, rtol=0)


@pytest.mark.parametrize("ranks, mode", [(1, "fold"), (2, "exchange")], ids=["1-rank", "2-ranks"])
def test_charged_cluster_matches_ase(cluster, ranks, mode):
    """H2O x 3 with charge +1, spin multiplicity 2, exported with the model: the ASE calculator's energy and
    forces on 1 rank and on 2 ranks (each rank holds part of the cluster, conditioned with the global Q, S;
    ghost rows get the same condition as their owners)."""
    tmp, data, model, atoms = cluster
    path = export(tmp, model, f"omol-q1-s2-{ranks}.pt", charge=1.0, spin=2.0)
    got, = lammps_cluster(tmp / f"{mode}-{ranks}", data, path, ranks=ranks, mode=mode)
    assert_parity(got, reference(model, atoms, 1.0, 2.0))


def test_lammps_variables_set_and_change_the_charge(cluster):
    """A file exported without charge/spin, on 2 ranks: `variable orb_charge/orb_spin` give them; redefining
    orb_charge between runs changes the energy to the ASE value of the new charge."""
    tmp, data, model, atoms = cluster
    path = export(tmp, model, "omol-bare.pt")
    extra = ("variable orb_charge equal 1\nvariable orb_spin equal 2\nrun 0\n"
             "variable orb_charge delete\nvariable orb_charge equal -1\n")
    first, second = lammps_cluster(tmp / "variables", data, path, ranks=2, extra=extra)
    cation, anion = reference(model, atoms, 1.0, 2.0), reference(model, atoms, -1.0, 2.0)
    assert first["energy"] == pytest.approx(cation["energy"], rel=1e-9)
    assert_parity(second, anion)
    assert abs(cation["energy"] - anion["energy"]) > 1e-3 * abs(cation["energy"])  # the charge matters


def test_variables_override_the_exported_values(cluster):
    tmp, data, model, atoms = cluster
    path = export(tmp, model, "omol-q0-s1.pt", charge=0.0, spin=1.0)
    got, = lammps_cluster(tmp / "override", data, path, extra="variable orb_charge equal 1\nvariable orb_spin equal 2\n")
    assert_parity(got, reference(model, atoms, 1.0, 2.0))


def test_missing_charge_spin_names_the_options(cluster):
    tmp, data, model, _ = cluster
    path = export(tmp, model, "omol-none.pt")
    work = tmp / "missing"
    work.mkdir()
    out = run_lmp(work, CLUSTER_RUN.format(data=data, model=path, extra="variable orb_charge equal 1\n"),
                  check=False)
    assert f"orb_md: {OMOL} needs the system's spin multiplicity S (2S+1): export the model with --charge Q " \
           "--spin S, or define variable orb_spin equal ... in the LAMMPS input" in out, out[-3000:]
    assert "needs the total charge and spin multiplicity" not in out  # not the backbone's ValueError


def test_charge_variable_refused_for_a_model_without_conditioning(cluster):
    tmp, data, _, _ = cluster
    model = build_model("orb-v3-conservative-inf-omat", seed=0, dtype=torch.float64, latent_dim=8, mlp_hidden_dim=16)
    path = export(tmp, model, "omat.pt")
    work = tmp / "omat"
    work.mkdir()
    out = run_lmp(work, CLUSTER_RUN.format(data=data, model=path, extra="variable orb_spin equal 2\n"),
                  check=False)
    assert ("orb_md: orb-v3-conservative-inf-omat takes no total charge or spin multiplicity (LAMMPS variable "
            "orb_spin is defined); only the OMol models (orb-v3-*-omol) do") in out, out[-3000:]


@pytest.mark.parametrize(
    "arch, charge_spin, expected",
    [
        ("orb-v3-conservative-20-omat", dict(charge=1.0), "takes no total charge or spin multiplicity (got --charge)"),
        (OMOL, dict(charge=0.0, spin=-1.0), "spin multiplicity (2S+1) must be >= 1, or 0 for unspecified"),
        (OMOL, dict(charge=float("nan"), spin=1.0), "total charge must be a finite number"),
        ("orb-v3-direct-omol", dict(charge=0.0, spin=1.0), "use orb-v3-conservative-omol"),
    ],
    ids=["omat-with-charge", "negative-spin", "nan-charge", "direct-omol"],
)
def test_export_refuses(arch, charge_spin, expected):
    model = build_model(arch, seed=0, dtype=torch.float64, latent_dim=8, mlp_hidden_dim=16)
    with pytest.raises(InputError, match=re.escape(expected)):
        make_unified(model, **charge_spin)


def test_export_commands_store_charge_and_spin(tmp_path, capsys):
    """`orb-md export lammps` and `python -m orb_md_lammps.export` keep --charge/--spin in the file, and refuse
    them for a model without conditioning in one line."""
    from orb_md.cli import main as orb_md_main
    from orb_md_lammps.export import main as export_main

    cli = tmp_path / "cli.pt"
    assert orb_md_main(["export", "lammps", "-m", OMOL, "--random-weights", "--width", "small", "--precision",
                        "float64", "--charge", "1", "--spin", "2", "-o", str(cli)]) == 0
    module = tmp_path / "module.pt"
    assert export_main([OMOL, str(module), "--random-weights", "--latent-dim", "16", "--mlp-hidden-dim", "32",
                        "--charge", "-1", "--spin", "2"]) == 0
    assert torch.load(cli, weights_only=False).charge_spin == {"charge": 1.0, "spin": 2.0}
    assert torch.load(module, weights_only=False).charge_spin == {"charge": -1.0, "spin": 2.0}
    capsys.readouterr()
    assert orb_md_main(["export", "lammps", "-m", "orb-v3-direct-20-omat", "--random-weights", "--width", "small",
                        "--charge", "1", "-o", str(tmp_path / "omat.pt")]) != 0
    err = capsys.readouterr().err.strip()
    assert err == ("orb-md: error: orb-v3-direct-20-omat takes no total charge or spin multiplicity (got --charge); "
                   "only the OMol models (orb-v3-*-omol) do"), err
