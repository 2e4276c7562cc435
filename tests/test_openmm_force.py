"""orb_md TorchForce inside real OpenMM (Reference and CPU) equals a direct call of the model."""

from __future__ import annotations

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
torch = pytest.importorskip("torch")
pytest.importorskip("openmmtorch")  # after torch, which loads the CUDA libraries openmmtorch links

import openmm.app as app  # noqa: E402
import openmm.unit as unit  # noqa: E402

from orb_md import OrbInputs, build_model  # noqa: E402
from orb_md.graph import neighbor_list  # noqa: E402
from orb_md.units import EV_IN_KJ_PER_MOL  # noqa: E402
from orb_md_openmm.force import build_module, create_torch_force  # noqa: E402
from tests.openmm_systems import energy_forces, one_force_context, water  # noqa: E402

SMALL = {"latent_dim": 32, "mlp_hidden_dim": 64, "num_message_passing": 2}


@pytest.fixture(scope="module")
def water_box() -> app.Modeller:
    """45 TIP3P atoms in a 0.8 nm periodic cube."""
    return water(0.8)


def _reference(model, modeller: app.Modeller, atoms: list[int], periodic: bool) -> tuple[float, np.ndarray]:
    xyz = torch.tensor(modeller.positions.value_in_unit(unit.nanometer), dtype=torch.float64)[atoms] * 10
    z = torch.tensor([a.element.atomic_number for a in modeller.topology.atoms()])[atoms]
    box = modeller.topology.getPeriodicBoxVectors()
    cell = torch.tensor(box.value_in_unit(unit.nanometer), dtype=torch.float64)[None] * 10 if periodic else torch.zeros(1, 3, 3, dtype=torch.float64)
    pbc = torch.full((1, 3), periodic)
    index = torch.zeros(len(atoms), dtype=torch.long)
    graph = neighbor_list(xyz, cell, pbc, index, model.config.cutoff, model.config.max_neighbors)
    out = model(OrbInputs(xyz, z, cell, pbc, *graph, index), compute_forces=True, compute_stress=False)
    forces = np.zeros((modeller.topology.getNumAtoms(), 3))
    forces[atoms] = out["forces"].detach().numpy() * EV_IN_KJ_PER_MOL * 10
    return float(out["energy"].detach().sum()) * EV_IN_KJ_PER_MOL, forces


@pytest.mark.parametrize("name", ["orb-v3-direct-20-omat", "orb-v3-conservative-inf-omat"])
@pytest.mark.parametrize("periodic, subset", [(True, False), (True, True), (False, True)])
def test_torchforce_matches_model(water_box: app.Modeller, name: str, periodic: bool, subset: bool) -> None:
    model = build_model(name, seed=0, dtype=torch.float64, **SMALL)
    n = water_box.topology.getNumAtoms()
    atoms = list(range(0, n, 2)) if subset else list(range(n))
    energy, forces = _reference(model, water_box, atoms, periodic)
    for platform in ("Reference", "CPU"):
        force = create_torch_force(model, water_box.topology, atoms=atoms if subset else None, periodic=periodic)
        got_energy, got_forces = energy_forces(one_force_context(force, water_box, platform))
        assert got_energy == pytest.approx(energy, rel=1e-8)
        np.testing.assert_allclose(got_forces, forces, rtol=1e-8, atol=1e-8 * np.abs(forces).max())


def test_charge_on_model_without_charge_input_is_rejected(water_box: app.Modeller) -> None:
    model = build_model("orb-v3-direct-20-omat", seed=0, dtype=torch.float64, **SMALL)
    with pytest.raises(ValueError, match="takes no total charge/spin"):
        create_torch_force(model, water_box.topology, charge=1)


def test_direct_module_records_no_autograd_graph(water_box: app.Modeller) -> None:
    """OpenMM's Reference/CPU kernels pass positions with requires_grad=True even when the module
    outputs forces; a direct model's forces are no gradient, so recording autograd would only cost
    time and memory (and the random models here have parameters that require grad)."""
    model = build_model("orb-v3-direct-20-omat", seed=0, dtype=torch.float64, **SMALL)
    module = build_module(model, [a.element.atomic_number for a in water_box.topology.atoms()], None, True)
    positions = torch.tensor(water_box.positions.value_in_unit(unit.nanometer), dtype=torch.float64, requires_grad=True)
    box = torch.tensor(water_box.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer), dtype=torch.float64)
    energy, forces = module(positions, box)
    assert not energy.requires_grad and not forces.requires_grad
