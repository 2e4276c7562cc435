"""Neighbour lists against ASE (radius graph), orb-models 0.5.5 (k-capped graph) and across backends."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.neighborlist import primitive_neighbor_list

from orb_md.errors import InputError
from orb_md.graph import NeighborList, VerletNeighborList, neighbor_list
from orb_md.graph.backends import make_search
from orb_md.graph.knn import select_neighbors
from orb_md.graph.vesin_search import vesin_available
from orb_md_lammps.graph import nearest_per_sender

BACKENDS = ["brute_force"] + (["vesin"] if vesin_available() else [])
CUTOFF = 6.0


def as_inputs(atoms: Atoms, dtype=torch.float64):
    cell = torch.tensor(atoms.cell.array, dtype=dtype)[None]
    return (
        torch.tensor(atoms.positions, dtype=dtype),
        cell,
        torch.tensor(atoms.pbc)[None],
        torch.zeros(len(atoms), dtype=torch.int64),
    )


def edge_set(senders, receivers, shifts) -> set:
    return set(zip(senders.tolist(), receivers.tolist(), map(tuple, shifts.round().long().tolist())))


def random_triclinic(seed: int, n_atoms: int = 24) -> Atoms:
    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(5.0, 9.0, 3)) + np.triu(rng.uniform(-3.0, 3.0, (3, 3)), 1)
    return Atoms("X" * n_atoms, scaled_positions=rng.random((n_atoms, 3)), cell=cell, pbc=True)


def structures() -> dict[str, Atoms]:
    skewed = Atoms("X3", positions=[[0, 0, 0], [1.0, 0.5, 0.2], [2.0, 1.1, 0.7]], pbc=True)
    skewed.cell = [[4.0, 0, 0], [3.8, 1.2, 0], [3.7, 1.1, 1.3]]  # plane spacings far below the cutoff
    slab = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 1)
    slab.pbc = (True, True, False)
    slab.rattle(0.05, seed=1)
    wire = bulk("Cu", "fcc", a=3.61, cubic=True) * (1, 2, 2)
    wire.pbc = (True, False, False)
    wire.rattle(0.05, seed=2)
    outside = random_triclinic(3)
    outside.positions += np.random.default_rng(4).integers(-3, 4, (len(outside), 1)) * outside.cell.array[0] + 0.7
    return {
        "triclinic_0": random_triclinic(0),
        "triclinic_1": random_triclinic(1, 8),
        "skewed_tiny": skewed,
        "slab": slab,
        "wire": wire,
        "molecule": molecule("C6H6"),
        "cu_1_atom": bulk("Cu", "fcc", a=3.61),
        "outside_cell": outside,
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(structures()))
def test_radius_graph_equals_ase(name, backend):
    atoms = structures()[name]
    i, j, shift = primitive_neighbor_list("ijS", atoms.pbc, atoms.cell.array, atoms.positions, CUTOFF)
    got = neighbor_list(*as_inputs(atoms), cutoff=CUTOFF, max_neighbors=-1, backend=backend)
    assert edge_set(*got) == edge_set(torch.tensor(i), torch.tensor(j), torch.tensor(shift))


def test_knn_graph_equals_orb_models():
    featurization = pytest.importorskip("orb_models.forcefield.featurization_utilities")
    for atoms in [random_triclinic(5, 40), (bulk("Cu", "fcc", a=3.61) * (3, 3, 3))]:
        atoms.rattle(0.05, seed=6)
        atoms.wrap()
        positions, cell, pbc, system_index = as_inputs(atoms)
        edge_index, _, shifts = featurization.compute_pbc_radius_graph(
            positions=positions, cell=cell[0], pbc=pbc[0], radius=CUTOFF, max_number_neighbors=20,
            edge_method="knn_brute_force", device="cpu", float_dtype=torch.float64,
        )
        expected = edge_set(edge_index[0], edge_index[1], shifts)
        got = neighbor_list(positions, cell, pbc, system_index, cutoff=CUTOFF, max_neighbors=20)
        assert edge_set(*got) == expected


@pytest.mark.parametrize("atoms", [bulk("Cu", "fcc", a=3.61), bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)])
def test_backends_identical_with_ties(atoms):
    inputs = as_inputs(atoms)
    reference = neighbor_list(*inputs, cutoff=CUTOFF, max_neighbors=20, backend="brute_force")
    assert torch.equal(torch.bincount(reference[0]), torch.full((len(atoms),), 20))
    outputs = [neighbor_list(*inputs, cutoff=CUTOFF, max_neighbors=20, backend=b) for b in BACKENDS]
    outputs.append(torch.jit.script(NeighborList(CUTOFF, 20, "vesin"))(*inputs))
    for out in outputs:
        assert all(torch.equal(a, b) for a, b in zip(out, reference))


def test_tie_rule_order():
    inputs = as_inputs(bulk("Cu", "fcc", a=3.61))
    senders, receivers, shifts = neighbor_list(*inputs, cutoff=CUTOFF, max_neighbors=20)
    assert shifts.dtype == torch.float64
    first_shell = torch.round((shifts[:12] @ inputs[1][0]) / 1e-8).long().tolist()
    assert first_shell == sorted(first_shell)  # one receiver, equal distances: lexicographic vectors on the 1e-8 Å grid


def edge_vectors(atoms: Atoms, graph) -> list:
    """(sender, receiver, edge vector rounded to 1e-6 Å) of a graph, in its order."""
    senders, receivers, shifts = graph
    v = atoms.positions[receivers.numpy()] - atoms.positions[senders.numpy()] + shifts.numpy() @ atoms.cell.array
    return list(zip(senders.tolist(), receivers.tolist(), map(tuple, np.round(v, 6).tolist())))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [1, 20])
def test_graph_unchanged_by_a_lattice_translation_of_an_atom(backend, k):
    """The tie rule reads edge vectors, not shifts: moving an atom by a lattice vector leaves every edge (sender,
    receiver, vector) and its order as it was, in tied triclinic fcc shells."""
    atoms = bulk("Cu", "fcc", a=3.61) * (2, 1, 1)
    moved = atoms.copy()
    moved.positions[1] += np.array([1, -2, 1]) @ moved.cell.array
    graphs = [neighbor_list(*as_inputs(a), cutoff=CUTOFF, max_neighbors=k, backend=backend) for a in (atoms, moved)]
    assert edge_vectors(atoms, graphs[0]) == edge_vectors(moved, graphs[1])


@pytest.mark.parametrize("atoms", [bulk("Cu", "fcc", a=3.61), bulk("Cu", "fcc", a=3.61) * (2, 1, 3),
                                   bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)])
def test_lammps_selection_equals_neighbor_list(atoms):
    """LAMMPS's selection (receiver atom IDs = index + 1, vectors only, pairs in any order) keeps the edges of
    neighbor_list, in its order, on fcc Cu where whole shells tie."""
    i, j, shift = primitive_neighbor_list("ijS", atoms.pbc, atoms.cell.array, atoms.positions, CUTOFF)
    vectors = atoms.positions[j] - atoms.positions[i] + shift @ atoms.cell.array
    order = np.random.default_rng(0).permutation(len(i))
    i, j, shift, vectors = i[order], j[order], shift[order], vectors[order]
    kept = nearest_per_sender(i, j + 1, vectors, 20)
    lammps = (torch.tensor(i[kept]), torch.tensor(j[kept]), torch.tensor(shift[kept], dtype=torch.float64))
    assert edge_vectors(atoms, lammps) == edge_vectors(atoms, neighbor_list(*as_inputs(atoms), CUTOFF, 20))


def batch_inputs(systems: list[Atoms], dtype=torch.float64):
    inputs = [as_inputs(a, dtype) for a in systems]
    return (
        torch.cat([x[0] for x in inputs]),
        torch.cat([x[1] for x in inputs]),
        torch.cat([x[2] for x in inputs]),
        torch.cat([torch.full((len(a),), b) for b, a in enumerate(systems)]),
    )


def test_batch_equals_single_calls():
    systems = [random_triclinic(7, 10), bulk("Cu", "fcc", a=3.61), molecule("H2O"), structures()["slab"]]
    expected, offset = [], 0
    for atoms in systems:
        s, r, sh = neighbor_list(*as_inputs(atoms), cutoff=CUTOFF, max_neighbors=20)
        expected.append((s + offset, r + offset, sh))
        offset += len(atoms)
    expected = [torch.cat(parts) for parts in zip(*expected)]
    batch = batch_inputs(systems)
    for backend in BACKENDS:
        got = neighbor_list(*batch, cutoff=CUTOFF, max_neighbors=20, backend=backend)
        assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_float32_input():
    atoms = random_triclinic(8)
    senders, receivers, shifts = neighbor_list(*as_inputs(atoms, torch.float32), cutoff=CUTOFF, max_neighbors=-1)
    assert shifts.dtype == torch.float32 and senders.dtype == torch.int64
    i, j, shift = primitive_neighbor_list("ijS", atoms.pbc, atoms.cell.array, atoms.positions, CUTOFF)
    assert abs(len(senders) - len(i)) <= 2  # float32 rounding may move pairs across the cutoff


def test_verlet_reuse_equals_rebuild():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    positions, cell, pbc, system_index = as_inputs(atoms)
    verlet = torch.jit.script(VerletNeighborList(CUTOFF, 20, skin=0.5, backend="vesin"))
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        positions = positions + 0.03 * torch.randn(positions.shape, generator=generator, dtype=positions.dtype)
        reused = verlet(positions, cell, pbc, system_index)
        fresh = neighbor_list(positions, cell, pbc, system_index, cutoff=CUTOFF, max_neighbors=20, backend="vesin")
        assert all(torch.equal(a, b) for a, b in zip(reused, fresh))
    assert 1 < verlet.builds < 100


@pytest.mark.parametrize("k", [20, 4, -1])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batched_verlet_reuse_equals_rebuild(k, dtype):
    """Reuse with both bounds (D_k + 2δ per step, d_k + 2·skin at a build) gives every step the fresh graph, for a
    batch of 0D-3D systems.

    The first step is an unrattled fcc crystal (many exact ties); steps grow until atoms move close to skin/2."""
    systems = [bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2), random_triclinic(5, 12), structures()["slab"],
               molecule("C6H6"), structures()["wire"]]
    positions, cell, pbc, system_index = batch_inputs(systems, dtype)
    verlet = VerletNeighborList(CUTOFF, k, skin=0.6)
    generator = torch.Generator().manual_seed(2)
    for step in range(30):
        reused = verlet(positions, cell, pbc, system_index)
        fresh = neighbor_list(positions, cell, pbc, system_index, cutoff=CUTOFF, max_neighbors=k, backend="brute_force")
        assert all(torch.equal(a, b) for a, b in zip(reused, fresh)), f"step {step}"
        size = 0.004 * (step % 10 + 1)
        positions = positions + size * torch.randn(positions.shape, generator=generator, dtype=torch.float64).to(dtype)
    assert 1 < verlet.builds < 30


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p, c, b, s, k: (p.index_fill(0, torch.tensor([0]), float("nan")), c, b, s, k), "NaN"),
        (lambda p, c, b, s, k: (p, c * torch.tensor([1.0, 1.0, 0.0]).view(1, 3, 1), b, s, k), "zero cell vector"),
        (lambda p, c, b, s, k: (p, c.index_copy(1, torch.tensor([2]), c[:, :1]), b, s, k), "linearly dependent"),
        (lambda p, c, b, s, k: (p, c, b, s, dict(cutoff=0.0)), "cutoff"),
        (lambda p, c, b, s, k: (p, c, b, s, dict(cutoff=-1.0)), "cutoff"),
        (lambda p, c, b, s, k: (p, c, b, s, dict(cutoff=12.0)), "at most 10"),  # the tie rule's int64 key
        (lambda p, c, b, s, k: (p[:, :2], c, b, s, k), "shape"),
        (lambda p, c, b, s, k: (p, c.float(), b, s, k), "dtype"),
        (lambda p, c, b, s, k: (p, c, b, s.int(), k), "system_index"),
        (lambda p, c, b, s, k: (p, c, b, s, dict(max_neighbors=0)), "max_neighbors"),
    ],
)
def test_bad_input(change, message):
    positions, cell, pbc, system_index, kwargs = change(*as_inputs(random_triclinic(9, 4)), {})
    with pytest.raises(InputError, match=message):
        neighbor_list(positions, cell, pbc, system_index, **kwargs)


def test_mptraj_crystals_equal_ase(mptraj_crystals):
    for atoms in mptraj_crystals:
        i, j, shift = primitive_neighbor_list("ijS", atoms.pbc, atoms.cell.array, atoms.positions, CUTOFF)
        got = neighbor_list(*as_inputs(atoms), cutoff=CUTOFF, max_neighbors=-1)
        assert edge_set(*got) == edge_set(torch.tensor(i), torch.tensor(j), torch.tensor(shift))


def _selection_cases():
    rng = np.random.default_rng(11)
    box = (300 / 0.1) ** (1 / 3)
    liquid = Atoms("X" * 300, positions=rng.random((300, 3)) * box, cell=[box] * 3, pbc=True)
    crystal = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)  # degenerate shells: the tie rule decides
    batch = [random_triclinic(12, 10), bulk("Cu", "fcc", a=3.61), molecule("H2O"), structures()["slab"]]
    inputs = [as_inputs(a) for a in batch]
    batched = (
        torch.cat([x[0] for x in inputs]),
        torch.cat([x[1] for x in inputs]),
        torch.cat([x[2] for x in inputs]),
        torch.cat([torch.full((len(a),), b) for b, a in enumerate(batch)]),
    )
    return [as_inputs(liquid), as_inputs(crystal), as_inputs(structures()["skewed_tiny"]), batched]


def test_selection_independent_of_candidate_order_and_pruning():
    """Any candidate order, and pruning by the search's own lengths (near_kth), give the same graph."""
    generator = torch.Generator().manual_seed(3)
    for positions, cell, pbc, system_index in _selection_cases():
        senders, receivers, shifts, lengths = make_search("vesin", CUTOFF + 0.5)(positions, cell, pbc, system_index)
        permutation = torch.randperm(senders.shape[0], generator=generator)  # any candidate order
        candidates = (senders[permutation], receivers[permutation], shifts[permutation])
        for k in (1, 20, -1):
            permuted = select_neighbors(positions, cell, system_index, *candidates, CUTOFF, k)
            given = select_neighbors(positions, cell, system_index, senders, receivers, shifts, CUTOFF, k)
            pruned = select_neighbors(positions, cell, system_index, *candidates, CUTOFF, k, lengths[permutation])
            assert all(torch.equal(a, b) for a, b in zip(permuted, given))
            assert all(torch.equal(a, b) for a, b in zip(pruned, given))
            assert permuted[2].dtype == positions.dtype


def _far_outside() -> Atoms:
    atoms = random_triclinic(13, 30)
    atoms.positions += np.random.default_rng(14).integers(-50, 50, (len(atoms), 3)) @ atoms.cell.array
    return atoms


@pytest.mark.parametrize("k", [1, 20, -1])
def test_vesin_graph_equals_brute_force(k):
    """vesin's search and brute force's give bit-identical tensors after the selection."""
    cases = _selection_cases() + [as_inputs(_far_outside()), as_inputs(structures()["wire"]), as_inputs(molecule("C60"))]
    for positions, cell, pbc, system_index in cases:
        fast = neighbor_list(positions, cell, pbc, system_index, CUTOFF, k, backend="vesin")
        reference = neighbor_list(positions, cell, pbc, system_index, CUTOFF, k, backend="brute_force")
        assert all(torch.equal(a, b) for a, b in zip(fast, reference))


def test_empty_system_in_batch():
    systems = [molecule("H2O"), bulk("Cu", "fcc", a=3.61)]
    positions = torch.cat([as_inputs(a)[0] for a in systems])
    cell = torch.cat([as_inputs(systems[0])[1], torch.eye(3, dtype=torch.float64)[None] * 5.0, as_inputs(systems[1])[1]])
    pbc = torch.tensor([[False] * 3, [True] * 3, [True] * 3])
    system_index = torch.tensor([0, 0, 0, 2])
    outputs = [neighbor_list(positions, cell, pbc, system_index, CUTOFF, 20, backend=b) for b in BACKENDS]
    assert all(torch.equal(a, b) for out in outputs for a, b in zip(out, outputs[0]))
    assert torch.equal(torch.bincount(outputs[0][0]), torch.tensor([2, 2, 2, 20]))


@pytest.mark.parametrize("periodic", [True, False], ids=["periodic", "molecule"])
def test_non_contiguous_inputs(periodic):
    """Strided views (every other element of positions and pbc, a transposed cell) give the contiguous graph."""
    atoms = random_triclinic(27, 40)
    atoms.pbc = periodic
    positions, cell, pbc, system_index = as_inputs(atoms)
    strided_positions = torch.stack([positions, positions], -1)[..., 0]
    strided_cell = cell.transpose(1, 2).contiguous().transpose(1, 2)
    strided_pbc = torch.stack([pbc, pbc], -1)[..., 0]
    assert not (strided_positions.is_contiguous() or strided_cell.is_contiguous() or strided_pbc.is_contiguous())
    expected = neighbor_list(positions, cell, pbc, system_index, CUTOFF, 20, backend="brute_force")
    for backend in BACKENDS:
        got = neighbor_list(strided_positions, strided_cell, strided_pbc, system_index, CUTOFF, 20, backend=backend)
        assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_scripted_module_equals_eager():
    """TorchScript and eager give the same graph."""
    inputs = as_inputs(bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2))
    module = NeighborList(CUTOFF, 20)
    eager = module(*inputs)
    scripted = torch.jit.script(module)(*inputs)
    assert all(torch.equal(a, b) for a, b in zip(eager, scripted))


def test_verlet_auto_reuse_equals_rebuild():
    atoms = random_triclinic(15, 60)
    positions, cell, pbc, system_index = as_inputs(atoms)
    verlet = VerletNeighborList(CUTOFF, 20, skin=0.4)
    generator = torch.Generator().manual_seed(1)
    for _ in range(40):
        positions = positions + 0.05 * torch.randn(positions.shape, generator=generator, dtype=positions.dtype)
        reused = verlet(positions, cell, pbc, system_index)
        fresh = neighbor_list(positions, cell, pbc, system_index, cutoff=CUTOFF, max_neighbors=20, backend="brute_force")
        assert all(torch.equal(a, b) for a, b in zip(reused, fresh))
    assert 1 < verlet.builds < 40
