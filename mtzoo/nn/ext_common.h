// Shared by the mtzoo extension's kernel sources (built by mtzoo/nn/extension.py).
//
// GCC on x86-64: the portable loops are cloned for x86-64-v4 (AVX-512), v3 (AVX2+FMA) and the
// baseline (target_clones with "arch=x86-64-vN" needs GCC 12), and the register-blocked AVX-512
// kernels are compiled with a target attribute and chosen at run time (GCC >= 5).  Other
// compilers build the portable loops for their default target.  MTZOO_PORTABLE (the second build
// mtzoo/nn/extension.py tries when the first fails) leaves out every x86 vector path: no clones,
// no AVX-512 / AVX2 kernels, no libmvec tanh.
#pragma once
#include <cstdlib>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && !defined(MTZOO_PORTABLE)
#define MTZOO_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MTZOO_CLONES
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 5 && !defined(MTZOO_PORTABLE)
#define MTZOO_AVX512 1
#else
#define MTZOO_AVX512 0
#endif

// The register-blocked AVX-512 kernels run when the CPU has AVX-512F and FMA and
// MTZOO_NO_AVX512 is not set (tests run both).
inline bool mtzoo_use_avx512() {
#if MTZOO_AVX512
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma") && std::getenv("MTZOO_NO_AVX512") == nullptr;
#else
  return false;
#endif
}
