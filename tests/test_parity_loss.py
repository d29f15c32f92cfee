"""Training parity with DeePMD-kit's PyTorch losses (``deepmd.pt.loss``, test oracle only).

On the same weights (a random DeePMD-kit model, imported through
:func:`mtzoo.zoo.deepmd_import.model_from_deepmd`) and the same batch, mtzoo's ``ener`` and
``tensor`` losses, their lcurve metrics and the gradients of the loss with respect to every
parameter equal DeePMD-kit's to rounding (1e-10 relative, float64), for one and four frames,
with and without virials, with force-less (energy-only) batches, at two learning rates.

Gradients are compared through DeePMD-kit's own serialization: its gradients are written into
its parameters, the model is serialized and imported into mtzoo, and that model's parameters
must equal mtzoo's gradients name by name (the import copies weights, so it maps gradients the
same way).

DeePMD-kit's op library is built for another torch; its pure-PyTorch path runs when the module
that loads it reports no library (``deepmd.pt.cxx_op`` replaced before import, as
``../shared/peers/deepmd_setup.sh`` does by moving the library aside).
"""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from mtzoo import keys as K
from mtzoo.config import EnerLossConfig
from mtzoo.data.graph import collate, system_graphs
from mtzoo.data.readers import load_systems
from mtzoo.training.loss import EnergyLoss, TensorLoss
from mtzoo.zoo.deepmd_import import model_from_deepmd

pytest.importorskip("deepmd.dpmodel", reason="deepmd-kit (test oracle) not importable")
if "deepmd.pt.cxx_op" not in sys.modules:
    _stub = types.ModuleType("deepmd.pt.cxx_op")
    _stub.ENABLE_CUSTOMIZED_OP = False
    sys.modules["deepmd.pt.cxx_op"] = _stub
try:
    from deepmd.dpmodel.model.model import get_model as dp_get_model
    from deepmd.pt.loss import EnergyStdLoss
    from deepmd.pt.loss import TensorLoss as DPTensorLoss
    from deepmd.pt.model.model import BaseModel as PTModel
except Exception as exc:  # pragma: no cover - depends on the oracle's install
    pytest.skip(f"deepmd.pt not importable: {exc}", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
RTOL = 1e-10
START_LR = 1e-3
LRS = (START_LR, 3.7e-5)


def _random_stats(m, sel, seed):
    """Random descriptor statistics and energy biases, identical on both sides after serialize()."""
    rng = np.random.default_rng(seed)
    nt, nnei = len(sel), sum(sel)
    bounds = np.cumsum([0, *sel])
    davg, dstd = np.zeros((nt, nnei, 4)), np.ones((nt, nnei, 4))
    for ti in range(nt):  # one value per (centre type, neighbour-type segment), as DeePMD's statistics give
        for tj in range(nt):
            davg[ti, bounds[tj]:bounds[tj + 1]] = rng.normal(scale=0.1, size=4)
            dstd[ti, bounds[tj]:bounds[tj + 1]] = rng.uniform(0.5, 1.5, size=4)
    m.atomic_model.descriptor.davg, m.atomic_model.descriptor.dstd = davg, dstd
    return rng


def _dp_serialized(type_map, sel, rcut, fitting: dict, seed=11) -> dict:
    cfg = {"type_map": list(type_map),
           "descriptor": {"type": "se_e2_a", "sel": list(sel), "rcut": rcut, "rcut_smth": 0.5, "neuron": [4, 8],
                          "axis_neuron": 3, "resnet_dt": True, "type_one_side": True, "seed": seed},
           "fitting_net": {"neuron": [12, 12], "resnet_dt": True, "seed": seed + 1, **fitting}}
    m = dp_get_model(cfg)
    rng = _random_stats(m, sel, seed)
    if fitting.get("type", "ener") == "ener":
        m.atomic_model.fitting_net.bias_atom_e = rng.normal(size=(len(type_map), 1))
        m.atomic_model.out_bias = rng.normal(size=(1, len(type_map), 1))
    return m.serialize()


def _pair(data: dict):
    """(DeePMD-kit pt model, mtzoo model) with the same weights."""
    pt = PTModel.deserialize(data)
    pt.train()
    return pt, model_from_deepmd(data)


def _dp_input(graphs):
    b, n = len(graphs), graphs[0].num_nodes
    coord = torch.stack([g[K.POSITIONS] for g in graphs]).reshape(b, n * 3)
    atype = torch.stack([g[K.ATOM_TYPE] for g in graphs])
    periodic = bool(graphs[0][K.PBC].all())
    box = torch.stack([g[K.CELL][0] for g in graphs]).reshape(b, 9) if periodic else None
    return {"coord": coord.clone(), "atype": atype, "box": box}, n


def _grad_check(pt, mt, what):
    """mtzoo's parameter gradients equal DeePMD-kit's, mapped by DeePMD-kit's own serialization."""
    with torch.no_grad():
        for p in pt.parameters():
            p.copy_(p.grad if p.grad is not None else torch.zeros_like(p))
    mapped = dict(model_from_deepmd(pt.serialize()).named_parameters())
    n = 0
    for name, p in mt.named_parameters():
        if not p.requires_grad:
            continue
        want = mapped[name].detach().numpy()
        got = (p.grad if p.grad is not None else torch.zeros_like(p)).numpy()
        scale = max(np.abs(want).max(), 1e-300)
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=f"{what}: d loss / d {name}")
        n += 1
    assert n >= 6, "no parameters compared"


def _metrics_check(mine: dict, theirs: dict, what: str):
    for key, value in theirs.items():
        if key.startswith("l2_"):
            continue  # DeePMD's raw terms; mtzoo writes the rmse_* of lcurve.out
        v = float(value)
        assert key in mine, f"{what}: metric {key} missing (mtzoo has {sorted(mine)})"
        if math.isnan(v):
            assert math.isnan(mine[key]), f"{what}: {key}"
        else:
            assert mine[key] == pytest.approx(v, rel=RTOL, abs=1e-300), f"{what}: {key}"


AGAU = REPO / "examples" / "data" / "agau_emt" / "train" / "au16"
ETHANOL = REPO / "examples" / "data" / "molecules" / "dft" / "ethanol" / "train"
PREFS = dict(start_pref_e=0.02, limit_pref_e=1.0, start_pref_f=1000.0, limit_pref_f=1.0)


@pytest.mark.parametrize("nframes", [1, 4])
@pytest.mark.parametrize("case", ["virial", "no_virial", "energy_only", "molecule"])
@pytest.mark.parametrize("lr", LRS)
def test_ener_loss_metrics_and_gradients_equal_deepmd(nframes, case, lr):
    if case == "molecule":
        type_map, sel, rcut, path = ["H", "C", "N", "O"], [6, 3, 1, 1], 4.0, ETHANOL
    else:
        type_map, sel, rcut, path = ["Ag", "Au"], [42, 41], 5.0, AGAU
    prefs = dict(PREFS, **({"start_pref_v": 0.5, "limit_pref_v": 0.1} if case == "virial" else {}))
    pt, mt = _pair(_dp_serialized(type_map, sel, rcut, {}))
    (system,) = load_systems([str(path)])
    graphs = system_graphs(system, type_map, rcut)[3: 3 + nframes]
    find_f = 0.0 if case == "energy_only" else 1.0
    for g in graphs:
        g[K.has(K.FORCES)] = torch.full((1,), find_f)
    batch = collate(graphs)

    dpl = EnergyStdLoss(starter_learning_rate=START_LR, **prefs)
    inp, natoms = _dp_input(graphs)
    label = {"energy": batch[K.ENERGY].reshape(-1, 1), "force": batch[K.FORCES].reshape(len(graphs), natoms, 3),
             "virial": batch[K.VIRIAL].reshape(-1, 9), "find_energy": 1.0, "find_force": find_f,
             "find_virial": float(batch[K.has(K.VIRIAL)].min())}
    _, dp_loss, dp_more = dpl(inp, pt, label, natoms, learning_rate=lr)
    dp_loss.backward()

    loss = EnergyLoss(EnerLossConfig(**prefs), START_LR)
    pred = mt(batch, forces=loss.needs_forces(), virial=loss.needs_virial(), create_graph=True)
    my_loss, my_more = loss(pred, batch, lr)
    my_loss.backward()

    what = f"ener {case} B={nframes} lr={lr}"
    assert float(my_loss.detach()) == pytest.approx(float(dp_loss), rel=RTOL), what
    _metrics_check(my_more, dp_more, what)
    if case == "virial":
        assert not math.isnan(my_more["rmse_v"])
    _grad_check(pt, mt, what)


@pytest.mark.parametrize("nframes", [1, 4])
@pytest.mark.parametrize("kind", ["dipole", "polar"])
@pytest.mark.parametrize("prefs", [(1.0, 0.0), (0.0, 1.0), (0.7, 2.0)])
def test_tensor_loss_metrics_and_gradients_equal_deepmd(nframes, kind, prefs):
    type_map, sel, rcut = ["H", "C", "N", "O"], [6, 3, 1, 1], 4.0
    fitting = {"type": kind, **({"fit_diag": False} if kind == "polar" else {})}
    pt, mt = _pair(_dp_serialized(type_map, sel, rcut, fitting))
    (system,) = load_systems([str(ETHANOL)])
    graphs = system_graphs(system, type_map, rcut)[5: 5 + nframes]
    key, atom_key, size = TensorLoss.KEYS[kind]
    rng = np.random.default_rng(4)
    for g in graphs:  # random labels of the right layout (ethanol carries only the dipole)
        g[key] = torch.from_numpy(rng.normal(size=(1,) + K.ITEM_SHAPES[key]))
        g[atom_key] = torch.from_numpy(rng.normal(size=(g.num_nodes,) + K.ITEM_SHAPES[atom_key]))
        g[K.has(key)] = g[K.has(atom_key)] = torch.ones(1)
    batch = collate(graphs)
    pref, pref_atomic = prefs

    dpl = DPTensorLoss(tensor_name=kind, tensor_size=size, label_name=kind, pref=pref, pref_atomic=pref_atomic)
    inp, natoms = _dp_input(graphs)
    label = {kind: batch[key].reshape(-1, size), f"atom_{kind}": batch[atom_key].reshape(len(graphs), natoms * size),
             f"find_{kind}": 1.0, f"find_atom_{kind}": 1.0}
    _, dp_loss, dp_more = dpl(inp, pt, label, natoms, learning_rate=START_LR)
    dp_loss.backward()

    loss = TensorLoss(kind, pref, pref_atomic)
    pred = mt(batch, create_graph=True)
    my_loss, my_more = loss(pred, batch, START_LR)
    my_loss.backward()

    what = f"tensor {kind} B={nframes} pref={prefs}"
    assert float(my_loss.detach()) == pytest.approx(float(dp_loss), rel=RTOL), what
    _metrics_check(my_more, dp_more, what)
    _grad_check(pt, mt, what)
