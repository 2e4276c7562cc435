"""Compiled neighbour-list ops (``torch.ops.orb_md_graph``), built lazily at first use; see :mod:`.native_source`.

- :func:`knn_graph`: cell list + cutoff + k-nearest selection in one pass, straight from positions (the CPU default);
- :func:`knn_select`: the cutoff + k-nearest selection of given candidate pairs (vesin search, Verlet reuse).

Both return exactly what the pure-torch path of :mod:`orb_md.graph.knn` returns (same lengths, same tie rule,
same order), which stays the TorchScript / CUDA fallback. Work is spread over torch's intra-op threads.

The extension is compiled with ``torch.utils.cpp_extension.load_inline`` (no network needed; needs a C++
compiler and ninja) into ``$TORCH_EXTENSIONS_DIR`` (default ``$ORB_MD_CACHE/torch_extensions``, :mod:`orb_md.cache`). If the build
fails, one warning is emitted and the torch path is used. ``ORB_MD_NATIVE_KNN=0`` disables the ops.
"""

import hashlib
import os
import warnings

import torch

from orb_md.cache import cache_root
from orb_md.graph.native_source import SOURCE

_state = {"tried": False, "ok": False}

# Å; the prefilter on wrapped positions keeps pairs closer than cutoff + this, which covers the rounding difference
# between wrapped-frame and canonical lengths (~1e-15 × coordinates) with a wide margin.
PREFILTER_MARGIN = 1e-4


def _extensions_dir() -> str:
    return os.environ.get("TORCH_EXTENSIONS_DIR") or str(cache_root() / "torch_extensions")


def _load() -> None:
    """Register the ``torch.ops.orb_md_graph`` ops, compiling them if this process has not got them yet."""
    if hasattr(torch.ops.orb_md_graph, "knn_graph"):
        return
    from torch.utils import cpp_extension

    # one directory per source version: checkouts with different sources never rebuild or load each other's op
    name = "orb_md_graph_ops_" + hashlib.sha256(SOURCE.encode()).hexdigest()[:12]
    directory = os.path.join(_extensions_dir(), "torch-" + torch.__version__.replace("+", "_"), name)
    os.makedirs(directory, exist_ok=True)
    cpp_extension.load_inline(
        name=name,
        cpp_sources=[SOURCE],
        extra_cflags=["-O3", "-fopenmp", "-ffp-contract=off"],  # no fused multiply-add: lengths as in torch
        extra_ldflags=["-fopenmp"],
        build_directory=directory,
        is_python_module=False,
        verbose=False,
    )
    torch.ops.orb_md_graph.knn_graph  # noqa: B018  (raises if the ops are still not registered)


def native_available() -> bool:
    """True when the compiled ops are loaded (builds them on the first call; False, with one warning, if that fails)."""
    if _state["tried"]:
        return _state["ok"]
    _state["tried"] = True
    if os.environ.get("ORB_MD_NATIVE_KNN", "1") == "0":
        return False
    try:
        _load()
        _state["ok"] = True
    except Exception as error:  # no compiler / ninja / headers: fall back to the torch selection
        message = " ".join(str(error).split())[:200]
        warnings.warn(
            f"orb_md: compiled neighbour-list ops unavailable ({type(error).__name__}: {message}); "
            "using the torch fallback",
            RuntimeWarning,
            stacklevel=2,
        )
    return _state["ok"]


def knn_select(
    positions: torch.Tensor,
    cell: torch.Tensor,
    system_index: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    shifts: torch.Tensor,
    cutoff: float,
    max_neighbors: int,
    quantum: float = 1e-8,
) -> torch.Tensor:
    """Indices of the kept candidates (int64 shifts), grouped by sender in tie-rule order; needs :func:`native_available`."""
    return torch.ops.orb_md_graph.knn_select(
        positions.to(torch.float64), cell.to(torch.float64), system_index, senders, receivers, shifts,
        float(cutoff), float(quantum), int(max_neighbors),
    )


def knn_graph(
    positions: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    system_index: torch.Tensor,
    cutoff: float,
    max_neighbors: int,
    quantum: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(senders, receivers, int64 unit shifts) of the graph, as :func:`orb_md.graph.knn.select_neighbors` defines it.

    Needs :func:`native_available`; inputs as validated by :func:`orb_md.graph.validation.input_problem`."""
    return torch.ops.orb_md_graph.knn_graph(
        positions.to(torch.float64), cell.to(torch.float64), pbc, system_index,
        float(cutoff), float(cutoff) + PREFILTER_MARGIN, float(quantum), int(max_neighbors),
    )


@torch.jit.unused
def native_graph(
    positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor, cutoff: float,
    max_neighbors: int,
) -> list[torch.Tensor]:
    """[senders, receivers, int64 unit shifts] of :func:`knn_graph`, or [] off CPU or without the ops (eager only)."""
    if positions.device.type != "cpu" or not native_available():
        return []
    return list(knn_graph(positions, cell, pbc, system_index, cutoff, max_neighbors))
