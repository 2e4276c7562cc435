"""C++ source of the compiled neighbour-list ops (``torch.ops.orb_md_graph``); built by :mod:`orb_md.graph.native`.

Both ops compute every edge length with the canonical float64 formula of :func:`orb_md.graph.knn.edge_lengths`,

    t = (s0·c[0] + s1·c[1]) + s2·c[2]    v = (x[r] − x[s]) + t    |v| = sqrt((vx·vx + vy·vy) + vz·vz),

term by term in IEEE double (compiled with ``-ffp-contract=off``: no fused multiply-add), so lengths, the strict
cutoff and the 1e-8 Å tie grid are bit-identical to the torch path on any device. The tie rule (quantised
distance, receiver, shift x, y, z) orders each sender's edges; ``nth_element`` + ``sort`` keep the k first.

- ``knn_select``: from given candidate pairs, the indices of the kept ones (grouped by sender, tie-rule order).
- ``knn_graph``: the whole graph from positions. Per system, a cell list in the fractional frame (bins about half
  the search radius thick, periodic bin wrap with image shifts, so cells smaller than the cutoff and skewed cells
  need no ghost atoms; runs of bins adjacent in memory with the same image are scanned as one). Per sender:
  (1) squared distances on wrapped positions, kept below ``search_radius``² (search_radius − cutoff is a margin
  far above the rounding difference between wrapped-frame and canonical lengths); (2) with a cap k, only the
  candidates within that margin of the k-th smallest wrapped-frame distance can be among the k nearest, so only
  those (≈ k) get (3) the canonical length on the original positions, the strict cutoff and the tie rule.
  Senders run in parallel over chunks of bins; memory is positions, bins and output (linear in N).
"""

SOURCE = r"""
#include <ATen/Parallel.h>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

namespace orb_md_graph {

// Canonical length of x[r] - x[s] + shift @ cell (cell: 3x3 row-major, rows = lattice vectors).
inline double canonical_length(const double* xs, const double* xr, const double* c, const int64_t* shift) {
  const double s0 = static_cast<double>(shift[0]), s1 = static_cast<double>(shift[1]),
               s2 = static_cast<double>(shift[2]);
  double v[3];
  for (int a = 0; a < 3; ++a) {
    const double t = (s0 * c[a] + s1 * c[3 + a]) + s2 * c[6 + a];
    v[a] = (xr[a] - xs[a]) + t;
  }
  return std::sqrt((v[0] * v[0] + v[1] * v[1]) + v[2] * v[2]);
}

inline int64_t quantise(double d, double quantum) { return static_cast<int64_t>(std::nearbyint(d / quantum)); }

struct Edge {  // one candidate receiver of a sender
  int64_t q;         // quantised distance
  int64_t r;         // receiver
  int64_t shift[3];  // unit cell shift
};

inline bool tie_less(const Edge& a, const Edge& b) {
  if (a.q != b.q) return a.q < b.q;
  if (a.r != b.r) return a.r < b.r;
  if (a.shift[0] != b.shift[0]) return a.shift[0] < b.shift[0];
  if (a.shift[1] != b.shift[1]) return a.shift[1] < b.shift[1];
  return a.shift[2] < b.shift[2];
}

// Keep the k first edges by the tie rule (all if k < 0), sorted; returns how many are kept.
inline int64_t keep_nearest(std::vector<Edge>& edges, int64_t k) {
  const int64_t m = static_cast<int64_t>(edges.size());
  const int64_t kept = k < 0 ? m : std::min(k, m);
  if (kept < m) std::nth_element(edges.begin(), edges.begin() + kept, edges.end(), tie_less);
  std::sort(edges.begin(), edges.begin() + kept, tie_less);
  return kept;
}

void check_inputs(const at::Tensor& positions, const at::Tensor& cell, const at::Tensor& system_index) {
  TORCH_CHECK(positions.device().is_cpu() && cell.device().is_cpu() && system_index.device().is_cpu(),
              "orb_md_graph: CPU tensors only");
  TORCH_CHECK(positions.scalar_type() == at::kDouble && cell.scalar_type() == at::kDouble,
              "orb_md_graph: positions and cell must be float64");
  TORCH_CHECK(system_index.scalar_type() == at::kLong, "orb_md_graph: system_index must be int64");
  TORCH_CHECK(positions.dim() == 2 && positions.size(1) == 3 && system_index.dim() == 1 &&
                  system_index.size(0) == positions.size(0) && cell.dim() == 3 && cell.size(1) == 3 &&
                  cell.size(2) == 3, "orb_md_graph: inconsistent shapes");
}

// ---------------------------------------------------------------- selection from given candidate pairs
at::Tensor knn_select(const at::Tensor& positions, const at::Tensor& cell, const at::Tensor& system_index,
                      const at::Tensor& senders, const at::Tensor& receivers, const at::Tensor& shifts,
                      double cutoff, double quantum, int64_t k) {
  check_inputs(positions, cell, system_index);
  TORCH_CHECK(senders.device().is_cpu() && receivers.device().is_cpu() && shifts.device().is_cpu(),
              "knn_select: CPU tensors only");
  TORCH_CHECK(senders.scalar_type() == at::kLong && receivers.scalar_type() == at::kLong &&
                  shifts.scalar_type() == at::kLong, "knn_select: senders, receivers, shifts must be int64");
  const int64_t n = senders.numel(), n_atoms = positions.size(0);
  TORCH_CHECK(receivers.numel() == n && shifts.dim() == 2 && shifts.size(0) == n && shifts.size(1) == 3,
              "knn_select: inconsistent shapes");
  TORCH_CHECK(k == -1 || k > 0, "knn_select: k must be positive or -1");
  at::Tensor xc = positions.contiguous(), cc = cell.contiguous(), bc = system_index.contiguous(),
             sc = senders.contiguous(), rc = receivers.contiguous(), hc = shifts.contiguous();
  const double* x = xc.data_ptr<double>();
  const double* c = cc.data_ptr<double>();
  const int64_t* system = bc.data_ptr<int64_t>();
  const int64_t* s = sc.data_ptr<int64_t>();
  const int64_t* r = rc.data_ptr<int64_t>();
  const int64_t* h = hc.data_ptr<int64_t>();
  for (int64_t e = 0; e < n; ++e) {
    TORCH_CHECK(s[e] >= 0 && s[e] < n_atoms && r[e] >= 0 && r[e] < n_atoms, "knn_select: atom index out of range");
  }
  // quantised canonical length of every candidate, -1 for the dropped ones
  std::vector<int64_t> q(n);
  at::parallel_for(0, n, 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t e = lo; e < hi; ++e) {
      const int64_t* shift = h + 3 * e;
      const bool self = s[e] == r[e] && shift[0] == 0 && shift[1] == 0 && shift[2] == 0;
      const double d = canonical_length(x + 3 * s[e], x + 3 * r[e], c + 9 * system[s[e]], shift);
      q[e] = (d < cutoff && !self) ? quantise(d, quantum) : -1;
    }
  });
  // counting sort of the kept candidates by sender
  std::vector<int64_t> start(n_atoms + 1, 0);
  for (int64_t e = 0; e < n; ++e) start[s[e] + 1] += q[e] >= 0;
  for (int64_t i = 0; i < n_atoms; ++i) start[i + 1] += start[i];
  std::vector<int64_t> order(start[n_atoms]);
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t e = 0; e < n; ++e) {
      if (q[e] >= 0) order[fill[s[e]]++] = e;
    }
  }
  std::vector<int64_t> out_start(n_atoms + 1, 0);
  for (int64_t i = 0; i < n_atoms; ++i) {
    const int64_t m = start[i + 1] - start[i];
    out_start[i + 1] = out_start[i] + (k < 0 ? m : std::min(k, m));
  }
  at::Tensor out = at::empty({out_start[n_atoms]}, sc.options());
  int64_t* o = out.data_ptr<int64_t>();
  auto less = [&](int64_t a, int64_t b) {
    if (q[a] != q[b]) return q[a] < q[b];
    if (r[a] != r[b]) return r[a] < r[b];
    for (int j = 0; j < 3; ++j) {
      if (h[3 * a + j] != h[3 * b + j]) return h[3 * a + j] < h[3 * b + j];
    }
    return false;
  };
  at::parallel_for(0, n_atoms, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      int64_t* first = order.data() + start[i];
      int64_t* last = order.data() + start[i + 1];
      const int64_t kept = out_start[i + 1] - out_start[i];
      if (kept < last - first) std::nth_element(first, first + kept, last, less);
      std::sort(first, first + kept, less);
      std::copy(first, first + kept, o + out_start[i]);
    }
  });
  return out;
}

// ---------------------------------------------------------------- cell list + selection
using Vec3 = std::array<double, 3>;

inline Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

inline Vec3 unit(const Vec3& a) {
  const double n = std::sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]);
  return {a[0] / n, a[1] / n, a[2] / n};
}

// Basis of one system: periodic rows are the lattice vectors, the others complete them with orthonormal
// vectors perpendicular to the periodic ones. Fractional coordinates f = x @ inverse; along a periodic
// direction they are those of the projection on the periodic sub-lattice.
struct Frame {
  double basis[3][3];
  double inverse[3][3];
  double spacing[3];  // distance between the planes f_p = const and f_p = const + 1
  bool periodic[3];
};

Frame make_frame(const double* c, const bool* pbc) {
  Frame f;
  std::vector<int> open;
  for (int p = 0; p < 3; ++p) {
    f.periodic[p] = pbc[p];
    for (int a = 0; a < 3; ++a) f.basis[p][a] = pbc[p] ? c[3 * p + a] : 0.0;
    if (!pbc[p]) open.push_back(p);
  }
  auto row = [&](int p) { return Vec3{f.basis[p][0], f.basis[p][1], f.basis[p][2]}; };
  auto set = [&](int p, const Vec3& v) { for (int a = 0; a < 3; ++a) f.basis[p][a] = v[a]; };
  if (open.size() == 3) {
    for (int p = 0; p < 3; ++p) set(p, Vec3{p == 0 ? 1.0 : 0.0, p == 1 ? 1.0 : 0.0, p == 2 ? 1.0 : 0.0});
  } else if (open.size() == 2) {
    const int p = 3 - open[0] - open[1];
    const Vec3 a = unit(row(p));
    int least = 0;  // Cartesian axis least aligned with a
    for (int j = 1; j < 3; ++j) if (std::abs(a[j]) < std::abs(a[least])) least = j;
    Vec3 e{0.0, 0.0, 0.0};
    e[least] = 1.0;
    const Vec3 u = unit(cross(a, e));
    set(open[0], u);
    set(open[1], unit(cross(a, u)));
  } else if (open.size() == 1) {
    const int p = (open[0] + 1) % 3, q = (open[0] + 2) % 3;
    set(open[0], unit(cross(row(p), row(q))));
  }
  const double(*m)[3] = f.basis;
  const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                     m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  TORCH_CHECK(det != 0.0 && std::isfinite(det), "knn_graph: degenerate cell");
  for (int a = 0; a < 3; ++a) {
    for (int p = 0; p < 3; ++p) {  // inverse[a][p] = cofactor[p][a] / det
      const int p1 = (p + 1) % 3, p2 = (p + 2) % 3, a1 = (a + 1) % 3, a2 = (a + 2) % 3;
      f.inverse[a][p] = (m[p1][a1] * m[p2][a2] - m[p1][a2] * m[p2][a1]) / det;
    }
  }
  for (int p = 0; p < 3; ++p) {
    const double norm = std::sqrt(f.inverse[0][p] * f.inverse[0][p] + f.inverse[1][p] * f.inverse[1][p] +
                                  f.inverse[2][p] * f.inverse[2][p]);
    f.spacing[p] = 1.0 / norm;
  }
  return f;
}

struct Output {  // kept edges of a range of senders, in sender order
  std::vector<int64_t> receiver;
  std::vector<int64_t> shift;  // 3 per edge
};

struct Near {  // a candidate of stage 1: squared wrapped-frame distance, bin-order slot, neighbourhood
  double d2;
  int32_t slot;
  int32_t hood;
};

struct Neighbourhood {  // one bin around a central bin
  int64_t begin, end;   // slots of its atoms in bin order
  double translation[3];
  int64_t shift[3];
};

// Edges of the atoms first .. first + n - 1 (one system) into outputs (one per chunk of bins);
// records for every atom its chunk and its first edge there.
void system_graph(const double* x, const double* c, const bool* pbc, int64_t first, int64_t n, double cutoff,
                  double search_radius, double quantum, int64_t k, std::vector<Output>& outputs,
                  std::vector<int64_t>& atom_chunk, std::vector<int64_t>& atom_begin, std::vector<int64_t>& atom_count) {
  TORCH_CHECK(n < INT32_MAX, "knn_graph: too many atoms in one system");
  const Frame frame = make_frame(c, pbc);
  // fractional coordinates, wrapped along periodic directions
  std::vector<double> g(3 * n);
  std::vector<int64_t> offset(3 * n, 0);
  double low[3], high[3];
  for (int p = 0; p < 3; ++p) { low[p] = INFINITY; high[p] = -INFINITY; }
  for (int64_t i = 0; i < n; ++i) {
    const double* xi = x + 3 * (first + i);
    for (int p = 0; p < 3; ++p) {
      double f = xi[0] * frame.inverse[0][p] + xi[1] * frame.inverse[1][p] + xi[2] * frame.inverse[2][p];
      if (frame.periodic[p]) {
        const double o = std::floor(f);
        offset[3 * i + p] = static_cast<int64_t>(o);
        f -= o;
      }
      g[3 * i + p] = f;
      low[p] = std::min(low[p], f);
      high[p] = std::max(high[p], f);
    }
  }
  // bins: about search_radius / 2 wide (plane spacing), at most ~2 n + 64 of them
  const double slack = 1e-6 * search_radius;
  double length[3], origin[3], extent[3];
  for (int p = 0; p < 3; ++p) {
    origin[p] = frame.periodic[p] ? 0.0 : low[p];
    extent[p] = frame.periodic[p] ? 1.0 : std::max(high[p] - low[p], 0.0);
    length[p] = extent[p] * frame.spacing[p];
  }
  double width = 0.5 * search_radius;
  int64_t dims[3];
  for (int attempt = 0;; ++attempt) {
    for (int p = 0; p < 3; ++p) {
      const double count = std::floor(length[p] / width);
      dims[p] = std::max<int64_t>(1, static_cast<int64_t>(std::min(count, 1e6)));
    }
    if (static_cast<double>(dims[0]) * dims[1] * dims[2] <= 2.0 * n + 64.0 || attempt > 60) break;
    width *= 1.5;
  }
  int64_t reach[3];
  for (int p = 0; p < 3; ++p) {
    const double plane = length[p] / dims[p];
    reach[p] = plane > 0.0 ? static_cast<int64_t>(std::ceil((search_radius + slack) / plane)) : 0;
    if (!frame.periodic[p]) reach[p] = std::min(reach[p], dims[p] - 1);
  }
  const int64_t n_bins = dims[0] * dims[1] * dims[2];
  std::vector<int64_t> bin(n);
  std::vector<int64_t> bin_start(n_bins + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t b[3];
    for (int p = 0; p < 3; ++p) {
      const double scaled = extent[p] > 0.0 ? (g[3 * i + p] - origin[p]) / extent[p] * dims[p] : 0.0;
      b[p] = std::min<int64_t>(dims[p] - 1, std::max<int64_t>(0, static_cast<int64_t>(std::floor(scaled))));
    }
    bin[i] = (b[0] * dims[1] + b[1]) * dims[2] + b[2];
    ++bin_start[bin[i] + 1];
  }
  for (int64_t b = 0; b < n_bins; ++b) bin_start[b + 1] += bin_start[b];
  // atoms in bin order: wrapped Cartesian positions (prefilter) and atom index
  std::vector<double> wrapped(3 * n), sorted_x(3 * n);  // wrapped: all x, then all y, then all z
  std::vector<int64_t> slot_atom(n), sorted_offset(3 * n);
  {
    std::vector<int64_t> fill(bin_start.begin(), bin_start.end() - 1);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t slot = fill[bin[i]]++;
      slot_atom[slot] = i;
      for (int p = 0; p < 3; ++p) {
        sorted_x[3 * slot + p] = x[3 * (first + i) + p];
        sorted_offset[3 * slot + p] = offset[3 * i + p];
      }
      for (int a = 0; a < 3; ++a) {
        double w = x[3 * (first + i) + a];
        for (int p = 0; p < 3; ++p) w -= static_cast<double>(offset[3 * i + p]) * frame.basis[p][a];
        wrapped[a * n + slot] = w;
      }
    }
  }
  const double radius2 = search_radius * search_radius, margin = search_radius - cutoff;
  const double *wx = wrapped.data(), *wy = wx + n, *wz = wy + n;
  const int64_t n_threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t n_chunks = std::min<int64_t>(n_bins, 8 * n_threads);
  const int64_t chunk0 = static_cast<int64_t>(outputs.size());
  outputs.resize(chunk0 + n_chunks);
  at::parallel_for(0, n_chunks, 1, [&](int64_t chunk_lo, int64_t chunk_hi) {
    std::vector<Neighbourhood> around;
    std::vector<Near> near;
    std::vector<Edge> edges;
    for (int64_t chunk = chunk_lo; chunk < chunk_hi; ++chunk) {
      Output& out = outputs[chunk0 + chunk];
      const int64_t bin_lo = n_bins * chunk / n_chunks, bin_hi = n_bins * (chunk + 1) / n_chunks;
      if (k > 0) {
        out.receiver.reserve(k * (bin_start[bin_hi] - bin_start[bin_lo]));
        out.shift.reserve(3 * k * (bin_start[bin_hi] - bin_start[bin_lo]));
      }
      for (int64_t centre = bin_lo; centre < bin_hi; ++centre) {
        if (bin_start[centre] == bin_start[centre + 1]) continue;
        const int64_t cb[3] = {centre / (dims[1] * dims[2]), (centre / dims[2]) % dims[1], centre % dims[2]};
        around.clear();
        for (int64_t d0 = -reach[0]; d0 <= reach[0]; ++d0) {
          for (int64_t d1 = -reach[1]; d1 <= reach[1]; ++d1) {
            for (int64_t d2 = -reach[2]; d2 <= reach[2]; ++d2) {
              const int64_t d[3] = {d0, d1, d2};
              int64_t nb[3];
              Neighbourhood h;
              bool inside = true;
              for (int p = 0; p < 3; ++p) {
                const int64_t t = cb[p] + d[p];
                if (frame.periodic[p]) {
                  const int64_t wrap = (t >= 0 ? t : t - dims[p] + 1) / dims[p];  // floor division
                  nb[p] = t - wrap * dims[p];
                  h.shift[p] = wrap;
                } else {
                  inside = inside && t >= 0 && t < dims[p];
                  nb[p] = t;
                  h.shift[p] = 0;
                }
              }
              if (!inside) continue;
              const int64_t key = (nb[0] * dims[1] + nb[1]) * dims[2] + nb[2];
              h.begin = bin_start[key];
              h.end = bin_start[key + 1];
              if (h.begin == h.end) continue;
              if (!around.empty() && around.back().end == h.begin && around.back().shift[0] == h.shift[0] &&
                  around.back().shift[1] == h.shift[1] && around.back().shift[2] == h.shift[2]) {
                around.back().end = h.end;  // the next bin in memory, same image: one longer run
                continue;
              }
              for (int a = 0; a < 3; ++a) {
                h.translation[a] = h.shift[0] * frame.basis[0][a] + h.shift[1] * frame.basis[1][a] +
                                   h.shift[2] * frame.basis[2][a];
              }
              around.push_back(h);
            }
          }
        }
        int64_t capacity = 1;  // stage 1 writes one entry past the last kept one
        for (const Neighbourhood& h : around) capacity += h.end - h.begin;
        for (int64_t slot = bin_start[centre]; slot < bin_start[centre + 1]; ++slot) {
          const int64_t i = slot_atom[slot];
          // stage 1: squared wrapped-frame distances below search_radius² (i -> i with zero shift excluded)
          if (static_cast<int64_t>(near.size()) < capacity) near.resize(capacity);
          int64_t count = 0;
          for (int32_t hood = 0; hood < static_cast<int32_t>(around.size()); ++hood) {
            const Neighbourhood& h = around[hood];
            const bool home = h.shift[0] == 0 && h.shift[1] == 0 && h.shift[2] == 0 && h.begin <= slot && slot < h.end;
            const double px = wx[slot] - h.translation[0], py = wy[slot] - h.translation[1],
                         pz = wz[slot] - h.translation[2];
            auto scan = [&](int64_t lo, int64_t hi) {
              for (int64_t other = lo; other < hi; ++other) {
                const double dx = wx[other] - px, dy = wy[other] - py, dz = wz[other] - pz;
                const double d2 = dx * dx + dy * dy + dz * dz;
                near[count] = Near{d2, static_cast<int32_t>(other), hood};
                count += d2 < radius2;
              }
            };
            if (home) {
              scan(h.begin, slot);
              scan(slot + 1, h.end);
            } else {
              scan(h.begin, h.end);
            }
          }
          // stage 2: with a cap, only candidates within margin of the k-th smallest wrapped-frame distance can
          // be among the k nearest by the canonical length (the two differ by rounding only, << margin)
          double limit2 = radius2;
          if (k > 0 && count > k) {
            std::nth_element(near.begin(), near.begin() + (k - 1), near.begin() + count,
                             [](const Near& a, const Near& b) { return a.d2 < b.d2; });
            const double limit = std::sqrt(near[k - 1].d2) + margin;
            limit2 = std::min(radius2, limit * limit);
          }
          // stage 3: canonical lengths on the original positions, exact cutoff and tie rule
          edges.clear();
          const double* xi = sorted_x.data() + 3 * slot;
          const int64_t* oi = sorted_offset.data() + 3 * slot;
          for (int64_t e = 0; e < count; ++e) {
            const Near& candidate = near[e];
            if (candidate.d2 > limit2) continue;
            const Neighbourhood& h = around[candidate.hood];
            const int64_t* oj = sorted_offset.data() + 3 * candidate.slot;
            Edge edge;
            for (int p = 0; p < 3; ++p) edge.shift[p] = h.shift[p] + oi[p] - oj[p];
            const double length = canonical_length(xi, sorted_x.data() + 3 * candidate.slot, c, edge.shift);
            if (!(length < cutoff)) continue;
            edge.q = quantise(length, quantum);
            edge.r = first + slot_atom[candidate.slot];
            edges.push_back(edge);
          }
          const int64_t kept = keep_nearest(edges, k);
          atom_chunk[first + i] = chunk0 + chunk;
          atom_begin[first + i] = static_cast<int64_t>(out.receiver.size());
          atom_count[first + i] = kept;
          for (int64_t e = 0; e < kept; ++e) {
            out.receiver.push_back(edges[e].r);
            out.shift.insert(out.shift.end(), edges[e].shift, edges[e].shift + 3);
          }
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> knn_graph(const at::Tensor& positions, const at::Tensor& cell,
                                                         const at::Tensor& pbc, const at::Tensor& system_index,
                                                         double cutoff, double search_radius, double quantum,
                                                         int64_t k) {
  check_inputs(positions, cell, system_index);
  TORCH_CHECK(pbc.device().is_cpu() && pbc.scalar_type() == at::kBool && pbc.dim() == 2 &&
                  pbc.size(0) == cell.size(0) && pbc.size(1) == 3, "knn_graph: pbc must be bool (B, 3)");
  TORCH_CHECK(k == -1 || k > 0, "knn_graph: k must be positive or -1");
  TORCH_CHECK(search_radius > cutoff && cutoff > 0.0, "knn_graph: need 0 < cutoff < search_radius");
  at::Tensor xc = positions.contiguous(), cc = cell.contiguous(), pc = pbc.contiguous(), bc = system_index.contiguous();
  const double* x = xc.data_ptr<double>();
  const double* c = cc.data_ptr<double>();
  const bool* periodic = pc.data_ptr<bool>();
  const int64_t* system = bc.data_ptr<int64_t>();
  const int64_t n_atoms = positions.size(0), n_systems = cell.size(0);
  std::vector<int64_t> atom_chunk(n_atoms, 0), atom_begin(n_atoms, 0), atom_count(n_atoms, 0);
  std::vector<Output> outputs;
  for (int64_t first = 0; first < n_atoms;) {
    const int64_t b = system[first];
    TORCH_CHECK(b >= 0 && b < n_systems, "knn_graph: system_index out of range");
    int64_t last = first;
    while (last < n_atoms && system[last] == b) ++last;
    TORCH_CHECK(last == n_atoms || system[last] > b, "knn_graph: system_index must be sorted");
    system_graph(x, c + 9 * b, periodic + 3 * b, first, last - first, cutoff, search_radius, quantum, k, outputs,
                 atom_chunk, atom_begin, atom_count);
    first = last;
  }
  std::vector<int64_t> edge_start(n_atoms + 1, 0);
  for (int64_t i = 0; i < n_atoms; ++i) edge_start[i + 1] = edge_start[i] + atom_count[i];
  const int64_t n_edges = edge_start[n_atoms];
  at::Tensor senders = at::empty({n_edges}, system_index.options());
  at::Tensor receivers = at::empty({n_edges}, system_index.options());
  at::Tensor shifts = at::empty({n_edges, 3}, system_index.options());
  int64_t* s = senders.data_ptr<int64_t>();
  int64_t* r = receivers.data_ptr<int64_t>();
  int64_t* h = shifts.data_ptr<int64_t>();
  at::parallel_for(0, n_atoms, 1024, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const Output& out = outputs[atom_chunk[i]];
      const int64_t dst = edge_start[i], src = atom_begin[i], m = atom_count[i];
      std::fill(s + dst, s + dst + m, i);
      std::copy(out.receiver.begin() + src, out.receiver.begin() + src + m, r + dst);
      std::copy(out.shift.begin() + 3 * src, out.shift.begin() + 3 * (src + m), h + 3 * dst);
    }
  });
  return {senders, receivers, shifts};
}

}  // namespace orb_md_graph

TORCH_LIBRARY(orb_md_graph, m) {
  m.def("knn_select(Tensor positions, Tensor cell, Tensor system_index, Tensor senders, Tensor receivers, "
        "Tensor shifts, float cutoff, float quantum, int k) -> Tensor");
  m.def("knn_graph(Tensor positions, Tensor cell, Tensor pbc, Tensor system_index, float cutoff, "
        "float search_radius, float quantum, int k) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(orb_md_graph, CPU, m) {
  m.impl("knn_select", &orb_md_graph::knn_select);
  m.impl("knn_graph", &orb_md_graph::knn_graph);
}
"""
