"""Tests of mtzoo.config: multi-task inputs (DeePMD-kit v2 scheme), dipole/polar fittings,
the tensor loss, tasks(), and completing an input from a frozen model."""

from __future__ import annotations

import copy
import json
import math
import warnings

import pytest

from mtzoo.config import (DEFAULT_HEAD, TASK_SCHEDULES, ConfigError, DipoleFittingConfig, EnerFittingConfig,
                          EnerLossConfig, InputConfig, PolarFittingConfig, TaskConfig, TensorLossConfig,
                          ValidationDataConfig, complete_input, load_input, parse_input)

from conftest import SHARED  # noqa: E402

EXAMPLES = SHARED / "examples"
ENER_DIPOLE = EXAMPLES / "water_multi_task" / "ener_dipole" / "input.json"
PYTORCH_EXAMPLES = sorted((EXAMPLES / "water_multi_task" / "pytorch_example").glob("*.json"))
TENSOR_EXAMPLES = [EXAMPLES / "water_tensor" / "dipole" / "dipole_input.json",
                   EXAMPLES / "water_tensor" / "polar" / "polar_input.json"]
needs_example = pytest.mark.skipif(not ENER_DIPOLE.is_file(), reason="shared DeePMD-kit examples absent")
V3_MESSAGE = ("DeePMD-kit v3 multi-task inputs (model_dict/shared_dict) are not supported yet; "
              "use fitting_net_dict/loss_dict/data_dict")


def multi() -> dict:
    """A small multi-task input (no files needed): a dipole head and an energy head."""
    return {
        "model": {"type_map": ["O", "H"],
                  "descriptor": {"type": "se_e2_a", "sel": [46, 92], "neuron": [8, 16], "axis_neuron": 4},
                  "fitting_net_dict": {"water_dipole": {"type": "dipole", "sel_type": [0], "neuron": [20, 20]},
                                       "water_ener": {"neuron": [20, 20]}}},
        "loss_dict": {"water_dipole": {"type": "tensor", "pref": 1.0, "pref_atomic": 1.0}},
        "training": {"data_dict": {"water_dipole": {"training_data": {"systems": "dip"}},
                                   "water_ener": {"training_data": {"systems": "ene"}, "validation_data": {"systems": "val"}}},
                     "fitting_weight": {"water_dipole": 10, "water_ener": 20}, "numb_steps": 100},
    }


def single(fitting: dict | None = None) -> dict:
    return {"model": {"type_map": ["O", "H"], "descriptor": {"type": "se_e2_a", "sel": [46, 92]},
                      "fitting_net": {} if fitting is None else fitting},
            "training": {"training_data": {"systems": "data/sys"}, "numb_steps": 100}}


def error_of(d: dict, source: str = "mt.json") -> str:
    with pytest.raises(ConfigError) as info:
        parse_input(d, source=source)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{source}: "), message
    return message


def with_comments(node):
    if isinstance(node, dict):
        return {"_comment": "x", **{k: with_comments(v) for k, v in node.items()}}
    return [with_comments(v) for v in node] if isinstance(node, list) else node


# --------------------------------------------------------------------------- shared examples


@needs_example
def test_ener_dipole_example_parses():
    cfg = load_input(ENER_DIPOLE)
    assert cfg.multi_task and cfg.model.multi_task and cfg.training.multi_task
    assert cfg.model.fitting_net is None and cfg.loss is None and cfg.training.training_data is None
    tasks = cfg.tasks()
    assert [t.name for t in tasks] == ["water_dipole", "water_ener"]
    dip, ener = tasks
    assert all(isinstance(t, TaskConfig) for t in tasks)
    assert isinstance(dip.fitting, DipoleFittingConfig) and dip.fitting.type == "dipole"
    assert dip.fitting.sel_type == [0] and dip.fitting.selected_types(2) == [0]
    assert dip.fitting.neuron == [100, 100, 100] and dip.fitting.resnet_dt and dip.fitting.seed == 1
    assert dip.fitting.output_width(cfg.model.descriptor.embedding_width) == 100
    assert isinstance(dip.loss, TensorLossConfig) and dip.loss.type == "tensor"
    assert (dip.loss.pref, dip.loss.pref_atomic, dip.loss.enable_atomic_weight) == (1.0, 1.0, False)
    assert isinstance(ener.fitting, EnerFittingConfig) and ener.fitting.neuron == [240, 240, 240]
    assert isinstance(ener.loss, EnerLossConfig)
    assert (ener.loss.start_pref_e, ener.loss.limit_pref_e, ener.loss.start_pref_f) == (0.02, 1.0, 1000.0)
    assert (dip.weight, ener.weight) == (10.0, 20.0) and isinstance(dip.weight, float)
    assert dip.trained and ener.trained and cfg.untrained_heads() == []
    assert dip.training_data.systems[0].endswith("training_data_reformat/atomic_system")
    assert len(ener.training_data.systems) == 3 and ener.training_data.batch_size == "auto"
    for t in tasks:
        assert isinstance(t.validation_data, ValidationDataConfig) and t.validation_data.numb_btch == 3
    assert cfg.training.task_schedule == "stochastic"
    assert dip.fitting is cfg.model.fitting_net_dict["water_dipole"] and dip.loss is cfg.loss_dict["water_dipole"]


@needs_example
def test_ener_dipole_example_round_trip():
    cfg = load_input(ENER_DIPOLE)
    out = cfg.to_dict()
    assert "fitting_net_dict" in out["model"] and "fitting_net" not in out["model"]
    assert set(out["loss_dict"]) == {"water_dipole", "water_ener"} and "loss" not in out
    assert "data_dict" in out["training"] and out["training"]["fitting_weight"] == {"water_dipole": 10.0, "water_ener": 20.0}
    assert not {"training_data", "validation_data"} & set(out["training"])
    assert out["training"]["task_schedule"] == "stochastic"
    back = parse_input(json.loads(json.dumps(out)))
    assert back == cfg and back.to_dict() == out
    assert isinstance(InputConfig.parse(out), InputConfig)
    raw = json.loads(ENER_DIPOLE.read_text())
    assert parse_input(with_comments(raw)) == cfg


@needs_example
@pytest.mark.parametrize("path", PYTORCH_EXAMPLES, ids=lambda p: p.name)
def test_deepmd_v3_examples_rejected(path):
    message = error_of(json.loads(path.read_text()), source=str(path))
    assert message == f"{path}: model.model_dict: {V3_MESSAGE}"


@pytest.mark.parametrize("key", ["model.model_dict", "model.shared_dict", "training.model_prob",
                                 "training.num_epoch_dict"])
def test_deepmd_v3_keys_rejected_in_multi_task_input(key):
    d = multi()
    section, name = key.split(".")
    d[section][name] = {}
    assert error_of(d) == f"mt.json: {key}: {V3_MESSAGE}"


@needs_example
@pytest.mark.parametrize("path", TENSOR_EXAMPLES, ids=lambda p: p.name)
def test_tensor_examples_agree_with_deepmd(path):
    """dipole_input.json / polar_input.json: DeePMD-kit accepts our completed input and
    its normalized values equal ours on the fitting net and loss."""
    argcheck = pytest.importorskip("deepmd.utils.argcheck")
    from deepmd.utils.compat import update_deepmd_input

    raw = json.loads(path.read_text())
    cfg = parse_input(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = argcheck.normalize(update_deepmd_input(copy.deepcopy(raw), warning=False))
        argcheck.normalize(copy.deepcopy(cfg.to_dict()))
    ours = cfg.to_dict()
    for key, value in ours["model"]["fitting_net"].items():
        assert theirs["model"]["fitting_net"][key] == value, key
    assert ours["loss"] == theirs["loss"]
    fit = cfg.model.fitting_net
    assert fit.type == path.parent.name and fit.sel_type == [0]
    assert isinstance(cfg.loss, TensorLossConfig) and cfg.tasks()[0].name == DEFAULT_HEAD
    if isinstance(fit, PolarFittingConfig):
        assert fit.fit_diag is False and fit.shift_diag is True and fit.scale_per_type(2) == [1.0, 1.0]
        assert fit.output_width(16) == 256 and fit.output_width(None) == "M*M"


# --------------------------------------------------------------------------- tasks, defaults


def test_tasks_single_task():
    cfg = parse_input(single())
    assert not cfg.multi_task and cfg.loss_dict is None and cfg.training.data_dict is None
    (task,) = cfg.tasks()
    assert task == TaskConfig(DEFAULT_HEAD, cfg.model.fitting_net, cfg.loss, cfg.training.training_data, None, 1.0)
    assert cfg.model.heads == {"default": cfg.model.fitting_net} and cfg.untrained_heads() == []
    out = cfg.to_dict()
    assert "task_schedule" not in out["training"] and "loss_dict" not in out and "fitting_net_dict" not in out["model"]
    d = single()
    d["training"]["task_schedule"] = "joint"
    assert parse_input(d).to_dict()["training"]["task_schedule"] == "joint"


def test_tasks_multi_task():
    cfg = parse_input(multi())
    dip, ener = cfg.tasks()
    assert (dip.name, dip.weight, dip.training_data.systems, dip.validation_data) == ("water_dipole", 10.0, ["dip"], None)
    assert (ener.name, ener.weight, ener.validation_data.systems) == ("water_ener", 20.0, ["val"])
    assert ener.loss == EnerLossConfig() and dip.loss == TensorLossConfig()
    assert cfg.model.head_path("water_ener") == "model.fitting_net_dict.water_ener"


def test_task_order_follows_fitting_net_dict():
    d = multi()
    d["model"]["fitting_net_dict"] = dict(reversed(list(d["model"]["fitting_net_dict"].items())))
    assert [t.name for t in parse_input(d).tasks()] == ["water_ener", "water_dipole"]


def test_default_losses_by_head_type():
    d = multi()
    d["model"]["fitting_net_dict"]["water_polar"] = {"type": "polar", "fit_diag": False}
    d["training"]["data_dict"]["water_polar"] = {"training_data": {"systems": "pol"}}
    del d["loss_dict"]
    cfg = parse_input(d)
    assert cfg.loss_dict == {"water_dipole": TensorLossConfig(), "water_ener": EnerLossConfig(),
                             "water_polar": TensorLossConfig()}
    assert set(cfg.to_dict()["loss_dict"]) == {"water_dipole", "water_ener", "water_polar"}
    assert parse_input(cfg.to_dict()) == cfg
    d["loss_dict"] = {"water_polar": {"pref": 0.0}, "water_ener": {"start_pref_e": 1}}  # types from the fittings
    cfg = parse_input(d)
    assert cfg.loss_dict["water_polar"] == TensorLossConfig(pref=0.0)
    assert cfg.loss_dict["water_ener"].start_pref_e == 1.0


def test_single_task_tensor_fitting_gets_tensor_loss():
    cfg = parse_input(single({"type": "dipole", "dipole_type": 0}))
    assert cfg.loss == TensorLossConfig() and cfg.model.fitting_net.sel_type == [0]
    d = single({"type": "polar", "pol_type": [1], "scale": [2, 3]})
    d["loss"] = {"pref": 0, "pref_atomic": 2}
    cfg = parse_input(d)
    assert cfg.loss == TensorLossConfig(pref=0.0, pref_atomic=2.0)
    fit = cfg.model.fitting_net
    assert fit.sel_type == [1] and fit.scale == [2.0, 3.0] and fit.scale_per_type(2) == [2.0, 3.0]
    assert "pol_type" not in json.dumps(cfg.to_dict()) and parse_input(cfg.to_dict()) == cfg


def test_tensor_fitting_defaults_and_deepmd_keys():
    cfg = parse_input(single({"type": "dipole"}))
    fit = cfg.model.fitting_net
    assert (fit.neuron, fit.activation_function, fit.resnet_dt, fit.precision) == ([120, 120, 120], "tanh", True, "default")
    assert (fit.trainable, fit.seed, fit.layer_name, fit.sel_type) == (True, None, None, None)
    assert fit.selected_types(3) == [0, 1, 2] and fit.output_width(None) == "M" and fit.dtype_name == "float64"
    out = cfg.to_dict()["model"]["fitting_net"]
    assert not {"trainable", "sel_type", "layer_name", "exclude_types"} & set(out)
    fit = parse_input(single({"type": "polar", "exclude_types": [1]})).model.fitting_net
    assert fit.selected_types(2) == [0] and fit.to_dict()["exclude_types"] == [1]
    accepted = {"n_neuron": [10], "exclude_types": [1], "r_differentiable": True, "c_differentiable": True,
                "numb_fparam": 0, "numb_aparam": 0, "dim_case_embd": 0, "trainable": [True, False],
                "layer_name": ["a", None], "activation_function": "GELU", "precision": "float32", "seed": 3}
    fit = parse_input(single({"type": "dipole", **accepted})).model.fitting_net
    assert fit.neuron == [10] and fit.trainable_layers == [True, False] and fit.activation_function == "gelu"
    polar = parse_input(single({"type": "polar"})).model.fitting_net
    assert (polar.fit_diag, polar.scale, polar.shift_diag) == (True, 1.0, True) and polar.scale_per_type(2) == [1.0, 1.0]


def test_weights():
    d = multi()
    del d["training"]["fitting_weight"]
    cfg = parse_input(d)
    assert [t.weight for t in cfg.tasks()] == [1.0, 1.0] and "fitting_weight" not in cfg.to_dict()["training"]
    d["training"]["fitting_weight"] = {"water_ener": 0.5}
    cfg = parse_input(d)
    assert cfg.untrained_heads() == cfg.training.untrained_heads() == ["water_dipole"]
    dip, ener = cfg.tasks()
    assert (dip.weight, dip.trained, ener.weight) == (0.0, False, 0.5)
    d["training"]["fitting_weight"] = {"water_ener": 1, "water_dipole": 0}
    cfg = parse_input(d)
    assert cfg.untrained_heads() == [] and cfg.tasks()[0].weight == 0.0


@pytest.mark.parametrize("schedule", TASK_SCHEDULES)
def test_task_schedule(schedule):
    d = multi()
    d["training"]["task_schedule"] = schedule
    cfg = parse_input(d)
    assert cfg.training.task_schedule == schedule and parse_input(cfg.to_dict()) == cfg
    assert parse_input(multi()).training.task_schedule == "stochastic"


def test_layer_name_sharing_accepted():
    d = multi()
    fits = d["model"]["fitting_net_dict"]
    fits["water_ener"]["layer_name"] = ["l0", "l1", None]
    fits["water_dipole"]["layer_name"] = ["l0", "l1", "out_dip"]
    cfg = parse_input(d)
    assert cfg.model.heads["water_ener"].layer_name == ["l0", "l1", None]
    assert parse_input(cfg.to_dict()) == cfg
    fits["water_ener"]["neuron"] = [20, 20, 20]  # 20 -> 20 twice in one head
    fits["water_ener"]["layer_name"] = [None, "x", "x", None]
    parse_input(d)


# --------------------------------------------------------------------------- errors


def _weight(name, value):
    return lambda d: d["training"]["fitting_weight"].__setitem__(name, value)


def _fit(name, **kw):
    return lambda d: d["model"]["fitting_net_dict"][name].update(kw)


def _both(f, g):
    return lambda d: (f(d), g(d))


def _rename(section, old, new):
    def run(d):
        node = d["training"][section] if section != "loss_dict" else d[section]
        node[new] = node.pop(old)
    return run


ERRORS = [
    ("fitting_net with fitting_net_dict", lambda d: d["model"].__setitem__("fitting_net", {}),
     "mt.json: model.fitting_net_dict: model.fitting_net and model.fitting_net_dict are mutually exclusive"),
    ("loss with loss_dict", lambda d: d.__setitem__("loss", {}),
     "mt.json: loss: loss and loss_dict are mutually exclusive"),
    ("loss in multi-task input", lambda d: (d.pop("loss_dict"), d.__setitem__("loss", {})),
     "mt.json: loss: single-task key in a multi-task input (model.fitting_net_dict is given); use loss_dict"),
    ("training_data with data_dict", lambda d: d["training"].__setitem__("training_data", {"systems": "a"}),
     "mt.json: training.training_data: training.training_data and training.data_dict are mutually exclusive"),
    ("validation_data with data_dict", lambda d: d["training"].__setitem__("validation_data", {"systems": "a"}),
     "mt.json: training.validation_data: training.validation_data and training.data_dict are mutually exclusive"),
    ("training_data instead of data_dict",
     lambda d: d["training"].__setitem__("training_data", d["training"].pop("data_dict")),
     "mt.json: training.training_data: single-task key in a multi-task input (model.fitting_net_dict is given); "
     "use training.data_dict"),
    ("no data_dict", lambda d: d["training"].pop("data_dict"),
     "mt.json: training.data_dict: missing required key (multi-task input: model.fitting_net_dict is given)"),
    ("data_dict typo", _rename("data_dict", "water_ener", "water_enr"),
     "mt.json: training.data_dict: missing 'water_ener'; unknown 'water_enr' (did you mean 'water_ener'?)"),
    ("data_dict missing", lambda d: d["training"]["data_dict"].pop("water_dipole"), "training.data_dict: missing 'water_dipole'"),
    ("data_dict extra", lambda d: d["training"]["data_dict"].__setitem__("zzz", {"training_data": {"systems": "a"}}),
     "mt.json: training.data_dict: unknown 'zzz' (heads: 'water_dipole', 'water_ener')"),
    ("data_dict entry", lambda d: d["training"]["data_dict"]["water_ener"].pop("training_data"),
     "mt.json: training.data_dict.water_ener.training_data: missing required key"),
    ("data_dict empty", lambda d: d["training"].__setitem__("data_dict", {}), "training.data_dict: must name at least one head"),
    ("loss_dict typo", _rename("loss_dict", "water_dipole", "water_dipol"),
     "mt.json: loss_dict: unknown 'water_dipol' (did you mean 'water_dipole'?)"),
    ("fitting_weight typo", _rename("fitting_weight", "water_ener", "water_enr"),
     "mt.json: training.fitting_weight: unknown 'water_enr' (did you mean 'water_ener'?)"),
    ("weight negative", _weight("water_ener", -1), "mt.json: training.fitting_weight.water_ener: must be >= 0, got -1"),
    ("weight NaN", _weight("water_ener", math.nan), "mt.json: training.fitting_weight.water_ener: must be a finite number"),
    ("weight inf", _weight("water_ener", math.inf), "mt.json: training.fitting_weight.water_ener: must be a finite number"),
    ("weight bool", _weight("water_ener", True), "mt.json: training.fitting_weight.water_ener: expected a number >= 0, got true"),
    ("weight str", _weight("water_ener", "2"), 'mt.json: training.fitting_weight.water_ener: expected a number >= 0, got "2"'),
    ("weight null", _weight("water_ener", None), "training.fitting_weight.water_ener: expected a number >= 0, got null"),
    ("weights all zero", lambda d: d["training"].__setitem__("fitting_weight", {"water_ener": 0, "water_dipole": 0.0}),
     "mt.json: training.fitting_weight: all weights are 0 (or missing); at least one head needs a weight > 0"),
    ("weights empty", lambda d: d["training"].__setitem__("fitting_weight", {}), "fitting_weight: all weights are 0"),
    ("weights not object", lambda d: d["training"].__setitem__("fitting_weight", [1]), "fitting_weight: expected an object"),
    ("ener loss on dipole", lambda d: d["loss_dict"]["water_dipole"].__setitem__("type", "ener"),
     "mt.json: loss_dict.water_dipole.type: loss type 'ener' does not fit the 'dipole' fitting net "
     "(model.fitting_net_dict.water_dipole.type); use 'tensor'"),
    ("tensor loss on ener", lambda d: d["loss_dict"].__setitem__("water_ener", {"type": "tensor"}),
     "mt.json: loss_dict.water_ener.type: loss type 'tensor' does not fit the 'ener' fitting net "
     "(model.fitting_net_dict.water_ener.type); use 'ener'"),
    ("tensor prefs both 0", lambda d: d["loss_dict"]["water_dipole"].update(pref=0, pref_atomic=0),
     "mt.json: loss_dict.water_dipole.pref: pref and pref_atomic are both 0"),
    ("tensor pref negative", lambda d: d["loss_dict"]["water_dipole"].update(pref=-1), "water_dipole.pref: must be >= 0"),
    ("tensor loss key", lambda d: d["loss_dict"]["water_dipole"].update(enable_atomic_weight=True),
     "mt.json: loss_dict.water_dipole.enable_atomic_weight: not supported by mtzoo yet"),
    ("tensor loss unknown", lambda d: d["loss_dict"]["water_dipole"].update(pref_atom=1),
     "mt.json: loss_dict.water_dipole.pref_atom: unknown key (did you mean 'pref_atomic'?)"),
    ("empty fitting_net_dict", lambda d: d["model"].__setitem__("fitting_net_dict", {}), "must name at least one head"),
    ("head name with dot", lambda d: d["model"]["fitting_net_dict"].__setitem__("a.b", {}),
     "mt.json: model.fitting_net_dict: head name \"a.b\" must be non-empty, without '.'"),
    ("fitting type", _fit("water_dipole", type="dos"),
     "mt.json: model.fitting_net_dict.water_dipole.type: 'dos' is not implemented yet (available: ener, dipole, polar)"),
    ("sel_type range", _fit("water_dipole", sel_type=[0, 2]),
     "mt.json: model.fitting_net_dict.water_dipole.sel_type: type index 2 out of range for 2 types"),
    ("sel_type duplicate", _fit("water_dipole", sel_type=[0, 0]),
     "mt.json: model.fitting_net_dict.water_dipole.sel_type: duplicate type index"),
    ("sel_type and alias", _fit("water_dipole", dipole_type=[0]),
     "mt.json: model.fitting_net_dict.water_dipole.sel_type: given twice, as 'sel_type' and as 'dipole_type'"),
    ("exclude_types range", _fit("water_dipole", exclude_types=[3]),
     "mt.json: model.fitting_net_dict.water_dipole.exclude_types: type index 3 out of range for 2 types"),
    ("no type selected", _fit("water_dipole", exclude_types=[0]),
     "mt.json: model.fitting_net_dict.water_dipole.sel_type: no atom type is left to fit"),
    ("dipole r_differentiable", _fit("water_dipole", r_differentiable=False),
     "mt.json: model.fitting_net_dict.water_dipole.r_differentiable: not supported by mtzoo yet"),
    ("dipole numb_fparam", _fit("water_dipole", numb_fparam=1), "water_dipole.numb_fparam: not supported by mtzoo yet"),
    ("dipole has no fit_diag", _fit("water_dipole", fit_diag=False), "water_dipole.fit_diag: unknown key"),
    ("polar scale length", lambda d: d["model"]["fitting_net_dict"]["water_dipole"].update(type="polar", scale=[1.0]),
     "mt.json: model.fitting_net_dict.water_dipole.scale: expected one value per type in type_map (2), got 1"),
    ("layer_name length", _fit("water_ener", layer_name=["a"]),
     "mt.json: model.fitting_net_dict.water_ener.layer_name: expected len(neuron) + 1 = 3 items"),
    ("layer_name type", _fit("water_ener", layer_name=["a", 1, None]),
     "mt.json: model.fitting_net_dict.water_ener.layer_name: expected null or a list of (str or null)"),
    ("shared layer width", _both(_fit("water_ener", neuron=[20, 30], layer_name=[None, "h", None]),
                                 _fit("water_dipole", layer_name=[None, "h", None])),
     "mt.json: model.fitting_net_dict.water_ener.layer_name[1]: layer name \"h\" is shared by head 'water_dipole' "
     "(layer 1) and head 'water_ener' (layer 1), but their output width differs: 20 vs 30"),
    ("shared layer input width", _both(_fit("water_ener", neuron=[30, 20], layer_name=[None, "h", None]),
                                       _fit("water_dipole", layer_name=[None, "h", None])),
     "shared by head 'water_dipole' (layer 1) and head 'water_ener' (layer 1), but their input width differs: 20 vs 30"),
    ("shared output layer", _both(_fit("water_ener", layer_name=[None, None, "out"]),
                                  _fit("water_dipole", layer_name=[None, None, "out"])),
     "layer name \"out\" is shared by head 'water_dipole' (layer 2) and head 'water_ener' (layer 2), but their "
     "output width differs: 16 vs 1"),
    ("shared layer 0 vs hidden", _fit("water_ener", layer_name=["h", "h", None]),
     "shared by head 'water_ener' (layer 0) and head 'water_ener' (layer 1), but their input width differs: 64 vs 20"),
    ("shared layer activation", _both(_fit("water_ener", layer_name=["h", None, None], activation_function="gelu"),
                                      _fit("water_dipole", layer_name=["h", None, None])),
     "but their activation differs: \"tanh\" vs \"gelu\""),
    ("shared layer precision", _both(_fit("water_ener", layer_name=["h", None, None], precision="float32"),
                                     _fit("water_dipole", layer_name=["h", None, None])),
     "but their precision differs: \"float64\" vs \"float32\""),
    ("shared layer trainable", _both(_fit("water_ener", layer_name=["h", None, None], trainable=[False, True, True]),
                                     _fit("water_dipole", layer_name=["h", None, None])),
     "but their trainable differs: true vs false"),
    ("task_schedule", lambda d: d["training"].__setitem__("task_schedule", "random"),
     'mt.json: training.task_schedule: must be one of "stochastic", "round_robin", "joint", got "random"'),
]


@pytest.mark.parametrize("modify, expected", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors(modify, expected):
    d = multi()
    modify(d)
    message = error_of(d)
    assert expected in message, message


SINGLE_ERRORS = [
    ("loss_dict", lambda d: d.__setitem__("loss_dict", {"default": {}}),
     "mt.json: loss_dict: multi-task key in a single-task input (model.fitting_net_dict is not given); use loss, "
     "or model.fitting_net_dict for a multi-task input"),
    ("data_dict", lambda d: (d["training"].pop("training_data"), d["training"].__setitem__("data_dict", {})),
     "mt.json: training.data_dict: multi-task key in a single-task input"),
    ("fitting_weight", lambda d: d["training"].__setitem__("fitting_weight", {"default": 1}),
     "mt.json: training.fitting_weight: multi-task key in a single-task input"),
    ("tensor loss on ener", lambda d: d.__setitem__("loss", {"type": "tensor"}),
     "mt.json: loss.type: loss type 'tensor' does not fit the 'ener' fitting net (model.fitting_net.type); use 'ener'"),
    ("ener loss on polar", lambda d: (d["model"].__setitem__("fitting_net", {"type": "polar"}),
                                      d.__setitem__("loss", {"type": "ener_hess"})),
     "mt.json: loss.type: loss type 'ener' does not fit the 'polar' fitting net (model.fitting_net.type); use 'tensor'"),
    ("no fitting", lambda d: d["model"].pop("fitting_net"), "model.fitting_net: missing required key (or fitting_net_dict"),
    ("polar scale NaN", lambda d: d["model"].__setitem__("fitting_net", {"type": "polar", "scale": math.nan}),
     "model.fitting_net.scale: must be finite"),
    ("shared layers in one head", lambda d: d["model"]["fitting_net"].update(neuron=[20, 30], layer_name=["a", "a", None]),
     "mt.json: model.fitting_net.layer_name[1]: layer name \"a\" is shared by head 'default' (layer 0) and head "
     "'default' (layer 1)"),
]


@pytest.mark.parametrize("modify, expected", [e[1:] for e in SINGLE_ERRORS], ids=[e[0] for e in SINGLE_ERRORS])
def test_single_task_errors(modify, expected):
    d = single()
    modify(d)
    message = error_of(d)
    assert expected in message, message


# --------------------------------------------------------------------------- completion from a frozen model


def frozen_multi() -> dict:
    """What a multi-task run of multi() wrote to out.json."""
    return parse_input(multi()).to_dict()


def frozen_single() -> dict:
    return parse_input({**single({"neuron": [16, 16]}), "loss": {"start_pref_e": 0.5, "limit_pref_f": 2.0}}).to_dict()


def new_input() -> dict:
    """Fine-tune input on frozen_multi(): descriptor and old heads from the model, one new head."""
    return {"model": {"descriptor": {},
                      "fitting_net_dict": {"water_ener": {}, "water_polar": {"type": "polar", "neuron": [20, 20]}}},
            "loss_dict": {"water_polar": {"type": "tensor", "pref": 0.0}},
            "training": {"data_dict": {"water_ener": {"training_data": {"systems": "ene"}},
                                       "water_polar": {"training_data": {"systems": "pol"}}}, "numb_steps": 10}}


def complete_error(raw: dict, frozen: dict) -> str:
    with pytest.raises(ConfigError) as info:
        complete_input(raw, frozen, source="new.json")
    message = str(info.value)
    assert "\n" not in message and message.startswith("new.json: "), message
    return message


def test_complete_descriptor_and_old_head():
    frozen = frozen_multi()
    raw = new_input()
    raw_copy = copy.deepcopy(raw)
    completed, new_heads = complete_input(raw, frozen, source="new.json")
    assert raw == raw_copy  # not modified
    assert new_heads == ["water_polar"]
    result = complete_input(raw, frozen)
    assert result.old_heads == ["water_ener"] and result.heads == ["water_ener", "water_polar"]
    assert completed["model"]["descriptor"] == frozen["model"]["descriptor"]
    assert completed["model"]["type_map"] == ["O", "H"]
    assert completed["model"]["fitting_net_dict"]["water_ener"] == frozen["model"]["fitting_net_dict"]["water_ener"]
    cfg = parse_input(completed)
    old = parse_input(frozen)
    assert cfg.model.descriptor == old.model.descriptor
    assert cfg.model.heads["water_ener"] == old.model.heads["water_ener"]
    assert [t.name for t in cfg.tasks()] == ["water_ener", "water_polar"]


def test_complete_inherits_loss_of_old_head():
    frozen = frozen_multi()
    frozen["loss_dict"]["water_ener"]["start_pref_e"] = 0.25
    completed, _ = complete_input(new_input(), frozen)
    assert completed["loss_dict"]["water_ener"] == frozen["loss_dict"]["water_ener"]
    cfg = parse_input(completed)
    assert cfg.loss_dict["water_ener"].start_pref_e == 0.25 and cfg.loss_dict["water_polar"].pref == 0.0
    raw = new_input()
    raw["loss_dict"]["water_ener"] = {"start_pref_e": 3}  # given: kept
    assert parse_input(complete_input(raw, frozen).input).loss_dict["water_ener"].start_pref_e == 3.0


def test_complete_from_single_task_model():
    frozen = frozen_single()
    raw = new_input()
    raw["model"]["fitting_net_dict"] = {"default": {}, "water_dipole": {"type": "dipole"}}
    raw["loss_dict"] = {"water_dipole": {}}
    raw["training"]["data_dict"] = {"default": {"training_data": {"systems": "e"}},
                                    "water_dipole": {"training_data": {"systems": "d"}}}
    raw["training"]["fitting_weight"] = {"water_dipole": 1}
    completed, new_heads = complete_input(raw, frozen)
    assert new_heads == ["water_dipole"]
    cfg = parse_input(completed)
    assert cfg.model.heads["default"].neuron == [16, 16]
    assert cfg.loss_dict["default"] == parse_input(frozen).loss  # the single-task loss
    assert cfg.loss_dict["water_dipole"] == TensorLossConfig()
    assert cfg.untrained_heads() == ["default"]
    # single-task input on a single-task model: fitting_net and loss from the model
    raw = {"model": {"fitting_net": {}}, "training": {"training_data": {"systems": "x"}, "numb_steps": 5}}
    cfg = parse_input(complete_input(raw, frozen).input)
    assert cfg.model.fitting_net.neuron == [16, 16] and cfg.loss.start_pref_e == 0.5
    assert complete_input(raw, frozen).new_heads == []


def test_complete_without_fittings_keeps_every_head():
    frozen = frozen_multi()
    raw = {"model": {}, "training": copy.deepcopy(multi()["training"])}
    completed, new_heads = complete_input(raw, frozen)
    assert new_heads == [] and parse_input(completed) == parse_input(frozen)


def test_complete_trainable_may_differ():
    frozen = frozen_multi()
    raw = new_input()
    raw["model"]["descriptor"] = {**frozen["model"]["descriptor"], "trainable": False}
    raw["model"]["fitting_net_dict"]["water_ener"] = {**frozen["model"]["fitting_net_dict"]["water_ener"],
                                                      "trainable": False}
    cfg = parse_input(complete_input(raw, frozen).input)
    assert cfg.model.descriptor.trainable is False and cfg.model.heads["water_ener"].trainable is False
    raw["model"]["descriptor"] = {"trainable": False}  # shorthand: the model's, frozen
    raw["model"]["fitting_net_dict"]["water_ener"] = {"trainable": False}
    cfg2 = parse_input(complete_input(raw, frozen).input)
    assert cfg2 == cfg


def test_complete_new_head_needs_loss_and_data():
    frozen = frozen_multi()
    raw = new_input()
    del raw["loss_dict"]
    assert complete_error(raw, frozen) == (
        "new.json: loss_dict: missing entry for new head 'water_polar' (not in the frozen model, so its loss "
        "cannot be inherited)")
    raw = new_input()
    del raw["training"]["data_dict"]["water_polar"]
    assert complete_error(raw, frozen) == "new.json: training.data_dict: missing entry for new head 'water_polar'"
    raw = {"model": {"fitting_net": {"neuron": [8]}}, "training": {"training_data": {"systems": "x"}, "numb_steps": 5}}
    assert complete_error(raw, frozen).startswith("new.json: loss: missing required key for the new head 'default'")


def test_complete_unknown_old_head():
    raw = new_input()
    raw["model"]["fitting_net_dict"]["water_enr"] = {}
    assert complete_error(raw, frozen_multi()) == (
        "new.json: model.fitting_net_dict.water_enr: {} takes the fitting net of head 'water_enr' of the frozen "
        "model, but it has no such head (its heads: 'water_dipole', 'water_ener'); a new head needs a full "
        "fitting net")
    raw = {"model": {"fitting_net": {}}, "training": {"training_data": {"systems": "x"}, "numb_steps": 5}}
    assert "model.fitting_net: {} takes the fitting net of head 'default'" in complete_error(raw, frozen_multi())


def test_complete_descriptor_mismatch():
    frozen = frozen_multi()
    raw = new_input()
    raw["model"]["descriptor"] = {**frozen["model"]["descriptor"], "rcut": 5.0}
    assert complete_error(raw, frozen) == (
        "new.json: model.descriptor: differs from the frozen model's descriptor: 'rcut' is 5.0, the frozen "
        "model's is 6.0; the architecture must match (only trainable may differ), or give {} to take it from "
        "the model")
    raw["model"]["descriptor"] = {"type": "se_e2_a", "sel": [46, 92]}  # defaults differ from the model's
    assert "model.descriptor: differs from the frozen model's descriptor: 'neuron'" in complete_error(raw, frozen)
    raw = new_input()
    raw["model"]["fitting_net_dict"]["water_ener"] = {"neuron": [20]}
    assert "model.fitting_net_dict.water_ener: differs from the frozen model's fitting net of head 'water_ener'" in (
        complete_error(raw, frozen))
    raw = new_input()
    raw["model"]["type_map"] = ["H", "O"]
    assert complete_error(raw, frozen).startswith("new.json: model.type_map: differs from the frozen model's type_map")


def test_complete_rejects_deepmd_v3_input():
    raw = {"model": {"shared_dict": {}, "model_dict": {}}}
    assert complete_error(raw, frozen_multi()) == f"new.json: model.model_dict: {V3_MESSAGE}"


@pytest.mark.parametrize("kind", ["dipole", "polar"])
def test_every_deepmd_tensor_key_is_recognised(kind):
    """Each DeePMD-kit key (and alias) of the dipole/polar fitting and the tensor loss, at its
    DeePMD default, parses or is 'not supported yet', never an unknown key."""
    argcheck = pytest.importorskip("deepmd.utils.argcheck")
    sections = {
        "fitting": argcheck.fitting_variant_type_args().choice_dict[kind].sub_fields.values(),
        "loss": argcheck.loss_variant_type_args().choice_dict["tensor"].sub_fields.values(),
    }
    for section, args in sections.items():
        for arg in args:
            default = arg.default if arg.optional and type(arg.default).__name__ != "_Flags" else None
            if arg.name in ("pref", "pref_atomic"):
                default = 1.0  # required by DeePMD-kit; mtzoo defaults them to 1
            for key in (arg.name, *arg.alias):
                d = single({"type": kind, key: copy.deepcopy(default)})
                if section == "loss":
                    d["model"]["fitting_net"] = {"type": kind}
                    d["loss"] = {"type": "tensor", key: copy.deepcopy(default)}
                try:
                    parse_input(d)
                except ConfigError as err:
                    assert "unknown key" not in str(err), (section, key, str(err))
                    assert "not supported by mtzoo yet" in str(err), (section, key, str(err))
