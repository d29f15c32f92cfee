// Compiled value and input gradient of a tanh fitting net (see mtzoo/nn/mlp.py:
// FittingNet.value_and_input_grad, the same arithmetic as torch ops).
//
// Hidden layer l (input h_l [n, d_l], weight W_l [d_l, d_{l+1}], bias b_l, timestep d_l, skip):
//   z = h_l W_l + b_l,  y_l = tanh(z),
//   h_{l+1} = y_l (no skip) | h_l + d_l * y_l (skip 1) | [h_l, h_l] + d_l * y_l (skip 2)
// output y = h_L W_L + b_L [n, m].  Backward of E = sum y, from g = dE/dh_L = 1_m W_L^T (each row):
//   gz = g * d_l * (1 - y_l^2)        (one fused pass; d_l = 1 without a timestep)
//   g <- gz W_l^T + r(g)               r(g) = 0 | g | g[:, :d_l] + g[:, d_l:]   (the skip's share)
// Matrix products are ATen's (MKL), or, given the weights packed (packed[2l] = gemm_pack(W_l),
// packed[2l + 1] = gemm_pack(W_l, transposed), hidden layers) on a CPU with AVX-512, gemm_ext.cpp's
// kernel (products at 112-118 against MKL's 49-55 GFLOP/s on Zen 5, where MKL runs AVX2
// code); an output layer of up to 4 columns is a loop of dot products, a wider one ATen's.  The elementwise work is fused into two passes per layer, and
// the whole net is one call from Python: about 1.2 ms of torch-op dispatch and Python per call
// on the 192-atom water frame (two nets, three hidden layers each) measured before.
#include <ATen/core/Tensor.h>  // light headers: torch/extension.h only in ext_module.cpp
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <optional>
#include <vector>

#include "ext_common.h"
#include "gemm_ext.h"

at::Tensor fast_tanh(at::Tensor x, std::optional<at::Tensor> out);  // activation_ext.cpp

namespace {

// h_next[r, c] = base[r, c mod d_in] + d[c] y[r, c]   (base: the layer input, skip 1 or 2)
MTZOO_CLONES
void residual(int64_t n, int64_t d_in, int64_t d_out, const double* base, const double* y, const double* d,
              double* out) {
  for (int64_t r = 0; r < n; ++r) {
    const double* b = base + r * d_in;
    const double* yr = y + r * d_out;
    double* o = out + r * d_out;
    for (int64_t c0 = 0; c0 < d_out; c0 += d_in) {
      const int64_t w = d_out - c0 < d_in ? d_out - c0 : d_in;
      if (d != nullptr) {
#pragma omp simd
        for (int64_t c = 0; c < w; ++c) o[c0 + c] = b[c] + d[c0 + c] * yr[c0 + c];
      } else {
#pragma omp simd
        for (int64_t c = 0; c < w; ++c) o[c0 + c] = b[c] + yr[c0 + c];
      }
    }
  }
}

// gz[r, c] = g[r, c] d[c] (1 - y[r, c]^2); g is [n, d_out] or, when broadcast, one row
MTZOO_CLONES
void tanh_grad(int64_t n, int64_t d_out, const double* g, bool broadcast, const double* d, const double* y,
               double* gz) {
  for (int64_t r = 0; r < n; ++r) {
    const double* gr = broadcast ? g : g + r * d_out;
    const double* yr = y + r * d_out;
    double* o = gz + r * d_out;
    if (d != nullptr) {
#pragma omp simd
      for (int64_t c = 0; c < d_out; ++c) o[c] = gr[c] * d[c] * (1.0 - yr[c] * yr[c]);
    } else {
#pragma omp simd
      for (int64_t c = 0; c < d_out; ++c) o[c] = gr[c] * (1.0 - yr[c] * yr[c]);
    }
  }
}

// g[r, :d] + g[r, d:] (the doubled skip's share) or g broadcast to n rows (skip 1 after the output layer)
MTZOO_CLONES
void fold_rows(int64_t n, int64_t d, const double* g, int64_t g_stride, bool doubled, double* out) {
  for (int64_t r = 0; r < n; ++r) {
    const double* gr = g + r * g_stride;
    double* o = out + r * d;
    if (doubled) {
#pragma omp simd
      for (int64_t c = 0; c < d; ++c) o[c] = gr[c] + gr[d + c];
    } else {
#pragma omp simd
      for (int64_t c = 0; c < d; ++c) o[c] = gr[c];
    }
  }
}

// y[r, o] = b[o] + sum_c h[r, c] W[c, o] for a few outputs o (b may be null)
MTZOO_CLONES
void output_rows(int64_t n, int64_t d, int64_t m, const double* h, const double* W, const double* b, double* y) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < m; ++o) {
      double acc = 0.0;
#pragma omp simd reduction(+ : acc)
      for (int64_t c = 0; c < d; ++c) acc += h[r * d + c] * W[c * m + o];
      y[r * m + o] = acc + (b != nullptr ? b[o] : 0.0);
    }
}

void check64(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.scalar_type() == at::kDouble && t.is_contiguous() && t.device().is_cpu(), "mlp_value_and_grad: ",
              what, " must be a contiguous float64 CPU tensor");
}

}  // namespace

// x [n, d_0]; weights[l] [d_l, d_{l+1}] (the last is the output layer), biases[l] (or undefined),
// idts[l] (hidden layers; or undefined), skips[l] in {0, 1, 2}; y_out [n, m], g_out [n, d_0]
// (contiguous, written); packed: empty, or two per hidden layer (above).  Hidden layers use tanh,
// the output layer is linear.
void mlp_value_and_grad(at::Tensor x, std::vector<at::Tensor> weights, std::vector<std::optional<at::Tensor>> biases,
                        std::vector<std::optional<at::Tensor>> idts, std::vector<int64_t> skips, at::Tensor y_out,
                        at::Tensor g_out, std::vector<at::Tensor> packed) {
  const size_t L = weights.size();
  TORCH_CHECK(L >= 1 && biases.size() == L && idts.size() + 1 == L && skips.size() + 1 == L,
              "mlp_value_and_grad: one weight and bias per layer, one timestep and skip per hidden layer");
  check64(x, "x");
  check64(y_out, "y_out");
  check64(g_out, "g_out");
  const int64_t n = x.size(0);
  TORCH_CHECK(packed.empty() || packed.size() == 2 * (L - 1), "mlp_value_and_grad: two packed weights per hidden layer");
  const bool own = !packed.empty() && gemm_packed_available();
  if (own)  // repack what changed behind the caller's cache key (fused optimizers do not bump versions)
    for (size_t l = 0; l + 1 < L; ++l)
      if (!gemm_pack_current(weights[l], false, packed[2 * l])) {  // the pair is packed together
        gemm_pack_into(weights[l], false, packed[2 * l]);
        gemm_pack_into(weights[l], true, packed[2 * l + 1]);
      }
  std::vector<at::Tensor> ys;  // tanh outputs (the backward's phi' = 1 - y^2)
  ys.reserve(L);
  at::Tensor h = x;
  for (size_t l = 0; l + 1 < L; ++l) {
    const at::Tensor& W = weights[l];
    check64(W, "a weight");
    const int64_t d_in = W.size(0), d_out = W.size(1);
    TORCH_CHECK(h.size(1) == d_in, "mlp_value_and_grad: layer ", l, " expects ", d_in, " inputs, got ", h.size(1));
    at::Tensor y = at::empty({n, d_out}, x.options());
    if (own) {
      const double* b = nullptr;
      if (biases[l].has_value()) {
        check64(*biases[l], "a bias");
        b = biases[l]->data_ptr<double>();
      }
      gemm_packed(n, d_out, d_in, h.data_ptr<double>(), d_in, packed[2 * l], b, false, y.data_ptr<double>(), d_out);
    } else if (biases[l].has_value())
      at::addmm_out(y, *biases[l], h, W);
    else
      at::mm_out(y, h, W);
    fast_tanh(y, y);
    ys.push_back(y);
    const int64_t skip = skips[l];
    TORCH_CHECK(skip == 0 || (skip == 1 && d_out == d_in) || (skip == 2 && d_out == 2 * d_in),
                "mlp_value_and_grad: bad skip for layer ", l);
    const double* d = idts[l].has_value() ? idts[l]->data_ptr<double>() : nullptr;
    if (skip == 0) {
      TORCH_CHECK(d == nullptr, "mlp_value_and_grad: a timestep needs a skip");
      h = y;
    } else {
      at::Tensor next = at::empty({n, d_out}, x.options());
      residual(n, d_in, d_out, h.data_ptr<double>(), y.data_ptr<double>(), d, next.data_ptr<double>());
      h = next;
    }
  }
  const at::Tensor& Wo = weights[L - 1];
  check64(Wo, "the output weight");
  const int64_t d_L = Wo.size(0), m_out = Wo.size(1);
  if (m_out <= 4) {  // a few outputs (an energy: one): dot products, no ATen call (tens of us each)
    const double* b = nullptr;
    if (biases[L - 1].has_value()) {
      check64(*biases[L - 1], "the output bias");
      b = biases[L - 1]->data_ptr<double>();
    }
    output_rows(n, d_L, m_out, h.data_ptr<double>(), Wo.data_ptr<double>(), b, y_out.data_ptr<double>());
  } else if (biases[L - 1].has_value()) {
    at::addmm_out(y_out, *biases[L - 1], h, Wo);
  } else {
    at::mm_out(y_out, h, Wo);
  }
  std::vector<double> go_rows(d_L, 0.0);  // dE/dh_L = the row sums of W_L, the same for every row
  const double* wo = Wo.data_ptr<double>();
  for (int64_t c = 0; c < d_L; ++c)
    for (int64_t o = 0; o < m_out; ++o) go_rows[c] += wo[c * m_out + o];
  if (L == 1) {  // a linear net: dE/dx is go for every row
    fold_rows(n, d_L, go_rows.data(), 0, false, g_out.data_ptr<double>());
    return;
  }
  const double* go = go_rows.data();
  at::Tensor g;                                  // dE/dh_{l+1} [n, d_{l+1}], undefined while it is go's broadcast
  for (size_t k = L - 1; k-- > 0;) {
    const at::Tensor& W = weights[k];
    const int64_t d_in = W.size(0), d_out = W.size(1);
    const double* d = idts[k].has_value() ? idts[k]->data_ptr<double>() : nullptr;
    const bool bc = !g.defined();
    at::Tensor gz = at::empty({n, d_out}, x.options());
    tanh_grad(n, d_out, bc ? go : g.data_ptr<double>(), bc, d, ys[k].data_ptr<double>(),
              gz.data_ptr<double>());
    at::Tensor dst = k == 0 ? g_out : at::empty({n, d_in}, x.options());
    const int64_t skip = skips[k];
    if (skip != 0)
      fold_rows(n, d_in, bc ? go : g.data_ptr<double>(), bc ? 0 : d_out, skip == 2,
                dst.data_ptr<double>());
    if (own)
      gemm_packed(n, d_in, d_out, gz.data_ptr<double>(), d_out, packed[2 * k + 1], nullptr, skip != 0,
                  dst.data_ptr<double>(), d_in);
    else if (skip == 0)
      at::mm_out(dst, gz, W.t());
    else
      at::addmm_out(dst, dst, gz, W.t());
    g = dst;
  }
}
