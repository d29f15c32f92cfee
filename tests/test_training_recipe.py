"""Training recipe: AdamW/amsgrad, cosine and plateau learning rates, EMA of the weights, epochs, clipping.

Tiny se_e2_a models on the bundled Ag-Au EMT data (examples/data/agau_emt: 3 training systems
of 40 frames, 2 validation systems of 10).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import AGAU, REPO
from mtzoo.config import ConfigError, parse_input
from mtzoo.training.lr import make_schedule
from mtzoo.training.optim import clip_gradients
from mtzoo.training.trainer import Trainer
from mtzoo.zoo.frozen import freeze, load_model

QUIET = {"progress": False, "log": lambda *a: None}


def recipe_input(steps: int = 30, lr: dict | None = None, optimizer: dict | None = None, **training) -> dict:
    """The Ag-Au quick-start input with a tiny model, absolute data paths and a short run."""
    cfg = json.loads((REPO / "examples" / "agau_emt" / "input.json").read_text())
    cfg["model"]["descriptor"].update(neuron=[8, 16], axis_neuron=4)
    cfg["model"]["fitting_net"]["neuron"] = [32, 32]
    cfg["training"]["training_data"]["systems"] = [str(AGAU / "train")]
    cfg["training"]["validation_data"]["systems"] = [str(AGAU / "valid")]
    cfg["training"].update({"numb_steps": steps, "disp_freq": 10, "save_freq": steps, "seed": 3, **training})
    cfg["learning_rate"] = lr if lr is not None else {"type": "exp", "start_lr": 1e-2, "stop_lr": 1e-4, "decay_steps": 20}
    if optimizer is not None:
        cfg["optimizer"] = optimizer
    return cfg


def read_lcurve(path) -> dict[str, np.ndarray]:
    lines = Path(path).read_text().splitlines()
    rows = [line.split() for line in lines if not line.startswith("#")]
    names = lines[0].lstrip("#").split()
    return {n: np.array([float(r[i]) for r in rows]) for i, n in enumerate(names)}


# --------------------------------------------------------------------------- optimizer


def test_adamw_and_amsgrad_reach_torch(tmp_path):
    opt = {"type": "AdamW", "adam_beta1": 0.85, "adam_beta2": 0.99, "weight_decay": 0.02, "amsgrad": True}
    tr = Trainer(recipe_input(optimizer=opt), tmp_path, **QUIET)
    assert type(tr.optimizer) is torch.optim.AdamW
    group = tr.optimizer.param_groups[0]
    assert group["betas"] == (0.85, 0.99) and group["weight_decay"] == 0.02 and group["amsgrad"] is True
    assert group["fused"] is True and group["params"] == tr._trainable
    # AdamW's weight_decay default is DeePMD-kit 3.2's 1e-3 (not torch's 1e-2); Adam's stays an L2 term of 0
    tr = Trainer(recipe_input(optimizer={"type": "AdamW"}), tmp_path / "b", **QUIET)
    assert tr.optimizer.param_groups[0]["weight_decay"] == 0.001 and tr.optimizer.param_groups[0]["amsgrad"] is False
    tr = Trainer(recipe_input(optimizer={"type": "Adam", "amsgrad": True}), tmp_path / "c", **QUIET)
    assert type(tr.optimizer) is torch.optim.Adam
    assert tr.optimizer.param_groups[0]["amsgrad"] is True and tr.optimizer.param_groups[0]["weight_decay"] == 0.0


def test_adamw_cosine_ema_recipe_trains(tmp_path):
    # 200 steps, AdamW + cosine 1e-2 -> 1e-5 after 10 warmup steps + EMA 0.95, full validation set:
    # measured force rmse 0.557 -> 0.255 eV/A and energy 1.09 -> 0.030 eV/atom; require 1.5x and 10x
    from mtzoo.evaluation import evaluate

    cfg = recipe_input(200, lr={"type": "cosine", "start_lr": 1e-2, "stop_lr": 1e-5, "warmup_steps": 10},
                       optimizer={"type": "AdamW"}, enable_ema=True, ema_decay=0.95, disp_freq=50)
    tr = Trainer(cfg, tmp_path, **QUIET)
    valid = tr.tasks["default"].valid.systems
    before = evaluate(tr.model, valid)["total"]
    tr.run()
    after = evaluate(load_model(freeze(tmp_path, tmp_path / "m.pth")), valid)["total"]
    assert after["force"]["rmse"] < before["force"]["rmse"] / 1.5, (before, after)
    assert after["energy_per_atom"]["rmse"] < before["energy_per_atom"]["rmse"] / 10, (before, after)


# --------------------------------------------------------------------------- learning rate


def test_cosine_values_equal_the_formula():
    lr = {"type": "cosine", "start_lr": 1e-2, "stop_lr": 1e-5, "warmup_steps": 10, "warmup_start_factor": 0.1}
    sched = make_schedule(parse_input(recipe_input(110, lr=lr)).learning_rate, 110)
    e0, es, w, span = 1e-2, 1e-5, 10, 100
    expected = {0: 0.1 * e0, 5: e0 * (0.1 + 0.9 * 5 / 10), 10: e0, 35: es + 0.5 * (e0 - es) * (1 + math.cos(math.pi * 0.25)),
                60: (e0 + es) / 2, 109: es + 0.5 * (e0 - es) * (1 + math.cos(math.pi * 99 / span)), 110: es, 500: es}
    for step, value in expected.items():
        assert sched(step) == pytest.approx(value, rel=1e-14, abs=0), step
    assert w == sched.warmup
    # and DeePMD-kit 3.2's own LearningRateCosine, when installed
    deepmd_lr = pytest.importorskip("deepmd.dpmodel.utils.learning_rate")
    ref = deepmd_lr.LearningRateCosine(start_lr=e0, stop_lr=es, num_steps=110, warmup_steps=10, warmup_start_factor=0.1)
    for step in (0, 3, 9, 10, 11, 47, 60, 99, 109, 110, 150):
        assert sched(step) == pytest.approx(float(ref.value(step)), rel=1e-12), step


def test_plateau_reduces_after_patience_non_improving_lines():
    lr = {"type": "plateau", "start_lr": 1e-2, "stop_lr": 2e-3, "factor": 0.5, "patience": 2, "warmup_steps": 10}
    sched = make_schedule(parse_input(recipe_input(1000, lr=lr)).learning_rate, 1000)
    assert sched.metric == "rmse" and sched(0) == 0.0 and sched(10) == 1e-2
    sched.observe(0.01, 10)  # a warmup line: not counted, not a best
    expected = [(20, 1.0, 1e-2), (30, 1.1, 1e-2), (40, 1.0, 5e-3),  # equal is no improvement: 2 lines -> x0.5
                (50, 0.9, 5e-3), (60, 0.95, 5e-3), (70, 0.95, 2.5e-3), (80, 2.0, 2.5e-3), (90, 2.0, 2e-3),
                (100, 2.0, 2e-3), (110, 2.0, 2e-3)]  # floored at stop_lr
    for step, value, rate in expected:
        sched.observe(value, step)
        assert sched(step) == rate, (step, sched.state_dict())
    assert sched.state_dict() == {"current": 2e-3, "best": 0.9, "bad": 0, "reductions": 3}


def test_plateau_and_ema_restart_is_bit_identical(tmp_path):
    lr = {"type": "plateau", "start_lr": 1e-2, "stop_lr": 1e-4, "factor": 0.5, "patience": 1, "metric": "rmse_f"}
    recipe = {"lr": lr, "optimizer": {"type": "AdamW", "amsgrad": True}, "enable_ema": True, "ema_decay": 0.9,
              "disp_freq": 5}
    full = Trainer(recipe_input(40, **recipe), tmp_path / "full", **QUIET)
    full.run()
    assert full.lr.reductions >= 1  # the state that the checkpoint must carry is not trivial
    first = Trainer(recipe_input(40, save_freq=20, **recipe), tmp_path / "split", **QUIET)
    first.cfg.training.numb_steps = 20
    first.run()
    ckpt = torch.load(tmp_path / "split" / "model.ckpt-20.pt", weights_only=True)
    assert ckpt["lr_schedule"] == first.lr.state_dict() and ckpt["ema"] == {"decay": 0.9}
    assert ckpt["lr_schedule"]["reductions"] >= 1  # the checkpoint carries a reduced rate
    second = Trainer(recipe_input(40, **recipe), tmp_path / "split", restart=tmp_path / "split" / "model.ckpt-20.pt",
                     **QUIET)
    assert second.lr.state_dict() == first.lr.state_dict()
    second.run()
    assert second.lr.state_dict() == full.lr.state_dict()
    for a, b in ((full.model.state_dict(), second.model.state_dict()), (full.model_state(), second.model_state())):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lc_full, lc_split = read_lcurve(tmp_path / "full" / "lcurve.out"), read_lcurve(tmp_path / "split" / "lcurve.out")
    assert all(np.array_equal(lc_full[k], lc_split[k]) for k in lc_full)
    assert len(set(lc_full["lr"])) > 1  # the rate was reduced during the run


def test_plateau_needs_validation_data_and_a_known_metric(tmp_path):
    lr = {"type": "plateau", "start_lr": 1e-2}
    cfg = recipe_input(lr=lr)
    del cfg["training"]["validation_data"]
    with pytest.raises(ConfigError, match=r"learning_rate\.type: 'plateau' .* needs validation data"):
        Trainer(cfg, tmp_path, **QUIET)
    tr = Trainer(recipe_input(lr={**lr, "metric": "rmse_q"}), tmp_path / "b", **QUIET)
    with pytest.raises(ConfigError, match=r"learning_rate\.metric: no task reports .*'rmse_q' .*rmse_e"):
        tr.run()


# --------------------------------------------------------------------------- EMA


def test_ema_equals_the_recurrence_by_hand(tmp_path):
    d = 0.8
    tr = Trainer(recipe_input(enable_ema=True, ema_decay=d), tmp_path, **QUIET)
    named = [(n, p) for n, p in tr.model.named_parameters() if p.requires_grad]
    avg = {n: p.detach().clone() for n, p in named}
    task = tr.tasks["default"]
    for _ in range(5):
        tr.train_step(task.sampler.next(), 1e-2)
        for n, p in named:
            avg[n] = d * avg[n] + (1 - d) * p.detach()
    ema = tr.model_state()
    for n, p in named:
        torch.testing.assert_close(ema[n], avg[n], rtol=1e-13, atol=1e-16, msg=n)
    assert any(not torch.allclose(ema[n], p) for n, p in named)  # the average lags the raw weights
    for n, b in tr.model.named_buffers():  # statistics and biases: taken as they are
        assert torch.equal(ema[n], b), n
    with tr._averaged():  # the model holds the average inside, the raw weights (bit for bit) after
        assert all(torch.equal(p, ema[n]) for n, p in named)
    assert all(not torch.equal(p, ema[n]) for n, p in named if not torch.equal(avg[n], p))


def test_ema_is_validated_saved_and_frozen(tmp_path):
    tr = Trainer(recipe_input(20, enable_ema=True, ema_decay=0.9, best_metric="rmse"), tmp_path, **QUIET)
    seen = {}
    validate, evaluate_all = tr.validate, tr._evaluate_all

    def spy(name, fn):
        def wrapped(*args):
            seen.setdefault(name, {})[tr.step] = [p.detach().clone() for p in tr._trainable]
            return fn(*args)
        return wrapped

    tr.validate, tr._evaluate_all = spy("lcurve", validate), spy("best", evaluate_all)
    tr.run()
    ema, raw = tr.model_state(), tr.model.state_dict()
    names = [n for n, p in tr.model.named_parameters() if p.requires_grad]
    for kind in ("lcurve", "best"):  # the last lcurve line (step 20) saw the averaged weights
        assert all(torch.equal(v, ema[n]) for n, v in zip(names, seen[kind][20])), kind
    assert not all(torch.equal(ema[n], raw[n]) for n in names)
    ckpt = torch.load(tmp_path / "model.ckpt-20.pt", weights_only=True)
    assert all(torch.equal(ckpt["model"][k], ema[k]) and torch.equal(ckpt["raw_model"][k], raw[k]) for k in raw)
    frozen = torch.load(freeze(tmp_path, tmp_path / "frozen.pth"), weights_only=True)["state_dict"]
    assert all(torch.equal(frozen[k], ema[k]) for k in ema)
    assert all(torch.equal(load_model(tmp_path / "model.ckpt-20.pt").state_dict()[k], ema[k]) for k in ema)


# --------------------------------------------------------------------------- epochs


def test_numb_epoch_resolves_to_deepmd_count(tmp_path):
    # 3 systems x 40 frames, batch 1, sys_probs 0.5/0.25/0.25: N = ceil(max(40/0.5, 40/0.25)) = 160
    messages = []
    cfg = recipe_input(numb_epoch=0.1, disp_freq=8)
    del cfg["training"]["numb_steps"]
    cfg["training"]["training_data"]["sys_probs"] = [0.5, 0.25, 0.25]
    tr = Trainer(cfg, tmp_path, progress=False, log=messages.append)
    assert tr.numb_steps == 16 and "training.numb_epoch 0.1: 16 steps" in messages
    tr.run()
    assert read_lcurve(tmp_path / "lcurve.out")["step"][-1] == 16
    assert json.loads((tmp_path / "out.json").read_text())["training"]["numb_epoch"] == 0.1
    # batch sizes 2/4/8 -> 20/10/5 batches, prob_sys_size -> n_i/p_i = 35 for each: 2 epochs = 70 steps
    cfg = copy.deepcopy(cfg)
    cfg["training"]["training_data"].update(batch_size=[2, 4, 8], sys_probs=None)
    cfg["training"]["numb_epoch"] = 2
    assert Trainer(cfg, tmp_path / "b", **QUIET).numb_steps == 70
    cfg["learning_rate"]["warmup_steps"] = 70
    with pytest.raises(ConfigError, match=r"learning_rate\.warmup_steps: warmup \(70 steps\) must be shorter"):
        Trainer(cfg, tmp_path / "c", **QUIET)


@pytest.mark.parametrize("schedule, expected", [("stochastic", 360), ("round_robin", 240), ("joint", 120)])
def test_numb_epoch_multitask_gives_every_task_its_epochs(tmp_path, schedule, expected):
    # emt: 3 x 40 frames -> N = 120; emt_d3bj: 3 x 20 -> N = 60; weights 1 : 2.
    # stochastic: max(120 * 3/1, 60 * 3/2) = 360; round robin: 2 * 120; joint: 120
    ex = REPO / "examples" / "multitask"
    cfg = json.loads((ex / "step1_input.json").read_text())
    cfg["model"]["descriptor"].update(neuron=[4, 8], axis_neuron=2)
    for task in cfg["training"]["data_dict"].values():
        for part in task.values():
            part["systems"] = [str((ex / p).resolve()) for p in part["systems"]]
    del cfg["training"]["numb_steps"]
    cfg["training"].update(numb_epoch=1, task_schedule=schedule)
    assert Trainer(cfg, tmp_path, **QUIET).numb_steps == expected


# --------------------------------------------------------------------------- clipping


def test_clipping_scales_the_joint_norm_and_zero_means_none():
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(4))]
    grads = [torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 4.0, 0.0, 0.0])]  # joint norm 5
    for max_norm, norm in ((None, 5.0), (0.0, 5.0), (10.0, 5.0), (1.0, 1.0)):
        for p, g in zip(params, grads):
            p.grad = g.clone()
        clip_gradients(params, max_norm)
        total = torch.sqrt(sum((p.grad**2).sum() for p in params))
        assert float(total) == pytest.approx(norm, rel=1e-5), max_norm


def test_clipping_sees_only_trainable_parameters(tmp_path, monkeypatch):
    cfg = recipe_input(3, gradient_max_norm=1e-3)
    cfg["model"]["descriptor"]["trainable"] = False
    tr = Trainer(cfg, tmp_path, **QUIET)
    frozen = {id(p) for p in tr.model.descriptor.parameters()}
    assert frozen and not frozen & {id(p) for p in tr._trainable}
    calls, original = [], torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        params = list(params)
        calls.append(({id(p) for p in params}, max_norm))
        out = original(params, max_norm, *args, **kwargs)
        calls[-1] += (float(torch.sqrt(sum((p.grad**2).sum() for p in params))),)
        return out

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    tr.run()
    assert len(calls) == 3
    for ids, max_norm, norm in calls:
        assert ids == {id(p) for p in tr._trainable} and max_norm == 1e-3 and norm <= 1e-3 * (1 + 1e-6)


# --------------------------------------------------------------------------- out.json and bad values


def test_new_keys_in_out_json_with_their_defaults(tmp_path):
    Trainer(recipe_input(1), tmp_path / "a", **QUIET).run()
    out = json.loads((tmp_path / "a" / "out.json").read_text())
    assert out["training"]["enable_ema"] is False and out["training"]["ema_decay"] == 0.999
    assert out["optimizer"] == {"type": "Adam", "adam_beta1": 0.9, "adam_beta2": 0.999, "weight_decay": 0.0}
    cfg = recipe_input(1, lr={"type": "plateau"}, optimizer={"type": "AdamW"})
    Trainer(cfg, tmp_path / "b", **QUIET).run()
    out = json.loads((tmp_path / "b" / "out.json").read_text())
    assert out["optimizer"] == {"type": "AdamW", "adam_beta1": 0.9, "adam_beta2": 0.999, "weight_decay": 0.001}
    lr = out["learning_rate"]
    assert lr["type"] == "plateau" and (lr["factor"], lr["patience"], lr["metric"]) == (0.8, 10, "rmse")
    assert lr["start_lr"] == 1e-3 and lr["stop_lr"] == 5e-8
    assert parse_input(out).to_dict() == out
    # amsgrad (mtzoo extension) only when true: DeePMD-kit checks out.json strictly
    out = parse_input(recipe_input(1, lr={"type": "cosine"}, optimizer={"type": "Adam", "amsgrad": True})).to_dict()
    assert out["optimizer"]["amsgrad"] is True and out["learning_rate"]["type"] == "cosine"
    assert parse_input(out).to_dict() == out


@pytest.mark.parametrize("section, key, value, message", [
    ("training", "ema_decay", 1.0, "training.ema_decay: must be in [0, 1), got 1.0"),
    ("training", "ema_decay", -0.5, "training.ema_decay: must be in [0, 1)"),
    ("training", "enable_ema", 1, "training.enable_ema: expected bool, got 1"),
    ("training", "numb_epoch", 0, "training.numb_epoch: must be > 0"),
    ("learning_rate", "factor", 1.0, "learning_rate.factor: must be in (0, 1), got 1.0"),
    ("learning_rate", "patience", 0, "learning_rate.patience: must be >= 1, got 0"),
    ("learning_rate", "metric", 3, "learning_rate.metric: expected str, got 3"),
    ("learning_rate", "decay_steps", 100, "learning_rate.decay_steps: unknown key"),  # not a cosine/plateau key
    ("optimizer", "weight_decay", -1, "optimizer.weight_decay: must be >= 0, got -1.0"),
    ("optimizer", "amsgrad", "yes", 'optimizer.amsgrad: expected bool, got "yes"'),
    ("optimizer", "adam_beta2", 1.0, "optimizer.adam_beta2: must be in [0, 1), got 1.0"),
])
def test_bad_values_name_the_key(section, key, value, message):
    cfg = recipe_input(lr={"type": "plateau" if key != "decay_steps" else "cosine"}, optimizer={"type": "AdamW"})
    if key == "numb_epoch":
        del cfg["training"]["numb_steps"]
    cfg[section][key] = value
    with pytest.raises(ConfigError) as err:
        parse_input(cfg, source="in.json")
    assert f"in.json: {message}" in str(err.value), str(err.value)


# --------------------------------------------------------------------------- change_bias_after_training


def test_change_bias_after_training_zeroes_the_mean_residual(tmp_path):
    """After the last step the energy bias takes the least-squares shift of the training residuals:
    the frozen model's training residuals then have no component along the atom counts (C^T r = 0),
    in the last checkpoint and, with best_metric, in the best one; restarting the finished run does
    not shift twice."""
    from mtzoo.evaluation import predict_system
    from mtzoo.training.checkpoint import load_checkpoint

    cfg = recipe_input(20, enable_ema=True, ema_decay=0.9, change_bias_after_training=True, best_metric="rmse_e")
    tr = Trainer(cfg, tmp_path, **QUIET)
    systems = tr.tasks["default"].train.systems
    tr.run()
    assert json.loads((tmp_path / "out.json").read_text())["training"]["change_bias_after_training"] is True

    def normal_residual(model):
        counts, resid = [], []
        for s in systems:
            r = s.labels["energy"] - predict_system(model, s)["energy"]
            counts.append(np.repeat(np.bincount(s.model_types(model.type_map), minlength=2)[None], s.nframes, 0))
            resid.append(r)
        c, r = np.concatenate(counts).astype(float), np.concatenate(resid)
        return np.abs(c.T @ r).max() / np.abs(c).sum(), np.abs(r).mean()

    last = load_model(freeze(tmp_path, tmp_path / "m.pth"))
    err, mae = normal_residual(last)
    assert err < 1e-9 * max(mae, 1e-3), (err, mae)
    best = tr.best_checkpoint()
    from mtzoo.model import build_model

    state = load_checkpoint(best)
    mb = build_model(state["model_config"])
    mb.load_state_dict(state["model"])
    err_b, mae_b = normal_residual(mb.eval())
    assert err_b < 1e-9 * max(mae_b, 1e-3), (err_b, mae_b)
    # without the option the residuals keep a component along the counts (the test is not vacuous)
    plain = Trainer(recipe_input(20, enable_ema=True, ema_decay=0.9), tmp_path / "plain", **QUIET)
    plain.run()
    err_p, mae_p = normal_residual(load_model(freeze(tmp_path / "plain", tmp_path / "p.pth")))
    assert err_p > 1e-4 * mae_p, (err_p, mae_p)
    # a restart of the finished run keeps the bias (no second shift)
    bias = last.heads["default"].bias_atom_e.clone()
    again = Trainer(cfg, tmp_path, restart=tmp_path / "model.ckpt.pt", **QUIET)
    again.run()
    assert torch.equal(load_model(freeze(tmp_path, tmp_path / "m2.pth")).heads["default"].bias_atom_e, bias)


def test_zero_init_starts_flat_then_trains(tmp_path):
    """``fitting_net.zero_init``: before training every atom's energy is its type's bias (the
    least-squares atomic energy) and the forces are exactly zero; the key round-trips through
    out.json and the frozen model; a short run lowers the training loss by a factor 2 or more."""
    from mtzoo import keys as K
    from mtzoo.data.graph import collate, system_graphs

    cfg = recipe_input(60, lr={"type": "cosine", "start_lr": 1e-2, "stop_lr": 1e-4})
    cfg["model"]["fitting_net"]["zero_init"] = True
    tr = Trainer(cfg, tmp_path, **QUIET)
    model = tr.model
    system = tr.tasks["default"].train.systems[0]
    batch = collate(system_graphs(system, model.type_map, model.rcut)[:3])
    out = model(batch)
    head = model.heads[model.resolve_head(None)]
    assert torch.equal(out[K.ATOM_ENERGY], head.bias_atom_e[batch[K.ATOM_TYPE]])
    assert float(out[K.FORCES].abs().max()) == 0.0
    tr.run()
    assert json.loads((tmp_path / "out.json").read_text())["model"]["fitting_net"]["zero_init"] is True
    lines = np.loadtxt(tmp_path / "lcurve.out", ndmin=2)
    assert lines[-1, 2] < lines[0, 2] / 2, lines[:, 2]
    frozen = load_model(freeze(tmp_path, tmp_path / "m.pth"))
    assert frozen.heads[frozen.resolve_head(None)].zero_init is True
