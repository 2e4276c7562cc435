"""Orb edges from LAMMPS's neighbour list: k nearest per sender, ghost folding, halo pruning.

A listed pair (i, j) with r_ij = x_j - x_i < 6 Å is the Orb edge sender i -> receiver j. The k nearest
receivers per sender are chosen by orb_md's tie rule (orb_md.graph.knn), with the receiver's global atom
ID - 1 as its index: the same graph as orb_md.graph.neighbor_list for ID = ASE index + 1, on any number of
ranks.
"""

from __future__ import annotations

import numpy as np
import torch

from orb_md.graph.knn import edge_length, tie_keys
from orb_md.graph.knn import nearest_per_sender as nearest_by_tie_rule


class OrbLammpsError(RuntimeError):
    """A setup problem; the message is printed by LAMMPS before it stops."""


def nearest_per_sender(senders: np.ndarray, receiver_tags: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """Indices of the pairs kept: the k nearest receivers of every sender, grouped by sender in tie-rule order."""
    if senders.size == 0:
        return np.zeros(0, dtype=np.int64)
    v = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float64))
    key_a, key_b = tie_keys(edge_length(v), torch.from_numpy(receiver_tags.astype(np.int64) - 1), v)
    sender = torch.from_numpy(senders.astype(np.int64))
    return nearest_by_tie_rule(sender, key_a, key_b, int(sender.max()) + 1, k).numpy()


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
