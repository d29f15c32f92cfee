// Register-blocked float64 matrix product for the fitting nets' inference pass (fitting_ext.cpp),
// on CPUs with AVX-512:
//
//   C [m, n] = C0 + A [m, k] B [k, n],   C0 = C (accumulate) | 1 b^T (a bias row) | 0
//
// B is a weight matrix (or its transpose), constant between calls, so it is packed once
// (gemm_pack, cached by mtzoo/nn/mlp.py) into column panels of NR = 24: panel j holds
// B[:, 24 j : 24 j + 24] row by row ([n_panels, k, 24], zero-padded past n).  A (activations,
// row-major) is read in place.  The micro-kernel keeps an MR x 24 block of C (MR = 8: 24 zmm
// accumulators) in registers and runs over k with one FMA per accumulator and step: per step
// three 8-wide loads of the panel and MR broadcasts of A.  For k up to KC_MAX the whole k runs at
// once (C written once); longer k is split into KC_MAX chunks (C accumulated).
//
// Why: the MKL build torch ships runs its AVX2 code on AMD CPUs; on Zen 5 (full-width AVX-512)
// the products alone measured 112-118 GFLOP/s here against MKL's 49-55 on the water model's
// shapes (m 64-128, k 240-1480, n 240-1480), and the whole fitting pass 2.0x
// (benchmarks/fitting_gemm.py, docs/benchmarks.md).  Without AVX-512 (or with MTZOO_NO_AVX512
// set) fitting_ext.cpp calls ATen's mm instead.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ext_common.h"
#include "gemm_ext.h"

#if MTZOO_AVX512
#include <immintrin.h>
#endif

namespace {

constexpr int64_t NR = 24;
constexpr int64_t KC_MAX = 1536;

#if MTZOO_AVX512
#define MTZOO_AVX512_FN __attribute__((target("avx512f,avx2,fma")))

// C[r, 24 block] for MR rows: init 0 = from C, 1 = the bias row, 2 = zero.  m0..m2 mask the
// three 8-column groups (the last panel of an n that is not a multiple of 24).
template <int MR>
MTZOO_AVX512_FN inline void micro(int64_t kc, const double* A, int64_t lda, const double* Bp, double* C, int64_t ldc,
                                  __mmask8 m0, __mmask8 m1, __mmask8 m2, int init, const double* bias) {
  __m512d acc[MR][3];
  if (init == 0) {
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      acc[r][0] = _mm512_maskz_loadu_pd(m0, C + r * ldc);
      acc[r][1] = _mm512_maskz_loadu_pd(m1, C + r * ldc + 8);
      acc[r][2] = _mm512_maskz_loadu_pd(m2, C + r * ldc + 16);
    }
  } else if (init == 1) {
    const __m512d b0 = _mm512_maskz_loadu_pd(m0, bias), b1 = _mm512_maskz_loadu_pd(m1, bias + 8),
                  b2 = _mm512_maskz_loadu_pd(m2, bias + 16);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      acc[r][0] = b0;
      acc[r][1] = b1;
      acc[r][2] = b2;
    }
  } else {
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = acc[r][2] = _mm512_setzero_pd();
  }
  for (int64_t p = 0; p < kc; ++p) {
    const double* b = Bp + p * NR;
    const __m512d b0 = _mm512_loadu_pd(b), b1 = _mm512_loadu_pd(b + 8), b2 = _mm512_loadu_pd(b + 16);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512d a = _mm512_set1_pd(A[r * lda + p]);
      acc[r][0] = _mm512_fmadd_pd(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_pd(a, b1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_pd(a, b2, acc[r][2]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    _mm512_mask_storeu_pd(C + r * ldc, m0, acc[r][0]);
    _mm512_mask_storeu_pd(C + r * ldc + 8, m1, acc[r][1]);
    _mm512_mask_storeu_pd(C + r * ldc + 16, m2, acc[r][2]);
  }
}

inline __mmask8 col_mask(int64_t c) { return c >= 8 ? 0xFF : c <= 0 ? 0 : static_cast<__mmask8>((1u << c) - 1); }

// all m rows against one panel chunk: blocks of 8 rows, then the 1-7 left over
MTZOO_AVX512_FN void panel_rows(int64_t m, int64_t kc, const double* A, int64_t lda, const double* Bp, double* C,
                                int64_t ldc, int64_t n_cols, int init, const double* bias) {
  const __mmask8 m0 = col_mask(n_cols), m1 = col_mask(n_cols - 8), m2 = col_mask(n_cols - 16);
  int64_t i = 0;
  for (; i + 8 <= m; i += 8) micro<8>(kc, A + i * lda, lda, Bp, C + i * ldc, ldc, m0, m1, m2, init, bias);
  const double* a = A + i * lda;
  double* c = C + i * ldc;
  switch (m - i) {
    case 7: micro<7>(kc, a, lda, Bp, c, ldc, m0, m1, m2, init, bias); break;
    case 6: micro<6>(kc, a, lda, Bp, c, ldc, m0, m1, m2, init, bias); break;
    case 5: micro<5>(kc, a, lda, Bp, c, ldc, m0, m1, m2, init, bias); break;
    case 4: micro<4>(kc, a, lda, Bp, c, ldc, m0, m1, m2, init, bias); break;
    case 3: micro<3>(kc, a, lda, Bp, c, ldc, m0, m1, m2, init, bias); break;
    case 2: micro<2>(kc, a, lda, Bp, c, ldc, m0, m1, m2, init, bias); break;
    case 1: micro<1>(kc, a, lda, Bp, c, ldc, m0, m1, m2, init, bias); break;
    default: break;
  }
}
#endif

}  // namespace

bool gemm_packed_available() { return mtzoo_use_avx512(); }

// P[j, r, c] = B[r, 24 j + c] with B = W [a, b] (k = a, n = b) or W^T (k = b, n = a)
void gemm_pack_into(const at::Tensor& W_, bool transpose, at::Tensor& P) {
  const at::Tensor W = W_.contiguous();
  const int64_t a = W.size(0), b = W.size(1), k = transpose ? b : a, n = transpose ? a : b, np = (n + NR - 1) / NR;
  TORCH_CHECK(P.dim() == 3 && P.size(0) == np && P.size(1) == k && P.size(2) == NR && P.is_contiguous() &&
                  P.scalar_type() == at::kDouble,
              "gemm_pack: a packed tensor [", np, ", ", k, ", ", NR, "] expected");
  const double* w = W.data_ptr<double>();
  double* p = P.data_ptr<double>();
  for (int64_t j = 0; j < np; ++j) {
    const int64_t cols = std::min(NR, n - j * NR);
    double* pj = p + j * k * NR;
    if (!transpose) {
      for (int64_t r = 0; r < k; ++r) {
        std::copy(w + r * b + j * NR, w + r * b + j * NR + cols, pj + r * NR);
        std::fill(pj + r * NR + cols, pj + (r + 1) * NR, 0.0);
      }
    } else {  // B[r, col] = W[col, r]: the panel's 24 rows of W, read along r
      for (int64_t r = 0; r < k; ++r) std::fill(pj + r * NR + cols, pj + (r + 1) * NR, 0.0);
      for (int64_t c = 0; c < cols; ++c) {
        const double* wc = w + (j * NR + c) * b;
        for (int64_t r = 0; r < k; ++r) pj[r * NR + c] = wc[r];
      }
    }
  }
}

at::Tensor gemm_pack(at::Tensor W, bool transpose) {
  TORCH_CHECK(W.dim() == 2 && W.scalar_type() == at::kDouble && W.device().is_cpu(),
              "gemm_pack: W must be a 2-D float64 CPU tensor");
  const int64_t k = transpose ? W.size(1) : W.size(0), n = transpose ? W.size(0) : W.size(1);
  at::Tensor P = at::empty({(n + NR - 1) / NR, k, NR}, W.options());
  gemm_pack_into(W, transpose, P);
  return P;
}

// Whether P still holds W's values, compared bit for bit at 64 elements of W spread over it at
// an odd stride (and its last): an update that bypasses autograd's version counter (a fused
// optimizer step, a write through .data or numpy) changes the weights at the sampled positions
// too.  Few samples because each is a cache and TLB miss in P (every 61st element of the
// water model's weights took 150-250 us per call).
bool gemm_pack_current(const at::Tensor& W_, bool transpose, const at::Tensor& P) {
  const at::Tensor W = W_.contiguous();
  const int64_t a = W.size(0), b = W.size(1), k = transpose ? b : a, n = transpose ? a : b;
  if (P.dim() != 3 || P.size(0) != (n + NR - 1) / NR || P.size(1) != k) return false;  // another shape
  if (a * b == 0) return true;
  const double* w = W.data_ptr<double>();
  const double* p = P.data_ptr<double>();
  auto same = [&](int64_t t) {
    const int64_t r = t / b, c = t % b;  // W[r, c] = B[r, c] or B[c, r]
    const int64_t row = transpose ? c : r, col = transpose ? r : c;
    const double v = p[((col / NR) * k + row) * NR + col % NR];
    return std::memcmp(&v, w + t, sizeof v) == 0;
  };
  const int64_t stride = (a * b) / 64 | 1;
  for (int64_t t = 0; t < a * b; t += stride)
    if (!same(t)) return false;
  return same(a * b - 1);
}

void gemm_packed(int64_t m, int64_t n, int64_t k, const double* A, int64_t lda, const at::Tensor& P,
                 const double* bias, bool accumulate, double* C, int64_t ldc) {
  const int64_t np = (n + NR - 1) / NR;
  TORCH_CHECK(P.dim() == 3 && P.size(0) == np && P.size(1) == k && P.size(2) == NR && P.is_contiguous() &&
                  P.scalar_type() == at::kDouble,
              "gemm_packed: a packed weight of [", np, ", ", k, ", ", NR, "] expected (gemm_pack)");
#if MTZOO_AVX512
  TORCH_CHECK(mtzoo_use_avx512(), "gemm_packed: needs AVX-512 (gemm_packed_available)");
  const double* p = P.data_ptr<double>();
  const int64_t kc_max = k <= KC_MAX ? std::max<int64_t>(k, 1) : KC_MAX;
  at::parallel_for(0, np, 1, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      int64_t pc = 0;
      do {  // once when k = 0 (C = C0)
        const int64_t kc = std::min(kc_max, k - pc);
        const int init = pc > 0 || accumulate ? 0 : (bias != nullptr ? 1 : 2);
        panel_rows(m, kc, A + pc, lda, p + (j * k + pc) * NR, C + j * NR, ldc, n - j * NR, init,
                   bias != nullptr ? bias + j * NR : nullptr);
        pc += kc_max;
      } while (pc < k);
    }
  });
#else
  (void)m, (void)A, (void)lda, (void)bias, (void)accumulate, (void)C, (void)ldc;
  TORCH_CHECK(false, "gemm_packed: built without AVX-512 kernels");
#endif
}
