// The compiled mtzoo extension (built on first use by mtzoo/nn/extension.py): bindings only.
// The kernels of the model's forward and backward are registered torch operators (torch.ops.mtzoo.*,
// CPU kernels here, fake kernels for torch.compile/export in mtzoo/nn/ops.py); helpers that run outside
// the model (neighbour lists on numpy arrays, weight packing, feature probes) stay pybind functions.
#include <torch/extension.h>
#include <torch/library.h>
#include <optional>
#include <vector>

// tabulate_ext.cpp: compressed se_e2_a per-edge passes
std::vector<torch::Tensor> tabulate_forward(torch::Tensor vec, torch::Tensor edge_index, torch::Tensor atom_type,
                                            torch::Tensor scale, torch::Tensor shift, torch::Tensor slot,
                                            torch::Tensor knots, torch::Tensor knot_start, torch::Tensor bin_offset,
                                            torch::Tensor coef, double rs, double rc, double prot);
torch::Tensor tabulate_backward(torch::Tensor gT, torch::Tensor vec, torch::Tensor edge_index, torch::Tensor atom_type,
                                torch::Tensor scale, torch::Tensor shift, torch::Tensor slot, torch::Tensor rr,
                                torch::Tensor t, torch::Tensor col, torch::Tensor inside, torch::Tensor knots,
                                torch::Tensor knot_start, torch::Tensor bin_offset, torch::Tensor coef, double rs,
                                double rc, double prot);
// se_tail_ext.cpp: compressed se_e2_a per-atom tail (padding rows, 1/N_c, D = X^T X<)
std::vector<torch::Tensor> se_a_tail_forward(torch::Tensor T, std::optional<torch::Tensor> pad,
                                             std::optional<torch::Tensor> rows, torch::Tensor atom_type,
                                             double inv_nnei, int64_t m2, bool folded);
torch::Tensor se_a_tail_backward(torch::Tensor X, torch::Tensor gD, std::optional<torch::Tensor> gX, double inv_nnei,
                                 int64_t m2, bool folded);
// contract_ext.cpp: exact se_e2_a edge contraction and its derivatives
torch::Tensor edge_contract(torch::Tensor R, std::vector<torch::Tensor> G, torch::Tensor row, torch::Tensor dst,
                            int64_t n_atoms);
torch::Tensor edge_contract_dr(torch::Tensor T, std::vector<torch::Tensor> G, torch::Tensor row, torch::Tensor dst);
std::vector<torch::Tensor> edge_contract_dg(torch::Tensor T, torch::Tensor R, torch::Tensor row, torch::Tensor dst,
                                            std::vector<int64_t> n_rows);
// activation_ext.cpp: vectorised tanh (AVX2 kernel for float64, libmvec for float32)
torch::Tensor fast_tanh(torch::Tensor x, std::optional<torch::Tensor> out);
bool fast_tanh_vectorised();
// fitting_ext.cpp: value and input gradient of a tanh fitting net in one call
void mlp_value_and_grad(torch::Tensor x, std::vector<torch::Tensor> weights,
                        std::vector<std::optional<torch::Tensor>> biases, std::vector<std::optional<torch::Tensor>> idts,
                        std::vector<int64_t> skips, torch::Tensor y_out, torch::Tensor g_out,
                        std::vector<torch::Tensor> packed);
// gemm_ext.cpp: packed AVX-512 matrix product of the fitting nets' inference pass
torch::Tensor gemm_pack(torch::Tensor W, bool transpose);
bool gemm_packed_available();
// neighbors_ext.cpp: cell-list neighbour search
std::vector<torch::Tensor> neighbor_list(torch::Tensor pos, torch::Tensor cell, double rcut);
torch::Tensor edge_vectors(torch::Tensor pos, torch::Tensor edge_index, torch::Tensor shift, torch::Tensor cell,
                           torch::Tensor batch);
torch::Tensor edge_forces(torch::Tensor g, torch::Tensor edge_index, int64_t n_atoms);
std::vector<torch::Tensor> filter_edges(torch::Tensor pos, torch::Tensor edge_index, torch::Tensor shift,
                                        torch::Tensor cell, double rcut);

namespace {
// adapters from the operator calling convention (lists as ArrayRef / c10::List) to the kernels' signatures
at::Tensor op_edge_contract(at::Tensor R, at::TensorList G, at::Tensor row, at::Tensor dst, int64_t n_atoms) {
  return edge_contract(R, G.vec(), row, dst, n_atoms);
}
at::Tensor op_edge_contract_dr(at::Tensor T, at::TensorList G, at::Tensor row, at::Tensor dst) {
  return edge_contract_dr(T, G.vec(), row, dst);
}
std::vector<at::Tensor> op_edge_contract_dg(at::Tensor T, at::Tensor R, at::Tensor row, at::Tensor dst,
                                            at::IntArrayRef n_rows) {
  return edge_contract_dg(T, R, row, dst, n_rows.vec());
}
at::Tensor op_tanh(at::Tensor x) { return fast_tanh(x, std::nullopt); }
void op_tanh_(at::Tensor x) { fast_tanh(x, x); }
std::vector<std::optional<at::Tensor>> optional_list(const c10::List<std::optional<at::Tensor>>& l) {
  std::vector<std::optional<at::Tensor>> v;
  v.reserve(l.size());
  for (const std::optional<at::Tensor>& x : l) v.push_back(x);
  return v;
}
void op_mlp_value_and_grad(at::Tensor x, at::TensorList weights, const c10::List<std::optional<at::Tensor>>& biases,
                           const c10::List<std::optional<at::Tensor>>& idts, at::IntArrayRef skips, at::Tensor y_out,
                           at::Tensor g_out, at::TensorList packed) {
  mlp_value_and_grad(x, weights.vec(), optional_list(biases), optional_list(idts), skips.vec(), y_out, g_out,
                     packed.vec());
}
}  // namespace

TORCH_LIBRARY(mtzoo, m) {
  m.def("tabulate_forward(Tensor vec, Tensor edge_index, Tensor atom_type, Tensor scale, Tensor shift, Tensor slot, "
        "Tensor knots, Tensor knot_start, Tensor bin_offset, Tensor coef, float rs, float rc, float prot) -> Tensor[]");
  m.def("tabulate_backward(Tensor gT, Tensor vec, Tensor edge_index, Tensor atom_type, Tensor scale, Tensor shift, "
        "Tensor slot, Tensor rr, Tensor t, Tensor col, Tensor inside, Tensor knots, Tensor knot_start, "
        "Tensor bin_offset, Tensor coef, float rs, float rc, float prot) -> Tensor");
  m.def("se_a_tail_forward(Tensor T, Tensor? pad, Tensor? rows, Tensor atom_type, float inv_nnei, int m2, "
        "bool folded=False) -> Tensor[]");
  m.def("se_a_tail_backward(Tensor X, Tensor gD, Tensor? gX, float inv_nnei, int m2, bool folded=False) -> Tensor");
  m.def("edge_contract(Tensor R, Tensor[] G, Tensor row, Tensor dst, int n_atoms) -> Tensor");
  m.def("edge_contract_dr(Tensor T, Tensor[] G, Tensor row, Tensor dst) -> Tensor");
  m.def("edge_contract_dg(Tensor T, Tensor R, Tensor row, Tensor dst, int[] n_rows) -> Tensor[]");
  m.def("tanh(Tensor x) -> Tensor");
  m.def("tanh_(Tensor(a!) x) -> ()");
  m.def("mlp_value_and_grad(Tensor x, Tensor[] weights, Tensor?[] biases, Tensor?[] idts, int[] skips, "
        "Tensor(a!) y_out, Tensor(b!) g_out, Tensor(c!)[] packed) -> ()");
  m.def("edge_vectors(Tensor pos, Tensor edge_index, Tensor shift, Tensor cell, Tensor batch) -> Tensor");
  m.def("edge_forces(Tensor g, Tensor edge_index, int n_atoms) -> Tensor");
}

TORCH_LIBRARY_IMPL(mtzoo, CPU, m) {
  m.impl("tabulate_forward", &tabulate_forward);
  m.impl("tabulate_backward", &tabulate_backward);
  m.impl("se_a_tail_forward", &se_a_tail_forward);
  m.impl("se_a_tail_backward", &se_a_tail_backward);
  m.impl("edge_contract", &op_edge_contract);
  m.impl("edge_contract_dr", &op_edge_contract_dr);
  m.impl("edge_contract_dg", &op_edge_contract_dg);
  m.impl("tanh", &op_tanh);
  m.impl("tanh_", &op_tanh_);
  m.impl("mlp_value_and_grad", &op_mlp_value_and_grad);
  m.impl("edge_vectors", &edge_vectors);
  m.impl("edge_forces", &edge_forces);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("tabulate_forward", &tabulate_forward, "compressed se_e2_a: environment rows, bins, table values and T");
  m.def("tabulate_backward", &tabulate_backward, "compressed se_e2_a: dE/dT -> dE/d(edge vectors)");
  m.def("se_a_tail_forward", &se_a_tail_forward, "compressed se_e2_a: X = (T + padding) / N_c and D = X^T X<",
        pybind11::arg("T"), pybind11::arg("pad"), pybind11::arg("rows"), pybind11::arg("atom_type"),
        pybind11::arg("inv_nnei"), pybind11::arg("m2"), pybind11::arg("folded") = false);
  m.def("se_a_tail_backward", &se_a_tail_backward, "compressed se_e2_a: dE/dD, dE/dX -> dE/dT", pybind11::arg("X"),
        pybind11::arg("gD"), pybind11::arg("gX"), pybind11::arg("inv_nnei"), pybind11::arg("m2"),
        pybind11::arg("folded") = false);
  m.def("edge_contract", &edge_contract, "se_e2_a: T[d_e, k, :] += R[e, k] G[r_e, :]");
  m.def("edge_contract_dr", &edge_contract_dr, "se_e2_a: gR[e, k] = T[d_e, k, :] . G[r_e, :]");
  m.def("edge_contract_dg", &edge_contract_dg, "se_e2_a: gG[r_e, :] += sum_k R[e, k] T[d_e, k, :]");
  m.def("fast_tanh", &fast_tanh, "tanh of a contiguous float64/float32 tensor (vectorised where the CPU allows)",
        pybind11::arg("x"), pybind11::arg("out") = pybind11::none());
  m.def("fast_tanh_vectorised", &fast_tanh_vectorised, "whether fast_tanh runs its float64 AVX2 kernel");
  m.def("mlp_value_and_grad", &mlp_value_and_grad, "tanh fitting net: output and d(sum y)/dx, written to y_out, g_out",
        pybind11::arg("x"), pybind11::arg("weights"), pybind11::arg("biases"), pybind11::arg("idts"),
        pybind11::arg("skips"), pybind11::arg("y_out"), pybind11::arg("g_out"),
        pybind11::arg("packed") = std::vector<torch::Tensor>());
  m.def("gemm_pack", &gemm_pack, "W [k, n] (or W^T) -> 24-column panels [ceil(n / 24), k, 24] for gemm_packed",
        pybind11::arg("W"), pybind11::arg("transpose") = false);
  m.def("gemm_packed_available", &gemm_packed_available, "whether the packed AVX-512 matrix product runs here");
  m.def("neighbor_list", &neighbor_list, "ordered pairs closer than rcut (cell list), sorted by centre");
  m.def("edge_vectors", &edge_vectors, "r_e = x_src - x_dst + S_e h (one pass, no autograd)");
  m.def("edge_forces", &edge_forces, "F_i = sum over edges into i of dE/dr_e minus those out of i");
  m.def("filter_edges", &filter_edges, "the edges of a Verlet list closer than rcut now, in order");
}
