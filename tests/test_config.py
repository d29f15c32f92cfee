"""Tests of mtzoo.config: DeePMD-kit input.json schema, defaults, aliases, errors."""

from __future__ import annotations

import copy
import json
import re
import warnings

import pytest

from mtzoo.config import (
    DEEPMD_V3_MULTI_TASK_KEYS,
    DESCRIPTORS,
    FITTINGS,
    LEARNING_RATES,
    LOSSES,
    MODELS,
    MULTI_TASK_KEYS,
    OPTIMIZERS,
    AdamConfig,
    ConfigError,
    EnerFittingConfig,
    EnerLossConfig,
    ExpLearningRateConfig,
    InputConfig,
    SeE2AConfig,
    ValidationDataConfig,
    load_input,
    parse_input,
)

from conftest import SHARED  # noqa: E402

EXAMPLES = SHARED / "examples"
SE_E2_A = sorted((EXAMPLES / "water" / "se_e2_a").glob("*.json"))
OTHERS = sorted(p for p in EXAMPLES.rglob("*.json") if p.parent.name != "se_e2_a")
SINGLE_TASK_OTHERS = [p for p in OTHERS if "multi_task" not in str(p)]
NOT_YET = re.compile(r"not (implemented|supported)( by mtzoo)? yet")
#: Examples (besides water/se_e2_a) that mtzoo reads.
PARSING_OTHERS = {
    "water/hybrid/input.json",
    "water/se_atten/input.json",
    "water/se_atten/input_torch.json",
    "water/se_e2_r/input.json",
    "water/se_e3/input.json",
    "water_multi_task/ener_dipole/input.json",
    "water_tensor/dipole/dipole_input.json",
    "water_tensor/dipole/dipole_input_torch.json",  # model-level atom_exclude_types [1] (tensor heads)
    "water_tensor/polar/polar_input.json",
    "water_tensor/polar/polar_input_torch.json",
}
V3_MESSAGE = (
    "DeePMD-kit v3 multi-task inputs (model_dict/shared_dict) are not supported yet; "
    "use fitting_net_dict/loss_dict/data_dict"
)
needs_examples = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="shared DeePMD-kit examples absent")


def minimal() -> dict:
    return {
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {"type": "se_e2_a", "sel": [46, 92]},
            "fitting_net": {},
        },
        "training": {"training_data": {"systems": "data/sys"}, "numb_steps": 100},
    }


def error_of(d: dict, source: str = "<dict>") -> str:
    with pytest.raises(ConfigError) as info:
        parse_input(d, source=source)
    message = str(info.value)
    assert "\n" not in message
    return message


def with_comments(node):
    """Copy of a JSON tree with `_comment*` keys added to every object."""
    if isinstance(node, dict):
        out = {"_comment": "x", "_comment_2": ["anything", {"a": 1}]}
        out.update({k: with_comments(v) for k, v in node.items()})
        return out
    if isinstance(node, list):
        return [with_comments(v) for v in node]
    return node


# --------------------------------------------------------------------------- shared examples


@needs_examples
@pytest.mark.parametrize("path", SE_E2_A, ids=lambda p: p.name)
def test_se_e2_a_examples_parse(path):
    assert len(SE_E2_A) == 3
    cfg = load_input(path)
    model, desc, fit = cfg.model, cfg.model.descriptor, cfg.model.fitting_net
    assert model.type_map == ["O", "H"] and model.ntypes == 2
    assert isinstance(desc, SeE2AConfig) and desc.type == "se_e2_a"
    assert desc.sel == [46, 92] and desc.rcut == 6.0 and desc.rcut_smth == 0.5
    assert desc.neuron == [25, 50, 100] and desc.axis_neuron == 16
    assert desc.type_one_side is True and desc.resnet_dt is False and desc.seed == 1
    assert desc.dtype_name == "float64"
    assert isinstance(fit, EnerFittingConfig)
    assert fit.neuron == [240, 240, 240] and fit.resnet_dt is True and fit.seed == 1
    lr = cfg.learning_rate
    assert isinstance(lr, ExpLearningRateConfig)
    assert (lr.start_lr, lr.stop_lr, lr.decay_steps, lr.decay_rate) == (1e-3, 3.51e-8, 5000, None)
    assert isinstance(cfg.loss, EnerLossConfig)
    assert (cfg.loss.start_pref_e, cfg.loss.limit_pref_e) == (0.02, 1.0)
    assert (cfg.loss.start_pref_f, cfg.loss.limit_pref_f) == (1000.0, 1.0)
    assert isinstance(cfg.loss.limit_pref_e, float)
    tr = cfg.training
    assert len(tr.training_data.systems) == 3 and tr.training_data.systems[0].startswith("../data/data_0")
    assert isinstance(tr.validation_data, ValidationDataConfig)
    assert tr.validation_data.systems == ["../data/data_3"]
    assert tr.validation_data.batch_size == 1 and tr.validation_data.numb_btch == 3
    assert (tr.seed, tr.disp_file, tr.disp_freq) == (10, "lcurve.out", 100)
    if path.name == "input.json":
        assert desc.precision == fit.precision == "float64"
        assert tr.training_data.batch_size == "auto"
        assert (tr.numb_steps, tr.save_freq, model.data_stat_nbatch) == (1000000, 1000, 10)
    else:
        assert desc.precision == "default" and fit.dtype_name == "float64"
        assert tr.training_data.batch_size == 1 and model.data_stat_nbatch == 20
        assert tr.stat_file == "./se_e2_a.hdf5" and tr.save_freq == 10000
    if path.name == "input_torch_num_epoch.json":
        assert tr.numb_steps is None and tr.numb_epoch == 100.0
    elif path.name == "input_torch.json":
        assert tr.numb_steps == 100000 and tr.numb_epoch is None


@needs_examples
@pytest.mark.parametrize("path", OTHERS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_other_examples_fail_only_as_not_implemented(path):
    d = json.loads(path.read_text())
    if str(path.relative_to(EXAMPLES)) in PARSING_OTHERS:
        cfg = parse_input(d)
        assert parse_input(json.loads(json.dumps(cfg.to_dict()))) == cfg
        return
    message = error_of(d, source=str(path))
    assert message.startswith(f"{path}: ")
    assert NOT_YET.search(message), message
    assert "unknown key" not in message
    if "multi_task" in str(path):
        assert message == f"{path}: model.model_dict: {V3_MESSAGE}"
    else:
        assert re.search(r"model\.descriptor\.type: '\w+' is not implemented yet", message)


@needs_examples
@pytest.mark.parametrize("path", SINGLE_TASK_OTHERS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_other_examples_rest_of_file_is_recognised(path):
    """With an se_e2_a descriptor put in, the rest parses or is 'not ... yet' (never unknown)."""
    d = json.loads(path.read_text())
    d["model"]["descriptor"] = json.loads(SE_E2_A[0].read_text())["model"]["descriptor"]
    try:
        cfg = parse_input(d)
    except ConfigError as err:
        assert NOT_YET.search(str(err)) and "unknown key" not in str(err), str(err)
        assert path.parent.name in ("se_e2_a_tebd", "dipole", "polar"), str(err)
    else:
        assert parse_input(cfg.to_dict()) == cfg


# --------------------------------------------------------------------------- defaults, aliases


def test_defaults_filled():
    cfg = parse_input(minimal())
    d = cfg.model.descriptor
    assert (d.rcut, d.rcut_smth, d.neuron, d.axis_neuron) == (6.0, 0.5, [10, 20, 40], 4)
    assert (d.activation_function, d.resnet_dt, d.type_one_side) == ("tanh", False, False)
    assert (d.precision, d.dtype_name, d.trainable, d.seed) == ("default", "float64", True, None)
    assert (d.exclude_types, d.env_protection, d.set_davg_zero) == ([], 0.0, False)
    f = cfg.model.fitting_net
    assert f.type == "ener" and f.neuron == [120, 120, 120] and f.resnet_dt is True
    assert (f.trainable, f.rcond, f.atom_ener, f.layer_name) == (True, None, [], None)
    assert (f.numb_fparam, f.numb_aparam, f.dim_case_embd, f.use_aparam_as_mask) == (0, 0, 0, False)
    assert f.trainable_layers == [True] * 4
    m = cfg.model
    assert (m.data_stat_nbatch, m.data_stat_protect, m.data_bias_nsample) == (10, 1e-2, 10)
    lr = cfg.learning_rate
    assert lr.type == "exp" and (lr.start_lr, lr.stop_lr, lr.decay_steps) == (1e-3, 5e-8, 5000)
    assert (lr.stop_lr_ratio, lr.decay_rate, lr.smooth, lr.warmup_steps) == (None, None, False, 0)
    assert cfg.optimizer == AdamConfig() and cfg.optimizer.adam_beta2 == 0.999
    loss = cfg.loss
    assert loss.type == "ener"
    assert [loss.start_pref_v, loss.limit_pref_v, loss.start_pref_ae, loss.limit_pref_ae] == [0.0] * 4
    assert (loss.start_pref_e, loss.start_pref_f) == (0.02, 1000.0)
    t = cfg.training
    assert t.training_data.systems == ["data/sys"] and t.training_data.batch_size == "auto"
    assert (t.training_data.set_prefix, t.training_data.auto_prob) == ("set", "prob_sys_size")
    assert t.training_data.sys_probs is None and t.validation_data is None
    assert (t.numb_steps, t.seed, t.disp_file, t.disp_freq, t.save_freq) == (100, None, "lcurve.out", 1000, 1000)
    assert (t.save_ckpt, t.max_ckpt_keep, t.disp_training, t.time_training) == ("model.ckpt", 5, True, True)
    assert t.gradient_max_norm is None and t.stat_file is None


def test_aliases_map_to_canonical_names():
    d = minimal()
    d["model"]["descriptor"] = {"type": "se_a", "sel": [1, 2], "n_axis_neuron": 8}
    d["model"]["fitting_net"] = {"n_neuron": [32, 32]}
    d["training"] = {
        "training_data": {"systems": ["a", "b"], "auto_prob_style": "prob_uniform", "sys_weights": [1, 3]},
        "validation_data": {"systems": "c", "numb_batch": 4},
        "stop_batch": 7,
    }
    cfg = parse_input(d)
    assert cfg.model.descriptor.type == "se_e2_a" and cfg.model.descriptor.axis_neuron == 8
    assert cfg.model.fitting_net.neuron == [32, 32]
    assert cfg.training.numb_steps == 7 and cfg.training.validation_data.numb_btch == 4
    assert cfg.training.training_data.auto_prob == "prob_uniform"
    assert cfg.training.training_data.sys_probs == [1.0, 3.0]
    out = json.dumps(cfg.to_dict())
    for alias in ("se_a", "n_axis_neuron", "n_neuron", "stop_batch", "auto_prob_style", "sys_weights", "numb_batch"):
        assert f'"{alias}"' not in out
    assert cfg.to_dict()["model"]["descriptor"]["type"] == "se_e2_a"
    d["training"]["num_epoch"] = 2  # alias of numb_epoch, exclusive with numb_steps
    assert "training.numb_epoch: numb_steps and numb_epoch are mutually exclusive" in error_of(d)
    del d["training"]["stop_batch"]
    assert parse_input(d).training.numb_epoch == 2.0


def test_key_and_alias_together_rejected():
    d = minimal()
    d["model"]["descriptor"].update(axis_neuron=4, n_axis_neuron=4)
    assert "model.descriptor.axis_neuron: given twice" in error_of(d)


@needs_examples
def test_comments_ignored_everywhere():
    for path in SE_E2_A:
        d = json.loads(path.read_text())
        assert parse_input(with_comments(d)) == parse_input(d)
    assert parse_input(with_comments(minimal())) == parse_input(minimal())


@pytest.mark.parametrize("extra", [{}, {"lr": 1}])
def test_round_trip(extra):
    d = minimal()
    if extra:
        d["model"]["descriptor"].update(sel="auto:1.5", exclude_types=[[0, 1]], activation_function="ReLU")
        d["model"]["fitting_net"].update(trainable=[True, False, True, True], layer_name=["a", None, "b", None])
        d["learning_rate"] = {"start_lr": 1e-3, "stop_lr_ratio": 1e-3, "warmup_ratio": 0.1, "decay_rate": 0.95}
        d["training"].update(gradient_max_norm=5, stat_file="stat.h5", numb_steps=None, numb_epoch=3)
    cfg = parse_input(d)
    out = cfg.to_dict()
    assert parse_input(json.loads(json.dumps(out))) == cfg
    assert parse_input(out).to_dict() == out
    assert isinstance(InputConfig.parse(out), InputConfig)


@needs_examples
@pytest.mark.parametrize("path", SE_E2_A, ids=lambda p: p.name)
def test_round_trip_examples(path):
    cfg = load_input(path)
    assert parse_input(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_value_conversions():
    d = minimal()
    d["model"]["descriptor"].update(rcut=5, rcut_smth=0, activation_function="None", sel="auto")
    cfg = parse_input(d)
    assert isinstance(cfg.model.descriptor.rcut, float) and cfg.model.descriptor.rcut == 5.0
    assert cfg.model.descriptor.activation_function == "none"
    assert cfg.model.descriptor.auto_sel_factor == 1.1


def test_learning_rate_options():
    d = minimal()
    d["learning_rate"] = {"start_lr": 2e-3, "stop_lr_ratio": 1e-2, "warmup_ratio": 0.25}
    lr = parse_input(d).learning_rate
    assert lr.stop_lr is None and lr.final_lr == pytest.approx(2e-5)
    assert lr.warmup_steps_for(100) == 25


def test_legacy_training_keys_migrate():
    d = minimal()
    d["training"].update(opt_type="Adam", adam_beta1=0.8, warmup_steps=10)
    cfg = parse_input(d)
    assert cfg.optimizer.adam_beta1 == 0.8 and cfg.learning_rate.warmup_steps == 10
    assert "opt_type" not in cfg.to_dict()["training"]
    d["optimizer"] = {"adam_beta1": 0.7}
    assert "training.adam_beta1: also given as optimizer.adam_beta1" in error_of(d)
    d = minimal()
    d["training"]["numb_test"] = 10
    with pytest.warns(UserWarning, match="numb_test"):
        parse_input(d)


def test_recognised_keys_accepted_at_default():
    d = minimal()
    d["model"].update(pair_exclude_types=[], atom_exclude_types=[], use_srtab=None, bridging_method="None")
    d["model"]["fitting_net"].update(numb_fparam=0, dim_case_embd=0, exclude_types=[])
    d["loss"] = {"type": "ener", "start_pref_pf": 0, "use_huber": False, "loss_func": "mse"}
    d["training"].update(zero_stage=0, mixed_precision=None, change_bias_after_training=False)
    d["validating"] = {"full_validation": False}
    d["learning_rate"] = {"scale_by_worker": "linear", "smooth": False}
    assert parse_input(d) == parse_input(minimal())


# --------------------------------------------------------------------------- errors


def _set(d, path, value):
    *parents, last = path.split(".")
    for key in parents:
        d = d.setdefault(key, {})
    if value is _DELETE:
        del d[last]
    else:
        d[last] = value


_DELETE = object()

ERRORS = [
    ("training.training_data.batchsize", 2, "training.training_data.batchsize: unknown key (did you mean 'batch_size'?)"),
    ("model.descriptor.rcutt", 2.0, "model.descriptor.rcutt: unknown key (did you mean 'rcut'?)"),
    ("model.descriptor.neuron", "abc", 'model.descriptor.neuron: expected a list of int, got "abc"'),
    ("model.descriptor.neuron", [10, 2.5], "model.descriptor.neuron: expected a list of int, got [10, 2.5]"),
    ("model.data_stat_nbatch", True, "model.data_stat_nbatch: expected int, got true"),
    ("model.descriptor.rcut", "6", 'model.descriptor.rcut: expected float, got "6"'),
    ("model.descriptor.resnet_dt", 1, "model.descriptor.resnet_dt: expected bool, got 1"),
    ("learning_rate.decay_steps", 5000.5, "learning_rate.decay_steps: expected int, got 5000.5"),
    ("model.descriptor.rcut", -1, "model.descriptor.rcut: must be > 0, got -1.0"),
    ("model.descriptor.rcut_smth", 6.5, "model.descriptor.rcut_smth: must be < rcut (6.0), got 6.5"),
    ("model.descriptor.rcut_smth", 6.0, "model.descriptor.rcut_smth: must be < rcut (6.0), got 6.0"),
    ("model.descriptor.sel", [46], "model.descriptor.sel: expected one entry per type in type_map (2), got 1"),
    ("model.descriptor.sel", "automatic", "model.descriptor.sel: must be a list of int"),
    ("model.descriptor.sel", [4, -1], "model.descriptor.sel: item 1 must be >= 0"),
    ("model.descriptor.axis_neuron", 41, "model.descriptor.axis_neuron: must be <= neuron[-1] (40), got 41"),
    ("model.descriptor.exclude_types", [[0, 2]], "model.descriptor.exclude_types[0]: type index 2 out of range"),
    ("model.descriptor.exclude_types", [[0]], "model.descriptor.exclude_types: item 0 must be a pair"),
    ("model.descriptor.activation_function", "swish", "model.descriptor.activation_function: must be one of"),
    ("model.descriptor.activation_function", "silut:10.0", "not supported by mtzoo yet"),
    ("model.descriptor.precision", "float128", "model.descriptor.precision: must be one of"),
    ("model.fitting_net.trainable", [True, True], "model.fitting_net.trainable: expected len(neuron) + 1 = 4"),
    ("model.fitting_net.layer_name", ["a"], "model.fitting_net.layer_name: expected len(neuron) + 1 = 4"),
    ("model.fitting_net.atom_ener", [0, 0, 0], "model.fitting_net.atom_ener: expected at most one value"),
    ("model.type_map", ["O", "O"], 'model.type_map: duplicate type "O"'),
    ("model.type_map", _DELETE, "model.type_map: missing required key"),
    ("model.descriptor.type", _DELETE, "model.descriptor.type: missing required key"),
    ("model.type", "frozen", "model.type: 'frozen' is not implemented yet (available: standard)"),
    ("model.descriptor.type", "dpa2", "model.descriptor.type: 'dpa2' is not implemented yet (available: se_e2_a, se_e2_r, se_e3"),
    ("model.descriptor.type", "se_a_tpe", "model.descriptor.type: 'se_a_tpe' is not implemented yet"),
    ("model.descriptor.type", "foo", "model.descriptor.type: unknown descriptor type 'foo' (available: se_e2_a, se_e2_r, se_e3"),
    ("model.fitting_net.type", "dos", "model.fitting_net.type: 'dos' is not implemented yet (available: ener, dipole, polar)"),
    ("model.fitting_net.type", "property", "model.fitting_net.type: 'property' is not implemented yet"),
    ("model.fitting_net.type", "dipol", "unknown fitting type 'dipol' (available: ener, dipole, polar; did you mean 'dipole'?)"),
    ("model.fitting_net.numb_fparam", 2, "model.fitting_net.numb_fparam: not supported by mtzoo yet"),
    ("model.fitting_net.dim_case_embd", 2, "model.fitting_net.dim_case_embd: not supported by mtzoo yet"),
    ("model.type_embedding", {"neuron": [8]}, "model.type_embedding: not supported by mtzoo yet"),
    ("model.pair_exclude_types", [[0, 1]], "model.pair_exclude_types: not supported by mtzoo yet"),
    ("model.spin", {"use_spin": [True, False]}, "model.spin: not supported by mtzoo yet"),
    ("learning_rate.type", "wsd", "learning_rate.type: 'wsd' is not implemented yet (available: exp, cosine, plateau)"),
    ("learning_rate.start_lr", 0, "learning_rate.start_lr: must be > 0, got 0.0"),
    ("learning_rate.decay_steps", 0, "learning_rate.decay_steps: must be > 0, got 0"),
    ("learning_rate.decay_rate", 1.5, "learning_rate.decay_rate: must be in (0, 1], got 1.5"),
    ("learning_rate", {"stop_lr": 1e-8, "stop_lr_ratio": 0.1}, "learning_rate.stop_lr_ratio: stop_lr and stop_lr"),
    ("learning_rate.warmup_steps", 100, "learning_rate.warmup_steps: warmup (100 steps) must be shorter"),
    ("optimizer.type", "LKF", "optimizer.type: 'LKF' is not implemented yet (available: Adam, AdamW)"),
    ("loss.type", "tensor", "loss.type: loss type 'tensor' does not fit the 'ener' fitting net (model.fitting_net.type); use 'ener'"),
    ("loss.type", "dos", "loss.type: 'dos' is not implemented yet (available: ener, tensor)"),
    ("loss.start_pref_f", -1, "loss.start_pref_f: must be >= 0, got -1.0"),
    ("loss.start_pref_pf", 1.0, "loss.start_pref_pf: not supported by mtzoo yet"),
    ("loss.use_huber", True, "loss.use_huber: not supported by mtzoo yet"),
    ("loss.start_pref_h", 1.0, "loss.start_pref_h: not supported by mtzoo yet"),
    ("training.numb_steps", _DELETE, "training.numb_steps: missing required key"),
    ("training.numb_steps", -1, "training.numb_steps: must be >= 0, got -1"),
    ("training.training_data", _DELETE, "training.training_data: missing required key"),
    ("training.training_data.systems", [], "training.training_data.systems: must not be empty"),
    ("training.training_data.batch_size", 0, "training.training_data.batch_size: must be > 0"),
    ("training.training_data.batch_size", "max:100", "not supported by mtzoo yet"),
    ("training.training_data.batch_size", "auto:x", "training.training_data.batch_size: must be an int > 0"),
    ("training.training_data.numb_btch", 2, "training.training_data.numb_btch: unknown key"),
    ("training.validation_data", {"systems": "v", "numb_btch": 0}, "training.validation_data.numb_btch: must be > 0"),
    ("training.training_data.auto_prob", "prob_sys_size;0:x:1", "training.training_data.auto_prob: must be"),
    ("training.mixed_precision", {"compute_prec": "float16"}, "training.mixed_precision: not supported by mtzoo yet"),
    ("training.zero_stage", 1, "training.zero_stage: not supported by mtzoo yet"),
    ("training.systems", ["a"], "training.systems: DeePMD-kit v1 input layout is not supported"),
    ("training.stat_file_mode", "read", 'training.stat_file_mode: "read" requires training.stat_file'),
    ("validating", {"full_validation": True}, "validating: not supported by mtzoo yet"),
    ("model.descriptor", [], "model.descriptor: expected an object, got []"),
    ("model.fitting_net.neuron", None, "model.fitting_net.neuron: expected a list of int, got null"),
    ("trainig", {}, "trainig: unknown key (did you mean 'training'?)"),
]


@pytest.mark.parametrize("path, value, expected", ERRORS, ids=[f"{p}={v!r}"[:60] for p, v, _ in ERRORS])
def test_errors(path, value, expected):
    d = minimal()
    _set(d, path, value)
    message = error_of(d, source="input.json")
    assert message.startswith("input.json: "), message
    assert expected in message, message


def test_unknown_key_without_close_match_has_no_suggestion():
    d = minimal()
    d["model"]["descriptor"]["zzqqxx"] = 1
    assert error_of(d).endswith("model.descriptor.zzqqxx: unknown key")


@pytest.mark.parametrize("keys", DEEPMD_V3_MULTI_TASK_KEYS, ids=".".join)
def test_deepmd_v3_multi_task_not_supported(keys):
    d = minimal()
    _set(d, ".".join(keys), {"a": {}})
    message = error_of(d, source="mt.json")
    assert message == f"mt.json: {'.'.join(keys)}: {V3_MESSAGE}"


@pytest.mark.parametrize("keys", MULTI_TASK_KEYS, ids=".".join)
def test_multi_task_key_in_single_task_input(keys):
    d = minimal()
    _set(d, ".".join(keys), {"a": {}})
    message = error_of(d, source="mt.json")
    assert message.startswith(f"mt.json: {'.'.join(keys)}: "), message
    assert "mutually exclusive" in message or "multi-task key in a single-task input" in message, message


def test_top_level_must_be_object():
    with pytest.raises(ConfigError, match="expected a JSON object at the top level"):
        parse_input([1, 2])  # type: ignore[arg-type]


def test_registries_know_every_deepmd_type():
    names = {
        DESCRIPTORS: ["loc_frame", "se_e2_a", "se_a", "se_e2_r", "se_r", "se_e3", "se_at", "se_t", "se_a_3be",
                      "se_a_tpe", "se_a_ebd", "hybrid", "se_atten", "dpa1", "se_e3_tebd", "se_atten_v2", "dpa2",
                      "dpa3", "dpa4", "DPA4", "SeZM", "sezm", "dpa4c", "DPA4C", "se_a_ebd_v2", "se_a_tpe_v2",
                      "se_a_mask"],
        FITTINGS: ["ener", "dipole", "polar", "dos", "property", "population", "dpa4_ener", "sezm_ener"],
        LOSSES: ["ener", "ener_hess", "tensor", "dens", "ener_spin", "dos", "property", "population"],
        LEARNING_RATES: ["exp", "cosine", "wsd"],
        OPTIMIZERS: ["Adam", "AdamW", "LKF", "AdaMuon", "HybridMuon"],
        MODELS: ["standard", "dpa4", "frozen", "pairtab", "pairwise_dprc", "linear_ener"],
    }
    for registry, known in names.items():
        for name in known:
            try:
                registry.lookup(name, "x.type")
            except ConfigError as err:
                assert "is not implemented yet" in str(err), str(err)


# --------------------------------------------------------------------------- files


def test_load_input_names_file(tmp_path):
    d = minimal()
    d["model"]["descriptor"]["rcut_smth"] = 6.5
    path = tmp_path / "input.json"
    path.write_text(json.dumps(d, indent=2))
    with pytest.raises(ConfigError) as info:
        load_input(path)
    assert str(info.value) == f"{path}: model.descriptor.rcut_smth: must be < rcut (6.0), got 6.5"
    assert info.value.source == str(path) and info.value.path == "model.descriptor.rcut_smth"


def test_load_input_malformed_json(tmp_path):
    path = tmp_path / "input.json"
    path.write_text('{\n  "model": {\n    "type_map": ["O" "H"]\n  }\n}\n')
    with pytest.raises(ConfigError) as info:
        load_input(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid JSON at line 3, column ") and "input.json" in message


def test_load_input_duplicate_and_missing(tmp_path):
    path = tmp_path / "input.json"
    path.write_text('{"_comment": 1, "_comment": 2, "model": {}, "model": {}}')
    with pytest.raises(ConfigError, match=r"input\.json: duplicate key \"model\""):
        load_input(path)
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_input(tmp_path / "missing.json")


# --------------------------------------------------------------------------- DeePMD-kit oracle


def _deepmd_sections():
    argcheck = pytest.importorskip("deepmd.utils.argcheck")
    model = argcheck.model_args()
    lr = argcheck.learning_rate_args()
    training = argcheck.training_args()
    return argcheck, {
        "model": [*model.sub_fields.values(), *model.sub_variants["type"].choice_dict["standard"].sub_fields.values()],
        "model.descriptor": list(argcheck.descrpt_variant_type_args().choice_dict["se_e2_a"].sub_fields.values()),
        "model.fitting_net": list(argcheck.fitting_variant_type_args().choice_dict["ener"].sub_fields.values()),
        "learning_rate": [*lr.sub_fields.values(), *lr.sub_variants["type"].choice_dict["exp"].sub_fields.values()],
        "optimizer": list(argcheck.optimizer_variant_type_args().choice_dict["Adam"].sub_fields.values()),
        "loss": list(argcheck.loss_variant_type_args().choice_dict["ener"].sub_fields.values()),
        "training": list(training.sub_fields.values()),
        "training.training_data": list(training.sub_fields["training_data"].sub_fields.values()),
        "training.validation_data": list(training.sub_fields["validation_data"].sub_fields.values()),
    }


def test_every_deepmd_key_is_recognised():
    """Each DeePMD-kit key (and alias) of the implemented schemas, at its DeePMD default,
    parses or is 'not supported yet', never an unknown key."""
    _, sections = _deepmd_sections()
    for section, args in sections.items():
        for arg in args:
            default = arg.default if arg.optional and type(arg.default).__name__ != "_Flags" else None
            for key in (arg.name, *arg.alias):
                d = minimal()
                d["training"]["validation_data"] = {"systems": "v"}
                node = d
                for part in section.split("."):
                    node = node.setdefault(part, {})
                for name in (arg.name, *arg.alias):
                    node.pop(name, None)
                node[key] = copy.deepcopy(default)
                try:
                    parse_input(d)
                except ConfigError as err:
                    assert "unknown key" not in str(err), (section, key, str(err))


@needs_examples
@pytest.mark.parametrize("path", SE_E2_A, ids=lambda p: p.name)
def test_values_agree_with_deepmd(path):
    """Our completed input equals DeePMD-kit's normalized input on every shared key,
    DeePMD-kit accepts it, and our 'only the default' keys use DeePMD-kit's defaults."""
    argcheck, _ = _deepmd_sections()
    from deepmd.utils.compat import update_deepmd_input

    raw = json.loads(path.read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = argcheck.normalize(update_deepmd_input(copy.deepcopy(raw), warning=False))
        cfg = parse_input(raw)
        argcheck.normalize(copy.deepcopy(cfg.to_dict()))

    def compare(ours, ref, where):
        if isinstance(ours, dict):
            for key, value in ours.items():
                if key in ref:
                    compare(value, ref[key], f"{where}.{key}")
                else:
                    assert key in ("set_prefix", "relative_f"), f"{where}.{key} unknown to DeePMD-kit"
        else:
            assert ours == ref, (where, ours, ref)

    compare(cfg.to_dict(), theirs, "")
    sections = {
        "model": (type(cfg.model), theirs["model"]),
        "fitting": (type(cfg.model.fitting_net), theirs["model"]["fitting_net"]),
        "loss": (type(cfg.loss), theirs["loss"]),
        "training": (type(cfg.training), theirs["training"]),
        "data": (type(cfg.training.training_data), theirs["training"]["training_data"]),
    }
    for name, (cls, ref) in sections.items():
        for key, spec in cls._unsupported.items():
            if key in ref and not callable(spec):
                assert ref[key] == spec, (name, key, ref[key], spec)



def test_no_implemented_type_is_listed_as_unimplemented():
    # the registry's table of DeePMD-kit types mtzoo lacks must not name one it has
    import inspect

    import mtzoo.config  # noqa: F401  (registers every schema)
    import mtzoo.config.model as cm

    src = inspect.getsource(cm)
    for reg, nxt in ((cm.DESCRIPTORS, "FITTINGS = Registry("), (cm.FITTINGS, "MODELS = Registry(")):
        table = src[src.index(f"{reg.what.upper()}S = Registry(" if reg.what != "fitting" else "FITTINGS = Registry("):
                    src.index(nxt)]
        for name in reg.classes:
            assert f'"{name}":' not in table, (reg.what, name)
    assert cm.DESCRIPTORS.lookup("dpa1", "model.descriptor.type").type_name == "se_atten"
