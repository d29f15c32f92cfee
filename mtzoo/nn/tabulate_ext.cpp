// Fused per-edge passes of the compressed se_e2_a descriptor (see mtzoo/nn/tabulate.py).
//
// Forward, per edge e (centre c, net slot k): environment row R_e = scale_e * (s, s x/r, s y/r, s z/r)
// + shift_e with s = w(r)/(r + p), the bin b of x = R_e0 in slot k's knots, t = x - knot_b, and
// the scatter M[(c*4 + a)*B + col_b][j] += R_ea t^j (j = 0..5).  Backward: from G = dE/dM (same
// layout), dE/dR_ea = sum_j G[...][j] t^j, dE/dt = sum_a R_ea sum_j j G[...][j] t^(j-1), then the
// chain rule through the normalisation and the environment matrix to dE/d(edge vector).
// Edges with x above their slot's last knot are flagged (inside = 0) and left to the caller.
#include <torch/extension.h>
#include <cmath>
#include <vector>

namespace {

struct Env {
  double r, u, sw, dsw, inv, s;
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
  e.u = u;
  e.inv = 1.0 / (e.r + prot);
  e.s = e.sw * e.inv;
  return e;
}

inline int64_t find_bin(const double* knots, int64_t n_knots, double x) {
  // last knot index <= x, clamped to [0, n_knots - 2]
  int64_t lo = 0, hi = n_knots - 1;
  if (x <= knots[0]) return 0;
  while (hi - lo > 1) {
    int64_t mid = (lo + hi) / 2;
    if (knots[mid] <= x) lo = mid; else hi = mid;
  }
  return lo < n_knots - 1 ? lo : n_knots - 2;
}

}  // namespace

// vec [E,3], centre [E] (local, < n_centres), slot [E], scale [E,4], shift [E,4] (double);
// knots: concatenated per slot, knot_start [S+1], bin_offset [S]; returns (M [n_centres*4*B, 6],
// rr [E,4], t [E], col [E], inside [E] bool).
std::vector<torch::Tensor> forward(torch::Tensor vec, torch::Tensor centre, torch::Tensor slot, torch::Tensor scale,
                                   torch::Tensor shift, torch::Tensor knots, torch::Tensor knot_start,
                                   torch::Tensor bin_offset, int64_t n_bins, int64_t n_centres, double rs, double rc,
                                   double prot) {
  const int64_t E = vec.size(0);
  auto opts = vec.options();
  auto M = torch::zeros({n_centres * 4 * n_bins, 6}, opts);
  auto rr = torch::empty({E, 4}, opts);
  auto t = torch::empty({E}, opts);
  auto col = torch::empty({E}, centre.options());
  auto inside = torch::empty({E}, centre.options().dtype(torch::kBool));
  const double* V = vec.data_ptr<double>();
  const int64_t* C = centre.data_ptr<int64_t>();
  const int64_t* SL = slot.data_ptr<int64_t>();
  const double* A = scale.data_ptr<double>();
  const double* Bs = shift.data_ptr<double>();
  const double* K = knots.data_ptr<double>();
  const int64_t* KS = knot_start.data_ptr<int64_t>();
  const int64_t* BO = bin_offset.data_ptr<int64_t>();
  double* Mp = M.data_ptr<double>();
  double* R = rr.data_ptr<double>();
  double* T = t.data_ptr<double>();
  int64_t* CO = col.data_ptr<int64_t>();
  bool* IN = inside.data_ptr<bool>();
  for (int64_t e = 0; e < E; ++e) {
    const double* v = V + 3 * e;
    Env en = env_of(v, rs, rc, prot);
    double* re = R + 4 * e;
    const double* a = A + 4 * e;
    const double* b = Bs + 4 * e;
    re[0] = en.s * a[0] + b[0];
    const double f = en.s * en.inv;
    for (int q = 0; q < 3; ++q) re[q + 1] = f * v[q] * a[q + 1] + b[q + 1];
    const int64_t k = SL[e];
    const double* kn = K + KS[k];
    const int64_t nk = KS[k + 1] - KS[k];
    const double x = re[0];
    if (x > kn[nk - 1]) {
      IN[e] = false; T[e] = 0.0; CO[e] = 0;
      continue;
    }
    IN[e] = true;
    const int64_t bin = find_bin(kn, nk, x);
    const double tt = x - kn[bin];
    T[e] = tt;
    CO[e] = BO[k] + bin;
    double p[6];
    p[0] = 1.0;
    for (int j = 1; j < 6; ++j) p[j] = p[j - 1] * tt;
    for (int q = 0; q < 4; ++q) {
      double* m = Mp + ((C[e] * 4 + q) * n_bins + CO[e]) * 6;
      const double w = re[q];
      for (int j = 0; j < 6; ++j) m[j] += w * p[j];
    }
  }
  return {M, rr, t, col, inside};
}

// G = dE/dM [n_centres*4*B, 6]; returns dE/dvec [E,3] (zero rows for edges not inside).
torch::Tensor backward(torch::Tensor G, torch::Tensor vec, torch::Tensor centre, torch::Tensor scale,
                       torch::Tensor rr, torch::Tensor t, torch::Tensor col, torch::Tensor inside, int64_t n_bins,
                       double rs, double rc, double prot) {
  const int64_t E = vec.size(0);
  auto gvec = torch::zeros({E, 3}, vec.options());
  const double* Gp = G.data_ptr<double>();
  const double* V = vec.data_ptr<double>();
  const int64_t* C = centre.data_ptr<int64_t>();
  const double* A = scale.data_ptr<double>();
  const double* R = rr.data_ptr<double>();
  const double* T = t.data_ptr<double>();
  const int64_t* CO = col.data_ptr<int64_t>();
  const bool* IN = inside.data_ptr<bool>();
  double* GV = gvec.data_ptr<double>();
  for (int64_t e = 0; e < E; ++e) {
    if (!IN[e]) continue;
    const double tt = T[e];
    double p[6];
    p[0] = 1.0;
    for (int j = 1; j < 6; ++j) p[j] = p[j - 1] * tt;
    const double* re = R + 4 * e;
    double grr[4];
    double gt = 0.0;
    for (int q = 0; q < 4; ++q) {
      const double* g = Gp + ((C[e] * 4 + q) * n_bins + CO[e]) * 6;
      double acc = 0.0, dacc = 0.0;
      for (int j = 0; j < 6; ++j) acc += g[j] * p[j];
      for (int j = 1; j < 6; ++j) dacc += j * g[j] * p[j - 1];
      grr[q] = acc;
      gt += re[q] * dacc;
    }
    // x = R_0 enters t = x - knot as well
    const double* a = A + 4 * e;
    const double* v = V + 3 * e;
    Env en = env_of(v, rs, rc, prot);
    const double gs0 = (grr[0] + gt) * a[0];       // dE/ds through R_0
    double c[3], S1 = 0.0;
    for (int q = 0; q < 3; ++q) {
      c[q] = grr[q + 1] * a[q + 1];                 // dE/d(s inv v_q)
      S1 += c[q] * v[q];
    }
    const double dE_ds = gs0 + en.inv * S1;         // R_q = s inv v_q (q = 1..3)
    const double dE_dinv = en.s * S1 + dE_ds * en.sw;  // s = sw inv
    const double dE_dr = -dE_dinv * en.inv * en.inv + dE_ds * en.inv * en.dsw;
    const double f = en.s * en.inv;
    double* gv = GV + 3 * e;
    for (int q = 0; q < 3; ++q) gv[q] = c[q] * f + dE_dr * v[q] / en.r;
  }
  return gvec;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "compressed se_e2_a: environment rows, bins and the scatter into M");
  m.def("backward", &backward, "compressed se_e2_a: dE/dM -> dE/d(edge vectors)");
}
