// Compiled cell-list neighbour search (see mtzoo/data/graph.py: neighbor_list).
//
// All ordered pairs (i, j, S) with |r_j - r_i + S h| < rcut, S an integer image shift and h the
// cell (rows are lattice vectors), except i == j with S == 0; sorted by centre i.
//
// Periodic: fractional coordinates f = r h^-1 are wrapped into [0, 1) (w = floor(f), kept for the
// shifts); along lattice direction k the planes are d_k = 1 / |h^-1 e_k| apart, the cell is cut
// into n_k = max(1, floor(d_k / rcut)) slabs of fractional width 1/n_k, and a pair can only join
// slabs at most m_k = ceil(rcut n_k / d_k) apart.  Visiting the offsets -m_k..m_k of each centre's
// bin, modulo n_k with the wrap counted as an image shift, meets every (j, image) once, for any
// cell shape and for cells smaller than rcut (several images of one atom).  Non-periodic: bins of
// width >= rcut over the bounding box, offsets -1..1.  Per candidate: one 3-vector and one dot; half the stencil is visited (below).
#include <ATen/core/Tensor.h>  // light headers: torch/extension.h only in ext_module.cpp (35 s to compile)
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <algorithm>
#include <cmath>
#include <vector>

namespace {

struct Grid {
  int64_t nb[3];
  int64_t reach[3];
};

// Keep the number of bins near the number of atoms (a few atoms in a large empty cell): halve
// the most finely cut direction until there are at most 2 n + 8 bins.
inline void cap_bins(Grid& g, int64_t n) {
  while (g.nb[0] * g.nb[1] * g.nb[2] > 2 * n + 8) {
    int k = 0;
    for (int q = 1; q < 3; ++q)
      if (g.nb[q] > g.nb[k]) k = q;
    g.nb[k] = (g.nb[k] + 1) / 2;
  }
}

inline int64_t floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

}  // namespace

// pos [n,3] float64; cell [3,3] float64 (rows) or an empty tensor (non-periodic).
// Returns (edge_index [2,E] int64: row 0 neighbour j, row 1 centre i; shift [E,3] float64).
std::vector<at::Tensor> neighbor_list(at::Tensor pos_t, at::Tensor cell_t, double rcut) {
  TORCH_CHECK(pos_t.dim() == 2 && pos_t.size(1) == 3 && pos_t.scalar_type() == at::kDouble,
              "positions must be float64 [n, 3]");
  TORCH_CHECK(rcut > 0.0, "rcut must be positive");
  auto pos_c = pos_t.contiguous();
  const double* P = pos_c.data_ptr<double>();
  const int64_t n = pos_t.size(0);
  const bool periodic = cell_t.numel() == 9;
  const double rc2 = rcut * rcut;

  double h[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  double hinv[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  std::vector<double> wp(3 * n);       // positions used for distances (wrapped when periodic)
  std::vector<int64_t> wrap(3 * n, 0);  // periodic: r = wp + wrap h
  std::vector<int64_t> bin(n);
  Grid g;
  double lo[3] = {0, 0, 0}, width[3] = {1, 1, 1};
  if (periodic) {
    auto cell_c = cell_t.to(at::kDouble).contiguous();
    const double* H = cell_c.data_ptr<double>();
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) h[a][b] = H[3 * a + b];
    const double det = h[0][0] * (h[1][1] * h[2][2] - h[1][2] * h[2][1]) -
                       h[0][1] * (h[1][0] * h[2][2] - h[1][2] * h[2][0]) +
                       h[0][2] * (h[1][0] * h[2][1] - h[1][1] * h[2][0]);
    TORCH_CHECK(std::fabs(det) > 1e-10, "the cell is singular");
    // inverse by cofactors: hinv[a][b] = cof[b][a] / det
    hinv[0][0] = (h[1][1] * h[2][2] - h[1][2] * h[2][1]) / det;
    hinv[0][1] = (h[0][2] * h[2][1] - h[0][1] * h[2][2]) / det;
    hinv[0][2] = (h[0][1] * h[1][2] - h[0][2] * h[1][1]) / det;
    hinv[1][0] = (h[1][2] * h[2][0] - h[1][0] * h[2][2]) / det;
    hinv[1][1] = (h[0][0] * h[2][2] - h[0][2] * h[2][0]) / det;
    hinv[1][2] = (h[0][2] * h[1][0] - h[0][0] * h[1][2]) / det;
    hinv[2][0] = (h[1][0] * h[2][1] - h[1][1] * h[2][0]) / det;
    hinv[2][1] = (h[0][1] * h[2][0] - h[0][0] * h[2][1]) / det;
    hinv[2][2] = (h[0][0] * h[1][1] - h[0][1] * h[1][0]) / det;
    double bk[3];  // |h^-1 e_k| = 1 / (distance between lattice planes k)
    for (int k = 0; k < 3; ++k) {
      bk[k] = std::sqrt(hinv[0][k] * hinv[0][k] + hinv[1][k] * hinv[1][k] + hinv[2][k] * hinv[2][k]);
      g.nb[k] = std::max<int64_t>(1, static_cast<int64_t>(std::floor(1.0 / (bk[k] * rcut))));
    }
    cap_bins(g, n);
    for (int k = 0; k < 3; ++k) g.reach[k] = static_cast<int64_t>(std::ceil(rcut * bk[k] * g.nb[k] * (1.0 + 1e-12)));
    for (int64_t i = 0; i < n; ++i) {
      double f[3];
      for (int k = 0; k < 3; ++k) {
        f[k] = P[3 * i] * hinv[0][k] + P[3 * i + 1] * hinv[1][k] + P[3 * i + 2] * hinv[2][k];
        const double w = std::floor(f[k]);
        wrap[3 * i + k] = static_cast<int64_t>(w);
        f[k] -= w;
      }
      for (int a = 0; a < 3; ++a) {
        double r = P[3 * i + a];
        for (int k = 0; k < 3; ++k) r -= static_cast<double>(wrap[3 * i + k]) * h[k][a];
        wp[3 * i + a] = r;
      }
      int64_t b = 0;
      for (int k = 0; k < 3; ++k) {
        int64_t c = static_cast<int64_t>(std::floor(f[k] * g.nb[k]));
        c = std::min(std::max<int64_t>(c, 0), g.nb[k] - 1);
        b = b * g.nb[k] + c;
      }
      bin[i] = b;
    }
  } else {
    double hi[3];
    for (int k = 0; k < 3; ++k) {
      lo[k] = n ? P[k] : 0.0;
      hi[k] = lo[k];
    }
    for (int64_t i = 0; i < n; ++i)
      for (int k = 0; k < 3; ++k) {
        lo[k] = std::min(lo[k], P[3 * i + k]);
        hi[k] = std::max(hi[k], P[3 * i + k]);
      }
    for (int k = 0; k < 3; ++k) g.nb[k] = std::max<int64_t>(1, static_cast<int64_t>(std::floor((hi[k] - lo[k]) / rcut)));
    cap_bins(g, n);
    for (int k = 0; k < 3; ++k) {
      width[k] = std::max((hi[k] - lo[k]) / g.nb[k], rcut);
      g.reach[k] = 1;
    }
    std::copy(P, P + 3 * n, wp.begin());
    for (int64_t i = 0; i < n; ++i) {
      int64_t b = 0;
      for (int k = 0; k < 3; ++k) {
        int64_t c = static_cast<int64_t>(std::floor((P[3 * i + k] - lo[k]) / width[k]));
        c = std::min(std::max<int64_t>(c, 0), g.nb[k] - 1);
        b = b * g.nb[k] + c;
      }
      bin[i] = b;
    }
  }
  // counting sort of atoms by bin
  const int64_t n_bins = g.nb[0] * g.nb[1] * g.nb[2];
  std::vector<int64_t> start(n_bins + 1, 0), members(n);
  for (int64_t i = 0; i < n; ++i) ++start[bin[i] + 1];
  for (int64_t b = 0; b < n_bins; ++b) start[b + 1] += start[b];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < n; ++i) members[fill[bin[i]]++] = i;
  }
  std::vector<double> bp(3 * n);  // positions in bin order: the candidate loop reads them in sequence
  for (int64_t q = 0; q < n; ++q)
    for (int a = 0; a < 3; ++a) bp[3 * q + a] = wp[3 * members[q] + a];
  // Half the stencil: offsets d > 0 (lexicographically) and, in the centre's own bin and image
  // (d = 0), neighbours j > i.  The pair (i, j, S) is met from i at offset d exactly when (j, i, -S)
  // would be met from j at -d, so each unordered pair is found once and both directions are
  // written; a counting sort by centre then gives the full list sorted by centre.
  std::vector<int64_t> hi_, hj_;
  std::vector<double> hs_;
  hi_.reserve(static_cast<size_t>(n) * 48);
  hj_.reserve(static_cast<size_t>(n) * 48);
  hs_.reserve(static_cast<size_t>(n) * 48 * 3);
  for (int64_t i = 0; i < n; ++i) {
    int64_t c[3];
    {
      int64_t b = bin[i];
      for (int k = 2; k >= 0; --k) {
        c[k] = b % g.nb[k];
        b /= g.nb[k];
      }
    }
    const double xi = wp[3 * i], yi = wp[3 * i + 1], zi = wp[3 * i + 2];
    for (int64_t d0 = 0; d0 <= g.reach[0]; ++d0) {
      int64_t b0 = c[0] + d0, s0 = 0;
      if (periodic) { s0 = floordiv(b0, g.nb[0]); b0 -= s0 * g.nb[0]; }
      else if (b0 < 0 || b0 >= g.nb[0]) continue;
      for (int64_t d1 = (d0 == 0 ? 0 : -g.reach[1]); d1 <= g.reach[1]; ++d1) {
        int64_t b1 = c[1] + d1, s1 = 0;
        if (periodic) { s1 = floordiv(b1, g.nb[1]); b1 -= s1 * g.nb[1]; }
        else if (b1 < 0 || b1 >= g.nb[1]) continue;
        for (int64_t d2 = (d0 == 0 && d1 == 0 ? 0 : -g.reach[2]); d2 <= g.reach[2]; ++d2) {
          int64_t b2 = c[2] + d2, s2 = 0;
          if (periodic) { s2 = floordiv(b2, g.nb[2]); b2 -= s2 * g.nb[2]; }
          else if (b2 < 0 || b2 >= g.nb[2]) continue;
          const double ox = s0 * h[0][0] + s1 * h[1][0] + s2 * h[2][0] - xi;
          const double oy = s0 * h[0][1] + s1 * h[1][1] + s2 * h[2][1] - yi;
          const double oz = s0 * h[0][2] + s1 * h[1][2] + s2 * h[2][2] - zi;
          const bool zero = (d0 == 0 && d1 == 0 && d2 == 0);
          const int64_t b = (b0 * g.nb[1] + b1) * g.nb[2] + b2;
          for (int64_t q = start[b]; q < start[b + 1]; ++q) {
            const double dx = bp[3 * q] + ox, dy = bp[3 * q + 1] + oy, dz = bp[3 * q + 2] + oz;
            const int64_t j = members[q];
            if (dx * dx + dy * dy + dz * dz >= rc2 || (zero && j <= i)) continue;
            hi_.push_back(i);
            hj_.push_back(j);
            // r_j - r_i + S h with r = wp + wrap h: S = s + wrap_i - wrap_j
            hs_.push_back(static_cast<double>(s0 + wrap[3 * i] - wrap[3 * j]));
            hs_.push_back(static_cast<double>(s1 + wrap[3 * i + 1] - wrap[3 * j + 1]));
            hs_.push_back(static_cast<double>(s2 + wrap[3 * i + 2] - wrap[3 * j + 2]));
          }
        }
      }
    }
  }
  const int64_t H = static_cast<int64_t>(hi_.size()), E = 2 * H;
  std::vector<int64_t> at(n + 1, 0);
  for (int64_t k = 0; k < H; ++k) {
    ++at[hi_[k] + 1];
    ++at[hj_[k] + 1];
  }
  for (int64_t i = 0; i < n; ++i) at[i + 1] += at[i];
  auto edge_index = at::empty({2, E}, at::kLong);
  auto shift = at::empty({E, 3}, at::kDouble);
  int64_t* nbr = edge_index.data_ptr<int64_t>();
  int64_t* cen = nbr + E;
  double* sh = shift.data_ptr<double>();
  for (int64_t k = 0; k < H; ++k) {
    const int64_t i = hi_[k], j = hj_[k];
    int64_t e = at[i]++;  // centre i, neighbour j, shift S
    cen[e] = i;
    nbr[e] = j;
    for (int a = 0; a < 3; ++a) sh[3 * e + a] = hs_[3 * k + a];
    e = at[j]++;  // centre j, neighbour i, shift -S
    cen[e] = j;
    nbr[e] = i;
    for (int a = 0; a < 3; ++a) sh[3 * e + a] = 0.0 - hs_[3 * k + a];  // no -0.0
  }
  return {edge_index, shift};
}

// Edge vectors r_e = x_src - x_dst + S_e h_b (b: the frame of the centre; batch may be empty for
// one frame) in one pass: pos [N, 3], edge_index [2, E], shift [E, 3], cell [B, 3, 3] (float64).
at::Tensor edge_vectors(at::Tensor pos, at::Tensor edge_index, at::Tensor shift, at::Tensor cell, at::Tensor batch) {
  TORCH_CHECK(pos.scalar_type() == at::kDouble && shift.scalar_type() == at::kDouble &&
                  cell.scalar_type() == at::kDouble, "edge_vectors: pos, shift and cell must be float64");
  auto p = pos.contiguous(), s = shift.contiguous(), h = cell.contiguous(), ei = edge_index.contiguous();
  const int64_t N = p.size(0), E = ei.size(1), B = h.numel() / 9;
  TORCH_CHECK(p.dim() == 2 && p.size(1) == 3 && s.numel() == 3 * E && B >= 1 && ei.scalar_type() == at::kLong,
              "edge_vectors: expected pos [N, 3], edge_index [2, E] int64, shift [E, 3], cell [B, 3, 3]");
  const bool one = batch.numel() == 0 || B == 1;
  at::Tensor bt;
  if (!one) {
    bt = batch.contiguous();
    TORCH_CHECK(bt.scalar_type() == at::kLong && bt.numel() == N, "edge_vectors: batch must be int64 [N]");
  }
  auto out = at::empty({E, 3}, p.options());
  const double *x = p.data_ptr<double>(), *S = s.data_ptr<double>(), *H = h.data_ptr<double>();
  const int64_t *src = ei.data_ptr<int64_t>(), *dst = src + E, *b = one ? nullptr : bt.data_ptr<int64_t>();
  double* v = out.data_ptr<double>();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t i = src[e], j = dst[e];
    TORCH_CHECK(i >= 0 && i < N && j >= 0 && j < N, "edge_vectors: edge_index holds atom ", (i < 0 || i >= N) ? i : j,
                " of ", N);
    const double* hb = H + 9 * (one ? 0 : b[j]);
    const double* se = S + 3 * e;
    for (int q = 0; q < 3; ++q)
      v[3 * e + q] = x[3 * i + q] - x[3 * j + q] + se[0] * hb[q] + se[1] * hb[3 + q] + se[2] * hb[6 + q];
  }
  return out;
}

// Forces from g = dE/dr_e (r_e = x_src - x_dst + ...): F_i = sum_{e: dst = i} g_e - sum_{e: src = i} g_e.
at::Tensor edge_forces(at::Tensor g, at::Tensor edge_index, int64_t n_atoms) {
  auto gc = g.contiguous();
  auto ei = edge_index.contiguous();
  const int64_t E = ei.size(1);
  TORCH_CHECK(gc.scalar_type() == at::kDouble && gc.numel() == 3 * E && ei.scalar_type() == at::kLong,
              "edge_forces: expected g float64 [E, 3] and edge_index int64 [2, E]");
  auto F = at::zeros({n_atoms, 3}, gc.options());
  const double* G = gc.data_ptr<double>();
  const int64_t *src = ei.data_ptr<int64_t>(), *dst = src + E;
  double* f = F.data_ptr<double>();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t i = src[e], j = dst[e];
    TORCH_CHECK(i >= 0 && i < n_atoms && j >= 0 && j < n_atoms, "edge_forces: edge_index out of range");
    for (int q = 0; q < 3; ++q) {
      f[3 * j + q] += G[3 * e + q];
      f[3 * i + q] -= G[3 * e + q];
    }
  }
  return F;
}

// The edges of a Verlet list (built at rcut + skin) that are closer than rcut now, in their
// order: |x_src - x_dst + S_e h| < rcut.  pos [N, 3], edge_index [2, E], shift [E, 3], cell [3, 3]
// or empty (non-periodic), float64; returns (edge_index [2, K], shift [K, 3]).
std::vector<at::Tensor> filter_edges(at::Tensor pos, at::Tensor edge_index, at::Tensor shift, at::Tensor cell,
                                     double rcut) {
  auto p = pos.contiguous(), s = shift.contiguous(), ei = edge_index.contiguous();
  TORCH_CHECK(p.scalar_type() == at::kDouble && s.scalar_type() == at::kDouble && ei.scalar_type() == at::kLong &&
                  p.dim() == 2 && p.size(1) == 3 && ei.dim() == 2 && ei.size(0) == 2 && s.numel() == 3 * ei.size(1),
              "filter_edges: expected pos float64 [N, 3], edge_index int64 [2, E], shift float64 [E, 3]");
  const int64_t N = p.size(0), E = ei.size(1);
  double h[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  if (cell.numel() == 9) {
    auto hc = cell.to(at::kDouble).contiguous();
    std::copy(hc.data_ptr<double>(), hc.data_ptr<double>() + 9, h);
  }
  const double *x = p.data_ptr<double>(), *S = s.data_ptr<double>();
  const int64_t *src = ei.data_ptr<int64_t>(), *dst = src + E;
  const double rc2 = rcut * rcut;
  std::vector<int64_t> keep;
  keep.reserve(E);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t i = src[e], j = dst[e];
    TORCH_CHECK(i >= 0 && i < N && j >= 0 && j < N, "filter_edges: edge_index out of range");
    const double* se = S + 3 * e;
    double d2 = 0.0;
    for (int q = 0; q < 3; ++q) {
      const double v = x[3 * i + q] - x[3 * j + q] + se[0] * h[q] + se[1] * h[3 + q] + se[2] * h[6 + q];
      d2 += v * v;
    }
    if (d2 < rc2) keep.push_back(e);
  }
  const int64_t K = static_cast<int64_t>(keep.size());
  auto ei_out = at::empty({2, K}, ei.options());
  auto sh_out = at::empty({K, 3}, s.options());
  int64_t* o = ei_out.data_ptr<int64_t>();
  double* so = sh_out.data_ptr<double>();
  for (int64_t k = 0; k < K; ++k) {
    const int64_t e = keep[k];
    o[k] = src[e];
    o[K + k] = dst[e];
    for (int q = 0; q < 3; ++q) so[3 * k + q] = S[3 * e + q];
  }
  return {ei_out, sh_out};
}
