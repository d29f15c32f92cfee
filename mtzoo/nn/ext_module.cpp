// The compiled mtzoo extension (built on first use by mtzoo/nn/extension.py): bindings only.
#include <torch/extension.h>
#include <vector>

// tabulate_ext.cpp: compressed se_e2_a per-edge passes
std::vector<torch::Tensor> tabulate_forward(torch::Tensor vec, torch::Tensor centre, torch::Tensor slot,
                                            torch::Tensor scale, torch::Tensor shift, torch::Tensor knots,
                                            torch::Tensor knot_start, torch::Tensor bin_offset, torch::Tensor coef,
                                            int64_t n_centres, double rs, double rc, double prot);
torch::Tensor tabulate_backward(torch::Tensor gT, torch::Tensor vec, torch::Tensor centre, torch::Tensor scale,
                                torch::Tensor rr, torch::Tensor t, torch::Tensor col, torch::Tensor inside,
                                torch::Tensor knots, torch::Tensor knot_start, torch::Tensor bin_offset,
                                torch::Tensor coef, double rs, double rc, double prot);
// neighbors_ext.cpp: cell-list neighbour search
std::vector<torch::Tensor> neighbor_list(torch::Tensor pos, torch::Tensor cell, double rcut);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("tabulate_forward", &tabulate_forward, "compressed se_e2_a: environment rows, bins, table values and T");
  m.def("tabulate_backward", &tabulate_backward, "compressed se_e2_a: dE/dT -> dE/d(edge vectors)");
  m.def("neighbor_list", &neighbor_list, "ordered pairs closer than rcut (cell list), sorted by centre");
}
