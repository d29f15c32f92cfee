// Compiled per-edge passes of the compressed se_e2_a descriptor (see mtzoo/nn/tabulate.py).
//
// Forward, per edge e (centre c, type pair q of centre and neighbour, net slot k = slot[q], all
// gathered here from edge_index and the atom types): environment row
// R_e = scale_q * (s, s x/r, s y/r, s z/r) + shift_q with s = w(r)/(r + protection), the bin b
// of x = R_e0 in slot k's knots, t = x - knot_b, the table's value
// G_e[m] = sum_j C[6b + j][m] t^j (Horner) and T[c][a][m] += R_ea G_e[m].
// Backward, from dT = dE/dT: dE/dR_ea = sum_m G_e[m] dT[c][a][m] and
// dE/dt = sum_m G'_e[m] sum_a R_ea dT[c][a][m] in one pass over m, then the chain rule through the
// normalisation and the environment matrix to dE/d(edge vector).  Per edge that is about 10 M1
// multiply-adds forward and 20 M1 backward, against 2 * 4 * 6B * M1 for the dense M @ C of the
// torch-ops path.  Edges with x above their slot's last knot are flagged (inside = 0) and left to
// the caller.  The m loops are vectorised (omp simd); the hot loops are compiled for AVX-512,
// AVX2+FMA and baseline x86-64 and the best one is chosen when the library loads.
#include <ATen/core/Tensor.h>  // light headers: torch/extension.h only in ext_module.cpp (35 s to compile)
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "ext_common.h"

namespace {

struct Env {
  double r, sw, dsw, inv, s;
};

inline Env env_of(const double* v, double rs, double rc, double prot) {
  Env e;
  e.r = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  double u = (e.r - rs) / (rc - rs);
  if (u <= 0.0) {
    e.sw = 1.0; e.dsw = 0.0;
  } else if (u >= 1.0) {
    e.sw = 0.0; e.dsw = 0.0;
  } else {
    double u2 = u * u;
    e.sw = u2 * u * (-6.0 * u2 + 15.0 * u - 10.0) + 1.0;
    e.dsw = -30.0 * u2 * (u - 1.0) * (u - 1.0) / (rc - rs);
  }
  e.inv = 1.0 / (e.r + prot);
  e.s = e.sw * e.inv;
  return e;
}

inline int64_t find_bin(const double* knots, int64_t n_knots, double x) {
  // last knot index <= x, clamped to [0, n_knots - 2]; branch-free (the bins of neighbouring
  // edges are unrelated, so a branchy search mispredicts at every step)
  int64_t lo = 0, n = n_knots - 1;  // search knots[0 .. n_knots-2]
  while (n > 1) {
    const int64_t half = n / 2;
    lo = (knots[lo + half] <= x) ? lo + half : lo;
    n -= half;
  }
  return lo;
}

struct Tables {
  const double* knots;       // concatenated per slot
  const int64_t* knot_start;  // [S+1]
  const int64_t* bin_offset;  // [S]
  const double* coef;         // [6B, M]
  int64_t m;
};

// Edge e runs from neighbour nbr[e] to centre centre[e]; its type pair p = c * nt + t (centre
// type c, neighbour type t) selects the normalisation (R = scale_p * R_raw + shift_p, zero for
// excluded pairs) and the table slot.  Gathered here, per edge, from tables of nt * nt rows.
struct EdgeMap {
  const int64_t* centre;  // [E], sorted
  const int64_t* nbr;     // [E]
  const int64_t* type;    // [N]
  int64_t nt;
  const double* scale;  // [nt * nt, 4]
  const double* shift;  // [nt * nt, 4]
  const int64_t* slot;  // [nt * nt]
  inline int64_t pair(int64_t e) const { return type[centre[e]] * nt + type[nbr[e]]; }
};

// Environment row, bin and position in the bin of edge e; false when x lies above the table.
inline bool edge_setup(int64_t e, const double* V, const EdgeMap& em, const Tables& tb, double rs, double rc,
                       double prot, double* R, double* TT, int64_t* CO, bool* IN) {
  const double* v = V + 3 * e;
  const Env en = env_of(v, rs, rc, prot);
  double* re = R + 4 * e;
  const int64_t p = em.pair(e);
  const double* a = em.scale + 4 * p;
  const double* b = em.shift + 4 * p;
  re[0] = en.s * a[0] + b[0];
  const double f = en.s * en.inv;
  for (int q = 0; q < 3; ++q) re[q + 1] = f * v[q] * a[q + 1] + b[q + 1];
  const int64_t k = em.slot[p];
  const double* kn = tb.knots + tb.knot_start[k];
  const int64_t nk = tb.knot_start[k + 1] - tb.knot_start[k];
  const double x = re[0];
  if (x > kn[nk - 1]) {
    IN[e] = false; TT[e] = 0.0; CO[e] = 0;
    return false;
  }
  IN[e] = true;
  const int64_t bin = find_bin(kn, nk, x);
  TT[e] = x - kn[bin];
  CO[e] = tb.bin_offset[k] + bin;
  return true;
}

// dE/d(edge vector) of edge e from g_a = dE/dR_ea (table value fixed) and gt = dE/dt.
inline void edge_chain(int64_t e, double g0, double g1, double g2, double g3, double gt, const double* V,
                       const EdgeMap& em, double rs, double rc, double prot, double* gv) {
  // x = R_0 enters t = x - knot as well
  const double* a = em.scale + 4 * em.pair(e);
  const double* v = V + 3 * e;
  const Env en = env_of(v, rs, rc, prot);
  const double gs0 = (g0 + gt) * a[0];       // dE/ds through R_0
  const double cq[3] = {g1 * a[1], g2 * a[2], g3 * a[3]};  // dE/d(s inv v_q)
  const double S1 = cq[0] * v[0] + cq[1] * v[1] + cq[2] * v[2];
  const double dE_ds = gs0 + en.inv * S1;         // R_q = s inv v_q (q = 1..3)
  const double dE_dinv = en.s * S1 + dE_ds * en.sw;  // s = sw inv
  const double dE_dr = -dE_dinv * en.inv * en.inv + dE_ds * en.inv * en.dsw;
  const double f = en.s * en.inv;
  for (int q = 0; q < 3; ++q) gv[q] = cq[q] * f + dE_dr * v[q] / en.r;
}

MTZOO_CLONES
void forward_edges(int64_t E, const double* V, EdgeMap em, Tables tb, double rs, double rc, double prot, double* T,
                   double* R, double* TT, int64_t* CO, bool* IN) {
  const int64_t M = tb.m;
  // setup first, in its own pass: interleaved with the m loop, its square root, division and
  // bin search (a chain of dependent loads) stalled the loop (measured 1.25x on the water frame)
  for (int64_t e = 0; e < E; ++e) edge_setup(e, V, em, tb, rs, rc, prot, R, TT, CO, IN);
  for (int64_t e = 0; e < E; ++e) {
    if (!IN[e]) continue;
    const double t = TT[e];
    const double* c = tb.coef + CO[e] * 6 * M;
    double* out = T + em.centre[e] * 4 * M;
    const double* re = R + 4 * e;
    const double r0 = re[0], r1 = re[1], r2 = re[2], r3 = re[3];
#pragma omp simd
    for (int64_t m = 0; m < M; ++m) {
      double g = c[5 * M + m];
      g = g * t + c[4 * M + m];
      g = g * t + c[3 * M + m];
      g = g * t + c[2 * M + m];
      g = g * t + c[M + m];
      g = g * t + c[m];
      out[m] += r0 * g;
      out[M + m] += r1 * g;
      out[2 * M + m] += r2 * g;
      out[3 * M + m] += r3 * g;
    }
  }
}

#if MTZOO_AVX512
// AVX-512 forward with T in registers: for each run of edges with the same centre (neighbour
// lists come sorted by centre) and each block of 32 channels, the 4 x 32 sums of R_ea G_e[m]
// stay in 16 zmm registers over the run's edges and are added to T once, instead of a load and
// a store of T per edge and channel.  Measured 1.5-2x faster than the loop above on the water
// frame (17k edges).
// V: eight lanes (zmm) or four (ymm, for a remainder of 4 channels: M1 = 100 is 12 x 8 + 4).
typedef double v8d __attribute__((vector_size(64)));
typedef double v4d __attribute__((vector_size(32)));

template <typename V>
__attribute__((target("avx512f,avx2,fma"))) inline V vload(const double* p) {
  V x;
  __builtin_memcpy(&x, p, sizeof x);
  return x;
}

template <typename V>
__attribute__((target("avx512f,avx2,fma"))) inline void vstore(double* p, V x) { __builtin_memcpy(p, &x, sizeof x); }

// NV vectors of W = sizeof(V) / 8 channels, m0 .. m0 + NV W - 1
template <typename V, int NV>
__attribute__((target("avx512f,avx2,fma"))) inline void run_block(const int64_t* idx, int64_t n, const double* R,
                                                                   const double* TT, const int64_t* CO,
                                                                   const double* coef, int64_t M, int64_t m0,
                                                                   double* out) {
  constexpr int W = sizeof(V) / sizeof(double);
  V acc[4][NV];
  for (int q = 0; q < 4; ++q)
    for (int v = 0; v < NV; ++v) acc[q][v] = V{};
  for (int64_t k = 0; k < n; ++k) {
    const int64_t e = idx[k];
    const double t = TT[e];
    const double* c = coef + CO[e] * 6 * M + m0;
    const double* re = R + 4 * e;
    const double r0 = re[0], r1 = re[1], r2 = re[2], r3 = re[3];
    for (int v = 0; v < NV; ++v) {
      V g = vload<V>(c + 5 * M + W * v);
      g = g * t + vload<V>(c + 4 * M + W * v);
      g = g * t + vload<V>(c + 3 * M + W * v);
      g = g * t + vload<V>(c + 2 * M + W * v);
      g = g * t + vload<V>(c + M + W * v);
      g = g * t + vload<V>(c + W * v);
      acc[0][v] += r0 * g;
      acc[1][v] += r1 * g;
      acc[2][v] += r2 * g;
      acc[3][v] += r3 * g;
    }
  }
  for (int q = 0; q < 4; ++q)
    for (int v = 0; v < NV; ++v) {
      double* o = out + q * M + m0 + W * v;
      vstore<V>(o, vload<V>(o) + acc[q][v]);
    }
}

__attribute__((target("avx512f,avx2,fma")))
void forward_edges_avx512(int64_t E, const double* V, EdgeMap em, Tables tb, double rs, double rc, double prot,
                          double* T, double* R, double* TT, int64_t* CO, bool* IN) {
  const int64_t M = tb.m;
  const int64_t* C = em.centre;
  std::vector<int64_t> idx;
  int64_t e0 = 0;
  while (e0 < E) {
    int64_t e1 = e0 + 1;
    while (e1 < E && C[e1] == C[e0]) ++e1;
    idx.clear();
    for (int64_t e = e0; e < e1; ++e)
      if (edge_setup(e, V, em, tb, rs, rc, prot, R, TT, CO, IN)) idx.push_back(e);
    const int64_t n = static_cast<int64_t>(idx.size());
    double* out = T + C[e0] * 4 * M;
    int64_t m0 = 0;
    for (; m0 + 32 <= M; m0 += 32) run_block<v8d, 4>(idx.data(), n, R, TT, CO, tb.coef, M, m0, out);
    for (; m0 + 8 <= M; m0 += 8) run_block<v8d, 1>(idx.data(), n, R, TT, CO, tb.coef, M, m0, out);
    if (m0 + 4 <= M) {  // four channels more with 256-bit vectors
      run_block<v4d, 1>(idx.data(), n, R, TT, CO, tb.coef, M, m0, out);
      m0 += 4;
    }
    for (int64_t k = 0; k < n && m0 < M; ++k) {  // the last M % 4 channels
      const int64_t e = idx[k];
      const double t = TT[e];
      const double* c = tb.coef + CO[e] * 6 * M;
      const double* re = R + 4 * e;
      for (int64_t m = m0; m < M; ++m) {
        const double g = ((((c[5 * M + m] * t + c[4 * M + m]) * t + c[3 * M + m]) * t + c[2 * M + m]) * t +
                          c[M + m]) * t + c[m];
        for (int q = 0; q < 4; ++q) out[q * M + m] += re[q] * g;
      }
    }
    e0 = e1;
  }
}
// NV vectors of W channels from m0; each edge's five partial sums (dE/dR_ea, dE/dt) live in
// vectors of 8 at part + 40 k (a 4-lane V adds into their first four lanes)
template <typename V, int NV>
__attribute__((target("avx512f,avx2,fma"))) inline void bwd_block(const int64_t* idx, int64_t n, const double* R,
                                                                   const double* TT, const int64_t* CO,
                                                                   const double* coef, int64_t M, int64_t m0,
                                                                   const double* d, double* part) {
  constexpr int W = sizeof(V) / sizeof(double);
  V dq[4][NV];
  for (int q = 0; q < 4; ++q)
    for (int v = 0; v < NV; ++v) dq[q][v] = vload<V>(d + q * M + m0 + W * v);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t e = idx[k];
    const double t = TT[e];
    const double* c = coef + CO[e] * 6 * M + m0;
    const double* re = R + 4 * e;
    const double r0 = re[0], r1 = re[1], r2 = re[2], r3 = re[3];
    double* pk = part + 40 * k;
    V s0 = vload<V>(pk), s1 = vload<V>(pk + 8), s2 = vload<V>(pk + 16), s3 = vload<V>(pk + 24), st = vload<V>(pk + 32);
    for (int v = 0; v < NV; ++v) {
      const V c5 = vload<V>(c + 5 * M + W * v);
      V g = c5 * t + vload<V>(c + 4 * M + W * v), dg = c5;  // value and derivative in one Horner pass
      dg = dg * t + g; g = g * t + vload<V>(c + 3 * M + W * v);
      dg = dg * t + g; g = g * t + vload<V>(c + 2 * M + W * v);
      dg = dg * t + g; g = g * t + vload<V>(c + M + W * v);
      dg = dg * t + g; g = g * t + vload<V>(c + W * v);
      s0 += g * dq[0][v];
      s1 += g * dq[1][v];
      s2 += g * dq[2][v];
      s3 += g * dq[3][v];
      st += dg * (r0 * dq[0][v] + r1 * dq[1][v] + r2 * dq[2][v] + r3 * dq[3][v]);
    }
    vstore<V>(pk, s0); vstore<V>(pk + 8, s1); vstore<V>(pk + 16, s2); vstore<V>(pk + 24, s3); vstore<V>(pk + 32, st);
  }
}

// AVX-512 backward: for each run of edges with the same centre and each block of 32 channels,
// the centre's 4 x 32 values of dE/dT stay in registers over the run's edges; each edge keeps
// five vectors of partial sums (its dE/dR_ea and dE/dt) across the blocks.
__attribute__((target("avx512f,avx2,fma")))
void backward_edges_avx512(int64_t E, const double* GT, const double* V, EdgeMap em, const double* R,
                           const double* TT, const int64_t* CO, const bool* IN, Tables tb, double rs, double rc,
                           double prot, double* GV) {
  const int64_t M = tb.m;
  const int64_t* C = em.centre;
  std::vector<int64_t> idx;
  std::vector<double> part;
  int64_t e0 = 0;
  while (e0 < E) {
    int64_t e1 = e0 + 1;
    while (e1 < E && C[e1] == C[e0]) ++e1;
    idx.clear();
    for (int64_t e = e0; e < e1; ++e) {
      if (IN[e]) {
        idx.push_back(e);
      } else {
        GV[3 * e] = GV[3 * e + 1] = GV[3 * e + 2] = 0.0;
      }
    }
    const int64_t n = static_cast<int64_t>(idx.size());
    part.assign(40 * n, 0.0);
    const double* d = GT + C[e0] * 4 * M;
    int64_t m0 = 0;
    for (; m0 + 32 <= M; m0 += 32) bwd_block<v8d, 4>(idx.data(), n, R, TT, CO, tb.coef, M, m0, d, part.data());
    for (; m0 + 8 <= M; m0 += 8) bwd_block<v8d, 1>(idx.data(), n, R, TT, CO, tb.coef, M, m0, d, part.data());
    if (m0 + 4 <= M) {  // four channels more with 256-bit vectors, into the first lanes of the partial sums
      bwd_block<v4d, 1>(idx.data(), n, R, TT, CO, tb.coef, M, m0, d, part.data());
      m0 += 4;
    }
    for (int64_t k = 0; k < n; ++k) {
      const int64_t e = idx[k];
      double acc[5];
      for (int j = 0; j < 5; ++j) {
        double x = 0.0;
        for (int l = 0; l < 8; ++l) x += part[40 * k + 8 * j + l];
        acc[j] = x;
      }
      if (m0 < M) {  // the last M % 4 channels
        const double t = TT[e];
        const double* c = tb.coef + CO[e] * 6 * M;
        const double* re = R + 4 * e;
        for (int64_t m = m0; m < M; ++m) {
          double g = c[5 * M + m] * t + c[4 * M + m], dg = c[5 * M + m];
          dg = dg * t + g; g = g * t + c[3 * M + m];
          dg = dg * t + g; g = g * t + c[2 * M + m];
          dg = dg * t + g; g = g * t + c[M + m];
          dg = dg * t + g; g = g * t + c[m];
          double u = 0.0;
          for (int q = 0; q < 4; ++q) {
            acc[q] += g * d[q * M + m];
            u += re[q] * d[q * M + m];
          }
          acc[4] += dg * u;
        }
      }
      edge_chain(e, acc[0], acc[1], acc[2], acc[3], acc[4], V, em, rs, rc, prot, GV + 3 * e);
    }
    e0 = e1;
  }
}
#endif

MTZOO_CLONES
void backward_edges(int64_t E, const double* GT, const double* V, EdgeMap em, const double* R, const double* TT,
                    const int64_t* CO, const bool* IN, Tables tb, double rs, double rc, double prot, double* GV) {
  const int64_t M = tb.m;
  for (int64_t e = 0; e < E; ++e) {
    double* gv = GV + 3 * e;
    if (!IN[e]) {
      gv[0] = gv[1] = gv[2] = 0.0;
      continue;
    }
    const double t = TT[e];
    const double* re = R + 4 * e;
    const double r0 = re[0], r1 = re[1], r2 = re[2], r3 = re[3];
    const double* c = tb.coef + CO[e] * 6 * M;
    const double* d = GT + em.centre[e] * 4 * M;
    double g0 = 0.0, g1 = 0.0, g2 = 0.0, g3 = 0.0, gt = 0.0;
#pragma omp simd reduction(+ : g0, g1, g2, g3, gt)
    for (int64_t m = 0; m < M; ++m) {
      // value and derivative in one Horner pass (9 multiply-adds, against 13 for two)
      double g = c[5 * M + m] * t + c[4 * M + m], dg = c[5 * M + m];
      dg = dg * t + g; g = g * t + c[3 * M + m];
      dg = dg * t + g; g = g * t + c[2 * M + m];
      dg = dg * t + g; g = g * t + c[M + m];
      dg = dg * t + g; g = g * t + c[m];
      const double d0 = d[m], d1 = d[M + m], d2 = d[2 * M + m], d3 = d[3 * M + m];
      g0 += g * d0;
      g1 += g * d1;
      g2 += g * d2;
      g3 += g * d3;
      gt += dg * (r0 * d0 + r1 * d1 + r2 * d2 + r3 * d3);
    }
    edge_chain(e, g0, g1, g2, g3, gt, V, em, rs, rc, prot, gv);
  }
}

Tables tables_of(const at::Tensor& knots, const at::Tensor& knot_start, const at::Tensor& bin_offset,
                 const at::Tensor& coef) {
  TORCH_CHECK(coef.dim() == 2 && coef.is_contiguous() && coef.scalar_type() == at::kDouble,
              "coef must be a contiguous float64 [6B, M] tensor");
  return {knots.data_ptr<double>(), knot_start.data_ptr<int64_t>(), bin_offset.data_ptr<int64_t>(),
          coef.data_ptr<double>(), coef.size(1)};
}

EdgeMap edge_map_of(const at::Tensor& edge_index, const at::Tensor& atom_type, const at::Tensor& scale,
                    const at::Tensor& shift, const at::Tensor& slot, int64_t n_slots) {
  TORCH_CHECK(edge_index.dim() == 2 && edge_index.size(0) == 2 && edge_index.is_contiguous() &&
                  edge_index.scalar_type() == at::kLong, "edge_index must be a contiguous int64 [2, E] tensor");
  TORCH_CHECK(atom_type.dim() == 1 && atom_type.is_contiguous() && atom_type.scalar_type() == at::kLong,
              "atom_type must be a contiguous int64 [N] tensor");
  const int64_t P = slot.numel();
  int64_t nt = 0;
  while (nt * nt < P) ++nt;
  TORCH_CHECK(nt * nt == P && slot.is_contiguous() && slot.scalar_type() == at::kLong,
              "slot must be a contiguous int64 [ntypes * ntypes] tensor");
  TORCH_CHECK(scale.is_contiguous() && shift.is_contiguous() && scale.scalar_type() == at::kDouble &&
                  shift.scalar_type() == at::kDouble && scale.numel() == 4 * P && shift.numel() == 4 * P,
              "scale and shift must be contiguous float64 [ntypes * ntypes, 4] tensors");
  const int64_t* sl = slot.data_ptr<int64_t>();
  for (int64_t q = 0; q < P; ++q) TORCH_CHECK(sl[q] >= 0 && sl[q] < n_slots, "slot ", sl[q], " out of range");
  const int64_t* ty = atom_type.data_ptr<int64_t>();
  for (int64_t i = 0; i < atom_type.numel(); ++i)
    TORCH_CHECK(ty[i] >= 0 && ty[i] < nt, "atom type ", ty[i], " out of range [0, ", nt, ")");
  const int64_t E = edge_index.size(1), N = atom_type.numel();
  const int64_t* ei = edge_index.data_ptr<int64_t>();
  for (int64_t e = 0; e < 2 * E; ++e) TORCH_CHECK(ei[e] >= 0 && ei[e] < N, "edge_index holds atom ", ei[e], " of ", N);
  return {ei + E, ei, ty, nt, scale.data_ptr<double>(), shift.data_ptr<double>(), sl};
}

}  // namespace

// vec [E, 3]; edge_index [2, E] (row 0: neighbour, row 1: centre; sorted by centre for speed);
// atom_type [N]; per type pair p = t_centre * nt + t_neighbour: scale [P, 4], shift [P, 4]
// (double) and table slot [P]; knots: concatenated per slot, knot_start [S+1], bin_offset [S],
// coef [6B, M].  Returns (T [N, 4, M], rr [E, 4], t [E], col [E], inside [E] bool, counts [N, nt]
// double: the neighbours of each type per centre, all edges counted).
std::vector<at::Tensor> tabulate_forward(at::Tensor vec, at::Tensor edge_index, at::Tensor atom_type,
                                         at::Tensor scale, at::Tensor shift, at::Tensor slot, at::Tensor knots,
                                         at::Tensor knot_start, at::Tensor bin_offset, at::Tensor coef, double rs,
                                         double rc, double prot) {
  const int64_t E = vec.size(0), N = atom_type.size(0);
  TORCH_CHECK(vec.dim() == 2 && vec.size(1) == 3 && vec.is_contiguous() && vec.scalar_type() == at::kDouble &&
                  edge_index.size(-1) == E, "vec must be a contiguous float64 [E, 3] tensor matching edge_index");
  auto opts = vec.options();
  const Tables tb = tables_of(knots, knot_start, bin_offset, coef);
  const EdgeMap em = edge_map_of(edge_index, atom_type, scale, shift, slot, knot_start.numel() - 1);
  auto T = at::zeros({N, 4, tb.m}, opts);
  auto rr = at::empty({E, 4}, opts);
  auto t = at::empty({E}, opts);
  auto col = at::empty({E}, edge_index.options());
  auto inside = at::empty({E}, edge_index.options().dtype(at::kBool));
  auto counts = at::zeros({N, em.nt}, opts);
  double* cn = counts.data_ptr<double>();
  for (int64_t e = 0; e < E; ++e) cn[em.centre[e] * em.nt + em.type[em.nbr[e]]] += 1.0;
#if MTZOO_AVX512
  if (mtzoo_use_avx512()) {
    forward_edges_avx512(E, vec.data_ptr<double>(), em, tb, rs, rc, prot, T.data_ptr<double>(), rr.data_ptr<double>(),
                         t.data_ptr<double>(), col.data_ptr<int64_t>(), inside.data_ptr<bool>());
    return {T, rr, t, col, inside, counts};
  }
#endif
  forward_edges(E, vec.data_ptr<double>(), em, tb, rs, rc, prot, T.data_ptr<double>(), rr.data_ptr<double>(),
                t.data_ptr<double>(), col.data_ptr<int64_t>(), inside.data_ptr<bool>());
  return {T, rr, t, col, inside, counts};
}

// gT = dE/dT [N, 4, M]; the other arguments as given to / returned by tabulate_forward.
// Returns dE/dvec [E, 3] (zero rows for edges not inside).
at::Tensor tabulate_backward(at::Tensor gT, at::Tensor vec, at::Tensor edge_index, at::Tensor atom_type,
                             at::Tensor scale, at::Tensor shift, at::Tensor slot, at::Tensor rr, at::Tensor t,
                             at::Tensor col, at::Tensor inside, at::Tensor knots, at::Tensor knot_start,
                             at::Tensor bin_offset, at::Tensor coef, double rs, double rc, double prot) {
  const int64_t E = vec.size(0);
  const Tables tb = tables_of(knots, knot_start, bin_offset, coef);
  const EdgeMap em = edge_map_of(edge_index, atom_type, scale, shift, slot, knot_start.numel() - 1);
  auto g = gT.contiguous();
  TORCH_CHECK(g.scalar_type() == at::kDouble && g.numel() == atom_type.numel() * 4 * tb.m,
              "dE/dT must be float64 [N, 4, M]");
  auto gvec = at::empty({E, 3}, vec.options());
#if MTZOO_AVX512
  if (mtzoo_use_avx512()) {
    backward_edges_avx512(E, g.data_ptr<double>(), vec.data_ptr<double>(), em, rr.data_ptr<double>(),
                          t.data_ptr<double>(), col.data_ptr<int64_t>(), inside.data_ptr<bool>(), tb, rs, rc, prot,
                          gvec.data_ptr<double>());
    return gvec;
  }
#endif
  backward_edges(E, g.data_ptr<double>(), vec.data_ptr<double>(), em, rr.data_ptr<double>(), t.data_ptr<double>(),
                 col.data_ptr<int64_t>(), inside.data_ptr<bool>(), tb, rs, rc, prot, gvec.data_ptr<double>());
  return gvec;
}
