"""FixedCapacityNeighborList (the static-shape graph for CUDA graphs) against neighbor_list, its overflow reports,
and the harmlessness of its padding edges to every model output."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from orb_md import OrbInputs, build_model
from orb_md.errors import InputError
from orb_md.graph import neighbor_list
from orb_md.graph.fixed_capacity import (
    OVERFLOW_BIN,
    OVERFLOW_CANDIDATES,
    OVERFLOW_CELL,
    OVERFLOW_NOT_FINITE,
    FixedCapacityNeighborList,
)
from orb_md.graph.knn import edge_lengths

CUTOFF = 6.0
TINY = {"latent_dim": 32, "mlp_hidden_dim": 64, "num_message_passing": 2}


def as_inputs(atoms: Atoms, dtype=torch.float64):
    return (
        torch.tensor(atoms.positions, dtype=dtype),
        torch.tensor(atoms.cell.array, dtype=dtype)[None],
        torch.tensor(atoms.pbc)[None],
        torch.zeros(len(atoms), dtype=torch.int64),
    )


def build(atoms: Atoms, k: int, **kwargs) -> FixedCapacityNeighborList:
    cell = torch.tensor(atoms.cell.array) if atoms.pbc.all() else None
    return FixedCapacityNeighborList(len(atoms), CUTOFF, k, cell=cell, **kwargs)


def unpadded(module: FixedCapacityNeighborList, graph, positions, cell):
    """The edges of a padded graph that are not padding (length below the cutoff), checking the padding's form."""
    senders, receivers, shifts = graph[:3]
    model_cell = cell if module.periodic else module.vacuum_cell.to(positions.dtype)
    index = torch.zeros(positions.shape[0], dtype=torch.int64)
    lengths = edge_lengths(positions, model_cell, index, senders, receivers, shifts.long())
    real = lengths < CUTOFF
    assert bool((lengths[~real] >= 2 * CUTOFF).all()) and torch.equal(senders[~real], receivers[~real])
    return senders[real], receivers[real], shifts[real]


def reduced_triclinic(seed: int, n_atoms: int, spacing: float) -> Atoms:
    """A random box in OpenMM's reduced form (a along x, b in xy, |b_x| <= a/2, |c_x| <= a/2, |c_y| <= b_y/2)."""
    rng = np.random.default_rng(seed)
    ax, by, cz = rng.uniform(spacing, 1.3 * spacing, 3)
    cell = [[ax, 0, 0], [rng.uniform(-0.5, 0.5) * ax, by, 0], [rng.uniform(-0.5, 0.5) * ax, rng.uniform(-0.5, 0.5) * by, cz]]
    atoms = Atoms("X" * n_atoms, scaled_positions=rng.random((n_atoms, 3)), cell=cell, pbc=True)
    atoms.positions += rng.integers(-2, 3, (n_atoms, 3)) @ atoms.cell.array  # unwrapped, as OpenMM passes them
    return atoms


def general_triclinic(seed: int, n_atoms: int) -> Atoms:
    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(5.0, 9.0, 3)) + np.triu(rng.uniform(-3.0, 3.0, (3, 3)), 1)
    return Atoms("X" * n_atoms, scaled_positions=rng.random((n_atoms, 3)), cell=cell, pbc=True)


def cases() -> dict[str, Atoms]:
    rng = np.random.default_rng(7)
    skewed = Atoms("X3", positions=[[0, 0, 0], [1.0, 0.5, 0.2], [2.0, 1.1, 0.7]], pbc=True)
    skewed.cell = [[4.0, 0, 0], [3.8, 1.2, 0], [3.7, 1.1, 1.3]]  # plane spacings far below the cutoff: many images
    cluster = Atoms("X" * 1500, positions=rng.random((1500, 3)) * [48.0, 26.0, 26.0], pbc=False)
    return {
        "triclinic_24": general_triclinic(0, 24),
        "triclinic_8": general_triclinic(1, 8),
        "skewed_tiny": skewed,
        "cu_1_atom": bulk("Cu", "fcc", a=3.61),  # ties: 24 equidistant 19th-42nd neighbours
        "cu_fcc_864": bulk("Cu", "fcc", a=3.61, cubic=True) * (6, 6, 6),  # ties, cell list (3 bins per axis)
        "openmm_reduced_1000": reduced_triclinic(2, 1000, 21.0),
        "openmm_reduced_2200": reduced_triclinic(3, 2200, 26.0),
        "benzene": molecule("C6H6"),
        "c60": molecule("C60"),
        "cluster_1500": cluster,
    }


@pytest.mark.parametrize("k", [20, 120])
@pytest.mark.parametrize("name", list(cases()))
def test_equals_neighbor_list(name: str, k: int) -> None:
    atoms = cases()[name]
    positions, cell, pbc, system_index = as_inputs(atoms)
    expected = neighbor_list(positions, cell, pbc, system_index, CUTOFF, k)
    methods = ["brute_force"] + (["cell_list"] if not atoms.pbc.all() or len(atoms) > 500 else [])
    for method in methods:
        module = build(atoms, k, method=method)
        graph = module(positions, cell)
        assert graph[0].shape == (len(atoms) * k,) and graph[2].shape == (len(atoms) * k, 3)
        assert int(graph[3]) == 0
        got = unpadded(module, graph, positions, cell)
        assert all(torch.equal(a, b) for a, b in zip(got, expected)), f"{name} {method}: {module.layout}"


def test_auto_method_and_float32() -> None:
    atoms = cases()["openmm_reduced_2200"]
    positions, cell, pbc, system_index = as_inputs(atoms, torch.float32)
    module = build(atoms, 20)
    assert module.method == "cell_list"
    graph = module(positions, cell)
    assert graph[2].dtype == torch.float32
    expected = neighbor_list(positions, cell, pbc, system_index, CUTOFF, 20)
    assert all(torch.equal(a, b) for a, b in zip(unpadded(module, graph, positions, cell), expected))
    assert build(cases()["c60"], 20).method == "brute_force"


@pytest.mark.parametrize("method", ["cell_list", "brute_force"])
def test_scripted_and_reloaded_equal_eager(method: str) -> None:
    atoms = cases()["cu_fcc_864"]
    atoms = atoms.copy()
    atoms.rattle(0.05, seed=3)
    positions, cell = as_inputs(atoms)[:2]
    module = build(atoms, 20, method=method)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    buffer.seek(0)
    reloaded = torch.jit.load(buffer)
    expected = module(positions, cell)
    assert all(torch.equal(a, b) for a, b in zip(reloaded(positions, cell), expected))


def test_box_may_shrink_by_the_slack_only() -> None:
    atoms = cases()["openmm_reduced_1000"]
    positions, cell, pbc, system_index = as_inputs(atoms)
    # 21-27 Å plane spacings: 3-4 bins of >= 6.6 Å, or 1 image per axis (enough down to 6.6 Å)
    for method, too_small in (("cell_list", 0.8), ("brute_force", 0.2)):
        module = build(atoms, 20, method=method, raise_on_overflow=False)
        squeezed = 0.93  # plane spacings 7 % smaller: within the default 10 % slack
        graph = module(positions * squeezed, cell * squeezed)
        assert int(graph[3]) == 0
        expected = neighbor_list(positions * squeezed, cell * squeezed, pbc, system_index, CUTOFF, 20)
        assert all(torch.equal(a, b) for a, b in zip(unpadded(module, graph, positions * squeezed, cell * squeezed), expected))
        assert int(module(positions * too_small, cell * too_small)[3]) & OVERFLOW_CELL, method
        with pytest.raises(ValueError, match="the cell shrank .* build a new one for the current cell"):
            build(atoms, 20, method=method)(positions * too_small, cell * too_small)


def test_overfull_bin_is_reported_not_hidden() -> None:
    atoms = cases()["cu_fcc_864"]
    positions, cell, pbc, system_index = as_inputs(atoms)  # 32 atoms per bin
    module = build(atoms, 20, method="cell_list", bin_capacity=24, raise_on_overflow=False)
    graph = module(positions, cell)
    assert int(graph[3]) == OVERFLOW_BIN
    expected = neighbor_list(positions, cell, pbc, system_index, CUTOFF, 20)
    assert not all(torch.equal(a, b) for a, b in zip(unpadded(module, graph, positions, cell), expected))
    with pytest.raises(ValueError, match="a cell-list bin holds 32 atoms, more than bin_capacity=24"):
        build(atoms, 20, method="cell_list", bin_capacity=24)(positions, cell)
    with pytest.raises(Exception, match="bin_capacity=24"):  # the scripted module raises too
        torch.jit.script(build(atoms, 20, method="cell_list", bin_capacity=24))(positions, cell)


def test_candidate_capacity_covers_ties_or_reports() -> None:
    """Perfect fcc Cu, k = 20: the 20th neighbour lies in a shell of 24 equidistant atoms (19th-42nd)."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (6, 6, 6)
    positions, cell, pbc, system_index = as_inputs(atoms)
    expected = neighbor_list(positions, cell, pbc, system_index, CUTOFF, 20)
    short = build(atoms, 20, candidate_capacity=40, raise_on_overflow=False)
    assert int(short(positions, cell)[3]) == OVERFLOW_CANDIDATES
    with pytest.raises(ValueError, match="more than candidate_capacity=40"):
        build(atoms, 20, candidate_capacity=40)(positions, cell)
    assert int(build(atoms, 20, candidate_capacity=42, raise_on_overflow=False)(positions, cell)[3]) == OVERFLOW_CANDIDATES
    enough = build(atoms, 20, candidate_capacity=43)  # the 43rd is in the next shell: a gap after the 20th
    graph = enough(positions, cell)
    assert int(graph[3]) == 0
    assert all(torch.equal(a, b) for a, b in zip(unpadded(enough, graph, positions, cell), expected))


@pytest.mark.parametrize("name", ["cu_fcc_864", "c60"])
def test_non_finite_positions_are_flagged(name: str) -> None:
    atoms = cases()[name]
    positions, cell = as_inputs(atoms)[:2]
    positions[5, 1] = float("nan")
    module = build(atoms, 20, raise_on_overflow=False)
    assert int(module(positions, cell)[3]) & OVERFLOW_NOT_FINITE
    with pytest.raises(ValueError, match="NaN"):
        build(atoms, 20)(positions, cell)


def test_bad_construction_and_input() -> None:
    cell = torch.eye(3) * 10.0
    with pytest.raises(InputError, match="max_neighbors"):
        FixedCapacityNeighborList(10, CUTOFF, -1)
    with pytest.raises(InputError, match="candidate_capacity must exceed max_neighbors"):
        FixedCapacityNeighborList(10, CUTOFF, 20, candidate_capacity=20)
    with pytest.raises(InputError, match="singular"):
        FixedCapacityNeighborList(10, CUTOFF, 20, cell=torch.zeros(3, 3))
    with pytest.raises(InputError, match="method='cell_list' needs 3 bins"):
        FixedCapacityNeighborList(10, CUTOFF, 20, cell=cell, method="cell_list")
    with pytest.raises(InputError, match="unknown method"):
        FixedCapacityNeighborList(10, CUTOFF, 20, method="vesin")
    module = FixedCapacityNeighborList(10, CUTOFF, 20, cell=cell)
    with pytest.raises(ValueError, match=r"positions must have shape \(10, 3\)"):
        module(torch.zeros(11, 3), cell[None])
    with pytest.raises(ValueError, match=r"cell must have shape \(1, 3, 3\)"):
        module(torch.zeros(10, 3), cell)


@pytest.mark.parametrize("name", ["orb-v3-direct-20-omat", "orb-v3-conservative-20-omat",
                                  "orb-v3-direct-inf-omat", "orb-v3-conservative-inf-omat"])
def test_padding_changes_no_model_output(name: str) -> None:
    """Energy, forces, stress and confidence with the padded graph equal those with the exact graph (float64)."""
    model = build_model(name, seed=0, dtype=torch.float64, **TINY)
    k = model.config.max_neighbors
    crystal = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    crystal.rattle(0.1, seed=1)
    water = molecule("H2O")
    cluster = Atoms(numbers=list(water.numbers) * 4,
                    positions=np.concatenate([water.positions + shift for shift in np.eye(4, 3) * 2.9 + 0.1]))
    for atoms in (crystal, cluster):
        positions, cell, pbc, system_index = as_inputs(atoms)
        numbers = torch.tensor(atoms.numbers)
        edges = neighbor_list(positions, cell, pbc, system_index, CUTOFF, k)
        exact = model(OrbInputs(positions, numbers, cell, pbc, *edges, system_index))
        module = build(atoms, k)
        graph = module(positions, cell)
        assert graph[0].shape[0] == len(atoms) * k >= edges[0].shape[0]
        assert atoms is crystal or graph[0].shape[0] > edges[0].shape[0]  # the cluster's graph has padding
        model_cell = cell if module.periodic else module.vacuum_cell
        padded = model(OrbInputs(positions, numbers, model_cell, pbc, *graph[:3], system_index))
        assert set(padded) == set(exact)
        for key in exact:
            torch.testing.assert_close(padded[key], exact[key], rtol=0.0, atol=1e-12, msg=f"{name} {key}")
