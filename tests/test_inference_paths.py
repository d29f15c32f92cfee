"""The inference shortcuts give what autograd gives.

The inference path, :class:`mtzoo.model.Predictor` (no graph of the derivatives: ASE, ``mtzoo
test``, MD, LAMMPS, validation), takes three shortcuts, each checked here against the reference
path, :meth:`mtzoo.model.Model.forward`:

* the energy head's fitting nets are differentiated by a hand-written backward pass
  (:meth:`mtzoo.nn.mlp.FittingNet.value_and_input_grad`) instead of autograd: every activation,
  every residual layout, out-buffers; and whole models (se_e2_a one- and two-sided, se_atten
  with one shared net, compressed) against ``create_graph=True``, on batches of frames and on a
  frame whose atoms are not grouped by type;
* edge vectors and forces come from compiled passes (``neighbors_ext.cpp``: ``edge_vectors``,
  ``edge_forces``) instead of gathers and scatters, also for batches of frames with different
  cells; the ASE calculator's Verlet list is cut back to ``rcut`` by ``filter_edges``.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch

import physics
from mtzoo import keys as K
from mtzoo.data.graph import collate
from mtzoo.model import Predictor
from mtzoo.nn.common import ACTIVATIONS
from mtzoo.nn.mlp import FittingNet

ACTS = sorted(ACTIVATIONS)


@pytest.mark.parametrize("act,path", [(a, "torch-ops") for a in ACTS] + [("tanh", "compiled")])
def test_fitting_net_input_grad_equals_autograd(act, path, monkeypatch):
    """Output and d(sum y)/dx by hand equal autograd's for residual layers of equal width (skip),
    doubled width ([x, x] skip), other widths (no skip), with and without the timestep, 1, 3 and 6
    outputs (the compiled pass: dot products up to 4, ATen beyond); tanh nets
    both in one compiled call (``fitting_ext.cpp``) and as torch ops."""
    from mtzoo.nn.mlp import _fitting_ext

    if path == "torch-ops":
        monkeypatch.setenv("MTZOO_EXTENSIONS", "0")
    probe = FittingNet(4, 1, [4], act, True, dtype=torch.float64, seed=1)
    compiled_used = _fitting_ext(torch.zeros(1, 4, dtype=torch.float64), tuple(probe.layers)) is not None
    if path == "compiled" and not compiled_used:
        pytest.skip("compiled kernels unavailable here (no compiler?)")
    assert compiled_used == (path == "compiled")
    torch.manual_seed(0)
    for (din, neuron), resnet_dt, (dout, bias) in itertools.product(
            [(8, [8, 8]), (4, [8, 16, 16]), (6, [5, 7]), (5, [5, 10, 10])], [True, False], [(1, True), (3, False), (6, True)]):
        net = FittingNet(din, dout, neuron, act, resnet_dt, dtype=torch.float64, bias_out=bias, seed=1)
        x = 2.0 * torch.randn(7, din, dtype=torch.float64)
        xa = x.clone().requires_grad_(True)
        ya = net(xa)
        (ga,) = torch.autograd.grad(ya.sum(), xa)
        y, g = net.value_and_input_grad(x)
        yo, go = torch.empty(7, dout, dtype=torch.float64), torch.empty(7, din, dtype=torch.float64)
        net.value_and_input_grad(x, out=(yo, go))
        scale = max(1.0, float(ga.abs().max()))
        for what, got, want in (("y", y, ya), ("dy/dx", g, ga), ("y (out)", yo, ya), ("dy/dx (out)", go, ga)):
            err = float((got - want.detach()).abs().max()) / scale
            assert err < 1e-12, (f"{act}, in {din}, neuron {neuron}, resnet_dt {resnet_dt}, out {dout}, bias {bias}: "
                                 f"{what} off by {err:.2e}")
        assert not y.requires_grad and not g.requires_grad


def _models():
    from physics import atten_model
    from physics import se_a_frames as frames_for, se_a_model as model_for

    yield "se_e2_a one-side", model_for("agau", "one_side"), frames_for("agau")
    yield "se_e2_a two-side", model_for("agau", "two_side"), frames_for("agau")
    compressed = copy.deepcopy(model_for("agau", "two_side"))
    compressed.descriptor.enable_compression()
    yield "se_e2_a two-side compressed", compressed, frames_for("agau")
    yield "se_atten (one shared fitting net)", atten_model("agau", "v2"), frames_for("agau")


def test_model_by_hand_equals_autograd():
    """Energy, atomic energies, forces and virial with the fitting nets' hand-written backward
    (create_graph=False) equal those of autograd (create_graph=True), 1e-12 relative."""
    for name, model, frames in _models():
        batch = collate([physics.frame_graph(model, physics.as_frame(f, model.type_map)) for f in frames])
        fast = Predictor(model)(batch, head="default")
        slow = model(batch, head="default", create_graph=True)
        for key in (K.ENERGY, K.ATOM_ENERGY, K.FORCES, K.VIRIAL):
            physics._assert_close(f"{name}: {key}", fast[key].detach().numpy(), slow[key].detach().numpy(), rtol=1e-12)
        assert fast[K.FORCES].grad_fn is None


@pytest.mark.parametrize("variant", ["one_side", "two_side"])
def test_compressed_descriptor_pullback_equals_autograd(variant):
    """The compressed se_e2_a's autograd-free path (forward_with_pullback, which Model.forward
    takes when no graph is kept) gives forward()'s features, and its pullback of a random
    dE/dD equals autograd's vector-Jacobian product; close contacts (inside rmin) decline it."""
    from mtzoo.model import edge_vectors
    from mtzoo.nn.tabulate import fused_extension
    from physics import se_a_frames as frames_for, se_a_model as model_for

    if fused_extension() is None:
        pytest.skip("compiled kernels unavailable here (no compiler?)")
    model = copy.deepcopy(model_for("agau", variant))
    model.descriptor.enable_compression()
    batch = collate([physics.frame_graph(model, physics.as_frame(f, model.type_map)) for f in frames_for("agau")])
    vec = edge_vectors(batch[K.POSITIONS], batch[K.EDGE_INDEX], batch[K.CELL_SHIFT], batch[K.CELL], batch[K.BATCH])
    lean = model.descriptor.forward_with_pullback(vec, batch[K.EDGE_INDEX], batch[K.ATOM_TYPE])
    assert lean is not None
    feats, pullback = lean
    v = vec.clone().requires_grad_(True)
    ref = model.descriptor(v, batch[K.EDGE_INDEX], batch[K.ATOM_TYPE])
    g_desc = torch.randn_like(ref[K.DESCRIPTOR])
    (want,) = torch.autograd.grad(ref[K.DESCRIPTOR], v, g_desc)
    physics._assert_close("descriptor", feats[K.DESCRIPTOR].numpy(), ref[K.DESCRIPTOR].detach().numpy(), rtol=1e-13)
    physics._assert_close("rotation matrix", feats[K.ROT_MAT].numpy(), ref[K.ROT_MAT].detach().numpy(), rtol=1e-13)
    physics._assert_close("pullback", pullback(g_desc).numpy(), want.numpy(), rtol=1e-12)
    close = copy.deepcopy(model_for("agau", variant))
    close.descriptor.enable_compression(rmin=3.5)  # most neighbours closer than rmin: the nets run there
    assert close.descriptor.forward_with_pullback(vec, batch[K.EDGE_INDEX], batch[K.ATOM_TYPE]) is None


def test_model_by_hand_with_atoms_not_grouped_by_type():
    """Atoms of both types interleaved (the heads' sort-and-put-back path)."""
    from physics import se_a_frames as frames_for, se_a_model as model_for

    model = model_for("agau", "one_side")
    frame = physics.as_frame(frames_for("agau")[0], model.type_map)
    graph = physics.frame_graph(model, frame)
    types = graph[K.ATOM_TYPE]
    if bool((types[1:] >= types[:-1]).all()):  # make the types interleaved: relabel half of the atoms
        graph[K.ATOM_TYPE] = torch.arange(types.shape[0]) % 2
    batch = collate([graph])
    fast = Predictor(model)(batch, head="default")
    slow = model(batch, head="default", create_graph=True)
    for key in (K.ENERGY, K.ATOM_ENERGY, K.FORCES, K.VIRIAL):
        physics._assert_close(f"interleaved types: {key}", fast[key].detach().numpy(), slow[key].detach().numpy(),
                              rtol=1e-12)


def test_compiled_edge_vectors_and_forces():
    """edge_vectors and edge_forces (compiled) equal the gathers and scatters, for a batch of two
    frames with different cells."""
    from mtzoo.model import edge_vectors
    from mtzoo.nn.extension import compiled
    from mtzoo.nn.scatter import scatter_sum

    ext = compiled()
    if ext is None:
        pytest.skip("compiled kernels unavailable here (no compiler?)")
    rng = np.random.default_rng(3)
    n0, n1, e0, e1 = 5, 7, 40, 30
    pos = torch.as_tensor(rng.normal(size=(n0 + n1, 3)))
    cell = torch.as_tensor(np.stack([np.diag([4.0, 5.0, 6.0]), rng.normal(size=(3, 3)) + 5 * np.eye(3)]))
    batch = torch.tensor([0] * n0 + [1] * n1)
    src = torch.cat([torch.as_tensor(rng.integers(0, n0, e0)), torch.as_tensor(rng.integers(n0, n0 + n1, e1))])
    dst = torch.cat([torch.as_tensor(rng.integers(0, n0, e0)), torch.as_tensor(rng.integers(n0, n0 + n1, e1))])
    edge_index = torch.stack([src, dst])
    shift = torch.as_tensor(rng.integers(-2, 3, size=(e0 + e1, 3)).astype(np.float64))
    want = pos.index_select(0, src) - pos.index_select(0, dst) + torch.bmm(shift.unsqueeze(1), cell[batch[dst]]).squeeze(1)
    got = edge_vectors(pos, edge_index, shift, cell, batch)  # the compiled pass (nothing requires grad)
    assert float((got - want).abs().max()) < 1e-13
    # one frame: the cell of frame 0 for all edges, batch None
    want1 = pos.index_select(0, src) - pos.index_select(0, dst) + shift @ cell[0]
    assert float((edge_vectors(pos, edge_index, shift, cell[:1], None) - want1).abs().max()) < 1e-13
    # with positions that require grad, the torch path (differentiable) is taken
    p = pos.clone().requires_grad_(True)
    assert edge_vectors(p, edge_index, shift, cell, batch).grad_fn is not None
    g = torch.as_tensor(rng.normal(size=(e0 + e1, 3)))
    forces = ext.edge_forces(g, edge_index, n0 + n1)
    ref = scatter_sum(g, dst, n0 + n1) - scatter_sum(g, src, n0 + n1)
    assert float((forces - ref).abs().max()) < 1e-13
    with pytest.raises(RuntimeError, match="out of range"):
        ext.edge_forces(g, edge_index, n0)
    # the Verlet filter keeps the edges shorter than rcut, in order (one frame's cell; none)
    for h in (cell[0], None):
        vec = pos.index_select(0, src) - pos.index_select(0, dst) + (shift @ h if h is not None else 0.0)
        rc = float(vec.norm(dim=1).median())
        keep = (vec * vec).sum(1) < rc * rc
        ei_k, sh_k = ext.filter_edges(pos, edge_index, shift, h if h is not None else torch.empty(0), rc)
        assert torch.equal(ei_k, edge_index[:, keep]) and torch.equal(sh_k, shift[keep])


def test_by_hand_sees_weights_changed_in_place():
    """After an optimizer step that updates the weights in place without bumping autograd's
    version counters (fused Adam), the by-hand forces use the new weights (the packed weights of
    the AVX-512 matrix product are compared with the weights at every call and repacked)."""
    from physics import se_a_frames as frames_for, se_a_model as model_for

    model = copy.deepcopy(model_for("agau", "one_side"))
    batch = collate([physics.frame_graph(model, physics.as_frame(frames_for("agau")[0], model.type_map))])
    before = Predictor(model)(batch, head="default")[K.FORCES]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)
    model.train()
    model(batch, head="default", create_graph=True)[K.FORCES].square().sum().backward()
    opt.step()
    model.eval()
    fast = Predictor(model)(batch, head="default")[K.FORCES]
    slow = model(batch, head="default", create_graph=True)[K.FORCES].detach()
    assert float((fast - before).abs().max()) > 1e-6  # the step changed the forces
    physics._assert_close("forces after a fused Adam step", fast.numpy(), slow.numpy(), rtol=1e-12)


@pytest.mark.parametrize("avx2", [True, False], ids=["avx2-if-present", "portable-loop"])
def test_folded_descriptor_layout(monkeypatch, avx2):
    """se_e2_a's folded descriptor (the symmetric M2 x M2 block stored once): the compiled tail
    writes D[:, keep], its backward gives autograd's dE/dX for a gradient in that layout, and a
    linear layer with the mirror rows summed gives the same products (D W = D' W')."""
    from mtzoo.descriptors.se_e2_a import folded_index
    from mtzoo.nn.tabulate import fused_extension

    ext = fused_extension()
    if ext is None:
        pytest.skip("compiled kernels unavailable here (no compiler?)")
    if not avx2:
        monkeypatch.setenv("MTZOO_NO_AVX2", "1")
    torch.manual_seed(4)
    for m1, m2 in ((100, 16), (12, 4), (7, 3)):
        keep, mirror = folded_index(m1, m2)
        assert keep.numel() == m1 * m2 - m2 * (m2 - 1) // 2
        n = 5
        t = torch.randn(n, 4, m1, dtype=torch.float64)
        x, d_full = ext.se_a_tail_forward(t, None, None, torch.zeros(n, dtype=torch.long), 0.5, m2)
        _, d_fold = ext.se_a_tail_forward(t, None, None, torch.zeros(n, dtype=torch.long), 0.5, m2, True)
        assert float((d_fold - d_full[:, keep]).abs().max()) == 0.0
        w = torch.randn(m1 * m2, 3, dtype=torch.float64)
        wf = w[keep].index_add(0, (mirror >= 0).nonzero().squeeze(1), w[mirror[mirror >= 0]])
        assert float((d_full @ w - d_fold @ wf).abs().max()) < 1e-12 * float((d_full @ w).abs().max())
        g = torch.randn(n, keep.numel(), dtype=torch.float64)
        ta = t.clone().requires_grad_(True)
        xa = ta * 0.5
        da = torch.einsum("nkm,nka->nma", xa, xa[:, :, :m2]).reshape(n, -1)
        (want,) = torch.autograd.grad((da[:, keep] * g).sum(), ta)
        got = ext.se_a_tail_backward(x, g, None, 0.5, m2, True)
        assert float((got - want).abs().max()) < 1e-12 * float(want.abs().max()), (m1, m2)


def test_folded_first_layer_follows_weight_changes():
    """The compressed model's inference path runs the fitting nets on the folded descriptor with
    cached folded weights; a change of the first layer's weights (in place) is picked up."""
    from mtzoo.nn.tabulate import fused_extension
    from physics import se_a_frames as frames_for, se_a_model as model_for

    model = copy.deepcopy(model_for("agau", "one_side"))
    model.descriptor.enable_compression()
    batch = collate([physics.frame_graph(model, physics.as_frame(f, model.type_map)) for f in frames_for("agau")])
    for step in range(2):
        fast = Predictor(model)(batch, head="default")
        slow = model(batch, head="default", create_graph=True)
        for key in (K.ENERGY, K.FORCES):
            physics._assert_close(f"step {step}: {key}", fast[key].detach().numpy(), slow[key].detach().numpy(),
                                  rtol=1e-12)
        nets = model.heads["default"].nets
        if fused_extension() is not None:  # the folded path was taken
            assert all(net._folded[1].shape[0] == model.descriptor.folded_index()[0].numel() for net in nets)
        with torch.no_grad():
            for net in nets:
                net.layers[0].weight.mul_(1.5)  # in place: the version changes, the storage does not


def _packed_ext():
    from mtzoo.nn.extension import compiled

    ext = compiled()
    if ext is None or not ext.gemm_packed_available():
        pytest.skip("the packed AVX-512 matrix product does not run here (no AVX-512, or no compiler)")
    return ext


@pytest.mark.parametrize("rows", [1, 8, 13, 64])
def test_packed_matrix_product_equals_aten(rows, monkeypatch):
    """The fitting pass with gemm_ext.cpp's packed AVX-512 product equals autograd and the pass
    with ATen's products: k = 1600 > 1536 (split over k), 25 and 50 columns (24-column panels
    plus a masked remainder), the input gradient's 1600 columns (66 panels + 16), 1-64 rows
    (8-row blocks and the 1-7 left over), bias, doubled and plain skips."""
    ext = _packed_ext()
    torch.manual_seed(rows)
    net = FittingNet(1600, 1, [25, 50, 50], "tanh", True, dtype=torch.float64, seed=3)
    x = torch.randn(rows, 1600, dtype=torch.float64)
    y, g = net.value_and_input_grad(x)
    assert len(net._packed[1]) == 6 and tuple(net._packed[1][1].shape) == (67, 25, 24)
    xa = x.clone().requires_grad_(True)
    ya = net(xa)
    (ga,) = torch.autograd.grad(ya.sum(), xa)
    monkeypatch.setenv("MTZOO_NO_AVX512", "1")
    assert not ext.gemm_packed_available()
    y_mkl, g_mkl = net.value_and_input_grad(x)
    for what, got, want in (("y vs autograd", y, ya), ("dy/dx vs autograd", g, ga), ("y vs ATen", y, y_mkl),
                            ("dy/dx vs ATen", g, g_mkl)):
        scale = max(1.0, float(want.detach().abs().max()))
        err = float((got - want.detach()).abs().max()) / scale
        assert err < 1e-12, f"{rows} rows: {what} off by {err:.2e}"


def test_packed_weights_follow_writes_behind_the_version_counter():
    """Weights written through ``.data`` (autograd's version counter unchanged, so the cache key
    is too) are repacked: the next pass uses them."""
    _packed_ext()
    net = FittingNet(30, 1, [24, 24], "tanh", True, dtype=torch.float64, seed=4)
    x = torch.randn(9, 30, dtype=torch.float64)
    net.value_and_input_grad(x)
    versions = [la.weight._version for la in net.layers]
    for layer in net.layers:
        layer.weight.data.mul_(1.5)
    assert [la.weight._version for la in net.layers] == versions
    y, g = net.value_and_input_grad(x)
    xa = x.clone().requires_grad_(True)
    ya = net(xa)
    (ga,) = torch.autograd.grad(ya.sum(), xa)
    assert float((y - ya.detach()).abs().max()) < 1e-12 and float((g - ga).abs().max()) < 1e-12


def test_packed_matrix_product_with_two_threads():
    """With two intra-op threads (the column panels split between them) the packed pass gives
    the single-threaded result bit for bit."""
    _packed_ext()
    net = FittingNet(1600, 1, [25, 50, 50], "tanh", True, dtype=torch.float64, seed=3)
    x = torch.randn(37, 1600, dtype=torch.float64)
    y1, g1 = net.value_and_input_grad(x)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        y2, g2 = net.value_and_input_grad(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(y1, y2) and torch.equal(g1, g2)
