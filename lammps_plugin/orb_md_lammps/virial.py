"""Corrections to LAMMPS's global virial W_ab = sum x_a f_b (fdotr), so that the pressure is Orb's stress.

With the orb_md LAMMPS patch (``data.add_virial``) every rank adds its own share directly. On a stock
LAMMPS the correction is carried by forces: +g and -g on two periodic copies p, q of one atom (same tag,
so both reach the same owner: net force zero) add (x_p - x_q) (x) g to the fdotr virial; one rank whose
separations can carry the whole (allreduced) correction applies it. The separations span the periodic
directions only, which suffices when the correction's components W_ab (a <= b, the six LAMMPS keeps) with
a non-periodic are zero: always in 3D and for slabs, not for a wire's yz.
"""

from __future__ import annotations

import numpy as np

from orb_md_lammps.graph import OrbLammpsError


def allreduce(comm, array: np.ndarray) -> np.ndarray:
    """Sum over ranks (identity without MPI)."""
    if comm is None:
        return array
    from mpi4py import MPI

    out = np.empty_like(array)
    comm.Allreduce(np.ascontiguousarray(array), out, op=MPI.SUM)
    return out


def add_to_virial(data, comm, delta_local: np.ndarray, x: np.ndarray, tags: np.ndarray) -> None:
    """Add sum over ranks of ``delta_local`` (3x3, this rank's share) to LAMMPS's global virial."""
    if hasattr(data, "add_virial"):
        d = np.asarray(delta_local, dtype=np.float64)
        data.add_virial(np.array([d[0, 0], d[1, 1], d[2, 2], d[0, 1], d[0, 2], d[1, 2]]))
        return
    delta = allreduce(comm, np.ascontiguousarray(delta_local, dtype=np.float64).reshape(-1)).reshape(3, 3)
    carriers = _image_forces(x, tags, delta)
    rank = 0 if comm is None else comm.Get_rank()
    able = rank if carriers is not None else 1 << 30
    if comm is not None:
        from mpi4py import MPI

        able = comm.allreduce(able, op=MPI.MIN)
    if able >= 1 << 30:
        raise OrbLammpsError(
            "orb_md: no rank holds periodic copies of an atom that can carry the virial correction "
            "(build LAMMPS with lammps_plugin/patches/mliap-halo-exchange.patch, which adds data.add_virial)"
        )
    if rank == able:
        (p, q), g = carriers
        f = data.f
        for k in range(len(p)):
            f[p[k]] += g[k]
            f[q[k]] -= g[k]


def _image_forces(x: np.ndarray, tags: np.ndarray, delta: np.ndarray):
    """((p, q), g): forces g_k on p_k and -g_k on q_k with sum_k (x_p - x_q)_k (x) g_k = ``delta`` in the six
    components LAMMPS keeps (a <= b), or None when this rank's periodic copies cannot carry it."""
    pairs = _image_pairs(x, tags)
    if pairs is None:
        return None
    (p, q), lattice = pairs
    g = np.linalg.lstsq(lattice.T, delta, rcond=None)[0]  # rows g_k: sum_k L_k (x) g_k = delta on span(L)
    upper = np.triu_indices(3)
    if not np.allclose((lattice.T @ g)[upper], delta[upper], rtol=0, atol=1e-12 * max(1.0, np.abs(delta).max())):
        return None
    return (p, q), g


def _image_pairs(x: np.ndarray, tags: np.ndarray):
    """Up to three (p, q) atom pairs with equal tags whose separations L_k = x_p - x_q are independent."""
    order = np.argsort(tags, kind="stable")
    st = tags[order]
    same = np.nonzero(st[1:] == st[:-1])[0]
    if same.size == 0:
        return None
    p_all, q_all = order[same + 1], order[same]
    sep = x[p_all] - x[q_all]
    _, first = np.unique(np.rint(sep * 1e3).astype(np.int64), axis=0, return_index=True)
    p_all, q_all, sep = p_all[first], q_all[first], sep[first]
    chosen: list[int] = []
    basis = np.zeros((0, 3))
    # prefer short, well-conditioned separations
    for idx in np.argsort(np.linalg.norm(sep, axis=1)):
        trial = np.vstack([basis, sep[idx]])
        if np.linalg.matrix_rank(trial, tol=1e-6 * max(1.0, np.abs(trial).max())) == trial.shape[0]:
            basis = trial
            chosen.append(int(idx))
            if len(chosen) == 3:
                break
    return (p_all[chosen], q_all[chosen]), basis
