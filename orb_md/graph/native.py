"""Compiled k-nearest selection (C++ op ``torch.ops.orb_md_graph.knn_select``), built lazily at first use.

The op does, in one pass over the candidate pairs, what :func:`orb_md.graph.knn.select_neighbors` does in torch
after the distances are known: the strict cutoff filter, the removal of i→i with zero shift, a counting sort by
sender and, per sender, ``std::nth_element`` + ``std::sort`` under the tie rule (distance quantised with
``nearbyint(d / quantum)`` exactly like ``torch.round(d / quantum)``, then receiver, then shift x, y, z). Output:
the indices of the kept candidates, grouped by ascending sender and sorted by the tie rule within a sender, so
the result is bit-identical to the pure-torch path (which stays the TorchScript / CUDA fallback). Senders are
processed in parallel with ``at::parallel_for`` (torch's thread count).

The extension is compiled with ``torch.utils.cpp_extension.load_inline`` (no network needed; needs a C++
compiler and ninja) into ``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/orb-md/torch_extensions``). If the build
fails, one warning is emitted and the torch path is used. ``ORB_MD_NATIVE_KNN=0`` disables the op.
"""

import os
import warnings

import torch

_SOURCE = r"""
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace orb_md_graph {

struct Entry {
  int64_t q;  // quantised distance
  int64_t e;  // candidate index
};

at::Tensor knn_select(const at::Tensor& distance, const at::Tensor& senders, const at::Tensor& receivers,
                      const at::Tensor& shifts, int64_t n_atoms, double cutoff, double quantum, int64_t k) {
  TORCH_CHECK(distance.device().is_cpu() && senders.device().is_cpu() && receivers.device().is_cpu() &&
                  shifts.device().is_cpu(), "knn_select: CPU tensors only");
  TORCH_CHECK(distance.scalar_type() == at::kDouble, "knn_select: distance must be float64");
  TORCH_CHECK(senders.scalar_type() == at::kLong && receivers.scalar_type() == at::kLong &&
                  shifts.scalar_type() == at::kLong, "knn_select: senders, receivers, shifts must be int64");
  const int64_t n = distance.numel();
  TORCH_CHECK(senders.numel() == n && receivers.numel() == n && shifts.dim() == 2 && shifts.size(0) == n &&
                  shifts.size(1) == 3, "knn_select: inconsistent shapes");
  TORCH_CHECK(k == -1 || k > 0, "knn_select: k must be positive or -1");
  at::Tensor dc = distance.contiguous(), sc = senders.contiguous(), rc = receivers.contiguous(),
             hc = shifts.contiguous();
  const double* d = dc.data_ptr<double>();
  const int64_t* s = sc.data_ptr<int64_t>();
  const int64_t* r = rc.data_ptr<int64_t>();
  const int64_t* h = hc.data_ptr<int64_t>();

  auto keep = [&](int64_t e) {
    return d[e] < cutoff && (s[e] != r[e] || h[3 * e] != 0 || h[3 * e + 1] != 0 || h[3 * e + 2] != 0);
  };
  std::vector<int64_t> start(n_atoms + 1, 0);
  for (int64_t e = 0; e < n; ++e) {
    if (keep(e)) {
      TORCH_CHECK(s[e] >= 0 && s[e] < n_atoms, "knn_select: sender out of range");
      ++start[s[e] + 1];
    }
  }
  for (int64_t i = 0; i < n_atoms; ++i) start[i + 1] += start[i];
  std::vector<Entry> items(start[n_atoms]);
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t e = 0; e < n; ++e) {
      if (keep(e)) items[fill[s[e]]++] = Entry{static_cast<int64_t>(std::nearbyint(d[e] / quantum)), e};
    }
  }
  std::vector<int64_t> out_start(n_atoms + 1, 0);
  for (int64_t i = 0; i < n_atoms; ++i) {
    const int64_t m = start[i + 1] - start[i];
    out_start[i + 1] = out_start[i] + (k < 0 ? m : std::min(k, m));
  }
  at::Tensor out = at::empty({out_start[n_atoms]}, sc.options());
  int64_t* o = out.data_ptr<int64_t>();
  auto less = [r, h](const Entry& a, const Entry& b) {
    if (a.q != b.q) return a.q < b.q;
    if (r[a.e] != r[b.e]) return r[a.e] < r[b.e];
    for (int c = 0; c < 3; ++c) {
      if (h[3 * a.e + c] != h[3 * b.e + c]) return h[3 * a.e + c] < h[3 * b.e + c];
    }
    return false;
  };
  at::parallel_for(0, n_atoms, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      Entry* first = items.data() + start[i];
      Entry* last = items.data() + start[i + 1];
      const int64_t kept = out_start[i + 1] - out_start[i];
      if (kept < last - first) std::nth_element(first, first + kept, last, less);
      std::sort(first, first + kept, less);
      int64_t* dst = o + out_start[i];
      for (int64_t j = 0; j < kept; ++j) dst[j] = first[j].e;
    }
  });
  return out;
}

}  // namespace orb_md_graph

TORCH_LIBRARY(orb_md_graph, m) {
  m.def("knn_select(Tensor distance, Tensor senders, Tensor receivers, Tensor shifts, int n_atoms, float cutoff, "
        "float quantum, int k) -> Tensor");
}

TORCH_LIBRARY_IMPL(orb_md_graph, CPU, m) { m.impl("knn_select", &orb_md_graph::knn_select); }
"""

_state = {"tried": False, "ok": False}


def _extensions_dir() -> str:
    return os.environ.get("TORCH_EXTENSIONS_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "orb-md", "torch_extensions"
    )


def _load() -> None:
    """Register ``torch.ops.orb_md_graph.knn_select``, compiling it if this process has not got it yet."""
    if hasattr(torch.ops.orb_md_graph, "knn_select"):
        return
    from torch.utils import cpp_extension

    directory = os.path.join(_extensions_dir(), "torch-" + torch.__version__.replace("+", "_"), "orb_md_graph_ops")
    os.makedirs(directory, exist_ok=True)
    cpp_extension.load_inline(
        name="orb_md_graph_ops",
        cpp_sources=[_SOURCE],
        extra_cflags=["-O3", "-fopenmp"],
        extra_ldflags=["-fopenmp"],
        build_directory=directory,
        is_python_module=False,
        verbose=False,
    )
    torch.ops.orb_md_graph.knn_select  # noqa: B018  (raises if the op is still not registered)


def native_available() -> bool:
    """True when the compiled op is loaded (builds it on the first call; False, with one warning, if that fails)."""
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
            f"orb_md: compiled k-NN selection unavailable ({type(error).__name__}: {message}); using the torch fallback",
            RuntimeWarning,
            stacklevel=2,
        )
    return _state["ok"]


def knn_select(
    distance: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    shifts: torch.Tensor,
    n_atoms: int,
    cutoff: float,
    max_neighbors: int,
    quantum: float = 1e-8,
) -> torch.Tensor:
    """Indices of the kept candidates (see module doc); requires :func:`native_available`."""
    return torch.ops.orb_md_graph.knn_select(
        distance, senders, receivers, shifts, int(n_atoms), float(cutoff), float(quantum), int(max_neighbors)
    )
