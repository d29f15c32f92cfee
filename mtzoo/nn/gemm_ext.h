// gemm_ext.cpp: the packed AVX-512 float64 matrix product of the fitting nets' inference pass.
#pragma once
#include <ATen/core/Tensor.h>
#include <cstdint>

// Whether gemm_packed can run here (AVX-512F and FMA, MTZOO_NO_AVX512 not set).
bool gemm_packed_available();
// W [k, n] (or, transposed, [n, k]) -> panels [ceil(n / 24), k, 24] of B = W (or W^T), zero-padded.
at::Tensor gemm_pack(at::Tensor W, bool transpose);
void gemm_pack_into(const at::Tensor& W, bool transpose, at::Tensor& P);
// Whether P (gemm_pack of W) still holds W's values: a sampled bitwise comparison, for updates
// that bypass autograd's version counter (fused optimizers, .data).
bool gemm_pack_current(const at::Tensor& W, bool transpose, const at::Tensor& P);
// C [m, n] (row stride ldc) = C (accumulate) | bias row (bias != nullptr) | 0, plus A [m, k] (row
// stride lda) times the packed B.
void gemm_packed(int64_t m, int64_t n, int64_t k, const double* A, int64_t lda, const at::Tensor& P,
                 const double* bias, bool accumulate, double* C, int64_t ldc);
