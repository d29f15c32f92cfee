// Compiled edge contraction of the exact se_e2_a descriptor (see mtzoo/nn/contract.py).
//
// With environment rows R [E, 4], embedding rows G [Rows, M] (edge e reads row r_e; mirror
// edges share a row), centres d_e and T [N, 4, M], the three kernels are the partial
// derivatives of one trilinear form
//   Phi(R, G, T) = sum_e sum_k sum_m R[e, k] G[r_e, m] T[d_e, k, m]:
//   contract     T[n, k, :]  = sum_{e: d_e = n} R[e, k] G[r_e, :]          (dPhi/dT)
//   contract_dr  gR[e, k]    = sum_m T[d_e, k, m] G[r_e, m]                 (dPhi/dR)
//   contract_dg  gG[r, :]    = sum_{e: r_e = r} sum_k R[e, k] T[d_e, k, :]  (dPhi/dG)
// so the backward of each is two of the others, to any order (training differentiates the
// forces).  4 * M multiply-adds per edge in loops vectorised over m; edges sorted by centre
// keep T[d_e] in L1.  float64 and float32.  G comes in parts (one per embedding net, rows
// numbered across the parts in order), so the nets' outputs are never concatenated: the
// concatenation's double backward zero-filled a [Rows, M] array per part and step.
#include <ATen/core/Tensor.h>  // light headers: torch/extension.h only in ext_module.cpp
#include <ATen/ops/zeros.h>
#include <ATen/ops/empty.h>

#include <cstdint>
#include <vector>

#include "ext_common.h"

namespace {

// Rows numbered across the parts: row r lies in part k with off[k] <= r < off[k + 1].
template <typename S>
struct Parts {
  std::vector<S*> ptr;
  std::vector<int64_t> off;
  S* at(int64_t r, int64_t M) const {
    size_t k = 0;
    while (r >= off[k + 1]) ++k;
    return ptr[k] + (r - off[k]) * M;
  }
};

template <typename S>
MTZOO_CLONES void contract(int64_t E, int64_t M, const S* R, const Parts<S>& G, const int64_t* row, const int64_t* dst,
                           S* T) {
  for (int64_t e = 0; e < E; ++e) {
    const S* g = G.at(row[e], M);
    S* t = T + dst[e] * 4 * M;
    const S r0 = R[4 * e], r1 = R[4 * e + 1], r2 = R[4 * e + 2], r3 = R[4 * e + 3];
#pragma omp simd
    for (int64_t m = 0; m < M; ++m) {
      const S q = g[m];
      t[m] += r0 * q;
      t[M + m] += r1 * q;
      t[2 * M + m] += r2 * q;
      t[3 * M + m] += r3 * q;
    }
  }
}

template <typename S>
MTZOO_CLONES void contract_dr(int64_t E, int64_t M, const S* T, const Parts<S>& G, const int64_t* row,
                              const int64_t* dst, S* GR) {
  for (int64_t e = 0; e < E; ++e) {
    const S* g = G.at(row[e], M);
    const S* t = T + dst[e] * 4 * M;
    S s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t m = 0; m < M; ++m) {
      const S q = g[m];
      s0 += t[m] * q;
      s1 += t[M + m] * q;
      s2 += t[2 * M + m] * q;
      s3 += t[3 * M + m] * q;
    }
    GR[4 * e] = s0;
    GR[4 * e + 1] = s1;
    GR[4 * e + 2] = s2;
    GR[4 * e + 3] = s3;
  }
}

// gG is not zero-filled first: a row's first edge writes it, later edges add (seen [Rows]),
// rows no edge reads are zeroed at the end (a zero fill of gG cost as much as the pass).
template <typename S>
MTZOO_CLONES void contract_dg(int64_t E, int64_t M, const S* T, const S* R, const int64_t* row, const int64_t* dst,
                              const Parts<S>& GG, uint8_t* seen) {
  for (int64_t e = 0; e < E; ++e) {
    S* g = GG.at(row[e], M);
    const S* t = T + dst[e] * 4 * M;
    const S r0 = R[4 * e], r1 = R[4 * e + 1], r2 = R[4 * e + 2], r3 = R[4 * e + 3];
    if (seen[row[e]]) {
#pragma omp simd
      for (int64_t m = 0; m < M; ++m) g[m] += r0 * t[m] + r1 * t[M + m] + r2 * t[2 * M + m] + r3 * t[3 * M + m];
    } else {
      seen[row[e]] = 1;
#pragma omp simd
      for (int64_t m = 0; m < M; ++m) g[m] = r0 * t[m] + r1 * t[M + m] + r2 * t[2 * M + m] + r3 * t[3 * M + m];
    }
  }
  const int64_t rows = GG.off.back();
  for (int64_t r = 0; r < rows; ++r)
    if (!seen[r]) {
      S* g = GG.at(r, M);
      for (int64_t m = 0; m < M; ++m) g[m] = 0;
    }
}

void check_float(const at::Tensor& t, const char* name, int64_t dim, at::ScalarType st) {
  TORCH_CHECK(t.scalar_type() == st && t.is_contiguous() && t.dim() == dim, "edge_contract: ", name,
              " must be a contiguous tensor with ", dim, " dimensions of the rows' dtype");
}

void check_index(const at::Tensor& t, const char* name, int64_t n, int64_t bound) {
  TORCH_CHECK(t.scalar_type() == at::kLong && t.is_contiguous() && t.dim() == 1 && t.numel() == n, "edge_contract: ",
              name, " must be a contiguous int64 [E] tensor");
  if (n) {
    const int64_t* p = t.data_ptr<int64_t>();
    int64_t lo = p[0], hi = p[0];
    for (int64_t i = 1; i < n; ++i) {
      lo = p[i] < lo ? p[i] : lo;
      hi = p[i] > hi ? p[i] : hi;
    }
    TORCH_CHECK(lo >= 0 && hi < bound, "edge_contract: ", name, " out of range [0, ", bound, ")");
  }
}

// The parts' data pointers and row offsets; all [R_k, M] contiguous of one dtype.
template <typename S>
Parts<S> parts_of(const std::vector<at::Tensor>& gs, at::ScalarType st, int64_t M) {
  Parts<S> p;
  p.off.push_back(0);
  for (const auto& g : gs) {
    check_float(g, "G", 2, st);
    TORCH_CHECK(g.size(1) == M, "edge_contract: every part of G must have M columns");
    p.ptr.push_back(g.data_ptr<S>());
    p.off.push_back(p.off.back() + g.size(0));
  }
  return p;
}

at::ScalarType dtype_of(const std::vector<at::Tensor>& gs) {
  TORCH_CHECK(!gs.empty(), "edge_contract: G needs at least one part");
  const auto st = gs[0].scalar_type();
  TORCH_CHECK(st == at::kDouble || st == at::kFloat, "edge_contract: float64 or float32 only");
  return st;
}

}  // namespace

// R [E, 4], G parts [R_k, M], row [E] (across the parts), dst [E] -> T [n_atoms, 4, M]
at::Tensor edge_contract(at::Tensor R, std::vector<at::Tensor> G, at::Tensor row, at::Tensor dst, int64_t n_atoms) {
  const auto st = dtype_of(G);
  check_float(R, "R", 2, st);
  const int64_t E = R.size(0), M = G[0].size(1);
  TORCH_CHECK(R.size(1) == 4, "edge_contract: R must be [E, 4]");
  check_index(dst, "dst", E, n_atoms);
  auto T = at::zeros({n_atoms, 4, M}, R.options());
  if (st == at::kDouble) {
    const auto g = parts_of<double>(G, st, M);
    check_index(row, "row", E, g.off.back());
    contract<double>(E, M, R.data_ptr<double>(), g, row.data_ptr<int64_t>(), dst.data_ptr<int64_t>(), T.data_ptr<double>());
  } else {
    const auto g = parts_of<float>(G, st, M);
    check_index(row, "row", E, g.off.back());
    contract<float>(E, M, R.data_ptr<float>(), g, row.data_ptr<int64_t>(), dst.data_ptr<int64_t>(), T.data_ptr<float>());
  }
  return T;
}

// T [N, 4, M], G parts, row, dst -> gR [E, 4]
at::Tensor edge_contract_dr(at::Tensor T, std::vector<at::Tensor> G, at::Tensor row, at::Tensor dst) {
  const auto st = dtype_of(G);
  check_float(T, "T", 3, st);
  const int64_t E = row.numel(), M = G[0].size(1);
  TORCH_CHECK(T.size(1) == 4 && T.size(2) == M, "edge_contract: T must be [N, 4, M]");
  check_index(dst, "dst", E, T.size(0));
  auto GR = at::empty({E, 4}, T.options());
  if (st == at::kDouble) {
    const auto g = parts_of<double>(G, st, M);
    check_index(row, "row", E, g.off.back());
    contract_dr<double>(E, M, T.data_ptr<double>(), g, row.data_ptr<int64_t>(), dst.data_ptr<int64_t>(),
                        GR.data_ptr<double>());
  } else {
    const auto g = parts_of<float>(G, st, M);
    check_index(row, "row", E, g.off.back());
    contract_dr<float>(E, M, T.data_ptr<float>(), g, row.data_ptr<int64_t>(), dst.data_ptr<int64_t>(),
                       GR.data_ptr<float>());
  }
  return GR;
}

// T [N, 4, M], R [E, 4], row, dst, the parts' row counts -> gG parts [R_k, M]
std::vector<at::Tensor> edge_contract_dg(at::Tensor T, at::Tensor R, at::Tensor row, at::Tensor dst,
                                         std::vector<int64_t> n_rows) {
  const auto st = T.scalar_type();
  TORCH_CHECK(st == at::kDouble || st == at::kFloat, "edge_contract: float64 or float32 only");
  check_float(T, "T", 3, st);
  check_float(R, "R", 2, st);
  const int64_t E = R.size(0), M = T.size(2);
  TORCH_CHECK(T.size(1) == 4 && R.size(1) == 4, "edge_contract: T must be [N, 4, M] and R [E, 4]");
  TORCH_CHECK(!n_rows.empty(), "edge_contract: G needs at least one part");
  check_index(dst, "dst", E, T.size(0));
  std::vector<at::Tensor> out;
  int64_t total = 0;
  for (int64_t n : n_rows) {
    TORCH_CHECK(n >= 0, "edge_contract: negative row count");
    out.push_back(at::empty({n, M}, T.options()));
    total += n;
  }
  check_index(row, "row", E, total);
  std::vector<uint8_t> seen(total, 0);
  if (st == at::kDouble)
    contract_dg<double>(E, M, T.data_ptr<double>(), R.data_ptr<double>(), row.data_ptr<int64_t>(),
                        dst.data_ptr<int64_t>(), parts_of<double>(out, st, M), seen.data());
  else
    contract_dg<float>(E, M, T.data_ptr<float>(), R.data_ptr<float>(), row.data_ptr<int64_t>(), dst.data_ptr<int64_t>(),
                       parts_of<float>(out, st, M), seen.data());
  return out;
}
