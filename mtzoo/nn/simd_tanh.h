// float64 tanh on 4 or 8 lanes (GCC vector extensions), inlined into the caller's target:
// activation_ext.cpp's AVX2+FMA loop (4 lanes) and AVX-512 loop (8 lanes).
//
// a = min(|x|, 20) (tanh = 1 in float64 beyond 19.1), e = expm1(-2a) by -2a = k ln2 + r
// (|r| <= ln2 / 2, ln2 in two parts, k rounded by the 1.5 * 2^52 shift), expm1(r) = r P(r) with
// P(r) = sum_{j <= 12} r^j / (j + 1)! by Estrin's scheme (depth 5; remainder below 5e-18
// relative), e = 2^k expm1(r) + (2^k - 1) with 2^k built from k's bits; tanh(a) = -e / (2 + e),
// which keeps full relative precision near 0; the sign of x copied back (signed zeros kept); NaN
// passes through.  Within 3 ulp of std::tanh (tests compare with torch.tanh).  a * b + c compiles
// to one FMA where the target has it (GCC contracts in C++ by default).
#pragma once
#include <cstdint>

#if defined(__GNUC__)
typedef double mtzoo_v4d __attribute__((vector_size(32)));
typedef int64_t mtzoo_v4l __attribute__((vector_size(32)));
typedef double mtzoo_v8d __attribute__((vector_size(64)));
typedef int64_t mtzoo_v8l __attribute__((vector_size(64)));

template <typename V, typename VI>
__attribute__((always_inline)) inline V mtzoo_vtanh(V x) {
  const VI sign = VI{} + static_cast<int64_t>(0x8000000000000000ull);
  const V a0 = (V)((VI)x & ~sign);
  const V lim = V{} + 20.0;
  const V a = a0 < lim ? a0 : lim;  // NaN -> 20 (put back at the end)
  const V y = a * -2.0;
  const V magic = V{} + 6755399441055744.0;  // 1.5 * 2^52: the shifted sum's low bits hold k
  const V shifted = y * 1.4426950408889634 + magic;
  const V kd = shifted - magic;
  const VI k = (VI)shifted - (VI)magic;
  V r = y - kd * 6.93147180369123816490e-01;
  r = r - kd * 1.90821492927058770002e-10;
  constexpr double c0 = 1.0, c1 = 1.0 / 2.0, c2 = 1.0 / 6.0, c3 = 1.0 / 24.0, c4 = 1.0 / 120.0, c5 = 1.0 / 720.0,
                   c6 = 1.0 / 5040.0, c7 = 1.0 / 40320.0, c8 = 1.0 / 362880.0, c9 = 1.0 / 3628800.0,
                   c10 = 1.0 / 39916800.0, c11 = 1.0 / 479001600.0, c12 = 1.0 / 6227020800.0;
  const V r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
  const V q0 = r * c1 + c0, q1 = r * c3 + c2, q2 = r * c5 + c4, q3 = r * c7 + c6, q4 = r * c9 + c8, q5 = r * c11 + c10;
  const V s0 = q1 * r2 + q0, s1 = q3 * r2 + q2, s2 = q5 * r2 + q4;
  const V u0 = s1 * r4 + s0, u1 = r4 * c12 + s2;
  const V p = (u1 * r8 + u0) * r;  // expm1(r)
  const V two_k = (V)((k + 1023) << 52);
  const V e = two_k * p + (two_k - 1.0);
  const V t = -e / (e + 2.0);
  const V out = (V)(((VI)t & ~sign) | ((VI)x & sign));
  return x != x ? x : out;
}
#endif
