"""Batched MD: batch == alone, NVE conservation, Langevin temperature, restart, reporters, bad inputs."""

from __future__ import annotations

import math

import ase
import ase.build
import numpy as np
import pytest
import torch

from orb_md import InputError, build_model
from orb_md.md import BatchMD, ForceField, ThermoReporter, TrajectoryReporter, create_state, load_checkpoint
from orb_md.md.units import parse_quantity

SMALL = dict(latent_dim=16, mlp_hidden_dim=32)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def conservative():
    return build_model("orb-v3-conservative-20-omat", seed=3, dtype=torch.float64, **SMALL)


@pytest.fixture(scope="module")
def conservative_inf():
    return build_model("orb-v3-conservative-inf-omat", seed=4, dtype=torch.float64, **SMALL)


def systems() -> list[ase.Atoms]:
    cu = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
    cu.rattle(0.05, seed=1)
    si = ase.build.bulk("Si", "diamond", a=5.43, cubic=True)
    si.rattle(0.05, seed=2)
    slab = ase.build.fcc111("Al", size=(2, 2, 2), vacuum=4.0)  # periodic in x, y only
    return [cu, ase.build.molecule("CH3CH2OH"), si, slab]


def run(model, structures, ensemble, steps, seeds, **settings):
    state = create_state(structures, ensemble=ensemble, seed=seeds, **settings)
    BatchMD(state, model, progress=False).run(steps)
    return state


@pytest.mark.parametrize("ensemble", ["nvt", "npt"])
def test_batch_matches_each_system_alone(conservative, ensemble):
    structures = systems()
    if ensemble == "npt":
        structures = [structures[0], structures[2]]
    n = len(structures)
    settings = dict(temperature=[300.0, 500.0, 800.0, 200.0][:n], dt=[1.0, 0.5, 2.0, 1.5][:n],
                    friction=[0.01, 0.02, 0.005, 0.1][:n], pressure=["1 bar", "1 GPa", "0 bar", "1 bar"][:n],
                    tau_p="100 fs")
    batch = run(conservative, structures, ensemble, 4, list(range(10, 10 + n)), **settings)
    for i, atoms in enumerate(structures):
        alone = run(conservative, [atoms], ensemble, 4, [10 + i], **{k: (v[i] if isinstance(v, list) else v) for k, v in settings.items()})
        sl = batch.slices()[i]
        np.testing.assert_allclose(batch.positions[sl], alone.positions, rtol=0, atol=1e-10)
        np.testing.assert_allclose(batch.velocities[sl], alone.velocities, rtol=0, atol=1e-12)
        np.testing.assert_allclose(batch.cell[i], alone.cell[0], rtol=0, atol=1e-10)
        assert float(batch.time[i]) == pytest.approx(4 * settings["dt"][i])


def test_nve_conserves_energy_per_system(conservative_inf):
    cu = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
    cu.rattle(0.03, seed=5)
    structures = [cu, ase.build.molecule("H2O"), ase.build.molecule("CH4")]
    state = create_state(structures, ensemble="nve", temperature=300.0, dt=[0.5, 0.25, 0.25], seed=7)
    md = BatchMD(state, conservative_inf, progress=False)
    totals = []
    md.run(0)
    totals.append((state.energy + state.kinetic_energy()).clone())
    for _ in range(6):
        md.run(20)
        totals.append((state.energy + state.kinetic_energy()).clone())
    totals = torch.stack(totals)
    counts = torch.tensor(state.counts, dtype=torch.float64)
    drift = (totals - totals[0]).abs().max(dim=0).values / counts
    kinetic = state.kinetic_energy() / counts
    print("NVE max |E(t)-E(0)| per atom [eV]:", drift.tolist(), "kinetic per atom:", kinetic.tolist())
    assert bool((drift < 1e-5).all()), drift  # vs ~0.015 eV/atom kinetic energy (measured: <= 1e-6)
    assert bool((kinetic > 1e-3).all())  # the atoms actually move


class HarmonicForceField:
    """Every atom tethered to its start: E = k/2 |x - x0|²; cheap, so a long Langevin run fits in a test."""

    def __init__(self, state, k: float = 1.0) -> None:
        self.origin, self.k = state.positions.clone(), k

    def compute(self, state) -> None:
        d = state.positions - self.origin
        state.forces = -self.k * d
        per_atom = 0.5 * self.k * (d**2).sum(1)
        state.energy = torch.zeros(state.n_systems, dtype=torch.float64).index_add(0, state.system_index, per_atom)
        state.stress = torch.zeros(state.n_systems, 6, dtype=torch.float64)


def test_langevin_reaches_target_temperature():
    # Three harmonic systems, far from equilibrium at start (0 K), different T, masses, friction and dt.
    # For OU velocities the kinetic energy decorrelates as exp(-2 gamma t), so the mean temperature over a
    # window t_w has standard error sigma = T * sqrt(2 / dof) / sqrt(gamma * t_w) (dof = 3N). We allow 5 sigma:
    # a correct integrator fails with probability < 1e-6, a wrong fluctuation-dissipation factor (e.g. a
    # missing 1/m or kT vs 2kT) is off by far more. The seed is fixed, so the test is deterministic.
    structures = [ase.Atoms("C100", positions=np.random.default_rng(0).uniform(0, 20, (100, 3))),
                  ase.Atoms("Ar60", positions=np.random.default_rng(1).uniform(0, 20, (60, 3))),
                  ase.Atoms("H80", positions=np.random.default_rng(2).uniform(0, 20, (80, 3)))]
    targets, gammas, dts = [100.0, 300.0, 1000.0], [0.05, 0.02, 0.1], [1.0, 2.0, 0.5]
    state = create_state(structures, ensemble="nvt", temperature=targets, friction=gammas, dt=dts,
                         init_velocities=False, seed=11)
    md = BatchMD(state, HarmonicForceField(state, k=0.5), progress=False)
    burn_in, samples = 600, 3000
    md.run(burn_in)
    temps = []
    for _ in range(samples):
        md.integrator.step(state, md.forcefield)
        temps.append(state.instantaneous_temperature())
    mean = torch.stack(temps).mean(0)
    for b, target in enumerate(targets):
        dof = 3 * state.counts[b]
        sigma = target * math.sqrt(2.0 / dof) / math.sqrt(gammas[b] * samples * dts[b])
        assert abs(float(mean[b]) - target) < 5 * sigma, (b, float(mean[b]), target, sigma)


@pytest.mark.parametrize("ensemble", ["nve", "nvt", "npt"])
def test_restart_continues_bit_identically(conservative, tmp_path, ensemble):
    structures = systems()[:3] if ensemble != "npt" else [systems()[0], systems()[2]]
    straight = create_state(structures, ensemble=ensemble, temperature=400.0, dt=1.0, seed=3, tau_p=100.0)
    BatchMD(straight, conservative, progress=False).run(6)

    first = create_state(structures, ensemble=ensemble, temperature=400.0, dt=1.0, seed=3, tau_p=100.0)
    BatchMD(first, conservative, progress=False, checkpoint=tmp_path / "r.pt").run(3)
    resumed, _ = load_checkpoint(tmp_path / "r.pt")
    assert resumed.step == 3
    BatchMD(resumed, build_model("orb-v3-conservative-20-omat", seed=3, dtype=torch.float64, **SMALL),
            progress=False).run(3)
    for name in ("positions", "velocities", "cell", "forces", "energy", "time"):
        assert torch.equal(getattr(resumed, name), getattr(straight, name)), name


def test_reporters_write_csv_trajectories_and_plots(conservative, tmp_path):
    pytest.importorskip("mdtraj")
    from orb_md.md.plots import plot_thermo, read_thermo

    state = create_state(systems()[:2], ensemble="nvt", temperature=300.0, dt=1.0, seed=1)
    reporters = [ThermoReporter(tmp_path, every=2)] + [TrajectoryReporter(tmp_path, f, every=2) for f in ("extxyz", "dcd", "xtc")]
    BatchMD(state, conservative, reporters=reporters, progress=False).run(4)
    label = state.labels[0]
    thermo = read_thermo(tmp_path / "thermo" / f"{label}.csv")
    assert thermo["step"] == [0, 2, 4] and thermo["time_fs"] == [0, 2, 4]
    assert not math.isnan(thermo["pressure_bar"][0])
    assert math.isnan(read_thermo(tmp_path / "thermo" / f"{state.labels[1]}.csv")["pressure_bar"][0])
    frames = ase.io.read(tmp_path / "traj" / f"{label}.extxyz", index=":")
    assert len(frames) == 3
    np.testing.assert_allclose(frames[-1].positions, state.positions[: len(frames[-1])].numpy(), atol=1e-6)
    from mdtraj.formats import DCDTrajectoryFile, XTCTrajectoryFile

    with DCDTrajectoryFile(str(tmp_path / "traj" / f"{label}.dcd")) as f:
        xyz = f.read()[0]
    with XTCTrajectoryFile(str(tmp_path / "traj" / f"{label}.xtc")) as f:
        xtc = f.read()[0]
    assert xyz.shape == (3, 4, 3) and xtc.shape == (3, 4, 3)
    np.testing.assert_allclose(xtc[-1] * 10, xyz[-1], atol=1e-2)
    names = {p.name for p in plot_thermo(tmp_path)}
    assert names == {"energy.png", "temperature.png", "pressure.png"}


def test_per_system_units_and_settings():
    assert parse_quantity("0.5 ps", "time") == 500.0
    assert parse_quantity("0.1 1/ps", "rate") == pytest.approx(1e-4)
    state = create_state(systems()[:2], temperature=["300 K", "10 K"], dt=["1 fs", "0.002 ps"])
    assert state.dt.tolist() == [1.0, 2.0] and state.temperature.tolist() == [300.0, 10.0]
    assert float(state.instantaneous_temperature()[0]) > 100.0  # Maxwell–Boltzmann initial velocities


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dt=["1 fs", 2.0, "1 fs", 1.0]), "mixed units"),
        (dict(dt="300 K"), "is a temperature, expected a time"),
        (dict(temperature="1 GPa"), "is a pressure"),
        (dict(dt="1 parsec"), "unknown unit"),
        (dict(dt=[1.0]), "1 values given for 4 systems"),
        (dict(ensemble="nph"), "unknown ensemble"),
        (dict(ensemble="npt"), "NPT needs a periodic cell"),
        (dict(dt=0.0), "dt must be positive"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        create_state(systems(), **kwargs)


def test_unknown_element_and_missing_cell_are_clear_errors():
    bad = ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    bad.numbers[1] = 0
    with pytest.raises(InputError, match="unsupported atomic number"):
        create_state([bad])
    with pytest.raises(InputError, match="H2O.*NPT needs a periodic cell"):
        create_state([systems()[0], ase.build.molecule("H2O")], ensemble="npt")
    no_cell = ase.Atoms("Cu4", positions=np.eye(4, 3) * 2.5, pbc=True)
    with pytest.raises(InputError, match="NPT needs a periodic cell"):
        create_state([no_cell], ensemble="npt")
    with pytest.raises(InputError, match="unknown trajectory format"):
        TrajectoryReporter("unused", "pdb")


def test_bad_restart_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read restart file"):
        load_checkpoint(tmp_path / "junk.pt")


def test_forcefield_reuses_neighbour_list(conservative):
    state = create_state(systems()[:2], ensemble="nvt", temperature=300.0, dt=1.0)
    md = BatchMD(state, ForceField(conservative, skin=1.0), progress=False)
    md.run(5)
    assert md.forcefield.calls == 6 and md.forcefield.neighbors.builds == 1
