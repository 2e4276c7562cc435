"""``MLIAPUnified`` subclass running an orb_md Orb-v3 model inside LAMMPS.

Graph, per force call (``compute_forces``):

* pairs come from LAMMPS's full neighbour list, r_ij = x_j - x_i < 2*rcutfac = 6 Å; a pair
  (i, j) is the Orb edge sender i -> receiver j with vector r_ij;
* k nearest per sender with a decomposition-independent tie key: distance on a 1e-8 Å grid,
  then the neighbour's global atom tag, then r_ij (each component on the 1e-8 Å grid,
  lexicographically) -- the same physical graph on every rank and rank count.

Two modes (chosen per call):

* ``fold`` (1 MPI rank): every ghost is folded onto its owner by tag, the graph has the
  nlocal atoms as nodes (exactly the periodic graph orb_md builds), the normal comm cutoff
  suffices and ``ghostneigh`` may be 0 or 1;
* ``halo`` (>1 rank): ``pair_style mliap unified file 1`` + ``comm_modify cutoff >= 36 + 2*skin``;
  the GNN runs redundantly on local + ghost atoms (pruned to 5 hops from the local atoms),
  the pooled node mean, atom count, reference and ZBL sums are MPI-allreduced, and only
  the local atoms' contributions are differentiated, so the per-rank pair forces sum to the
  exact single-process result.

Conservative models return fij = dE/dr_ij (LAMMPS adds +fij to i, -fij to j; virial by
F.r, per-atom virial tallied). Direct models write their forces into ``atom->f`` of the
local atoms and set the global virial to the model's stress with equal-and-opposite force
pairs on two periodic copies of the same atom (net force zero, fdotr virial = L (x) g).

Per-atom energy convention (sums exactly to Orb's total):
``e_i = (E - sum_refs - E_zbl)/N + ref(Z_i) + zbl_i`` with zbl_i = V_i/N (conservative) or
V_i (direct), V_i = ZBL half-pair energies of i's edges as sender.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
from typing import Any

import numpy as np
import torch

try:  # the embedded interpreter of LAMMPS has it; plain imports (export, tests) may not
    from lammps.mliap.mliap_unified_abc import MLIAPUnified
except ImportError:  # pragma: no cover - lets `export` run without a LAMMPS build
    class MLIAPUnified:  # type: ignore[no-redef]
        def __init__(self, interface=None, element_types=None, ndescriptors=None, nparams=None, rcutfac=None):
            self.interface, self.element_types = interface, element_types
            self.ndescriptors, self.nparams, self.rcutfac = ndescriptors, nparams, rcutfac

from ase.data import chemical_symbols

QUANTUM = 1e-8  # Å, tie grid (same as orb_md.graph.knn)
ALL_ELEMENTS = list(chemical_symbols[1:119])  # H..Og: element index + 1 == Z


class OrbLammpsError(RuntimeError):
    """A setup problem; the message is printed by LAMMPS before it stops."""


def _lammps_handle(data) -> Any:
    """A ``lammps.lammps`` object for the LAMMPS instance that owns ``data``.

    The plain coupling exposes no atom tags, box or units. ``MLIAPDataPy`` is a Cython object
    {PyObject_HEAD; MLIAPData *data}; MLIAPData derives from Pointers {vptr; LAMMPS *lmp; ...}.
    The pointer read this way is verified below (atom->f from the handle must be data.f).
    """
    import lammps

    head = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
    mliap_data = ctypes.c_void_p.from_address(id(data) + head).value
    lmp_ptr = ctypes.c_void_p.from_address(mliap_data + ctypes.sizeof(ctypes.c_void_p)).value
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    lmp = lammps.lammps(ptr=new_capsule(lmp_ptr, None, None))
    f_lmp = lmp.numpy.extract_atom("f", nelem=data.ntotal)
    if f_lmp is None or f_lmp.ctypes.data != data.f.ctypes.data:
        raise OrbLammpsError("orb_md: cannot locate the LAMMPS instance from the ML-IAP data (unsupported coupling)")
    return lmp


def _allreduce(comm, array: np.ndarray) -> np.ndarray:
    if comm is None:
        return array
    from mpi4py import MPI

    out = np.empty_like(array)
    comm.Allreduce(np.ascontiguousarray(array), out, op=MPI.SUM)
    return out


class OrbMLIAPUnified(MLIAPUnified):
    """Orb-v3 for ``pair_style mliap unified``. Picklable: keeps config + state dict.

    ``element_types`` defaults to all 118 chemical symbols (element index + 1 == Z), so
    ``pair_coeff * * Cu O`` works with any type order and any element the model embeds.
    """

    def __init__(self, model, element_types: list[str] | None = None, mode: str = "auto") -> None:
        config = model.config
        super().__init__(
            element_types=list(element_types) if element_types else ALL_ELEMENTS,
            ndescriptors=1,
            nparams=1,
            rcutfac=0.5 * float(config.cutoff),
        )
        self.config_dict = dataclasses.asdict(config)
        self.zero_net_force = bool(model.zero_net_force)
        parameter = next(model.parameters())
        self.dtype_name = str(parameter.dtype).removeprefix("torch.")
        self.state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self.mode = mode  # "auto" | "fold" | "halo" (halo on 1 rank: tests of the MPI path)
        self._model = None
        self._lmp = None
        self._lmp_key = None
        self.last: dict = {}

    # -- pickling: weights only, the torch module is rebuilt lazily ------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("_model", "_lmp", "_lmp_key", "interface", "last"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._model, self._lmp, self._lmp_key, self.interface, self.last = None, None, None, None, {}

    @property
    def model(self):
        if self._model is None:
            from orb_md.model.config import OrbConfig
            from orb_md.model.orb import OrbModel

            config = OrbConfig(**self.config_dict)
            model = OrbModel(config, zero_net_force=self.zero_net_force)
            model.load_state_dict(self.state)
            model = model.to(getattr(torch, self.dtype_name)).eval()
            for p in model.parameters():
                p.requires_grad_(False)
            self._model = model
            self._z_of_elem = torch.tensor(
                [chemical_symbols.index(s) for s in self.element_types], dtype=torch.long
            )
        return self._model

    def compute_descriptors(self, data) -> None:
        pass

    def compute_gradients(self, data) -> None:
        pass

    # -- LAMMPS side ------------------------------------------------------------------
    def _setup(self, data):
        key = ctypes.c_void_p.from_address(id(data) + ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)).value
        if self._lmp is None or self._lmp_key != key:
            lmp = _lammps_handle(data)
            units = lmp.extract_global("units")
            if units != "metal":
                raise OrbLammpsError(
                    f"orb_md: Orb-v3 needs 'units metal' (Å, eV); this input uses 'units {units}'"
                )
            self._lmp, self._lmp_key = lmp, key
            nprocs = lmp.extract_setting("world_size")
            self._comm = lmp.get_mpi_comm() if nprocs > 1 else None
            self._nprocs = nprocs
        return self._lmp

    def compute_forces(self, data) -> None:
        lmp = self._setup(data)
        model = self.model
        nlocal, ntotal = int(data.nlocal), int(data.ntotal)
        if int(data.nlistatoms) != nlocal:
            raise OrbLammpsError("orb_md: atoms of NULL types (pair_style hybrid) are not supported")
        elems = np.array(data.elems[:ntotal], dtype=np.int64)
        if ntotal and elems.min() < 0:
            raise OrbLammpsError("orb_md: every atom type must be mapped to an element in pair_coeff")
        mode = self.mode if self.mode != "auto" else _env_mode()
        if mode == "auto":
            mode = "halo" if self._nprocs > 1 else "fold"
        comm = self._comm
        npairs = int(data.npairs)
        pair_i = np.array(data.pair_i[:npairs], dtype=np.int64)
        pair_j = np.array(data.pair_j[:npairs], dtype=np.int64)
        rij = np.array(data.rij[:npairs], dtype=np.float64)
        tags = np.array(lmp.numpy.extract_atom("id", nelem=ntotal), dtype=np.int64).reshape(-1)[:ntotal]
        x = np.array(lmp.numpy.extract_atom("x", nelem=ntotal), dtype=np.float64)[:ntotal]
        if ntotal and tags.max() <= 0:
            raise OrbLammpsError("orb_md: atom IDs are required (do not use 'atom_modify id no')")

        if mode == "fold":
            keep = pair_i < nlocal
            owner_of_tag = np.full(int(tags.max()) + 1 if ntotal else 1, -1, dtype=np.int64)
            owner_of_tag[tags[:nlocal]] = np.arange(nlocal)
            owner = owner_of_tag[tags]
            if (owner < 0).any():
                raise OrbLammpsError("orb_md: a ghost atom without a local owner on a single rank")
            pidx = np.nonzero(keep)[0]
            senders, receivers = pair_i[pidx], owner[pair_j[pidx]]
            nodes = np.arange(nlocal)
        else:
            if ntotal > nlocal and npairs and pair_i.max() < nlocal:
                raise OrbLammpsError(
                    "orb_md: with several MPI ranks use 'pair_style mliap unified <file> 1' (ghost neighbours) "
                    "and 'comm_modify cutoff' >= 36 + 2*skin"
                )
            pidx = np.arange(npairs)
            senders, receivers = pair_i, pair_j
            nodes = None
        # k nearest per sender, decomposition-independent tie key
        vec = rij[pidx]
        dist = np.sqrt((vec * vec).sum(1))
        q = np.rint(vec / QUANTUM).astype(np.int64)
        order = np.lexsort((q[:, 2], q[:, 1], q[:, 0], tags[pair_j[pidx]], np.rint(dist / QUANTUM).astype(np.int64), senders))
        s_sorted = senders[order]
        starts = np.searchsorted(s_sorted, s_sorted, side="left")
        rank_in = np.arange(order.size) - starts
        chosen = order[rank_in < model.config.max_neighbors]
        pidx, senders, receivers = pidx[chosen], senders[chosen], receivers[chosen]

        if mode == "halo":
            layers = model.config.num_message_passing
            depth = np.full(ntotal, layers + 1, dtype=np.int64)
            depth[:nlocal] = 0
            for step in range(1, layers + 1):
                near = depth[senders] == step - 1
                depth[receivers[near]] = np.minimum(depth[receivers[near]], step)
                near = depth[receivers] == step - 1
                depth[senders[near]] = np.minimum(depth[senders[near]], step)
            edge_keep = np.minimum(depth[senders], depth[receivers]) < layers
            pidx, senders, receivers = pidx[edge_keep], senders[edge_keep], receivers[edge_keep]
            self._check_halo(lmp, x, nlocal, depth, layers)
            nodes = np.nonzero(depth <= layers)[0]  # local atoms first (indices < nlocal)
            remap = np.full(ntotal, -1, dtype=np.int64)
            remap[nodes] = np.arange(nodes.size)
            senders, receivers = remap[senders], remap[receivers]

        result = self._evaluate(data, lmp, comm, elems[nodes], nlocal, senders, receivers, rij[pidx], x, tags)
        if model.conservative:
            fij = np.zeros((npairs, 3), dtype=np.float64)
            fij[pidx] = result["edge_grad"]
            data.update_pair_forces(np.ascontiguousarray(fij))
            if all(lmp.extract_box()[5]):
                # Orb is not rotation invariant: its stress is the symmetric part of
                # -sum r (x) dE/dr, while LAMMPS reads W_xy, W_xz, W_yz of the raw fdotr sum.
                w = -rij.T @ fij  # this rank's fdotr virial, W_ab = sum x_a f_b
                _apply_virial(data, comm, -0.5 * (w - w.T), x, tags)
        data.eatoms = np.ascontiguousarray(result["eatoms"], dtype=np.float64)
        data.energy = float(result["eatoms"].sum())
        self.last = {"energy": result["energy"], "mode": mode, "nodes": int(nodes.size), "edges": int(pidx.size)}
        if os.environ.get("ORB_MD_LAMMPS_VERBOSE"):
            rank = 0 if comm is None else comm.Get_rank()
            print(f"orb_md_lammps: rank {rank} mode {mode} nlocal {nlocal} ntotal {ntotal} pairs {npairs} "
                  f"graph nodes {nodes.size} edges {pidx.size} energy {result['energy']:.10f}", flush=True)

    def _check_halo(self, lmp, x, nlocal, depth, layers) -> None:
        """Every sender within `layers` hops needs its full 6 Å shell among this rank's atoms."""
        boxlo, boxhi, _xy, _yz, _xz, periodicity, _ = lmp.extract_box()
        sublo = np.array(lmp.extract_global("sublo"), dtype=np.float64)
        subhi = np.array(lmp.extract_global("subhi"), dtype=np.float64)
        ghost = x[nlocal:]
        if ghost.shape[0] == 0:
            return
        inner = x[depth <= layers]
        cut = 2.0 * self.rcutfac
        for d in range(3):
            if not periodicity[d] and sublo[d] <= boxlo[d] and subhi[d] >= boxhi[d]:
                continue
            lo, hi = ghost[:, d].min(), ghost[:, d].max()
            lo_ok = (not periodicity[d] and sublo[d] <= boxlo[d]) or inner[:, d].min() - cut > lo
            hi_ok = (not periodicity[d] and subhi[d] >= boxhi[d]) or inner[:, d].max() + cut < hi
            if not (lo_ok and hi_ok):
                raise OrbLammpsError(
                    "orb_md: the ghost shell is too thin for 5 message-passing layers: use "
                    "'pair_style mliap unified <file> 1' and 'comm_modify cutoff X' with X >= 36 + 2*skin Å"
                )

    def _evaluate(self, data, lmp, comm, elems, nlocal, senders, receivers, vectors_np, x, tags) -> dict:
        model = self.model
        dtype = next(model.parameters()).dtype
        conservative = model.conservative
        z = self._z_of_elem[torch.from_numpy(elems)]
        s = torch.from_numpy(senders)
        r = torch.from_numpy(receivers)
        vectors = torch.from_numpy(vectors_np).to(dtype)
        if conservative:
            vectors.requires_grad_(True)
        n_nodes = z.shape[0]
        system = torch.zeros(n_nodes, dtype=torch.long)
        with torch.set_grad_enabled(conservative):
            h = model.model(z, vectors, s, r, system, None, None)
            local_sum = h[:nlocal].to(torch.float64).sum(0)
            zbl_edge, dzbl = model.pair_repulsion_fn.edge_energy_and_derivative(vectors, z[s], z[r])
            local_edges = s < nlocal
            zbl_atom = torch.zeros(n_nodes, dtype=torch.float64).index_add(0, s, zbl_edge.to(torch.float64))[:nlocal]
            ref = model.heads.energy.reference.linear.weight[z[:nlocal]].to(torch.float64)
            # global sums: pooled features, N, references, ZBL
            packed = np.concatenate(
                [local_sum.detach().numpy(), [float(nlocal), float(ref.sum()), float(zbl_atom.detach().sum())]]
            )
            total = _allreduce(comm, packed)
            n_all = total[-3]
            latent = local_sum.shape[0]
            pooled = torch.tensor(total[:latent] / n_all, dtype=dtype, requires_grad=conservative)
            head = model.heads.energy
            with torch.enable_grad() if conservative else torch.no_grad():
                per_atom = head.normalizer.inverse(head.mlp(pooled[None])).squeeze()
                e_int = per_atom.to(torch.float64) * n_all
                coeff = torch.autograd.grad(e_int, pooled)[0] / n_all if conservative else None
            zbl_total = total[-1] / n_all if conservative else total[-1]
            energy = float(e_int.detach()) + total[-2] + zbl_total
            zbl_i = (zbl_atom / n_all if conservative else zbl_atom).detach().numpy()
            eatoms = (float(e_int.detach()) / n_all) + ref.numpy() + zbl_i
            out = {"energy": energy, "eatoms": eatoms}
            if conservative:
                surrogate = (h[:nlocal].sum(0) * coeff.to(h.dtype)).sum().to(torch.float64)
                surrogate = surrogate + zbl_atom.sum() / n_all
                grad = torch.autograd.grad(surrogate, vectors, allow_unused=True)[0]
                grad = torch.zeros_like(vectors) if grad is None else grad
                out["edge_grad"] = grad.detach().to(torch.float64).numpy()
                return out
        self._direct_forces(data, lmp, comm, model, h.detach(), nlocal, n_all, pooled, s, r, vectors, dzbl, local_edges, x, tags)
        return out

    def _direct_forces(self, data, lmp, comm, model, h, nlocal, n_all, pooled, s, r, vectors, dzbl, local_edges, x, tags):
        boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
        if not all(periodicity):
            raise OrbLammpsError("orb_md: direct Orb models need a fully periodic box (use a conservative model)")
        fhead = model.heads.forces
        forces = fhead.normalizer.inverse(fhead.mlp(h[:nlocal])).to(torch.float64)
        stats = np.concatenate([forces.sum(0).numpy()])
        mean = _allreduce(comm, stats) / n_all
        forces = forces - torch.from_numpy(mean)
        if not self.zero_net_force:
            forces = forces + fhead.normalizer.bn.running_mean.to(torch.float64)
        length = torch.linalg.vector_norm(vectors, dim=1)
        edge_force = ((-dzbl / length)[:, None] * vectors).to(torch.float64)  # on the receiver
        n_nodes = h.shape[0]
        zbl_f = torch.zeros(n_nodes, 3, dtype=torch.float64).index_add(0, r, edge_force).index_add(0, s, -edge_force)
        forces = (forces + zbl_f[:nlocal]).numpy()
        f = data.f
        f[:nlocal] += forces
        # virial: LAMMPS W = sum x (x) f (fdotr) must equal -V * sigma_model
        lx, ly, lz = (boxhi[0] - boxlo[0], boxhi[1] - boxlo[1], boxhi[2] - boxlo[2])
        volume = lx * ly * lz
        sh = model.heads.stress(pooled[None].detach())[0].to(torch.float64).numpy()
        sigma = np.array([[sh[0], sh[5], sh[4]], [sh[5], sh[1], sh[3]], [sh[4], sh[3], sh[2]]])
        ev = (vectors.detach().to(torch.float64)[local_edges, :, None] * edge_force[local_edges, None, :]).sum(0).numpy()
        target = -volume * sigma / (self._nprocs) + 0.5 * (ev + ev.T)
        current = x[:nlocal].T @ forces
        _apply_virial(data, comm, target - current, x, tags)


def _apply_virial(data, comm, delta_local: np.ndarray, x: np.ndarray, tags: np.ndarray) -> None:
    """Add sum_ranks delta_local to LAMMPS's fdotr virial (W_ab = sum x_a f_b).

    Equal and opposite forces +g/-g on two periodic copies p, q of one atom (same tag, so
    both reach the same owner: net force 0) add (x_p - x_q) (x) g to the virial. One rank
    that holds three independent such separations applies the whole (allreduced) delta.
    """
    delta = _allreduce(comm, np.ascontiguousarray(delta_local, dtype=np.float64).reshape(-1)).reshape(3, 3)
    pairs = _image_pairs(x, tags)
    rank = 0 if comm is None else comm.Get_rank()
    able = rank if pairs is not None else 1 << 30
    if comm is not None:
        from mpi4py import MPI

        able = comm.allreduce(able, op=MPI.MIN)
    if able >= 1 << 30:
        raise OrbLammpsError("orb_md: no rank holds three periodic copies of an atom to carry the virial correction")
    if rank == able:
        (p, q), lattice = pairs
        g = np.linalg.solve(lattice.T, delta)  # rows g_k: sum_k L_k (x) g_k = delta
        f = data.f
        for k in range(3):
            f[p[k]] += g[k]
            f[q[k]] -= g[k]


def _image_pairs(x: np.ndarray, tags: np.ndarray):
    """Three (p, q) atom pairs with equal tags whose separations L_k = x_p - x_q are independent."""
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
                return (p_all[chosen], q_all[chosen]), basis
    return None


def make_unified(model, element_types: list[str] | None = None, mode: str = "auto") -> OrbMLIAPUnified:
    """The object to ``torch.save`` (or ``lammps.mliap.load_unified``) for a loaded OrbModel."""
    return OrbMLIAPUnified(model, element_types=element_types, mode=mode)


def _env_mode() -> str:
    return os.environ.get("ORB_MD_LAMMPS_MODE", "auto")
