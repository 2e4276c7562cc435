"""The CPU side of orb_md's CUDA paths: device arguments that are checked, not ignored, and the device-generic
comparisons of tests/gpu run on the CPU (so they are known to work before GPU time is spent on them; these runs are
not the GPU tests, which stay "not run" without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orb_md import build_model
from orb_md.calculator import OrbCalculator
from orb_md.devices import resolve_device
from orb_md.errors import InputError
from tests.gpu import checks
from tests.test_lammps_orb import _lammps_ok, run_lmp, write_data

TINY = {"latent_dim": 16, "mlp_hidden_dim": 32, "num_message_passing": 2}
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
needs_lammps = pytest.mark.skipif(not _lammps_ok(), reason="LAMMPS not built here (scripts/build_lammps.sh)")


@no_gpu
def test_calculator_with_a_model_object_does_not_ignore_device() -> None:
    model = build_model("orb-v3-direct-20-omat", seed=0, dtype=torch.float64, **TINY)
    with pytest.raises(InputError, match="no CUDA GPU"):
        OrbCalculator(model, device="cuda")


@no_gpu
def test_cli_device_cuda_without_a_gpu_is_one_line(tmp_path, capsys) -> None:
    import ase.io
    from ase.build import molecule

    from orb_md.cli import main

    ase.io.write(tmp_path / "h2o.xyz", molecule("H2O"))
    assert main(["run", str(tmp_path / "h2o.xyz"), "--random-weights", "--device", "cuda", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("orb-md: error:") and "no CUDA GPU is usable here" in err and "\n" not in err


@no_gpu
def test_openmm_python_force_device_cuda_without_a_gpu_is_an_input_error(one_thread) -> None:
    openmm = pytest.importorskip("openmm")
    if not hasattr(openmm, "PythonForce"):
        pytest.skip("this OpenMM has no PythonForce")
    from orb_md_openmm.python_force import create_python_force
    from tests.openmm_systems import water

    model = build_model("orb-v3-direct-20-omat", seed=0, dtype=torch.float64, **TINY)
    with pytest.raises(InputError, match="no CUDA GPU"):
        create_python_force(model, water(0.8).topology, device="cuda")


def test_calculator_device_none_keeps_the_model_and_a_device_moves_it(one_thread) -> None:
    model = build_model("orb-v3-direct-20-omat", seed=0, dtype=torch.float64, **TINY)
    assert OrbCalculator(model).model is model
    assert next(OrbCalculator(model, device="cpu").model.parameters()).device.type == "cpu"


def test_unknown_device_names_the_problem() -> None:
    with pytest.raises(InputError, match="unknown device 'gpu'"):
        resolve_device("gpu")


def test_float32_high_against_float64_helper(one_thread) -> None:
    before = torch.get_float32_matmul_precision()
    want = checks.model_outputs("orb-v3-conservative-20-omat", "cpu", **TINY)
    errors = checks.relative_errors(checks.model_outputs("orb-v3-conservative-20-omat", "cpu", "float32-high", **TINY), want)
    assert 0 < errors["energy_relative"] < 1e-4 and 0 < errors["forces_abs"] < 1e-3, errors
    assert torch.get_float32_matmul_precision() == before  # restored


def test_usable_backends_are_the_same_on_every_device() -> None:
    from orb_md.graph.backends import usable_backends

    on_cuda = usable_backends(torch.device("cuda"))
    assert {"auto", "brute_force", "vesin"} <= set(on_cuda) and on_cuda == usable_backends(torch.device("cpu"))


def test_fixed_capacity_edges_helper_equals_brute_force(one_thread) -> None:
    for atoms in checks.structures(2):
        for got, want in zip(checks.edges(atoms, "fixed_capacity", "cpu"), checks.edges(atoms, "brute_force", "cpu")):
            np.testing.assert_array_equal(got, want)


def test_batched_md_helper_is_reproducible(one_thread) -> None:
    first, second = checks.batched_md("cpu", 3, **TINY), checks.batched_md("cpu", 3, **TINY)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert np.isfinite(first["energy"]).all()


def test_capturable_torchforce_helper_on_reference(one_thread) -> None:
    pytest.importorskip("openmmtorch")
    eager = checks.torchforce_energy_forces("orb-v3-direct-20-omat", "Reference", False, 1, **TINY)
    capturable = checks.torchforce_energy_forces("orb-v3-direct-20-omat", "Reference", True, 1, **TINY)
    for (energy, forces), (want_energy, want_forces) in zip(capturable, eager):
        assert energy == pytest.approx(want_energy, rel=1e-12)
        np.testing.assert_allclose(forces, want_forces, atol=1e-9, rtol=0)


@needs_lammps
def test_lammps_device_override_runs_a_cuda_export_on_the_cpu(tmp_path, monkeypatch) -> None:
    """A file exported for the GPU runs on a CPU machine with ORB_MD_LAMMPS_DEVICE=cpu, equal to ASE."""
    monkeypatch.setenv("ORB_MD_LAMMPS_DEVICE", "cpu")
    errors = checks.lammps_parity(tmp_path, "orb-v3-direct-20-omat", "cuda", latent_dim=8, mlp_hidden_dim=16)
    assert errors["energy_relative"] <= 1e-9 and errors["forces_abs"] <= 1e-8 and errors["stress_abs"] <= 1e-9, errors


@no_gpu
@needs_lammps
def test_lammps_cuda_export_without_a_gpu_is_a_clear_error(tmp_path) -> None:
    from orb_md_lammps.export import main
    from tests.systems import sparse_gas

    model_path = tmp_path / "gpu.pt"
    main(["orb-v3-direct-20-omat", str(model_path), "--random-weights", "--latent-dim", "8", "--mlp-hidden-dim", "16",
          "--device", "cuda"])
    data, elements, _ = write_data(tmp_path, sparse_gas())
    script = (f"units metal\natom_style atomic\natom_modify map yes\nboundary p p p\nread_data {data}\n"
              f"pair_style mliap unified {model_path} 0\npair_coeff * * {' '.join(elements)}\nrun 0\n")
    out = run_lmp(tmp_path, script, check=False)
    assert "the exported device: device 'cuda': no CUDA GPU is usable here" in out, out[-3000:]


def test_lammps_export_rejects_an_unknown_device(tmp_path, capsys) -> None:
    from orb_md_lammps.export import main

    with pytest.raises(SystemExit):
        main(["orb-v3-direct-20-omat", str(tmp_path / "x.pt"), "--random-weights", "--latent-dim", "8",
              "--mlp-hidden-dim", "16", "--device", "gpu"])
    assert "device must be cpu, cuda or cuda:N, got 'gpu'" in capsys.readouterr().err
