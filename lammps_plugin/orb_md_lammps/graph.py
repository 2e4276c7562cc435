"""Orb edges from LAMMPS's neighbour list: k nearest per sender, ghost folding, halo pruning.

A listed pair (i, j) with r_ij = x_j - x_i < 6 Å is the Orb edge sender i -> receiver j. The k nearest
receivers per sender are chosen with a decomposition-independent tie key: distance on a 1e-8 Å grid,
then the receiver's global atom ID, then r_ij on the 1e-8 Å grid (x, y, z lexicographically). With
ID = ASE index + 1 this is orb_md's rule (distance, receiver index, shift) except that the last key
is the vector instead of the integer shift: the graphs differ only inside exact ties among images of
the same atom, and never between ranks or rank counts.
"""

from __future__ import annotations

import numpy as np

QUANTUM = 1e-8  # Å, tie grid (same as orb_md.graph.knn)


class OrbLammpsError(RuntimeError):
    """A setup problem; the message is printed by LAMMPS before it stops."""


def nearest_per_sender(senders: np.ndarray, receiver_tags: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """Indices of the pairs kept: the k nearest receivers of every sender by the tie key above."""
    distance = np.sqrt((vectors * vectors).sum(1))
    grid = np.rint(vectors / QUANTUM).astype(np.int64)
    order = np.lexsort(
        (grid[:, 2], grid[:, 1], grid[:, 0], receiver_tags, np.rint(distance / QUANTUM).astype(np.int64), senders)
    )
    ordered = senders[order]
    rank = np.arange(order.size) - np.searchsorted(ordered, ordered, side="left")
    return order[rank < k]


def fold_onto_owners(tags: np.ndarray, nlocal: int) -> np.ndarray:
    """The local row owning each row (one rank: every ghost is a periodic image of a local atom)."""
    owner_of_tag = np.full(int(tags.max()) + 1 if tags.size else 1, -1, dtype=np.int64)
    owner_of_tag[tags[:nlocal]] = np.arange(nlocal)
    owner = owner_of_tag[tags]
    if (owner < 0).any():
        raise OrbLammpsError("orb_md: a ghost atom without a local owner on a single rank")
    return owner


def hops_from_local(senders: np.ndarray, receivers: np.ndarray, nlocal: int, ntotal: int, layers: int) -> np.ndarray:
    """Graph distance (in edges, either direction, capped at layers + 1) of every row from the local atoms."""
    depth = np.full(ntotal, layers + 1, dtype=np.int64)
    depth[:nlocal] = 0
    for step in range(1, layers + 1):
        near = depth[senders] == step - 1
        depth[receivers[near]] = np.minimum(depth[receivers[near]], step)
        near = depth[receivers] == step - 1
        depth[senders[near]] = np.minimum(depth[senders[near]], step)
    return depth


def check_halo(lmp, x: np.ndarray, nlocal: int, used: np.ndarray, cutoff: float) -> None:
    """Every atom the replicated GNN uses needs its full ``cutoff`` shell among this rank's atoms."""
    boxlo, boxhi, _xy, _yz, _xz, periodicity, _ = lmp.extract_box()
    sublo = np.array(lmp.extract_global("sublo"), dtype=np.float64)
    subhi = np.array(lmp.extract_global("subhi"), dtype=np.float64)
    ghost = x[nlocal:]
    if ghost.shape[0] == 0:
        return
    inner = x[used]
    for d in range(3):
        if not periodicity[d] and sublo[d] <= boxlo[d] and subhi[d] >= boxhi[d]:
            continue
        lo, hi = ghost[:, d].min(), ghost[:, d].max()
        lo_ok = (not periodicity[d] and sublo[d] <= boxlo[d]) or inner[:, d].min() - cutoff > lo
        hi_ok = (not periodicity[d] and subhi[d] >= boxhi[d]) or inner[:, d].max() + cutoff < hi
        if not (lo_ok and hi_ok):
            raise OrbLammpsError(
                "orb_md: the ghost shell is too thin for 5 message-passing layers: use "
                "'pair_style mliap unified <file> 1' and 'comm_modify cutoff X' with X >= 36 + 2*skin Å "
                "(or a LAMMPS built with lammps_plugin/patches/mliap-halo-exchange.patch, which needs neither)"
            )
