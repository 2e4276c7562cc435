"""The CUDA-graph-ready TorchForce path (create_torch_force(..., cuda_graphs=True)), proven on the CPU.

- torch.compile(fullgraph=True, dynamic=False) of the evaluator (fixed-capacity graph + model) with dynamo's
  capture of scalar outputs and of data-dependent output shapes off: any .item(), int(tensor), nonzero, boolean-mask
  indexing or branch on a tensor value fails the compilation (the default evaluator, which has them, is the control).
  Backend aot_eager: dynamo + AOTAutograd without code generation; inductor took 10-21 s per small variant here
  (2 cores; TorchForce runs TorchScript anyway).
- In real OpenMM (Reference platform): the same energies and forces as the default module, and NaN on overflow.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from orb_md import build_model
from orb_md.graph.fixed_capacity import FixedCapacityNeighborList
from orb_md.model.orb import collinear_pseudo_inverse

openmm = pytest.importorskip("openmm")
pytest.importorskip("openmmtorch")

import openmm.app as app  # noqa: E402
from openmmml import MLPotential  # noqa: E402

from orb_md_openmm.force import create_torch_force  # noqa: E402
from orb_md_openmm.module import CapturableOrbEvaluator, OrbEvaluator  # noqa: E402
from tests.openmm_systems import ca2_fragment, energy_forces, one_force_context, water  # noqa: E402

TINY = {"latent_dim": 32, "mlp_hidden_dim": 64, "num_message_passing": 2}


def tiny(name: str):
    return build_model(name, seed=0, dtype=torch.float64, **TINY)


def strict_compile(module: torch.nn.Module):
    """torch.compile that fails on any graph break, data-dependent shape or scalar read-back."""
    torch._dynamo.reset()
    return torch.compile(module, fullgraph=True, dynamic=False, backend="aot_eager")


NO_HOST_SYNC = dict(capture_scalar_outputs=False, capture_dynamic_output_shape_ops=False)
GPU_CHUNK = 1 << 22  # candidates per chunk off the CPU: the graph is traced as it would be captured there


@pytest.mark.parametrize(
    "name, periodic, repeat",
    [("orb-v3-direct-20-omat", True, 6), ("orb-v3-conservative-inf-omat", True, 2), ("orb-v3-conservative-20-omat", False, 2)],
)
def test_evaluator_compiles_without_host_syncs(name: str, periodic: bool, repeat: int) -> None:
    """6x6x6 fcc Cu: the cell list; 2x2x2: brute force over images; non-periodic: brute force."""
    model = tiny(name)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (repeat, repeat, repeat)
    atoms.rattle(0.05, seed=4)
    box = torch.tensor(atoms.cell.array) if periodic else None
    evaluator = CapturableOrbEvaluator(model, atoms.numbers.tolist(), None, box, None, None)
    assert evaluator.neighbors.method == ("cell_list" if repeat == 6 else "brute_force")
    evaluator.neighbors.candidate_chunk = GPU_CHUNK
    positions = torch.tensor(atoms.positions / 10.0, requires_grad=True)  # nm, as OpenMM passes them
    box_nm = torch.tensor(atoms.cell.array / 10.0)
    with torch._dynamo.config.patch(**NO_HOST_SYNC), torch.set_grad_enabled(model.conservative):
        compiled = strict_compile(evaluator)(positions, box_nm, not model.conservative)
        eager = evaluator(positions, box_nm, not model.conservative)
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=0.0, atol=1e-12, msg=key)
    if model.conservative:  # OpenMM's forces: the gradient of the (compiled) energy
        got = torch.autograd.grad(compiled["energy"].sum(), positions)[0]
        want = torch.autograd.grad(eager["energy"].sum(), positions)[0]
        torch.testing.assert_close(got, want, rtol=0.0, atol=1e-12)


def test_the_default_evaluator_fails_the_same_compilation() -> None:
    """Control: the exact-size graph (host syncs, data-dependent shapes) cannot be compiled this way."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    neighbors = OrbEvaluator(tiny("orb-v3-direct-20-omat"), atoms.numbers.tolist(), None, True, None, None).neighbors
    inputs = (torch.tensor(atoms.positions), torch.tensor(atoms.cell.array)[None], torch.ones(1, 3, dtype=torch.bool),
              torch.zeros(len(atoms), dtype=torch.long))
    with torch._dynamo.config.patch(**NO_HOST_SYNC), torch.no_grad(), pytest.raises(torch._dynamo.exc.Unsupported) as failure:
        strict_compile(neighbors)(*inputs)
    assert "orb_md/graph/" in str(failure.value)  # in the neighbour list, the part the fixed-capacity graph replaces


def test_open_cell_list_compiles_without_host_syncs() -> None:
    rng = np.random.default_rng(5)
    positions = torch.tensor(rng.random((900, 3)) * [40.0, 25.0, 25.0])
    module = FixedCapacityNeighborList(900, 6.0, 20, method="cell_list", raise_on_overflow=False, candidate_chunk=GPU_CHUNK)
    cell = torch.zeros(1, 3, 3, dtype=torch.float64)
    with torch._dynamo.config.patch(**NO_HOST_SYNC):
        compiled = strict_compile(module)(positions, cell)
    assert all(torch.equal(a, b) for a, b in zip(compiled, module(positions, cell)))


def test_singular_torque_matrix_closed_form_equals_pinv() -> None:
    """The pseudo-inverse used off the CPU (pinv synchronises there) equals pinv where m = S - tr(S) I is singular."""
    generator = torch.Generator().manual_seed(0)
    matrices = [torch.zeros(3, 3, dtype=torch.float64)]  # one atom
    directions = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 2.0])]
    for direction in directions + [torch.randn(3, generator=generator) for _ in range(4)]:
        u = (direction / direction.norm()).to(torch.float64)
        r = torch.randn(5, 1, generator=generator, dtype=torch.float64) * u  # collinear atoms
        r = r - r.mean(0)
        s = r.T @ r
        matrices.append(s - torch.trace(s) * torch.eye(3, dtype=torch.float64))
    m = torch.stack(matrices)
    torch.testing.assert_close(collinear_pseudo_inverse(m), torch.linalg.pinv(m), rtol=0.0, atol=1e-14)


# ---- real OpenMM ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def water_box() -> app.Modeller:
    """45 TIP3P atoms in a 0.8 nm periodic cube (brute force over images: cell too small for 3 bins)."""
    return water(0.8)


@pytest.fixture(scope="module")
def large_water_box() -> app.Modeller:
    """About 1040 TIP3P atoms in a 2.2 nm periodic cube (the cell list, 3 bins per axis)."""
    return water(2.2)


@pytest.fixture(scope="module")
def fragment() -> app.Modeller:
    return ca2_fragment()


def _assert_same(modeller: app.Modeller, name: str, **options) -> None:
    model = tiny(name)
    want = energy_forces(one_force_context(create_torch_force(model, modeller.topology, **options), modeller))
    force = create_torch_force(model, modeller.topology, cuda_graphs=True, **options)
    got = energy_forces(one_force_context(force, modeller))
    assert got[0] == pytest.approx(want[0], rel=1e-10, abs=0.0)
    np.testing.assert_allclose(got[1], want[1], rtol=0.0, atol=1e-10 * np.abs(want[1]).max())


@pytest.mark.parametrize("name", ["orb-v3-direct-20-omat", "orb-v3-conservative-inf-omat"])
def test_water_box_same_as_default_module(water_box: app.Modeller, name: str) -> None:
    _assert_same(water_box, name)
    _assert_same(water_box, name, atoms=list(range(0, water_box.topology.getNumAtoms(), 2)))


@pytest.mark.parametrize("name", ["orb-v3-direct-20-omat", "orb-v3-conservative-inf-omat"])
def test_protein_fragment_same_as_default_module(fragment: app.Modeller, name: str) -> None:
    _assert_same(fragment, name)


def test_cell_list_water_box_same_as_default_module(large_water_box: app.Modeller) -> None:
    _assert_same(large_water_box, "orb-v3-direct-20-omat")


def test_overflow_turns_energy_and_forces_into_nan(water_box: app.Modeller, large_water_box: app.Modeller) -> None:
    model = tiny("orb-v3-conservative-20-omat")
    crowded = one_force_context(create_torch_force(model, large_water_box.topology, cuda_graphs=True, bin_capacity=20), large_water_box)
    energy, forces = energy_forces(crowded)
    assert np.isnan(energy) and np.isnan(forces).all()
    context = one_force_context(create_torch_force(model, water_box.topology, cuda_graphs=True), water_box)
    assert np.isfinite(energy_forces(context)[0])
    context.setPeriodicBoxVectors(*(openmm.Vec3(*row) * 0.55 for row in np.eye(3)))  # nm: below the 0.6 nm it allows
    energy, forces = energy_forces(context)
    assert np.isnan(energy) and np.isnan(forces).all()


def test_capacities_are_options_of_the_cuda_graph_path(water_box: app.Modeller, large_water_box: app.Modeller) -> None:
    model = tiny("orb-v3-direct-20-omat")
    with pytest.raises(ValueError, match="size the fixed-capacity graph of cuda_graphs=True"):
        create_torch_force(model, water_box.topology, bin_capacity=100)
    potential = MLPotential("orb_md/orb-v3-direct-20-omat")
    system = potential.createSystem(large_water_box.topology, model=model, cudaGraphs=True, binCapacity=20)
    assert 'value="true"' in openmm.XmlSerializer.serialize(system)  # useCUDAGraphs
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(large_water_box.positions)
    assert np.isnan(energy_forces(context)[0])  # 20 atoms per bin are too few: the option reached the graph
    with pytest.raises(ValueError, match="apply to implementation='torchforce' with cudaGraphs=True"):
        potential.createSystem(water_box.topology, model=model, implementation="pythonforce", binCapacity=100)
