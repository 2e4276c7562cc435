"""orb_md vs orb-models 0.5.5 with identical random weights, for every released architecture.

Two levels: the network on orb-models' own graph (all structures, including tied -20 graphs),
and end to end with orb_md's own graph (structures without neighbour ties).
"""

from __future__ import annotations

import ase
import ase.build
import numpy as np
import pytest
import torch

from orb_md import RELEASED_MODELS, build_model
from orb_md.batch import atoms_to_batch, evaluate
from tests.orb_reference import orb_md_predict_on_graph, orb_models_graph, orb_models_predict, orb_models_twin

FP64 = {"energy_rel": 1e-10, "abs": 1e-9}
FP32 = {"rel": 1e-5}  # relative = ||ours - ref|| / ||ref|| per quantity


def molecule() -> ase.Atoms:
    return ase.build.molecule("CH3CH2OH")


def slab() -> ase.Atoms:
    atoms = ase.build.fcc111("Cu", size=(2, 2, 3), vacuum=8.0)
    atoms.rattle(0.05, seed=1)
    atoms.pbc = (True, True, False)
    return atoms


def wire() -> ase.Atoms:
    atoms = ase.Atoms("C4H4", positions=[[0, 0, 0], [1.4, 0, 0], [2.1, 1.2, 0], [0.7, 1.2, 0],
                                          [0, -1.0, 0.3], [1.4, -1.0, -0.2], [2.9, 1.5, 0.1], [0.0, 2.0, 0.2]])
    atoms.cell = [4.2, 20.0, 20.0]
    atoms.pbc = (True, False, False)
    atoms.rattle(0.03, seed=2)
    return atoms


def tiny_cell() -> ase.Atoms:
    """One atom in a strained fcc cell: dozens of periodic images within 6 Å."""
    atoms = ase.build.bulk("Cu", "fcc", a=3.6)
    strain = np.eye(3) + 0.03 * np.random.default_rng(3).standard_normal((3, 3))
    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
    return atoms


def isolated_atom() -> ase.Atoms:
    return ase.Atoms("O", positions=[[0.1, 0.2, 0.3]])


def rattled_alloy() -> ase.Atoms:
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.numbers[::3] = 79
    atoms.rattle(0.15, seed=4)
    return atoms


def padded(atoms: ase.Atoms) -> ase.Atoms:
    """Full periodicity with the existing vacuum, the only form orb-models 0.5.5 accepts."""
    atoms = atoms.copy()
    if atoms.pbc.any():
        atoms.pbc = True
    return atoms


STRUCTURES = {
    "molecule": molecule,
    "slab": slab,
    "wire": wire,
    "tiny_cell": tiny_cell,
    "isolated_atom": isolated_atom,
    "rattled_alloy": rattled_alloy,
}
NAMES = sorted(RELEASED_MODELS)


def with_charge_spin(atoms: ase.Atoms, name: str) -> ase.Atoms:
    if RELEASED_MODELS[name].charge_spin:
        atoms.info.update(charge=1, spin=2)
    return atoms


@pytest.fixture(scope="module")
def fp64_models() -> dict:
    """Full-size random models (float64) and their orb-models twins, one per released name."""
    models = {}
    for i, name in enumerate(NAMES):
        ours = build_model(name, seed=i, dtype=torch.float64, zero_net_force=False)
        models[name] = (ours, orb_models_twin(ours))
    return models


def assert_close(ours: dict, ref: dict, energy_rel: float, abs_tol: float, stress: bool = True) -> None:
    e_err = float(((ours["energy"] - ref["energy"]).abs() / ref["energy"].abs().clamp(min=1e-12)).max())
    assert e_err <= energy_rel, f"energy relative error {e_err:.2e}"
    keys = ["forces", "confidence"] + (["stress"] if stress and "stress" in ref else [])
    for key in keys:
        assert ours[key].shape == ref[key].shape, key
        err = float((ours[key] - ref[key]).abs().max()) if ours[key].numel() else 0.0
        assert err <= abs_tol, f"{key}: max abs error {err:.2e}"


@pytest.mark.parametrize("structure", sorted(STRUCTURES))
@pytest.mark.parametrize("name", NAMES)
def test_network_matches_orb_models_float64(fp64_models, name, structure):
    ours, twin = fp64_models[name]
    atoms = with_charge_spin(STRUCTURES[structure](), name)
    graph = orb_models_graph(ours, padded(atoms), torch.float64)
    ref = orb_models_predict(twin, graph, torch.float64)
    out = orb_md_predict_on_graph(ours, graph, torch.tensor(atoms.pbc))
    assert_close(out, ref, FP64["energy_rel"], FP64["abs"], stress=bool(atoms.pbc.any()))


@pytest.mark.parametrize("name", NAMES)
def test_end_to_end_matches_orb_models_on_mptraj(fp64_models, mptraj_crystals, name):
    """orb_md's own graph and network vs orb-models on a real crystal (rattled: no kNN ties)."""
    ours, twin = fp64_models[name]
    atoms = mptraj_crystals[NAMES.index(name) % len(mptraj_crystals)].copy()
    atoms.rattle(0.02, seed=5)
    atoms = with_charge_spin(atoms, name)
    ref = orb_models_predict(twin, orb_models_graph(ours, atoms, torch.float64), torch.float64)
    out = evaluate(ours, atoms_to_batch([atoms]))
    assert_close(out, ref, FP64["energy_rel"], FP64["abs"])


@pytest.mark.parametrize("structure", ["rattled_alloy", "slab", "wire", "molecule"])
def test_end_to_end_native_mixed_periodicity(fp64_models, structure):
    """Slabs and wires: orb_md's native partial periodicity equals padded full periodicity."""
    name = "orb-v3-direct-20-omat"
    ours, twin = fp64_models[name]
    atoms = STRUCTURES[structure]()
    ref = orb_models_predict(twin, orb_models_graph(ours, padded(atoms), torch.float64), torch.float64)
    out = evaluate(ours, atoms_to_batch([atoms]))
    assert_close(out, ref, FP64["energy_rel"], FP64["abs"], stress=bool(atoms.pbc.any()))


@pytest.mark.parametrize("name", ["orb-v3-direct-inf-mpa", "orb-v3-conservative-20-omat", "orb-v3-conservative-omol"])
def test_float32_highest_matches_orb_models(mptraj_crystals, name):
    """float32: within 1e-5 relative, or within a tenth of orb-models' own float32 error.

    Autograd forces of a 25M-parameter network carry float32 noise of ~1e-4 (orb-models vs
    itself in float64); the second bound keeps the check meaningful below that floor.
    """
    atoms = with_charge_spin(mptraj_crystals[1].copy(), name)
    atoms.rattle(0.02, seed=6)
    results = {}
    for dtype in (torch.float32, torch.float64):
        ours = build_model(name, seed=7, dtype=dtype, zero_net_force=False)
        graph = orb_models_graph(ours, atoms, dtype)
        results[dtype] = (
            orb_md_predict_on_graph(ours, graph, torch.tensor(atoms.pbc)),
            orb_models_predict(orb_models_twin(ours), graph, dtype),
        )
    (ours32, ref32), (_, ref64) = results[torch.float32], results[torch.float64]

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.linalg.norm(a.double() - b.double()) / torch.linalg.norm(b.double()).clamp(min=1e-12))

    for key in ["energy", "forces", "stress", "confidence"]:
        if key in ref32:
            limit = max(FP32["rel"], 0.1 * rel(ref32[key], ref64[key]))
            assert rel(ours32[key], ref32[key]) <= limit, f"{key}: {rel(ours32[key], ref32[key]):.2e} > {limit:.2e}"


def test_all_mptraj_crystals_conservative_inf(mptraj_crystals):
    ours = build_model("orb-v3-conservative-inf-omat", seed=11, dtype=torch.float64)
    twin = orb_models_twin(ours)
    for atoms in mptraj_crystals:
        ref = orb_models_predict(twin, orb_models_graph(ours, atoms, torch.float64), torch.float64)
        out = evaluate(ours, atoms_to_batch([atoms]))
        assert_close(out, ref, FP64["energy_rel"], FP64["abs"])


def test_default_direct_forces_have_zero_net_force():
    """orb-models >= 0.7 behaviour (the default): 0.5.5 forces shifted by -mu_F, net force zero."""
    legacy = build_model("orb-v3-direct-inf-omat", seed=3, dtype=torch.float64, zero_net_force=False,
                         latent_dim=32, mlp_hidden_dim=64)
    default = build_model("orb-v3-direct-inf-omat", seed=3, dtype=torch.float64, latent_dim=32, mlp_hidden_dim=64)
    atoms = rattled_alloy()
    f_legacy = evaluate(legacy, atoms_to_batch([atoms]))["forces"]
    f_default = evaluate(default, atoms_to_batch([atoms]))["forces"]
    mu = float(default.heads.forces.normalizer.bn.running_mean)
    assert abs(mu) > 1e-3
    assert torch.allclose(f_default, f_legacy - mu, atol=1e-12)
    assert float(f_default.sum(0).abs().max()) < 1e-10
