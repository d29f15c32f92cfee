// Compiled per-atom tail of the compressed se_e2_a descriptor (see mtzoo/nn/tabulate.py: SeATail).
//
// Forward, per centre n of type c_n (M = M1 embedding channels, M2 axis channels):
//   X_n = (T_n + sum_t p_nt P[c_n, t]) / N_c                      X_n, T_n, P[., .]: [4, M]
//   D_n[m, a] = sum_k X_n[k, m] X_n[k, a]     (a < M2)            D_n: [M, M2]
// where p_nt are the empty neighbour slots of type t (sel_t minus the neighbours found) and
// P[c, t] their closed-form contribution.  Backward, from dD = dE/dD and dX = dE/dX (the
// rotation-matrix output, may be absent):
//   dE/dX_n[k, m] = dX[k, m] + sum_a X[k, a] dD[m, a] + [m < M2] sum_m' X[k, m'] dD[m', m]
//   dE/dT_n = dE/dX_n / N_c
// (p_nt are neighbour counts: constants).  About 3 * 4 * M * M2 multiply-adds per centre, in
// loops vectorised over a or m.  The [N, M * M2] arrays D and dE/dD are 2.4 MB each for 192
// water atoms.  The backward's sum over a reduces along a row of dD: vectorised over a, every m
// ends in four horizontal sums (0.9 ms for 192 water atoms here).  With AVX2 and FMA (and M, M2
// multiples of 4; MTZOO_NO_AVX2 unset) tail_backward_avx2 instead takes dD in 4 x 4 blocks,
// transposes each in registers and accumulates both sums with vertical multiply-adds (no
// horizontal sums); otherwise the portable loop.
//
// Folded layout (folded = true): the M2 x M2 block of D_n is symmetric (D[m, a] = D[a, m] for
// m, a < M2), so only its lower triangle is written: per centre, rows m < M2 hold a = 0..m
// (M2 (M2 + 1) / 2 entries), then rows m >= M2 hold a = 0..M2-1, in all
// F = M M2 - M2 (M2 - 1) / 2 entries (1480 of 1600 for water).  A fitting net whose first layer
// has the mirror rows summed (W'[m, a] = W[m, a] + W[a, m] for a < m < M2; see
// mtzoo/descriptors/se_e2_a.py: folded_index) gives the same energy with 7.5 % fewer multiply-adds
// in its largest product.  The backward takes dE/dD' in the same layout: every kept entry (m, a)
// adds dD'[m, a] X[k, a] to dE/dX[k, m] and dD'[m, a] X[k, m] to dE/dX[k, a].
#include <ATen/core/Tensor.h>  // light headers: torch/extension.h only in ext_module.cpp
#include <ATen/ops/empty.h>
#include <cstdlib>
#include <optional>
#include <vector>

#include "ext_common.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(MTZOO_PORTABLE)
#include <immintrin.h>
#define MTZOO_TAIL_AVX2 1
#else
#define MTZOO_TAIL_AVX2 0
#endif

namespace {

MTZOO_CLONES
void tail_forward(int64_t N, int64_t M, int64_t M2, int64_t nt, const double* T, const double* pad,
                  const double* rows, const int64_t* type, double inv, bool folded, double* X, double* D) {
  for (int64_t n = 0; n < N; ++n) {
    const double* tn = T + n * 4 * M;
    double* x = X + n * 4 * M;
#pragma omp simd
    for (int64_t q = 0; q < 4 * M; ++q) x[q] = tn[q];
    if (pad != nullptr) {
      for (int64_t t = 0; t < nt; ++t) {
        const double p = pad[n * nt + t];
        const double* r = rows + (type[n] * nt + t) * 4 * M;
#pragma omp simd
        for (int64_t q = 0; q < 4 * M; ++q) x[q] += p * r[q];
      }
    }
#pragma omp simd
    for (int64_t q = 0; q < 4 * M; ++q) x[q] *= inv;
    const double *x0 = x, *x1 = x + M, *x2 = x + 2 * M, *x3 = x + 3 * M;
    const int64_t tri = folded ? M2 * (M2 + 1) / 2 : 0;  // entries of the triangle rows m < M2
    double* d = D + n * (M * M2 - (folded ? M2 * (M2 - 1) / 2 : 0));
    int64_t m = 0;
    if (folded) {
      for (; m < M2; ++m) {
        const double a0 = x0[m], a1 = x1[m], a2 = x2[m], a3 = x3[m];
        double* dm = d + m * (m + 1) / 2;
        for (int64_t a = 0; a <= m; ++a) dm[a] = a0 * x0[a] + a1 * x1[a] + a2 * x2[a] + a3 * x3[a];
      }
    }
    for (; m < M; ++m) {
      const double a0 = x0[m], a1 = x1[m], a2 = x2[m], a3 = x3[m];
      double* dm = d + tri + (m - (folded ? M2 : 0)) * M2;
#pragma omp simd
      for (int64_t a = 0; a < M2; ++a) dm[a] = a0 * x0[a] + a1 * x1[a] + a2 * x2[a] + a3 * x3[a];
    }
  }
}

// dE/dX of the triangle rows m < M2 of the folded layout: g[k, m] (rows m < M2) and acc[k, a]
// start here; gd points at the centre's dD'.
inline void triangle_backward(int64_t M, int64_t M2, const double* x, const double* gd, double* g, double* acc) {
  for (int64_t m = 0; m < M2; ++m) {
    const double* gm = gd + m * (m + 1) / 2;
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    for (int64_t a = 0; a <= m; ++a) {
      const double q = gm[a];
      for (int k = 0; k < 4; ++k) {
        s[k] += x[k * M + a] * q;
        acc[k * M2 + a] += x[k * M + m] * q;
      }
    }
    for (int k = 0; k < 4; ++k) g[k * M + m] = s[k];
  }
}

MTZOO_CLONES
void tail_backward(int64_t N, int64_t M, int64_t M2, const double* X, const double* GD, const double* GX,
                   double inv, bool folded, double* GT, double* acc /* [4 * M2] */) {
  const int64_t F = M * M2 - (folded ? M2 * (M2 - 1) / 2 : 0), tri = folded ? M2 * (M2 + 1) / 2 : 0;
  const int64_t m_begin = folded ? M2 : 0;  // first full row
  for (int64_t n = 0; n < N; ++n) {
    const double* x = X + n * 4 * M;
    const double *x0 = x, *x1 = x + M, *x2 = x + 2 * M, *x3 = x + 3 * M;
    const double* gd = GD + n * F;
    double* g = GT + n * 4 * M;
    for (int64_t q = 0; q < 4 * M2; ++q) acc[q] = 0.0;
    if (folded) triangle_backward(M, M2, x, gd, g, acc);
    for (int64_t m = m_begin; m < M; ++m) {
      // g[k, m] = sum_a X[k, a] dD[m, a] and acc[k, a] += X[k, m] dD[m, a] in one pass over dD
      const double* gm = gd + tri + (m - m_begin) * M2;
      const double a0 = x0[m], a1 = x1[m], a2 = x2[m], a3 = x3[m];
      double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int64_t a = 0; a < M2; ++a) {
        const double q = gm[a];
        acc[a] += a0 * q;
        acc[M2 + a] += a1 * q;
        acc[2 * M2 + a] += a2 * q;
        acc[3 * M2 + a] += a3 * q;
        s0 += x0[a] * q;
        s1 += x1[a] * q;
        s2 += x2[a] * q;
        s3 += x3[a] * q;
      }
      g[m] = s0;
      g[M + m] = s1;
      g[2 * M + m] = s2;
      g[3 * M + m] = s3;
    }
    for (int64_t k = 0; k < 4; ++k) {
      double* gk = g + k * M;
#pragma omp simd
      for (int64_t a = 0; a < M2; ++a) gk[a] += acc[k * M2 + a];
      if (GX != nullptr) {
        const double* ek = GX + n * 4 * M + k * M;
#pragma omp simd
        for (int64_t m = 0; m < M; ++m) gk[m] = (gk[m] + ek[m]) * inv;
      } else {
#pragma omp simd
        for (int64_t m = 0; m < M; ++m) gk[m] *= inv;
      }
    }
  }
}

#if MTZOO_TAIL_AVX2
// The same sums as tail_backward for M % 4 == 0 and M2 % 4 == 0.  Per block of rows m0..m0+3
// and columns a0..a0+3 of dD (r_j = dD[m0 + j, a0..a0+3]):
//   acc[k, a0..a0+3] += sum_j X[k, m0 + j] r_j                     (broadcast x vertical FMA)
//   g[k, m0..m0+3]   += sum_a' X[k, a0 + a'] (r_0[a'], .., r_3[a'])  (columns of the transposed block)
__attribute__((target("avx2,fma"))) void tail_backward_avx2(int64_t N, int64_t M, int64_t M2, const double* X,
                                                            const double* GD, const double* GX, double inv,
                                                            bool folded, double* GT, double* acc) {
  const __m256d vinv = _mm256_set1_pd(inv);
  const int64_t F = M * M2 - (folded ? M2 * (M2 - 1) / 2 : 0), tri = folded ? M2 * (M2 + 1) / 2 : 0;
  const int64_t m_begin = folded ? M2 : 0;  // first full row (a multiple of 4)
  for (int64_t n = 0; n < N; ++n) {
    const double* x = X + n * 4 * M;
    const double* gd = GD + n * F;
    double* g = GT + n * 4 * M;
    for (int64_t q = 0; q < 4 * M2; ++q) acc[q] = 0.0;
    if (folded) triangle_backward(M, M2, x, gd, g, acc);
    for (int64_t m0 = m_begin; m0 < M; m0 += 4) {
      __m256d s[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
      const double* rowp = gd + tri + (m0 - m_begin) * M2;
      for (int64_t a0 = 0; a0 < M2; a0 += 4) {
        const __m256d r0 = _mm256_loadu_pd(rowp + a0), r1 = _mm256_loadu_pd(rowp + M2 + a0);
        const __m256d r2 = _mm256_loadu_pd(rowp + 2 * M2 + a0), r3 = _mm256_loadu_pd(rowp + 3 * M2 + a0);
        for (int k = 0; k < 4; ++k) {
          const double* xk = x + k * M;
          double* ak = acc + k * M2 + a0;
          __m256d v = _mm256_loadu_pd(ak);
          v = _mm256_fmadd_pd(_mm256_broadcast_sd(xk + m0), r0, v);
          v = _mm256_fmadd_pd(_mm256_broadcast_sd(xk + m0 + 1), r1, v);
          v = _mm256_fmadd_pd(_mm256_broadcast_sd(xk + m0 + 2), r2, v);
          v = _mm256_fmadd_pd(_mm256_broadcast_sd(xk + m0 + 3), r3, v);
          _mm256_storeu_pd(ak, v);
        }
        const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
        const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
        const __m256d c0 = _mm256_permute2f128_pd(t0, t2, 0x20), c1 = _mm256_permute2f128_pd(t1, t3, 0x20);
        const __m256d c2 = _mm256_permute2f128_pd(t0, t2, 0x31), c3 = _mm256_permute2f128_pd(t1, t3, 0x31);
        for (int k = 0; k < 4; ++k) {
          const double* xk = x + k * M + a0;
          __m256d v = _mm256_fmadd_pd(_mm256_broadcast_sd(xk), c0, s[k]);
          v = _mm256_fmadd_pd(_mm256_broadcast_sd(xk + 1), c1, v);
          v = _mm256_fmadd_pd(_mm256_broadcast_sd(xk + 2), c2, v);
          s[k] = _mm256_fmadd_pd(_mm256_broadcast_sd(xk + 3), c3, v);
        }
      }
      for (int k = 0; k < 4; ++k) _mm256_storeu_pd(g + k * M + m0, s[k]);
    }
    for (int64_t k = 0; k < 4; ++k) {
      double* gk = g + k * M;
      for (int64_t a = 0; a < M2; a += 4)
        _mm256_storeu_pd(gk + a, _mm256_add_pd(_mm256_loadu_pd(gk + a), _mm256_loadu_pd(acc + k * M2 + a)));
      const double* ek = GX != nullptr ? GX + n * 4 * M + k * M : nullptr;
      for (int64_t m = 0; m < M; m += 4) {
        __m256d v = _mm256_loadu_pd(gk + m);
        if (ek != nullptr) v = _mm256_add_pd(v, _mm256_loadu_pd(ek + m));
        _mm256_storeu_pd(gk + m, _mm256_mul_pd(v, vinv));
      }
    }
  }
}

bool use_tail_avx2(int64_t M, int64_t M2) {
  static const bool cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return cpu && M % 4 == 0 && M2 % 4 == 0 && std::getenv("MTZOO_NO_AVX2") == nullptr;
}
#endif

void check(const at::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.scalar_type() == at::kDouble && t.is_contiguous() && t.dim() == dim,
              "se_a_tail: ", name, " must be a contiguous float64 tensor with ", dim, " dimensions");
}

}  // namespace

// T [N, 4, M]; pad [N, nt] and rows [nt, nt, 4, M] (both or neither), atom_type [N];
// returns (X [N, 4, M], D [N, M * M2]; folded: [N, M * M2 - M2 (M2 - 1) / 2], see the top).
std::vector<at::Tensor> se_a_tail_forward(at::Tensor T, std::optional<at::Tensor> pad, std::optional<at::Tensor> rows,
                                          at::Tensor atom_type, double inv_nnei, int64_t m2, bool folded) {
  check(T, "T", 3);
  const int64_t N = T.size(0), M = T.size(2);
  TORCH_CHECK(T.size(1) == 4 && m2 >= 1 && m2 <= M, "se_a_tail: T must be [N, 4, M] with 1 <= M2 <= M");
  TORCH_CHECK(pad.has_value() == rows.has_value(), "se_a_tail: give both pad and rows or neither");
  int64_t nt = 0;
  if (pad.has_value()) {
    check(*pad, "pad", 2);
    check(*rows, "rows", 4);
    nt = pad->size(1);
    TORCH_CHECK(pad->size(0) == N && rows->size(0) == nt && rows->size(1) == nt && rows->size(3) == M,
                "se_a_tail: pad [N, nt] and rows [nt, nt, 4, M] do not match T");
    TORCH_CHECK(atom_type.scalar_type() == at::kLong && atom_type.is_contiguous() && atom_type.numel() == N,
                "se_a_tail: atom_type must be a contiguous int64 [N] tensor");
  }
  auto X = at::empty({N, 4, M}, T.options());
  auto D = at::empty({N, M * m2 - (folded ? m2 * (m2 - 1) / 2 : 0)}, T.options());
  tail_forward(N, M, m2, nt, T.data_ptr<double>(), pad ? pad->data_ptr<double>() : nullptr,
               rows ? rows->data_ptr<double>() : nullptr, pad ? atom_type.data_ptr<int64_t>() : nullptr, inv_nnei,
               folded, X.data_ptr<double>(), D.data_ptr<double>());
  return {X, D};
}

// X [N, 4, M] from the forward, gD = dE/dD [N, M * M2] (folded: in the folded layout), gX = dE/dX
// [N, 4, M] or None; returns dE/dT.
at::Tensor se_a_tail_backward(at::Tensor X, at::Tensor gD, std::optional<at::Tensor> gX, double inv_nnei,
                              int64_t m2, bool folded) {
  check(X, "X", 3);
  const int64_t N = X.size(0), M = X.size(2);
  TORCH_CHECK(m2 >= 1 && m2 <= M, "se_a_tail: need 1 <= M2 <= M");
  auto gd = gD.contiguous();
  TORCH_CHECK(gd.scalar_type() == at::kDouble && gd.numel() == N * (M * m2 - (folded ? m2 * (m2 - 1) / 2 : 0)),
              "se_a_tail: dE/dD must be float64 [N, M * M2] (folded: [N, M * M2 - M2 (M2 - 1) / 2])");
  at::Tensor gx;
  if (gX.has_value()) {
    gx = gX->contiguous();
    TORCH_CHECK(gx.scalar_type() == at::kDouble && gx.numel() == N * 4 * M, "se_a_tail: dE/dX must be float64 [N, 4, M]");
  }
  auto GT = at::empty({N, 4, M}, X.options());
  std::vector<double> acc(4 * m2);
#if MTZOO_TAIL_AVX2
  if (use_tail_avx2(M, m2)) {
    tail_backward_avx2(N, M, m2, X.data_ptr<double>(), gd.data_ptr<double>(), gX ? gx.data_ptr<double>() : nullptr,
                       inv_nnei, folded, GT.data_ptr<double>(), acc.data());
    return GT;
  }
#endif
  tail_backward(N, M, m2, X.data_ptr<double>(), gd.data_ptr<double>(), gX ? gx.data_ptr<double>() : nullptr,
                inv_nnei, folded, GT.data_ptr<double>(), acc.data());
  return GT;
}
