"""Multi-task flow: train several heads, freeze a united model, continue with --init-frz-model.

Runs the examples/multitask two-step flow on the bundled Ag-Au data (short runs) and, when the
shared DeePMD-kit data is present, the water energy + dipole multi-task input as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, SHARED
from mtzoo import keys as K
from mtzoo.config import load_input
from mtzoo.data.graph import collate, system_graphs
from mtzoo.data.readers import load_systems
from mtzoo.evaluation import evaluate
from mtzoo.training.trainer import Trainer
from mtzoo.zoo.frozen import freeze, load_model

EX = REPO / "examples" / "multitask"
QUIET = {"progress": False, "log": lambda *a: None}


def example_input(name: str, tmp_path: Path, steps: int, lr: dict | None = None, **training) -> Path:
    """Copy of an example input with absolute data paths and a short run."""
    cfg = json.loads((EX / name).read_text())
    cfg["learning_rate"].update(lr or {})
    for task in cfg["training"]["data_dict"].values():
        for part in task.values():
            part["systems"] = [str((EX / p).resolve()) for p in part["systems"]]
    cfg["training"].update({"numb_steps": steps, "save_freq": steps, "disp_freq": 10, **training})
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture(scope="module")
def step1(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mt1")
    path = example_input("step1_input.json", tmp, 300, lr={"start_lr": 1e-2, "decay_steps": 100})
    tr = Trainer(path, tmp / "run", **QUIET)
    valid = {n: t.valid.systems for n, t in tr.tasks.items()}
    before = {n: evaluate(tr.model, s, head=n)["total"]["force"]["rmse"] for n, s in valid.items()}
    tr.run()
    after = {n: evaluate(tr.model, s, head=n)["total"]["force"]["rmse"] for n, s in valid.items()}
    model = freeze(tmp / "run", tmp / "united.pth")
    return tmp, tr, before, after, model


def test_every_head_learns(step1):
    _, _, before, after, _ = step1
    # measured over 300 steps (lr 1e-2 -> 1e-5): emt 0.557 -> 0.281 eV/A, emt_d3bj -> 0.252 eV/A; require 1.4x each
    for name in before:
        assert after[name] < before[name] / 1.4, (name, before[name], after[name])


def test_lcurve_has_every_task_and_scheduler_used_both(step1):
    tmp, tr, *_ = step1
    header = (tmp / "run" / "lcurve.out").read_text().splitlines()[0].split()
    for name in ("emt", "emt_d3bj"):
        assert f"rmse_f_val_{name}" in header and f"rmse_f_trn_{name}" in header
    assert header[-1] == "lr"
    # layer_name: the first two layers are one module in both heads
    m = tr.model
    assert m.heads["emt"].nets[0].layers[0] is m.heads["emt_d3bj"].nets[0].layers[0]
    assert m.heads["emt"].nets[0].layers[2] is not m.heads["emt_d3bj"].nets[0].layers[2]


def test_united_and_single_head_freeze_agree(step1, tmp_path):
    tmp, tr, _, _, united_path = step1
    united = load_model(united_path)
    assert united.head_names() == ["emt", "emt_d3bj"]
    single = load_model(freeze(tmp / "run", tmp_path / "d3.pth", head="emt_d3bj"))
    assert single.head_names() == ["emt_d3bj"]
    s = load_systems(REPO / "examples/data/agau_d3bj/valid")[0]
    g = collate(system_graphs(s, united.type_map, united.rcut)[:3])
    a, b = united(g, head="emt_d3bj"), single(g)
    torch.testing.assert_close(a[K.ENERGY], b[K.ENERGY], rtol=0, atol=0)
    torch.testing.assert_close(a[K.FORCES], b[K.FORCES], rtol=0, atol=0)
    with pytest.raises(KeyError, match=r"head 'dft' not in this model \(available: \['emt', 'emt_d3bj'\]\)"):
        united(g, head="dft")


def test_init_frz_model_keeps_old_head_adds_new(step1, tmp_path):
    tmp, *_, united_path = step1
    path = example_input("step2_input.json", tmp_path, 30)
    tr = Trainer(path, tmp_path / "run2", init_frz_model=united_path, **QUIET)
    frozen = torch.load(united_path, weights_only=True)["state_dict"]
    start = {k: v.clone() for k, v in tr.model.state_dict().items()}
    for key in ("descriptor.embeddings.0.layers.0.weight", "heads.emt_d3bj.nets.1.layers.3.weight",
                "heads.emt_d3bj.bias_atom_e", "descriptor.davg"):
        torch.testing.assert_close(start[key], frozen[key], rtol=0, atol=0, msg=key)
    assert tr.model.head_names() == ["emt_d3bj", "emt_d3zero"]
    assert tr.new_heads == ["emt_d3zero"]
    tr.run()
    out = json.loads((tmp_path / "run2" / "out.json").read_text())
    assert out["model"]["descriptor"]["neuron"] == [16, 32]  # completed from the frozen model
    assert out["loss_dict"]["emt_d3bj"]["start_pref_f"] == 1000  # inherited loss
    assert set(out["model"]["fitting_net_dict"]) == {"emt_d3bj", "emt_d3zero"}
    assert not torch.equal(tr.model.state_dict()["heads.emt_d3zero.nets.0.layers.3.weight"],
                           start["heads.emt_d3zero.nets.0.layers.3.weight"])


def test_head_without_weight_is_not_trained(tmp_path):
    path = example_input("step1_input.json", tmp_path, 5)
    cfg = json.loads(path.read_text())
    cfg["training"]["fitting_weight"] = {"emt": 1}
    path.write_text(json.dumps(cfg))
    with pytest.warns(UserWarning, match="head 'emt_d3bj' has no fitting_weight"):
        tr = Trainer(path, tmp_path / "run", **QUIET)
    before = {k: v.clone() for k, v in tr.model.state_dict().items() if k.startswith("heads.emt_d3bj.nets.0.layers.3")}
    tr.run()
    after = tr.model.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k


def test_shared_energy_dipole_input_unmodified(tmp_path, monkeypatch):
    src = SHARED / "examples" / "water_multi_task" / "ener_dipole" / "input.json"
    if not src.exists():
        pytest.skip("shared DeePMD-kit multi-task example not present")
    monkeypatch.chdir(src.parent)  # its systems paths are relative to its folder, as DeePMD-kit runs it
    cfg = load_input(src)
    assert [t.name for t in cfg.tasks()] == ["water_dipole", "water_ener"]
    cfg.training.numb_steps = 4
    cfg.training.disp_freq = 2
    for t in cfg.tasks():
        t.validation_data.numb_btch = 1
    tr = Trainer(cfg, tmp_path / "run", **QUIET)
    assert tr.model.heads["water_dipole"].head_type == "dipole"
    res = tr.run()
    header = (tmp_path / "run" / "lcurve.out").read_text().splitlines()[0]
    assert "rmse_f_val_water_ener" in header and "water_dipole" in header
    # a batch of the atomic-only (or global-only) dipole system has no label for the other term: nan, as in DeePMD
    assert all(np.isfinite(m["rmse"]) for m in res["train"].values())
    united = freeze(tmp_path / "run", tmp_path / "united.pth")
    # second step: keep water_ener, add water_ener_2, descriptor from the frozen model
    raw = json.loads(src.read_text())
    raw["model"]["descriptor"] = {}
    raw["model"]["fitting_net_dict"] = {"water_ener": {}, "water_ener_2": raw["model"]["fitting_net_dict"]["water_ener"]}
    raw["loss_dict"] = {"water_ener_2": raw["loss_dict"]["water_ener"]}
    dd = raw["training"]["data_dict"]
    raw["training"]["data_dict"] = {"water_ener": dd["water_ener"], "water_ener_2": dd["water_ener"]}
    raw["training"]["fitting_weight"] = {"water_ener": 1, "water_ener_2": 1}
    raw["training"].update(numb_steps=2, disp_freq=1)
    for d in raw["training"]["data_dict"].values():
        d["validation_data"]["numb_btch"] = 1
    tr2 = Trainer(raw, tmp_path / "run2", init_frz_model=united, **QUIET)
    assert tr2.new_heads == ["water_ener_2"]
    tr2.run()
    assert load_model(freeze(tmp_path / "run2", tmp_path / "m2.pth")).head_names() == ["water_ener", "water_ener_2"]


def tiny_multitask(tmp_path, steps=12, weights=None, trainable_high=True, descriptor_trainable=True, seed=5):
    cfg = json.loads((EX / "step1_input.json").read_text())
    cfg["model"]["descriptor"].update(neuron=[4, 8], axis_neuron=2, trainable=descriptor_trainable)
    for name, fit in cfg["model"]["fitting_net_dict"].items():
        fit["neuron"] = [8, 8, 8]
    cfg["model"]["fitting_net_dict"]["emt_d3bj"]["trainable"] = trainable_high
    for task in cfg["training"]["data_dict"].values():
        for part in task.values():
            part["systems"] = [str((EX / p).resolve()) for p in part["systems"]]
    cfg["training"].update({"numb_steps": steps, "save_freq": steps, "disp_freq": steps, "seed": seed})
    if weights is not None:
        cfg["training"]["fitting_weight"] = weights
    tr = Trainer(cfg, tmp_path, **QUIET)
    start = {k: v.clone() for k, v in tr.model.state_dict().items()}
    tr.run()
    return tr, start


def test_same_seed_same_weights_after_n_steps(tmp_path):
    a, _ = tiny_multitask(tmp_path / "a")
    b, _ = tiny_multitask(tmp_path / "b")
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    c, _ = tiny_multitask(tmp_path / "c", seed=6)
    assert not torch.equal(c.model.state_dict()["descriptor.embeddings.0.layers.0.weight"],
                           a.model.state_dict()["descriptor.embeddings.0.layers.0.weight"])


def test_shared_layer_updated_by_either_task_private_layers_not(tmp_path):
    shared = "heads.emt.nets.0.layers.0.weight"
    for trained, other in (("emt", "emt_d3bj"), ("emt_d3bj", "emt")):
        tr, start = tiny_multitask(tmp_path / trained, weights={trained: 1, other: 0})
        end = tr.model.state_dict()
        assert tr.model.heads["emt"].nets[0].layers[0] is tr.model.heads["emt_d3bj"].nets[0].layers[0]
        assert not torch.equal(end[shared], start[shared]), f"shared layer not updated by steps on {trained}"
        for k in (f"heads.{other}.nets.0.layers.2.weight", f"heads.{other}.nets.1.layers.3.weight"):
            assert torch.equal(end[k], start[k]), k
        assert not torch.equal(end[f"heads.{trained}.nets.0.layers.3.weight"], start[f"heads.{trained}.nets.0.layers.3.weight"])


def test_frozen_layers_bit_identical_after_training(tmp_path):
    # DP-GEN transfer recipe: frozen descriptor, only the output layer of one head trainable
    tr, start = tiny_multitask(tmp_path, trainable_high=[True, True, False, True], descriptor_trainable=False)
    end = tr.model.state_dict()
    for k in start:
        if k.startswith("descriptor.") or ".layers.2." in k and k.startswith("heads.emt_d3bj."):
            assert torch.equal(start[k], end[k]), k
    assert not torch.equal(start["heads.emt_d3bj.nets.0.layers.3.weight"], end["heads.emt_d3bj.nets.0.layers.3.weight"])
    frozen_ids = {id(p) for p in tr.model.descriptor.parameters()}
    assert not any(id(p) in frozen_ids for g in tr.optimizer.param_groups for p in g["params"])
