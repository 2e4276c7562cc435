"""``MLIAPUnified`` subclass running an orb_md Orb-v3 model inside LAMMPS.

Graph, per force call: pairs of LAMMPS's full neighbour list within 2*rcutfac = 6 Å are Orb edges,
k nearest per sender with a decomposition-independent tie key (:mod:`orb_md_lammps.graph`). Three modes
(``mode``/``ORB_MD_LAMMPS_MODE``; ``auto`` picks fold on one rank, exchange on several when the LAMMPS
build has the halo exchange, else halo), all exact:

* ``fold`` (1 rank): every ghost is folded onto its owner by tag; the graph has the nlocal atoms as
  nodes (exactly the periodic graph orb_md builds); the normal comm cutoff suffices.
* ``exchange`` (any number of ranks; LAMMPS with lammps_plugin/patches/mliap-halo-exchange.patch): each
  rank evaluates the edges of its own atoms and exchanges node features with its neighbours between the
  message-passing layers (:mod:`orb_md_lammps.exchange`); the normal comm cutoff suffices and the work
  per rank is that of its own atoms.
* ``halo`` (stock LAMMPS, several ranks): ``pair_style mliap unified file 1`` + ``comm_modify cutoff
  >= 36 + 2*skin``; the GNN runs redundantly on local + ghost atoms within 5 hops of the local ones.

Device: ``device`` at export (``cpu``, ``cuda``, ``cuda:N``), overridden at run time by ``ORB_MD_LAMMPS_DEVICE``;
``cuda`` without an index puts MPI rank k on GPU k mod (GPUs visible). LAMMPS's arrays stay on the host: each
force call copies the graph to the device once and the results back once (plus the small allreduced sums).

Global quantities (pooled features, N, references, ZBL, the net direct force) are MPI-allreduced
(:mod:`orb_md_lammps.evaluate`). Conservative models return fij = dE/dr_ij; direct models write their
forces into ``atom->f``; the global virial is corrected to Orb's stress (:mod:`orb_md_lammps.virial`).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import sys
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

from ase.data import atomic_numbers, chemical_symbols

from orb_md.batch import check_atomic_numbers
from orb_md.charge_spin import check_charge_spin
from orb_md.devices import parse_device, resolve_device
from orb_md.errors import InputError
from orb_md.training_elements import warn_untrained_elements
from orb_md.units import MAX_ATOMIC_NUMBER
from orb_md_lammps import exchange
from orb_md_lammps.charge_spin import system_charge_spin
from orb_md_lammps.evaluate import evaluate, write_direct_forces
from orb_md_lammps.graph import OrbLammpsError, check_halo, fold_onto_owners, hops_from_local, nearest_per_sender
from orb_md_lammps.virial import add_to_virial, allreduce

# LAMMPS's pair_coeff matches these names and calls no Python: every symbol stays in the table (element
# index + 1 == Z), so that the plugin can name an element the model does not take at the first force call.
ELEMENT_TABLE = list(chemical_symbols[1:])
MODEL_ELEMENTS = ELEMENT_TABLE[:MAX_ATOMIC_NUMBER]  # H..Ts: what Orb-v3 takes
MODES = ("auto", "fold", "exchange", "halo")
DEVICE_VARIABLE = "ORB_MD_LAMMPS_DEVICE"


COUPLING_TYPES = ("mliap_unified_couple.MLIAPDataPy", "mliap_unified_couple_kokkos.MLIAPDataPy")


def _data_pointer(data) -> int:
    """The C++ ``MLIAPData *`` of the coupling's Python object {PyObject_HEAD; MLIAPData *data}.

    Read only after checking that ``data`` is exactly that Cython type with that layout under CPython, so a
    foreign object or another build gives an error instead of a read of arbitrary memory."""
    kind = type(data)
    head = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)  # PyObject_HEAD
    name = f"{kind.__module__}.{kind.__qualname__}"
    if (sys.implementation.name != "cpython" or name not in COUPLING_TYPES
            or kind.__basicsize__ != head + ctypes.sizeof(ctypes.c_void_p)):
        raise OrbLammpsError(
            f"orb_md: the ML-IAP data is a {name} of {kind.__basicsize__} bytes under {sys.implementation.name}; "
            f"orb_md_lammps needs LAMMPS's {COUPLING_TYPES[0]} ({head + ctypes.sizeof(ctypes.c_void_p)} bytes, "
            "CPython): this LAMMPS build's ML-IAP Python coupling is not supported")
    pointer = ctypes.c_void_p.from_address(id(data) + head).value
    if not pointer:
        raise OrbLammpsError("orb_md: the ML-IAP data holds no MLIAPData (pair style not initialised)")
    return pointer


def _file_being_loaded() -> str | None:
    """The file ``torch.load`` is reading while it unpickles the caller (LAMMPS passes the object no name)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is torch.serialization.load.__code__:
            f = frame.f_locals.get("f")
            return os.fspath(f) if isinstance(f, (str, os.PathLike)) else None
        frame = frame.f_back
    return None


def _lammps_handle(data) -> Any:
    """A ``lammps.lammps`` object for the LAMMPS instance that owns ``data``.

    The plain coupling exposes no atom tags, box or units. MLIAPData derives from Pointers
    {vptr; LAMMPS *lmp; ...}. The pointer read this way is verified (atom->f from the handle must be data.f).
    """
    import lammps

    lmp_ptr = ctypes.c_void_p.from_address(_data_pointer(data) + ctypes.sizeof(ctypes.c_void_p)).value
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    lmp = lammps.lammps(ptr=new_capsule(lmp_ptr, None, None))
    f_lmp = lmp.numpy.extract_atom("f", nelem=data.ntotal)
    if f_lmp is None or f_lmp.ctypes.data != data.f.ctypes.data:
        raise OrbLammpsError("orb_md: cannot locate the LAMMPS instance from the ML-IAP data (unsupported coupling)")
    return lmp


class OrbMLIAPUnified(MLIAPUnified):
    """Orb-v3 for ``pair_style mliap unified``. Picklable: keeps config + state dict.

    ``element_types`` (given to LAMMPS) is every chemical symbol, so ``pair_coeff * * Cu O`` works with any type
    order; the model takes ``elements`` (default H..Ts, Z = 1..117, or the exported ``--elements``), checked at
    the first force call with an error naming the element and the model file. ``charge`` and ``spin`` (OMol
    models only) are the system's total charge and spin multiplicity, unless the LAMMPS input overrides them
    (:mod:`orb_md_lammps.charge_spin`).
    """

    def __init__(self, model, element_types: list[str] | None = None, mode: str = "auto",
                 charge: float | None = None, spin: float | None = None, device: str = "cpu") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        unknown = [s for s in element_types or [] if s not in atomic_numbers]
        if unknown:
            raise InputError(f"unknown element symbol(s) {unknown}")
        check_atomic_numbers([atomic_numbers[s] for s in element_types or []], "elements")
        parse_device(device)
        config = model.config
        if config.charge_spin and not model.conservative:
            raise InputError(
                f"{config.name} cannot run in LAMMPS: direct forces need a fully periodic box there, and this "
                "model has no stress head for the virial; use orb-v3-conservative-omol"
            )
        check_charge_spin(config, charge, spin)
        self.charge_spin = {"charge": charge, "spin": spin}
        super().__init__(
            element_types=list(ELEMENT_TABLE),
            ndescriptors=1,
            nparams=1,
            rcutfac=0.5 * float(config.cutoff),
        )
        self.config_dict = dataclasses.asdict(config)
        self.zero_net_force = bool(model.zero_net_force)
        parameter = next(model.parameters())
        self.dtype_name = str(parameter.dtype).removeprefix("torch.")
        self.state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self.training_elements = model.training_elements
        self.elements = list(element_types) if element_types else MODEL_ELEMENTS
        if element_types:
            warn_untrained_elements(model, [atomic_numbers[s] for s in element_types])
        self.mode = mode
        self.device = str(device)  # where the model runs; resolved (and checked) at the first force call
        self._source = None
        self._model = None
        self._lmp = None
        self._lmp_key = None
        self.last: dict = {}

    # -- pickling: weights only, the torch module is rebuilt lazily ------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("_model", "_lmp", "_lmp_key", "_source", "interface", "last"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("elements", [s for s in state["element_types"] if s in MODEL_ELEMENTS])  # older files
        self.__dict__.update(state)
        self._model, self._lmp, self._lmp_key, self.interface, self.last = None, None, None, None, {}
        self._source = _file_being_loaded()

    @property
    def model(self):
        if self._model is None:
            from orb_md.model.config import OrbConfig
            from orb_md.model.orb import OrbModel

            config = OrbConfig(**self.config_dict)
            model = OrbModel(config, zero_net_force=self.zero_net_force)
            model.load_state_dict(self.state)
            device = self._run_device()
            model = model.to(device=device, dtype=getattr(torch, self.dtype_name)).eval()
            model.training_elements = getattr(self, "training_elements", None)
            for p in model.parameters():
                p.requires_grad_(False)
            self._model = model
            self._z_of_elem = torch.tensor(
                [chemical_symbols.index(s) for s in self.element_types], dtype=torch.long, device=device
            )
        return self._model

    def _run_device(self) -> torch.device:
        """The export's device or ``$ORB_MD_LAMMPS_DEVICE``; plain ``cuda``: this MPI rank's share of the GPUs."""
        name = os.environ.get(DEVICE_VARIABLE) or getattr(self, "device", "cpu")  # files older than the option: cpu
        try:
            device = resolve_device(name)
        except InputError as error:
            source = f"${DEVICE_VARIABLE}" if os.environ.get(DEVICE_VARIABLE) else "the exported device"
            raise OrbLammpsError(f"orb_md: {source}: {error}") from None
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", getattr(self, "_rank", 0) % torch.cuda.device_count())
        return device

    def compute_descriptors(self, data) -> None:
        pass

    def compute_gradients(self, data) -> None:
        pass

    # -- LAMMPS side ------------------------------------------------------------------
    def _check_elements(self, elems: np.ndarray) -> None:
        """Refuse atoms of elements the model does not take, naming them and the model file (on every rank:
        the element counts are allreduced, so no rank goes on into the collective evaluation alone)."""
        takes = np.isin(self.element_types, self.elements)
        counts = allreduce(self._comm, np.bincount(elems, minlength=takes.size).astype(np.float64))
        refused = np.nonzero((counts > 0) & ~takes)[0]
        if refused.size == 0:
            return
        names = ", ".join(f"{self.element_types[e]} (Z={e + 1})" for e in refused)
        source = f"model file {self._source}" if self._source else "the loaded model"
        accepted = (f"Orb-v3 takes Z = 1..{MAX_ATOMIC_NUMBER}" if self.elements == MODEL_ELEMENTS
                    else f"it was exported with --elements {' '.join(self.elements)}")
        raise OrbLammpsError(f"orb_md: pair_coeff maps atom types to {names}, which {source} does not take "
                             f"({accepted})")

    def _setup(self, data):
        if "kokkos" in type(data).__module__.lower():
            raise OrbLammpsError(
                "orb_md: the KOKKOS ML-IAP coupling (pair_style mliap/kk, -sf kk) is not supported: "
                "run pair_style mliap unified without -k on/-sf kk"
            )
        key = _data_pointer(data)
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
            self._rank = 0 if self._comm is None else self._comm.Get_rank()
        return self._lmp

    def _choose_mode(self, data) -> str:
        mode = self.mode if self.mode != "auto" else os.environ.get("ORB_MD_LAMMPS_MODE", "auto")
        if mode not in MODES:
            raise OrbLammpsError(f"orb_md: ORB_MD_LAMMPS_MODE must be one of {MODES}, got {mode!r}")
        can_exchange = hasattr(data, "forward_exchange")
        if mode == "auto":
            return "fold" if self._nprocs == 1 else "exchange" if can_exchange else "halo"
        if mode == "exchange" and not can_exchange:
            raise OrbLammpsError(
                "orb_md: exchange mode needs LAMMPS built with lammps_plugin/patches/mliap-halo-exchange.patch "
                "(scripts/build_lammps.sh applies it)"
            )
        if mode == "fold" and self._nprocs > 1:
            raise OrbLammpsError("orb_md: fold mode runs on one MPI rank only")
        return mode

    def _graph(self, lmp, mode: str, pair_i: np.ndarray, pair_j: np.ndarray, rij: np.ndarray, tags: np.ndarray,
               x: np.ndarray, nlocal: int, ntotal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(indices of the listed pairs used as edges, senders, receivers, LAMMPS rows of the graph's nodes);
        senders and receivers index the nodes. fold: the local atoms; exchange: all rows; halo: the rows within
        5 hops of the local atoms, local ones first."""
        if mode == "halo":
            if ntotal > nlocal and pair_i.size and pair_i.max() < nlocal:
                raise OrbLammpsError(
                    "orb_md: halo mode needs 'pair_style mliap unified <file> 1' (ghost neighbours) "
                    "and 'comm_modify cutoff' >= 36 + 2*skin"
                )
            pidx = np.arange(pair_i.size)
        else:
            pidx = np.nonzero(pair_i < nlocal)[0]
        pidx = pidx[nearest_per_sender(pair_i[pidx], tags[pair_j[pidx]], rij[pidx], self.model.config.max_neighbors)]
        senders, receivers = pair_i[pidx], pair_j[pidx]
        if mode == "fold":
            return pidx, senders, fold_onto_owners(tags, nlocal)[receivers], np.arange(nlocal)
        if mode == "exchange":
            return pidx, senders, receivers, np.arange(ntotal)
        layers = self.model.config.num_message_passing
        depth = hops_from_local(senders, receivers, nlocal, ntotal, layers)
        keep = np.minimum(depth[senders], depth[receivers]) < layers
        pidx, senders, receivers = pidx[keep], senders[keep], receivers[keep]
        check_halo(lmp, x, nlocal, depth <= layers, 2.0 * self.rcutfac)
        nodes = np.nonzero(depth <= layers)[0]  # local atoms first (indices < nlocal)
        remap = np.full(ntotal, -1, dtype=np.int64)
        remap[nodes] = np.arange(nodes.size)
        return pidx, remap[senders], remap[receivers], nodes

    def compute_forces(self, data) -> None:
        lmp = self._setup(data)
        nlocal, ntotal = int(data.nlocal), int(data.ntotal)
        if int(data.nlistatoms) != nlocal:
            raise OrbLammpsError("orb_md: atoms of NULL types (pair_style hybrid) are not supported")
        elems = np.array(data.elems[:ntotal], dtype=np.int64)
        if ntotal and elems.min() < 0:
            raise OrbLammpsError("orb_md: every atom type must be mapped to an element in pair_coeff")
        self._check_elements(elems)
        periodicity = lmp.extract_box()[5]
        if self.config_dict["kind"] == "direct" and not all(periodicity):
            boundary = " ".join("p" if periodic else "f" for periodic in periodicity)
            raise OrbLammpsError(f"orb_md: direct Orb models need a fully periodic box, this one is {boundary} "
                                 "(non-periodic: f, s or m): use a conservative model")
        model = self.model
        device = self._z_of_elem.device
        charge, spin = system_charge_spin(lmp, model.config, getattr(self, "charge_spin", {}), device)
        mode = self._choose_mode(data)
        comm = self._comm
        npairs = int(data.npairs)
        pair_i = np.array(data.pair_i[:npairs], dtype=np.int64)
        pair_j = np.array(data.pair_j[:npairs], dtype=np.int64)
        rij = np.array(data.rij[:npairs], dtype=np.float64)
        tags = np.array(lmp.numpy.extract_atom("id", nelem=ntotal), dtype=np.int64).reshape(-1)[:ntotal]
        x = np.array(lmp.numpy.extract_atom("x", nelem=ntotal), dtype=np.float64)[:ntotal]
        if ntotal and tags.max() <= 0:
            raise OrbLammpsError("orb_md: atom IDs are required (do not use 'atom_modify id no')")

        pidx, senders, receivers, nodes = self._graph(lmp, mode, pair_i, pair_j, rij, tags, x, nlocal, ntotal)
        rows = ntotal if mode == "exchange" else nlocal  # rows of atom->f a direct model writes

        z = self._z_of_elem[torch.from_numpy(elems[nodes]).to(device)]
        warn_untrained_elements(model, z)
        s, r = torch.from_numpy(senders).to(device), torch.from_numpy(receivers).to(device)
        if mode == "exchange":
            def features(vectors):
                return model.owned_node_features(z, vectors, s, r, nlocal, exchange.summing_into_owners(data),
                                                 exchange.copying_to_ghosts(data), charge, spin)
        else:
            system = torch.zeros(z.shape[0], dtype=torch.long, device=device)

            def features(vectors):
                return model.node_features(z, vectors, s, r, system, charge, spin)

        result = evaluate(model, comm, z, s, r, rij[pidx], nlocal, features)
        if model.conservative:
            fij = np.zeros((npairs, 3), dtype=np.float64)
            fij[pidx] = result["edge_grad"]
            data.update_pair_forces(np.ascontiguousarray(fij))
            # Orb is not rotation invariant: its stress is the symmetric part of -sum r (x) dE/dr, while
            # LAMMPS reads W_xy, W_xz, W_yz of the raw fdotr sum (on any boundary: slabs and wires too).
            w = -rij.T @ fij  # this rank's fdotr virial, W_ab = sum x_a f_b
            add_to_virial(data, comm, -0.5 * (w - w.T), x, tags)
        else:
            write_direct_forces(data, lmp, comm, model, result, z, s, r, nlocal, rows, x, tags, 1.0 / self._nprocs)
        data.eatoms = np.ascontiguousarray(result["eatoms"], dtype=np.float64)
        data.energy = float(result["eatoms"].sum())
        self.last = {"energy": result["energy"], "mode": mode, "nodes": int(nodes.size), "edges": int(pidx.size)}
        if os.environ.get("ORB_MD_LAMMPS_VERBOSE"):
            rank = 0 if comm is None else comm.Get_rank()
            print(f"orb_md_lammps: rank {rank} mode {mode} nlocal {nlocal} ntotal {ntotal} pairs {npairs} "
                  f"graph nodes {nodes.size} edges {pidx.size} energy {result['energy']:.10f}", flush=True)


def make_unified(model, element_types: list[str] | None = None, mode: str = "auto",
                 charge: float | None = None, spin: float | None = None, device: str = "cpu") -> OrbMLIAPUnified:
    """The object to ``torch.save`` (or ``lammps.mliap.load_unified``) for a loaded OrbModel."""
    return OrbMLIAPUnified(model, element_types=element_types, mode=mode, charge=charge, spin=spin, device=device)
