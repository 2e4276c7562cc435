"""nvalchemi-toolkit-ops backend: brute force's graph everywhere, one call per batch, no dropped pairs, eager only."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from orb_md.errors import InputError
from orb_md.graph import NeighborList, VerletNeighborList, neighbor_list
from orb_md.graph.knn import select_neighbors
from tests.test_neighbors import _far_outside, as_inputs, random_triclinic, structures

pytest.importorskip("nvalchemiops.torch.neighbors", reason="nvalchemi-toolkit-ops is not installed (orb-md[nvalchemi])")

from orb_md.graph import nvalchemi_search  # noqa: E402  (imports Warp: only once the package is known to be there)

CUTOFF = 6.0


def cases() -> dict[str, Atoms]:
    """Random triclinic, tiny (many images, overflowing the first matrix width), slabs, wires, molecules."""
    rng = np.random.default_rng(21)
    slab = bulk("Cu", "fcc", a=3.61, cubic=True) * (3, 3, 2)
    slab.pbc, slab.cell[2] = (True, True, False), 0.0  # zero row for the open direction, atoms far from the origin
    slab.positions += [0.0, 0.0, 50.0]
    tilted_wire = random_triclinic(22, 20)
    tilted_wire.pbc = (False, True, False)
    spread = random_triclinic(23, 20)
    spread.pbc = (True, False, True)
    spread.positions += 10.0 * rng.standard_normal((20, 3))
    return {
        **structures(),
        "triclinic_150": random_triclinic(24, 150),
        "far_outside": _far_outside(),
        "slab_zero_row": slab,
        "tilted_wire": tilted_wire,
        "spread_slab": spread,
        "cube_1A": Atoms("X", positions=[[0.2, 0.1, 0.3]], cell=np.eye(3), pbc=True),  # 894 neighbours
        "tiny_triclinic": Atoms(
            "X2", positions=[[0, 0, 0], [0.3, 0.2, 0.1]], cell=[[1.2, 0, 0], [0.9, 0.8, 0], [0.5, 0.4, 0.7]], pbc=True
        ),
        "c60": molecule("C60"),
        "benzene_flat": molecule("C6H6"),
    }


def batched(systems: list[Atoms], dtype=torch.float64):
    inputs = [as_inputs(a, dtype) for a in systems]
    return (
        torch.cat([x[0] for x in inputs]),
        torch.cat([x[1] for x in inputs]),
        torch.cat([x[2] for x in inputs]),
        torch.cat([torch.full((len(a),), b) for b, a in enumerate(systems)]),
    )


def assert_same_graph(inputs, k: int) -> None:
    expected = neighbor_list(*inputs, cutoff=CUTOFF, max_neighbors=k, backend="brute_force")
    got = neighbor_list(*inputs, cutoff=CUTOFF, max_neighbors=k, backend="nvalchemi")
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


@pytest.fixture(params=["naive", "cell_list"])
def method(request, monkeypatch):
    """Run a test through nvalchemiops' all-pairs kernel and through its cell list."""
    monkeypatch.setattr(nvalchemi_search, "NAIVE_MAX_ATOMS", 1 << 30 if request.param == "naive" else 0)
    return request.param


@pytest.mark.parametrize("name", list(cases()))
def test_single_systems_equal_brute_force(name, method, one_thread):
    for k in (20, 120, -1):
        assert_same_graph(as_inputs(cases()[name]), k)


def test_mixed_batch_equals_brute_force(method, one_thread):
    assert_same_graph(batched(list(cases().values())), 20)
    assert_same_graph(batched(list(cases().values())), -1)


@pytest.mark.parametrize("k", [20, 120])
@pytest.mark.parametrize("atoms", [bulk("Cu", "fcc", a=3.61), bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)])
def test_fcc_ties_equal_brute_force(atoms, k, method, one_thread):
    """Perfect fcc Cu: whole shells at equal distance; the tie rule decides, the same for every backend."""
    assert_same_graph(as_inputs(atoms), k)


def test_float32_input_searched_in_float64(one_thread):
    systems = [random_triclinic(25, 40), molecule("CH4"), bulk("Cu", "fcc", a=3.61)]
    assert_same_graph(batched(systems, torch.float32), 20)


def test_batch_is_one_call(monkeypatch, method, one_thread):
    import nvalchemiops.torch.neighbors as library

    calls = []
    original = library.neighbor_list
    monkeypatch.setattr(library, "neighbor_list", lambda *a, **kw: calls.append(kw["method"]) or original(*a, **kw))
    systems = [random_triclinic(seed, n) for seed, n in zip(range(30, 94), range(8, 72))]
    for atoms in systems:  # liquid density (0.1 atoms/Å³), so the first matrix width holds every neighbour
        atoms.set_cell(atoms.cell * (len(atoms) / 0.1 / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
    neighbor_list(*batched(systems), cutoff=CUTOFF, max_neighbors=20, backend="nvalchemi")
    assert calls == ["batch_" + method]


def test_overflow_widens_and_repeats(one_thread):
    """Starting from a 16-column matrix, every pair is still found: the search repeats with the counted width."""
    inputs = batched([cases()["cube_1A"], random_triclinic(26, 30)])
    search = nvalchemi_search.NvalchemiSearch(CUTOFF + 1e-4)
    search.capacity = 16
    candidates = search(*inputs)
    assert search.capacity >= 894 and search.capacity % 16 == 0  # 894 neighbours in the 1 Å cube
    positions, cell, _, system_index = inputs
    got = select_neighbors(positions, cell, system_index, *candidates, CUTOFF, -1)
    reference = neighbor_list(*inputs, cutoff=CUTOFF, max_neighbors=-1, backend="brute_force")
    assert all(torch.equal(a, b) for a, b in zip(got, reference))


def test_empty_system_in_batch(one_thread):
    positions, cell, pbc, system_index = batched([molecule("H2O"), bulk("Cu", "fcc", a=3.61)])
    cell = torch.cat([cell[:1], torch.eye(3, dtype=cell.dtype)[None] * 5.0, cell[1:]])
    pbc = torch.cat([pbc[:1], pbc[1:], pbc[1:]])
    system_index = torch.where(system_index == 1, 2, system_index)
    assert_same_graph((positions, cell, pbc, system_index), 20)


def test_eager_modules_work_and_scripting_is_refused(one_thread):
    inputs = as_inputs(bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2))
    expected = neighbor_list(*inputs, cutoff=CUTOFF, max_neighbors=20, backend="brute_force")
    modules = (NeighborList(CUTOFF, 20, "nvalchemi"), VerletNeighborList(CUTOFF, 20, skin=0.5, backend="nvalchemi"))
    for module in modules:
        assert all(torch.equal(a, b) for a, b in zip(module(*inputs), expected))
        with pytest.raises(InputError, match="'nvalchemi' is not TorchScript-able"):
            torch.jit.script(module)


def test_concurrent_first_use_with_empty_kernel_cache(tmp_path):
    """Two fresh processes JIT-compiling the kernels into one empty Warp cache at once (as pytest-xdist workers do)."""
    script = (
        "import torch\n"
        "from ase.build import bulk\n"
        "from orb_md.graph import neighbor_list\n"
        "from tests.test_neighbors import as_inputs\n"
        "inputs = as_inputs(bulk('Cu', 'fcc', a=3.61))\n"
        "a = neighbor_list(*inputs, cutoff=6.0, max_neighbors=20, backend='nvalchemi')\n"
        "b = neighbor_list(*inputs, cutoff=6.0, max_neighbors=20, backend='brute_force')\n"
        "assert all(torch.equal(x, y) for x, y in zip(a, b))\n"
    )
    env = {**os.environ, "WARP_CACHE_PATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    workers = [
        subprocess.Popen([sys.executable, "-c", script], cwd=root, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr[-2000:]
    assert not [p for p in tmp_path.rglob("*") if re.search(r"_p\d+_t\d+$", p.name)]  # no half-built module left


@pytest.mark.parametrize("periodic", [True, False], ids=["periodic", "molecule"])
def test_non_contiguous_inputs_equal_brute_force(periodic, method, one_thread):
    """Strided views (every other element of positions and pbc, a transposed cell), as every other backend takes."""
    atoms = random_triclinic(27, 40)
    atoms.pbc = periodic
    positions, cell, pbc, system_index = as_inputs(atoms)
    strided_positions = torch.stack([positions, positions], -1)[..., 0]
    strided_cell = cell.transpose(1, 2).contiguous().transpose(1, 2)
    strided_pbc = torch.stack([pbc, pbc], -1)[..., 0]
    assert not (strided_positions.is_contiguous() or strided_cell.is_contiguous() or strided_pbc.is_contiguous())
    assert torch.equal(strided_positions, positions) and torch.equal(strided_cell, cell)
    assert_same_graph((strided_positions, strided_cell, strided_pbc, system_index), 20)
