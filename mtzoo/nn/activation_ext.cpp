// Vectorised tanh for the mtzoo extension (see mtzoo/nn/common.py: fast_tanh).
//
// torch 2.13's CPU tanh took 9-12 ns per float64 element on this project's AMD EPYC machine
// (exp: 3.5 ns), a tenth of a force-training step on DeePMD's water example.  float64: the AVX2
// kernel below (tanh4), chosen at run time when the CPU has AVX2 and FMA.  float32: glibc's
// libmvec _ZGVdN8v_tanhf (glibc >= 2.35, within 4 ulp), looked up with dlsym so the library
// builds and runs everywhere.  Otherwise the loop calls std::tanh.  MTZOO_NO_MVEC=1 turns the
// vector paths off.  y may alias x (in place).
#include <ATen/core/Tensor.h>  // light headers: torch/extension.h only in ext_module.cpp
#include <ATen/ops/empty_like.h>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#include <dlfcn.h>
#include <immintrin.h>
#define MTZOO_MVEC 1
#else
#define MTZOO_MVEC 0
#endif

namespace {

#if MTZOO_MVEC
typedef __m256 (*vtanh8f_t)(__m256);

// What this CPU and C library offer, looked up once.
struct Mvec {
  bool avx2 = false;           // float64: tanh_avx2
  vtanh8f_t tanh8f = nullptr;  // float32: libmvec
  Mvec() {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
    avx2 = true;
    void* h = dlopen("libmvec.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h != nullptr) tanh8f = reinterpret_cast<vtanh8f_t>(dlsym(h, "_ZGVdN8v_tanhf"));
  }
};

const Mvec& mvec() {
  static const Mvec m;
  return m;
}

// float64, four lanes: a = min(|x|, 20) (tanh = 1 in float64 beyond 19.1), e = expm1(-2a) by
// y = k ln2 + r (|r| <= ln2 / 2, ln2 in two parts), expm1(r) by its Taylor series to r^13 (Estrin)
// (remainder below 5e-18 relative) and e = 2^k expm1(r) + (2^k - 1), 2^k built from k's bits;
// tanh(a) = -e / (2 + e), which keeps full relative precision near 0; the sign of x copied back;
// NaN passes through.  Within 3 ulp of std::tanh (tests compare with torch.tanh).
__attribute__((target("avx2,fma"), always_inline)) inline __m256d tanh4(__m256d x) {
  const __m256d sign = _mm256_set1_pd(-0.0);
  const __m256d a = _mm256_min_pd(_mm256_andnot_pd(sign, x), _mm256_set1_pd(20.0));
  const __m256d yv = _mm256_mul_pd(a, _mm256_set1_pd(-2.0));
  const __m256d kd = _mm256_round_pd(_mm256_mul_pd(yv, _mm256_set1_pd(1.4426950408889634)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(kd, _mm256_set1_pd(6.93147180369123816490e-01), yv);
  r = _mm256_fnmadd_pd(kd, _mm256_set1_pd(1.90821492927058770002e-10), r);
  // expm1(r) = r P(r), P(r) = sum_k r^k / (k + 1)!, k <= 12, evaluated by Estrin's scheme
  // (depth 5 instead of Horner's 13)
#define MTZOO_C(k) _mm256_set1_pd(1.0 / f[k])
  static const double f[13] = {1.0, 2.0, 6.0, 24.0, 120.0, 720.0, 5040.0, 40320.0, 362880.0, 3628800.0,
                               39916800.0, 479001600.0, 6227020800.0};
  const __m256d r2 = _mm256_mul_pd(r, r), r4 = _mm256_mul_pd(r2, r2), r8 = _mm256_mul_pd(r4, r4);
  const __m256d q0 = _mm256_fmadd_pd(MTZOO_C(1), r, MTZOO_C(0)), q1 = _mm256_fmadd_pd(MTZOO_C(3), r, MTZOO_C(2));
  const __m256d q2 = _mm256_fmadd_pd(MTZOO_C(5), r, MTZOO_C(4)), q3 = _mm256_fmadd_pd(MTZOO_C(7), r, MTZOO_C(6));
  const __m256d q4 = _mm256_fmadd_pd(MTZOO_C(9), r, MTZOO_C(8)), q5 = _mm256_fmadd_pd(MTZOO_C(11), r, MTZOO_C(10));
  const __m256d s0 = _mm256_fmadd_pd(q1, r2, q0), s1 = _mm256_fmadd_pd(q3, r2, q2), s2 = _mm256_fmadd_pd(q5, r2, q4);
  const __m256d u0 = _mm256_fmadd_pd(s1, r4, s0), u1 = _mm256_fmadd_pd(MTZOO_C(12), r4, s2);
#undef MTZOO_C
  const __m256d p = _mm256_mul_pd(_mm256_fmadd_pd(u1, r8, u0), r);  // expm1(r)
  const __m256d magic = _mm256_set1_pd(6755399441055744.0);  // 1.5 * 2^52: k in the low bits
  const __m256i kbits = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(kd, magic)), _mm256_castpd_si256(magic));
  const __m256d two_k = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(kbits, _mm256_set1_epi64x(1023)), 52));
  const __m256d e = _mm256_fmadd_pd(two_k, p, _mm256_sub_pd(two_k, _mm256_set1_pd(1.0)));
  __m256d t = _mm256_div_pd(_mm256_xor_pd(e, sign), _mm256_add_pd(_mm256_set1_pd(2.0), e));
  t = _mm256_or_pd(_mm256_andnot_pd(sign, t), _mm256_and_pd(x, sign));
  return _mm256_blendv_pd(t, x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q));
}

__attribute__((target("avx2,fma"))) void tanh_avx2(int64_t n, const double* x, double* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {  // two independent vectors in flight (the series is one long chain)
    const __m256d u = tanh4(_mm256_loadu_pd(x + i)), v = tanh4(_mm256_loadu_pd(x + i + 4));
    _mm256_storeu_pd(y + i, u);
    _mm256_storeu_pd(y + i + 4, v);
  }
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(y + i, tanh4(_mm256_loadu_pd(x + i)));
  if (i < n) {
    double buf[4] = {0.0, 0.0, 0.0, 0.0};
    for (int64_t j = i; j < n; ++j) buf[j - i] = x[j];
    _mm256_storeu_pd(buf, tanh4(_mm256_loadu_pd(buf)));
    for (int64_t j = i; j < n; ++j) y[j] = buf[j - i];
  }
}

__attribute__((target("avx2,fma"))) void tanh_mvec(int64_t n, const float* x, float* y, vtanh8f_t f) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] = std::tanh(x[i]);
}
#endif

template <typename S>
void tanh_plain(int64_t n, const S* x, S* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

}  // namespace

// True when the float64 vector kernel is in use (for tests and benchmarks).
bool fast_tanh_vectorised() {
#if MTZOO_MVEC
  return mvec().avx2 && std::getenv("MTZOO_NO_MVEC") == nullptr;
#else
  return false;
#endif
}

// y = tanh(x) for a contiguous float64 / float32 tensor; out (same shape, dtype) may be x itself.
at::Tensor fast_tanh(at::Tensor x, std::optional<at::Tensor> out) {
  TORCH_CHECK(x.is_contiguous() && (x.scalar_type() == at::kDouble || x.scalar_type() == at::kFloat),
              "fast_tanh: x must be a contiguous float64 or float32 tensor");
  at::Tensor y = out.has_value() ? *out : at::empty_like(x);
  TORCH_CHECK(y.is_contiguous() && y.scalar_type() == x.scalar_type() && y.numel() == x.numel(),
              "fast_tanh: out must be contiguous with x's dtype and size");
  const int64_t n = x.numel();
  const bool vec = fast_tanh_vectorised();
  if (x.scalar_type() == at::kDouble) {
#if MTZOO_MVEC
    if (vec) {
      tanh_avx2(n, x.data_ptr<double>(), y.data_ptr<double>());
      return y;
    }
#endif
    tanh_plain(n, x.data_ptr<double>(), y.data_ptr<double>());
  } else {
#if MTZOO_MVEC
    if (vec && mvec().tanh8f != nullptr) {
      tanh_mvec(n, x.data_ptr<float>(), y.data_ptr<float>(), mvec().tanh8f);
      return y;
    }
#endif
    tanh_plain(n, x.data_ptr<float>(), y.data_ptr<float>());
  }
  return y;
}
