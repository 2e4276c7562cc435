"""orb_md's TorchForce on OpenMM's CUDA platform, with and without CUDA graphs, against the Reference platform."""

from __future__ import annotations

import numpy as np
import pytest

from tests.gpu import checks

pytestmark = pytest.mark.cuda
openmm = pytest.importorskip("openmm")
pytest.importorskip("openmmtorch")

WIDTH = {"latent_dim": 64, "mlp_hidden_dim": 128}


def cuda_platform_or_why() -> None:
    """Fail with OpenMM's own reasons when the CUDA platform or openmm-torch's CUDA kernels did not load."""
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    failures = openmm.Platform.getPluginLoadFailures()
    if "CUDA" not in names:
        pytest.fail(f"OpenMM has no CUDA platform (platforms {names}); plugin load failures: {failures}")
    torch_cuda = [f for f in failures if "OpenMMTorchCUDA" in f]
    if torch_cuda:
        pytest.fail(f"openmm-torch's CUDA kernels did not load: {torch_cuda}")


@pytest.mark.parametrize("cuda_graphs", [False, True], ids=["eager", "cuda-graphs"])
@pytest.mark.parametrize("name", ["orb-v3-direct-20-omat", "orb-v3-conservative-inf-omat"])
def test_torchforce_cuda_matches_reference(name: str, cuda_graphs: bool) -> None:
    import orb_md_openmm.force  # noqa: F401  (retries openmm-torch's kernel plugins after import torch)

    cuda_platform_or_why()
    reference = checks.torchforce_energy_forces(name, "Reference", False, **WIDTH)
    try:
        got = checks.torchforce_energy_forces(name, "CUDA", cuda_graphs, **WIDTH)
    except openmm.OpenMMException as error:
        pytest.fail(f"TorchForce on CUDA (useCUDAGraphs={cuda_graphs}) failed: {error}")
    for call, ((energy, forces), (want_energy, want_forces)) in enumerate(zip(got, reference)):
        assert energy == pytest.approx(want_energy, rel=1e-9), f"call {call}"
        np.testing.assert_allclose(forces, want_forces, atol=1e-6, rtol=0, err_msg=f"call {call} (kJ/mol/nm)")
