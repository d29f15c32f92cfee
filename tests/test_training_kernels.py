"""The training path's compiled pieces give what torch ops give.

* :mod:`mtzoo.nn.contract`: the exact se_e2_a edge contraction and its two derivative kernels
  pass gradcheck and gradgradcheck (the force loss differentiates them twice), and equal the
  ``index_add`` formula, in float64 and float32;
* whole se_e2_a models (one- and two-sided, mirror rows shared or not): energy, forces, virial
  and the parameter gradients of an energy + force + virial loss with the compiled contraction
  equal those of the grid-and-``bmm`` path (``use_edge_kernels = False``);
* the trainer's backward pass asks autograd only for the trainable parameters
  (``inputs=``): same gradients as a plain ``backward()``, for a single-task step and for a
  multi-task step in which the other heads' parameters are not in the graph.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import physics
from mtzoo import keys as K
from mtzoo.data.graph import collate
from mtzoo.nn.contract import edge_contract
from mtzoo.nn.extension import compiled


def _need_ext():
    if compiled() is None:
        pytest.skip("compiled kernels unavailable here (no compiler?)")


def _case(seed=0, n_edges=40, n_rows=25, m=7, n_atoms=6, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    rr = torch.randn(n_edges, 4, generator=g, dtype=dtype)
    rows = torch.randn(n_rows, m, generator=g, dtype=dtype)
    row = torch.randint(0, n_rows, (n_edges,), generator=g)
    dst = torch.randint(0, n_atoms, (n_edges,), generator=g)  # not sorted: the kernels must not rely on it
    return rr, rows, row, dst, n_atoms


def test_edge_contract_equals_index_add_and_passes_gradchecks():
    _need_ext()
    rr, g, row, dst, n = _case()
    want = torch.zeros(n, 4, g.shape[1], dtype=g.dtype).index_add_(0, dst, rr.unsqueeze(-1) * g[row].unsqueeze(1))
    for use in (True, False):
        got = edge_contract(rr, g, row, dst, n, use_compiled=use)
        assert float((got - want).abs().max()) < 1e-13
    rr.requires_grad_(True)
    g.requires_grad_(True)

    def f(a, b):
        return edge_contract(a, b, row, dst, n, use_compiled=True)

    assert torch.autograd.gradcheck(f, (rr, g))
    assert torch.autograd.gradgradcheck(f, (rr, g))

    def force_like(a, b):  # what training does: differentiate a first derivative once more
        t = f(a, b)
        ga, gb = torch.autograd.grad((t ** 2).sum() + t.sin().sum(), (a, b), create_graph=True)
        return (ga.cos() * a).sum() + (gb ** 2).sum()

    assert torch.autograd.gradcheck(force_like, (rr, g))
    assert torch.autograd.gradgradcheck(force_like, (rr, g))

    # G in parts (one per embedding net): same values, and gradients to each part
    a, b = g.detach()[:9].clone().requires_grad_(True), g.detach()[9:].clone().requires_grad_(True)

    def f_parts(r, p, q):
        return edge_contract(r, [p, q], row, dst, n, use_compiled=True)

    assert float((f_parts(rr, a, b) - want).abs().max()) < 1e-13
    assert torch.autograd.gradcheck(f_parts, (rr, a, b))
    assert torch.autograd.gradgradcheck(f_parts, (rr, a, b))


def test_edge_contract_float32_and_empty():
    _need_ext()
    rr, g, row, dst, n = _case(seed=1, dtype=torch.float32)
    want = edge_contract(rr.double(), g.double(), row, dst, n, use_compiled=False)
    got = edge_contract(rr, g, row, dst, n, use_compiled=True)
    assert got.dtype == torch.float32 and float((got.double() - want).abs().max()) < 1e-5
    empty = edge_contract(rr[:0], g, row[:0], dst[:0], n, use_compiled=True)
    assert empty.shape == (n, 4, g.shape[1]) and float(empty.abs().max()) == 0.0


def test_edge_contract_rejects_out_of_range_rows():
    _need_ext()
    rr, g, row, dst, n = _case()
    row = row.clone()
    row[3] = g.shape[0]
    with pytest.raises(RuntimeError, match="row out of range"):
        edge_contract(rr, g, row, dst, n, use_compiled=True)


def _loss_and_grads(model, batch, kernels: bool, share: bool = True):
    model.descriptor.use_edge_kernels = kernels
    model.descriptor.share_mirror_edges = share
    try:
        model.zero_grad(set_to_none=True)
        out = model(batch, head="default", create_graph=True)
        loss = (out[K.ENERGY] ** 2).sum() + (out[K.FORCES] ** 2).sum() + (out[K.VIRIAL] ** 2).sum()
        loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        return {k: out[k].detach() for k in (K.ENERGY, K.FORCES, K.VIRIAL)}, grads
    finally:
        model.descriptor.use_edge_kernels, model.descriptor.share_mirror_edges = True, True


@pytest.mark.parametrize("variant", ["one_side", "two_side"])
@pytest.mark.parametrize("share", [True, False])
def test_model_training_gradients_compiled_equal_bmm(variant, share):
    """Outputs and the parameter gradients of a force loss (double backward) agree to 1e-12."""
    _need_ext()
    from physics import se_a_frames as frames_for, se_a_model as model_for

    model = copy.deepcopy(model_for("agau", variant))
    batch = collate([physics.frame_graph(model, physics.as_frame(f, model.type_map)) for f in frames_for("agau")])
    out_k, grad_k = _loss_and_grads(model, batch, kernels=True, share=share)
    out_b, grad_b = _loss_and_grads(model, batch, kernels=False, share=share)
    for key in out_k:
        physics._assert_close(f"{variant}: {key}", out_k[key].numpy(), out_b[key].numpy(), rtol=1e-12)
    assert set(grad_k) == set(grad_b) and any(n.startswith("descriptor.") for n in grad_k)
    for name in grad_b:
        physics._assert_close(f"{variant}: d loss / d {name}", grad_k[name].numpy(), grad_b[name].numpy(), rtol=1e-11)


def test_trainer_step_backward_only_to_parameters(tmp_path):
    """A multi-task step with inputs= pruning gives the plain backward's gradients; the heads
    that did not take part get none."""
    from test_multitask_flow import tiny_multitask

    tr, _ = tiny_multitask(tmp_path, steps=1)
    name = next(iter(tr.tasks))
    task = tr.tasks[name]
    batch = task.sampler.next()
    lr = tr.lr(0)
    params = [p for p in tr.model.parameters() if p.requires_grad]

    def grads(pruned: bool):
        tr.model.train()
        tr.model.zero_grad(set_to_none=True)
        loss, _ = tr._forward_loss(task, batch, lr, create_graph=True)
        if pruned:
            torch.autograd.backward(loss, inputs=params)
        else:
            loss.backward()
        return [None if p.grad is None else p.grad.clone() for p in params]

    a, b = grads(True), grads(False)
    assert [x is None for x in a] == [x is None for x in b]
    assert any(x is None for x in a) and any(x is not None for x in a)  # other heads: no gradient
    for x, y in zip(a, b):
        if x is not None:
            assert float((x - y).abs().max()) <= 1e-12 * max(1.0, float(y.abs().max()))
    # and the trainer's own step takes that path without error
    tr.train_step(batch, lr, name)
    assert np.isfinite([float(p.detach().abs().sum()) for p in params]).all()


@pytest.mark.parametrize("lanes", ["avx512-if-present", "avx2"])
def test_fast_tanh_matches_torch_and_differentiates_twice(lanes, monkeypatch):
    """The compiled tanh (8 lanes on AVX-512 CPUs, 4 with AVX2) is within 3 ulp of torch.tanh
    (float64) over [-25, 25], tiny arguments, signed zeros, infinities and NaN; float32 within 2
    ulp; gradcheck and gradgradcheck pass."""
    from mtzoo.nn.common import _tanh_fast, fast_tanh

    if not _tanh_fast():
        pytest.skip("vectorised tanh unavailable here (no compiler or no AVX2)")
    if lanes == "avx2":
        monkeypatch.setenv("MTZOO_NO_AVX512", "1")
    x = torch.cat([torch.linspace(-25.0, 25.0, 200001, dtype=torch.float64),
                   torch.logspace(-300, 0, 3001, dtype=torch.float64),
                   torch.tensor([0.0, -0.0, 5e-324, 19.06, 1e300, -1e300, float("inf"), -float("inf")])])
    want, got = torch.tanh(x), fast_tanh(x)
    rel = (got - want).abs() / want.abs().clamp_min(1e-300)
    assert float(rel.max()) < 3 * 2.0 ** -52
    assert torch.equal(torch.signbit(got), torch.signbit(want))
    assert bool(fast_tanh(torch.tensor([float("nan")])).isnan().all())
    x32 = torch.linspace(-12.0, 12.0, 10001, dtype=torch.float32)
    assert float((fast_tanh(x32) - torch.tanh(x32)).abs().max()) < 2 * 2.0 ** -23
    for n in (1001, 13, 7, 3):  # in place, lengths that leave every tail of the 2-vector loop
        buf = x[:n].clone()
        fast_tanh(buf, out=buf)
        assert float((buf - want[:n]).abs().max()) < 1e-15, n
    z = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fast_tanh, (z,))
    assert torch.autograd.gradgradcheck(fast_tanh, (z,))
