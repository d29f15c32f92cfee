"""Dipole and polarizability heads: build-time contracts, type selection, config round trip, the
tensor loss and the tensor evaluation.  Their exact equivariance is checked in tests/test_physics.py.

Models (physics.tensor_model): se_e2_a + dipole / polar (fit_diag true and false, per-type scale,
shift_diag) with statistics from compute_stats plus random offsets, random fitting biases, a
random polar constant_matrix and out_bias, so that every term of the head is exercised.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mtzoo import keys as K
from mtzoo.data.graph import collate, system_graphs
from mtzoo.descriptors.base import Descriptor
from mtzoo.heads import DipoleHead, PolarHead, build_head
from mtzoo.model import Model, build_model, model_config
from mtzoo.training.loss import TensorLoss
from physics import HEAD, TENSOR_HEADS as HEADS, tensor_frame as _frame, tensor_model as _model


# ------------------------------------------------------------------------------------------
# type selection, outputs, config round trip, build-time contract
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("head", list(HEADS))
def test_sel_type_zeroes_other_types_exactly(head):
    model = _model("molecule", head, False, (0, 2))  # C and O carry the tensor, H does not
    system = _frame("molecule")
    out = model(collate(system_graphs(system, model.type_map, model.rcut)))
    od = model.heads[HEAD].outputs[0]
    atomic = out[od.atom_name].detach().numpy()
    atype = system.model_types(model.type_map)
    assert np.all(atomic[atype == 1] == 0.0)
    assert np.all(np.abs(atomic[atype != 1]).reshape(int((atype != 1).sum()), -1).max(-1) > 0)
    assert model.heads[HEAD].sel_types() == [0, 2]
    assert K.FORCES not in out and K.ENERGY not in out
    assert out[od.name].shape == (1, *od.shape)
    assert out[od.atom_name].shape == (system.natoms, *od.shape)


@pytest.mark.parametrize("head", list(HEADS))
def test_config_round_trip(head):
    model = _model("molecule", head, False, (0, 2))
    cfg = model_config(model)
    assert json.loads(json.dumps(cfg)) == cfg
    again = build_model(cfg)
    again.load_state_dict(model.state_dict())
    again.eval()
    batch = collate(system_graphs(_frame("molecule"), model.type_map, model.rcut))
    key = model.heads[HEAD].outputs[0].atom_name
    assert torch.equal(again(batch)[key], model(batch)[key])
    assert again.heads[HEAD].get_config() == model.heads[HEAD].get_config()


class _NoRotDescriptor(Descriptor):
    """Minimal invariant-only descriptor (dim_rot = 0)."""

    type_name = "norot_stub"
    rcut, ntypes, dim_out, dim_rot, mixed_types = 3.0, 2, 8, 0, False

    def forward(self, edge_vec, edge_index, atom_type):
        return {K.DESCRIPTOR: torch.zeros(atom_type.shape[0], self.dim_out)}


@pytest.mark.parametrize("kind", ["dipole", "polar"])
def test_tensor_head_needs_rot_mat(kind):
    stub = _NoRotDescriptor()
    with pytest.raises(ValueError, match=rf"'{kind}' head needs equivariant axis vectors.*norot_stub.*dim_rot = 0"):
        build_head({"type": kind, "neuron": [4]}, 2, stub)
    cls = DipoleHead if kind == "dipole" else PolarHead
    with pytest.raises(ValueError, match="dim_rot=0"):
        cls(ntypes=2, dim_descrpt=8, dim_rot=0)
    head = cls(ntypes=2, dim_descrpt=8, dim_rot=4, neuron=[4])
    with pytest.raises(ValueError, match="needs equivariant axis vectors"):
        Model(["O", "H"], stub, {"h": head})


def test_polar_scale_length_checked():
    with pytest.raises(ValueError, match="scale has 3 entries"):
        PolarHead(ntypes=2, dim_descrpt=8, dim_rot=4, scale=[1.0, 2.0, 3.0])


# ------------------------------------------------------------------------------------------
# tensor loss
# ------------------------------------------------------------------------------------------
def _loss_batch(kind: str, seed: int = 0):
    """Hand-made batch: 3 frames (4, 2, 3 atoms), types 0/1, some labels missing."""
    rng = np.random.default_rng(seed)
    natoms = np.array([4, 2, 3])
    n, b = natoms.sum(), len(natoms)
    shape = (3,) if kind == "dipole" else (3, 3)
    gkey, akey = TensorLoss.KEYS[kind][:2]
    batch = {K.NUM_ATOMS: torch.as_tensor(natoms), K.BATCH: torch.as_tensor(np.repeat(np.arange(b), natoms)),
             K.ATOM_TYPE: torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1]),
             gkey: torch.as_tensor(rng.normal(size=(b, *shape))), akey: torch.as_tensor(rng.normal(size=(n, *shape))),
             K.has(gkey): torch.tensor([1.0, 0.0, 1.0]), K.has(akey): torch.tensor([0.0, 1.0, 1.0])}
    pred = {gkey: torch.as_tensor(rng.normal(size=(b, *shape))), akey: torch.as_tensor(rng.normal(size=(n, *shape)))}
    return batch, pred


@pytest.mark.parametrize("kind", ["dipole", "polar"])
@pytest.mark.parametrize("sel_type", [None, [1]])
def test_tensor_loss_matches_numpy(kind, sel_type):
    batch, pred = _loss_batch(kind)
    gkey, akey, size = TensorLoss.KEYS[kind]
    loss_fn = TensorLoss(kind, pref=0.7, pref_atomic=2.5, sel_type=sel_type)
    assert not loss_fn.needs_forces() and not loss_fn.needs_virial()
    loss, metrics = loss_fn(pred, batch, lr=1e-3)
    # numpy: atomic term over atoms of selected types in frames with the atomic label
    frame_of = batch[K.BATCH].numpy()
    types = batch[K.ATOM_TYPE].numpy()
    ok = batch[K.has(akey)].numpy()[frame_of] > 0
    if sel_type is not None:
        ok &= np.isin(types, sel_type)
    da = (pred[akey].numpy() - batch[akey].numpy()).reshape(len(types), -1)[ok]
    l_a = np.mean(da**2)
    fg = batch[K.has(gkey)].numpy() > 0
    dg = (pred[gkey].numpy() - batch[gkey].numpy()).reshape(len(fg), -1)[fg]
    l_g = np.mean(dg**2)
    want = 0.7 * l_g + 2.5 * l_a
    assert math.isclose(float(loss), want, rel_tol=1e-13)
    assert math.isclose(metrics["rmse"], math.sqrt(want), rel_tol=1e-13)
    assert math.isclose(metrics[f"rmse_local_{kind}"], math.sqrt(l_a), rel_tol=1e-13)
    nbar = batch[K.NUM_ATOMS].numpy()[fg].mean()
    assert math.isclose(metrics[f"rmse_global_{kind}"], math.sqrt(l_g) / nbar, rel_tol=1e-13)
    assert da.shape[1] == size
    # masked entries do not matter: change the unlabelled frames' labels and the unselected atoms
    batch2 = dict(batch)
    batch2[gkey] = batch[gkey].clone()
    batch2[gkey][~torch.as_tensor(fg)] = 1e6
    batch2[akey] = batch[akey].clone()
    batch2[akey][~torch.as_tensor(ok)] = -1e6
    assert float(loss_fn(pred, batch2, lr=1e-3)[0]) == float(loss)


def test_tensor_loss_missing_labels_and_prefs():
    batch, pred = _loss_batch("dipole")
    batch[K.has(K.ATOM_DIPOLE)] = torch.zeros(3)
    loss, metrics = TensorLoss("dipole", pref=1.0, pref_atomic=1.0)(pred, batch, 1e-3)
    assert math.isnan(metrics["rmse_local_dipole"]) and math.isfinite(metrics["rmse_global_dipole"])
    del batch[K.DIPOLE]  # a system without global labels: no key at all
    loss, metrics = TensorLoss("dipole", pref=1.0, pref_atomic=1.0)(pred, batch, 1e-3)
    assert float(loss) == 0.0 and math.isnan(metrics["rmse_global_dipole"])
    _, metrics = TensorLoss("dipole", pref=1.0)(pred, batch, 1e-3)
    assert "rmse_local_dipole" not in metrics
    with pytest.raises(ValueError, match="not both 0"):
        TensorLoss("dipole")
    with pytest.raises(ValueError, match="unknown"):
        TensorLoss("ener", pref=1.0)


# ------------------------------------------------------------------------------------------
# evaluation on the shared water_tensor data
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dipole", "polar"])
def test_evaluate_tensor_head(kind):
    from mtzoo.evaluation import evaluate, format_table, predict_system

    from conftest import tensor_systems

    available = tensor_systems(kind, "validation")  # DeePMD's water_tensor, or bundled water
    systems = [available[name] for name in ("atomic_system", "global_system")]
    model = build_model({"type_map": ["O", "H"],
                         "descriptor": {"type": "se_e2_a", "sel": [24, 48], "rcut": 3.5, "neuron": [4, 8],
                                        "axis_neuron": 2, "seed": 1},
                         "heads": {HEAD: {"type": kind, "neuron": [8], "seed": 2, "sel_type": [0]}}})
    gkey, akey, size = TensorLoss.KEYS[kind]
    res = evaluate(model, systems, nframes=2)
    json.dumps(res)
    assert res["units"] == {gkey: "label units", akey: "label units"}
    at, gl = res["systems"]
    assert set(at) >= {akey} and gkey not in at and set(gl) >= {gkey} and akey not in gl
    pred = predict_system(model, systems[0], nframes=2)
    sel = systems[0].model_types(["O", "H"]) == 0
    err = (pred[akey][:, sel] - systems[0].labels[akey][:2][:, sel]).ravel()
    assert at[akey]["n"] == 2 * int(sel.sum()) * size
    assert math.isclose(at[akey]["rmse"], float(np.sqrt(np.mean(err**2))), rel_tol=1e-12)
    assert math.isclose(at[akey]["mae"], float(np.mean(np.abs(err))), rel_tol=1e-12)
    pred = predict_system(model, systems[1], nframes=2)
    err = (pred[gkey] - systems[1].labels[gkey][:2]).ravel()
    assert math.isclose(gl[gkey]["rmse"], float(np.sqrt(np.mean(err**2))), rel_tol=1e-12)
    assert res["total"][gkey] == gl[gkey]
    table = format_table(res)
    assert "label units" in table and akey in table and "ALL" in table


def _loss_and_grads(model, through_model: bool):
    from mtzoo.model import edge_vectors

    system = _frame("molecule")
    rng = np.random.default_rng(1)
    system.labels = {K.DIPOLE: rng.normal(size=(1, 3)), K.ATOM_DIPOLE: rng.normal(size=(1, system.natoms, 3))}
    system.masks = {k: np.ones(1, dtype=bool) for k in system.labels}
    batch = collate(system_graphs(system, model.type_map, model.rcut))
    model.train()
    if through_model:
        pred = model(batch)
    else:  # descriptor + head + frame sum, outside Model.forward
        vec = edge_vectors(batch[K.POSITIONS], batch[K.EDGE_INDEX], batch[K.CELL_SHIFT], batch[K.CELL], batch[K.BATCH])
        pred = model.heads[HEAD](model.descriptor(vec, batch[K.EDGE_INDEX], batch[K.ATOM_TYPE]), batch[K.ATOM_TYPE])
        pred[K.DIPOLE] = pred[K.ATOM_DIPOLE].sum(0, keepdim=True)
    loss, _ = TensorLoss.for_head(model.heads[HEAD], pref=1.0, pref_atomic=1.0)(pred, batch, 1e-3)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)
    model.eval()
    return loss, grads


def test_tensor_loss_gradients_reach_head_and_descriptor():
    model = build_model(model_config(_model("molecule", "dipole", False, (0, 2))))
    loss, grads = _loss_and_grads(model, through_model=False)
    assert float(loss.detach()) > 0 and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) > 0 for g in grads) > len(grads) // 2


def test_tensor_loss_backprop_through_model():
    model = build_model(model_config(_model("molecule", "dipole", False, (0, 2))))
    loss, grads = _loss_and_grads(model, through_model=True)
    assert float(loss.detach()) > 0 and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) > 0 for g in grads) > len(grads) // 2
