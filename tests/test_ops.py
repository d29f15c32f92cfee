"""The compiled kernels are registered torch operators that torch.compile traces through.

``mtzoo/nn/ext_module.cpp`` declares the kernels of the model's forward and backward as
``torch.ops.mtzoo.*`` with schemas (inputs, outputs, which arguments are written); their fake
kernels (``mtzoo/nn/extension.py``) give the output shapes.  Checked here on the calls the model
really makes (recorded from a compressed se_e2_a's inference path and an exact se_e2_a's training
step): ``torch.library.opcheck`` on each (schema, fake kernel, AOT dispatch), one graph for the
inference chain under ``torch.compile(fullgraph=True)``, and no graph break at a kernel in the
inference path.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

import physics
from mtzoo import keys as K
from mtzoo.data.graph import collate
from mtzoo.model import Predictor, edge_vectors
from mtzoo.nn.extension import ops

pytestmark = pytest.mark.skipif(ops() is None, reason="compiled kernels unavailable here (no compiler?)")


class _Record(TorchDispatchMode):
    """Keeps the first call of each ``mtzoo`` operator (arguments detached and copied)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "mtzoo" and func not in self.calls:
            copy_ = lambda x: x.detach().clone() if isinstance(x, torch.Tensor) else x  # noqa: E731
            self.calls[func] = (tree_map(copy_, args), tree_map(copy_, kwargs))
        return func(*args, **kwargs)


def _case(compressed: bool):
    from physics import se_a_frames as frames_for, se_a_model as model_for

    model = copy.deepcopy(model_for("agau", "two_side"))
    if compressed:
        model.descriptor.enable_compression()
    batch = collate([physics.frame_graph(model, physics.as_frame(f, model.type_map)) for f in frames_for("agau")])
    return model, batch


def test_every_registered_operator_passes_opcheck():
    """Every ``mtzoo::`` operator is called by the inference path (compressed se_e2_a, Predictor),
    the training step (exact se_e2_a, forces differentiated once more) or the in-place tanh of the
    fitting nets, and passes ``torch.library.opcheck`` on that call."""
    rec = _Record()
    with rec:
        model, batch = _case(compressed=True)
        Predictor(model)(batch)
        model, batch = _case(compressed=False)
        out = model(batch, create_graph=True)
        (out[K.FORCES].pow(2).sum() + out[K.ENERGY].sum()).backward()
        x = torch.randn(5, 7, dtype=torch.float64)
        from mtzoo.nn.common import fast_tanh
        from mtzoo.nn.extension import tanh_vectorised

        fast_tanh(x, out=x)
        if not tanh_vectorised():  # the models use torch.tanh here (no AVX2, or the portable build)
            torch.ops.mtzoo.tanh(x)
            torch.ops.mtzoo.tanh_(x)
    registered = {n for n in torch._C._dispatch_get_all_op_names() if n.startswith("mtzoo::")}
    called = {f"mtzoo::{f._opname}" for f in rec.calls}
    assert registered and called == registered, f"not exercised: {sorted(registered - called)}"
    for func, (args, kwargs) in rec.calls.items():
        torch.library.opcheck(func, args, kwargs)


def test_inference_kernels_compile_into_one_graph():
    """The compressed se_e2_a's inference chain (edge vectors, tables, tail, fitting net with its
    input gradient, the two backward passes, force sums) compiles with ``fullgraph=True`` and
    gives the eager numbers."""
    model, batch = _case(compressed=True)
    desc, head = model.descriptor, model.heads[model.resolve_head(None)]
    tb, env = desc._fused_tables(), (desc.rcut_smth, desc.rcut, desc.env_protection)
    pad = (desc.sel_t.unsqueeze(0) - torch.zeros(1, desc.ntypes, dtype=torch.float64)).contiguous()
    net = head.nets[0]
    weights = [la.weight.detach() for la in net.layers]
    biases = [None if la.bias is None else la.bias.detach() for la in net.layers]
    hidden = net.layers[:-1]
    idts = [None if la.idt is None else la.idt.detach() for la in hidden]
    skips = [la.skip for la in hidden]
    mt = torch.ops.mtzoo

    def chain(pos, edge_index, shift, cell, bidx, atom_type):
        vec = mt.edge_vectors(pos, edge_index, shift, cell, bidx)
        gr, rr, t, col, inside, counts = mt.tabulate_forward(vec, edge_index, atom_type, tb.scale, tb.shift, tb.slot,
                                                            tb.knots_all, tb.knot_start, tb.bin_offset, tb.coef, *env)
        x, d = mt.se_a_tail_forward(gr, (pad - counts).contiguous(), desc._padding_rows().contiguous(), atom_type,
                                    1.0 / desc.nnei, desc.axis_neuron)
        y, g_d = d.new_empty(d.shape[0], 1), torch.empty_like(d)
        mt.mlp_value_and_grad(d, weights, biases, idts, skips, y, g_d, [])
        g_t = mt.se_a_tail_backward(x, g_d, None, 1.0 / desc.nnei, desc.axis_neuron)
        g = mt.tabulate_backward(g_t, vec, edge_index, atom_type, tb.scale, tb.shift, tb.slot, rr, t, col, inside,
                                 tb.knots_all, tb.knot_start, tb.bin_offset, tb.coef, *env)
        return y, mt.edge_forces(g, edge_index, pos.shape[0])

    args = (batch[K.POSITIONS].to(torch.float64).contiguous(), batch[K.EDGE_INDEX].contiguous(),
            batch[K.CELL_SHIFT].to(torch.float64).contiguous(), batch[K.CELL].to(torch.float64).contiguous(),
            batch[K.BATCH].contiguous(), batch[K.ATOM_TYPE].contiguous())
    want = chain(*args)
    torch._dynamo.reset()
    got = torch.compile(chain, fullgraph=True, backend="aot_eager")(*args)
    for w, g in zip(want, got):
        assert torch.allclose(w, g, rtol=0, atol=1e-12)
    assert float(want[1].abs().max()) > 0


def test_no_graph_break_at_a_kernel_in_the_inference_path():
    """``torch._dynamo.explain`` of the Predictor's energy-and-forces pass: the kernels it calls are
    in the captured graphs, and no graph break happens at one (the breaks that remain are the
    model's data-dependent checks: ``inside.all()``, per-type atom counts, the folded weight cache)."""
    model, batch = _case(compressed=True)
    vec = edge_vectors(batch[K.POSITIONS], batch[K.EDGE_INDEX], batch[K.CELL_SHIFT], batch[K.CELL], batch[K.BATCH])
    pred, head = Predictor(model), model.resolve_head(None)

    def energy_and_edge_grad(v, edge_index, atom_type):
        out, g = pred.head_outputs(v, edge_index, atom_type, head)
        return out[K.ATOM_ENERGY], g

    torch._dynamo.reset()
    ex = torch._dynamo.explain(energy_and_edge_grad)(vec.detach(), batch[K.EDGE_INDEX], batch[K.ATOM_TYPE])
    traced = {str(n.target) for gm in ex.graphs for n in gm.graph.nodes
              if n.op == "call_function" and str(n.target).startswith("mtzoo.")}
    assert {"mtzoo.tabulate_forward", "mtzoo.se_a_tail_forward", "mtzoo.mlp_value_and_grad",
            "mtzoo.se_a_tail_backward", "mtzoo.tabulate_backward"} <= traced
    for brk in ex.break_reasons:
        reason = str(brk.reason)
        assert "mtzoo_ext" not in reason and "pybind" not in reason, reason
