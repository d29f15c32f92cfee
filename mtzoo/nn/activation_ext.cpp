// Vectorised tanh for the mtzoo extension (see mtzoo/nn/common.py: fast_tanh).
//
// torch 2.13's CPU tanh took 9-12 ns per float64 element on this project's AMD EPYC machine
// (exp: 3.5 ns), a tenth of a force-training step on DeePMD's water example.  float64:
// simd_tanh.h's series on 8 lanes (AVX-512) or 4 (AVX2+FMA), chosen at run time
// (MTZOO_NO_AVX512=1: the 4-lane loop).  float32: glibc's
// libmvec _ZGVdN8v_tanhf (glibc >= 2.35, within 4 ulp), looked up with dlsym so the library
// builds and runs everywhere.  Otherwise the loop calls std::tanh.  MTZOO_NO_MVEC=1 turns the
// vector paths off.  y may alias x (in place).
#include <ATen/core/Tensor.h>  // light headers: torch/extension.h only in ext_module.cpp
#include <ATen/ops/empty_like.h>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>

#include "ext_common.h"
#include "simd_tanh.h"

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) && !defined(MTZOO_PORTABLE)
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

// n values, two independent vectors in flight (the series is one long chain); the last < 2 W
// through a buffer
template <typename V, typename VI>
__attribute__((always_inline)) inline void tanh_loop(int64_t n, const double* x, double* y) {
  constexpr int64_t W = sizeof(V) / sizeof(double);
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    V u, v;
    __builtin_memcpy(&u, x + i, sizeof u);
    __builtin_memcpy(&v, x + i + W, sizeof v);
    u = mtzoo_vtanh<V, VI>(u);
    v = mtzoo_vtanh<V, VI>(v);
    __builtin_memcpy(y + i, &u, sizeof u);
    __builtin_memcpy(y + i + W, &v, sizeof v);
  }
  for (; i < n; i += W) {
    const int64_t w = n - i < W ? n - i : W;
    double buf[W] = {};
    for (int64_t j = 0; j < w; ++j) buf[j] = x[i + j];
    V u;
    __builtin_memcpy(&u, buf, sizeof u);
    u = mtzoo_vtanh<V, VI>(u);
    __builtin_memcpy(buf, &u, sizeof u);
    for (int64_t j = 0; j < w; ++j) y[i + j] = buf[j];
  }
}

__attribute__((target("avx2,fma"))) void tanh_avx2(int64_t n, const double* x, double* y) {
  tanh_loop<mtzoo_v4d, mtzoo_v4l>(n, x, y);
}

__attribute__((target("avx512f,avx2,fma"))) void tanh_avx512(int64_t n, const double* x, double* y) {
  tanh_loop<mtzoo_v8d, mtzoo_v8l>(n, x, y);
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
      if (mtzoo_use_avx512())
        tanh_avx512(n, x.data_ptr<double>(), y.data_ptr<double>());
      else
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
