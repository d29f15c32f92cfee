"""Task scheduler statistics and reproducibility; layer_name sharing; per-task optimizer isolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import AGAU
from mtzoo import keys as K
from mtzoo.data.graph import collate, system_graphs
from mtzoo.data.readers import read_deepmd
from mtzoo.model import build_model
from mtzoo.training.scheduler import TaskScheduler


def test_stochastic_frequencies_match_weights_chi_square():
    from scipy.stats import chisquare

    weights = [10.0, 20.0, 5.0]
    sched = TaskScheduler(["a", "b", "c"], weights, seed=1)
    n = 20000
    draws = [sched.next()[0][0] for _ in range(n)]
    counts = np.array([draws.count(x) for x in "abc"])
    expected = n * np.array(weights) / sum(weights)
    stat, p = chisquare(counts, expected)
    assert p > 1e-3, (counts, expected, stat, p)


def test_same_seed_same_sequence_and_state_roundtrip():
    a = TaskScheduler(["x", "y"], [1, 3], seed=7)
    b = TaskScheduler(["x", "y"], [1, 3], seed=7)
    sa = [a.next()[0][0] for _ in range(200)]
    assert sa == [b.next()[0][0] for _ in range(200)]
    state = a.state_dict()
    tail = [a.next()[0][0] for _ in range(50)]
    c = TaskScheduler(["x", "y"], [1, 3], seed=999)
    c.load_state_dict(state)
    assert [c.next()[0][0] for _ in range(50)] == tail
    assert set(sa) == {"x", "y"}


def test_zero_weight_never_drawn_and_other_modes():
    s = TaskScheduler(["a", "b", "c"], [1, 0, 1], seed=0)
    assert "b" not in {s.next()[0][0] for _ in range(500)}
    rr = TaskScheduler(["a", "b", "c"], [1, 0, 2], mode="round_robin")
    assert [rr.next()[0][0] for _ in range(4)] == ["a", "c", "a", "c"]
    joint = TaskScheduler(["a", "b", "c"], [1, 0, 3], mode="joint").next()
    assert joint == [("a", 0.25), ("c", 0.75)]


@pytest.mark.parametrize("weights, match", [([1, -1], "finite number >= 0"), ([0, 0], "all fitting weights are zero"),
                                            ([1, float("nan")], "finite"), ([1, True], "finite"), ([1, "2"], "finite")])
def test_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        TaskScheduler(["a", "b"], weights)


def two_head_model(layer_names=(None, None), neuron_b=(16, 16), trainable_b=True, **desc):
    d = {"type": "se_e2_a", "sel": [42, 41], "rcut": 5.0, "rcut_smth": 2.0, "neuron": [4, 8], "axis_neuron": 2,
         "type_one_side": True, "seed": 1, **desc}
    return build_model({"type_map": ["Ag", "Au"], "descriptor": d, "heads": {
        "low": {"type": "ener", "neuron": [16, 16], "seed": 2, "layer_name": layer_names[0]},
        "high": {"type": "ener", "neuron": list(neuron_b), "seed": 3, "layer_name": layer_names[1],
                 "trainable": trainable_b}}})


def test_layer_name_shares_one_module():
    m = two_head_model((["h0", "h1", None], ["h0", "h1", None]))
    for t in range(2):
        for k in range(2):
            assert m.heads["low"].nets[t].layers[k] is m.heads["high"].nets[t].layers[k]
        assert m.heads["low"].nets[t].layers[2] is not m.heads["high"].nets[t].layers[2]
    n_unique = len({id(p) for p in m.parameters()})
    n_private = len({id(p) for p in two_head_model().parameters()})
    assert n_unique < n_private
    # the frozen/reloaded model keeps the sharing
    from mtzoo.model import model_config

    m2 = build_model(model_config(m))
    m2.load_state_dict(m.state_dict())
    assert m2.heads["low"].nets[0].layers[0] is m2.heads["high"].nets[0].layers[0]


def test_layer_name_shape_mismatch_names_heads():
    with pytest.raises(ValueError, match=r"layer 'h1' is shared by heads 'low' and 'high'"):
        two_head_model((["h0", "h1", None], ["h0", "h1", None]), neuron_b=(16, 32))
    with pytest.raises(ValueError, match=r"head 'high': layer_name has 2 entries, expected 3"):
        two_head_model((None, ["h0", None]))


def test_layer_name_trainable_conflict():
    with pytest.raises(ValueError, match="trainable in one and frozen"):
        two_head_model((["h0", None, None], ["h0", None, None]), trainable_b=[False, True, True])


def test_step_on_one_task_leaves_other_head_and_its_optimizer_state_untouched():
    m = two_head_model((["h0", None, None], ["h0", None, None]))
    s = read_deepmd(AGAU / "train" / "au08")[0]
    batch = collate(system_graphs(s, m.type_map, m.rcut)[:2])
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    before = {n: p.detach().clone() for n, p in m.named_parameters(remove_duplicate=False)}
    out = m(batch, head="low", create_graph=True)
    loss = ((out[K.FORCES] - batch[K.FORCES]) ** 2).mean() + ((out[K.ENERGY] - batch[K.ENERGY]) ** 2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    after = dict(m.named_parameters(remove_duplicate=False))
    shared = {f"heads.{h}.nets.{t}.layers.0.{w}" for h in ("low", "high") for t in range(2) for w in ("weight", "bias", "idt")}
    for name, p in after.items():
        changed = not torch.equal(before[name], p.detach())
        if name.startswith("descriptor.") or name.startswith("heads.low.") or name in shared:
            assert changed, f"{name} should have been updated"
        else:
            assert name.startswith("heads.high.") and not changed, f"{name} changed"
            assert p not in opt.state or not opt.state[p], f"{name} has optimizer state"


def test_frozen_descriptor_gets_no_gradient_nor_state():
    m = two_head_model(trainable=False)
    assert all(not p.requires_grad for p in m.descriptor.parameters())
    m2 = two_head_model(trainable_b=[False, False, True])
    flags = [p.requires_grad for p in m2.heads["high"].nets[0].parameters()]
    assert flags[-2:] == [True, True] and not any(flags[:-2])
