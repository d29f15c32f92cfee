"""The ``simplify.json`` of ``mtzoo simplify``: DP-GEN's simplify keys that apply, checked with their names.

Keys (DP-GEN names; "mtzoo" marks keys DP-GEN does not have):

================================  ======================================================================
``type_map``                      elements, in the old model's order (required)
``pick_data``                     pool of frames at the old level: DeePMD systems or parent folders,
                                  one path or a list (required)
``training_iter0_model_path``     the old model file (required; DP-GEN: the iteration-0 models)
``training_iter0_model_head``     its head (mtzoo; default: the only head)
``numb_models``                   committee size (default 4, at least 2)
``training_init_model``           true: from iteration 2 on, member k starts from member k of the
                                  previous iteration; false (default): every iteration starts from
                                  the old model
``default_training_param``        the fine-tuning settings, in DeePMD-kit input.json layout (below)
``train_param``                   instead: a JSON file holding them (relative to simplify.json)
``init_pick_number``              frames picked at random and labelled in iteration 0 (required)
``iter_pick_number``              most candidates labelled per iteration (required)
``f_trust_lo``, ``f_trust_hi``    force-deviation window (eV/A) of candidates (required);
                                  alias ``model_devi_f_trust_lo`` / ``_hi``
``e_trust_lo``, ``e_trust_hi``    energy-deviation window (eV/atom; default 1e10: off)
``fp_task_max``                   most frames labelled per iteration (default ``iter_pick_number``)
``fp_task_min``                   fewer candidates than this: they are not labelled and the loop
                                  stops (default 1)
``labeled``                       the pool already carries the new level's labels: fp copies them
``fp_calculator``                 the labeller (mtzoo): ``"emt"``, ``"emt+d3"`` (= ``"emt+d3bj"``),
                                  ``"emt+d3zero"`` or an entry point ``"module:callable"`` that
                                  returns an ASE calculator (required unless ``labeled``)
``seed``                          seed of the picks and of the members (mtzoo; default 1)
``max_iter``                      stop after this many iterations (mtzoo; default 20)
================================  ======================================================================

``default_training_param`` reads, from DeePMD-kit's input.json layout (the architecture is the
old model's; other keys are ignored): ``model.descriptor.trainable`` (default false),
``model.fitting_net.trainable`` (bool or per-layer list, default ``[false, false, false, true]``
as in DeePMD-kit's transfer-learning tutorial; with a list its length is the number of hidden
layers + 1), ``learning_rate.start_lr`` (default 1e-3), ``loss`` (default: the old head's loss),
``training.numb_steps`` (default 1000) and ``training.training_data.batch_size`` (default 1).

Every error is a one-line :class:`~mtzoo.config.base.ConfigError` naming the key.  DP-GEN keys
that do not apply here (machine, VASP and LAMMPS settings) are accepted and ignored; any other
key is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mtzoo.config.base import ConfigError

#: DP-GEN keys accepted and ignored (they configure machines or programs mtzoo does not use)
IGNORED = frozenset({
    "mass_map", "init_data_prefix", "init_data_sys", "sys_batch_size", "sys_configs", "fp_style", "shuffle_poscar",
    "fp_pp_path", "fp_pp_files", "fp_incar", "fp_params", "use_clusters", "cluster_cutoff", "model_devi_engine",
    "one_h5", "use_ele_temp", "model_devi_activation_func", "dp_compress", "training_reuse_iter",
    "training_reuse_old_ratio", "training_reuse_numb_steps", "training_reuse_start_lr", "training_reuse_start_pref_e",
    "training_reuse_start_pref_f", "ratio_failed", "fp_accurate_threshold", "fp_accurate_soft_threshold",
    "true_error_f_trust_lo", "true_error_f_trust_hi", "true_error_e_trust_lo", "true_error_e_trust_hi",
    "model_devi_jobs", "mdata", "api_version", "deepmd_version"})
ALIASES = {"model_devi_f_trust_lo": "f_trust_lo", "model_devi_f_trust_hi": "f_trust_hi",
           "model_devi_e_trust_lo": "e_trust_lo", "model_devi_e_trust_hi": "e_trust_hi"}
KNOWN = frozenset({
    "type_map", "pick_data", "training_iter0_model_path", "training_iter0_model_head", "numb_models",
    "training_init_model", "default_training_param", "train_param", "init_pick_number", "iter_pick_number",
    "f_trust_lo", "f_trust_hi", "e_trust_lo", "e_trust_hi", "fp_task_max", "fp_task_min", "labeled",
    "fp_calculator", "seed", "max_iter"})


@dataclass
class TrainSettings:
    """The fine-tuning settings of the committee (from ``default_training_param``)."""

    descriptor_trainable: bool = False
    fitting_trainable: list[bool] | bool = field(default_factory=lambda: [False, False, False, True])
    start_lr: float = 1e-3
    loss: dict | None = None
    numb_steps: int = 1000
    batch_size: int = 1


@dataclass
class SimplifyConfig:
    """A checked ``simplify.json``; paths are absolute (resolved against the file's folder)."""

    type_map: list[str]
    pick_data: list[str]
    model: str
    init_pick_number: int
    iter_pick_number: int
    f_trust_lo: float
    f_trust_hi: float
    model_head: str | None = None
    numb_models: int = 4
    training_init_model: bool = False
    train: TrainSettings = field(default_factory=TrainSettings)
    e_trust_lo: float = 1e10
    e_trust_hi: float = 1e10
    fp_task_max: int | None = None
    fp_task_min: int = 1
    labeled: bool = False
    fp_calculator: str | None = None
    seed: int = 1
    max_iter: int = 20
    raw: dict = field(default_factory=dict)

    @property
    def per_iteration(self) -> int:
        """Most frames labelled per iteration: ``min(iter_pick_number, fp_task_max)``."""
        return min(self.iter_pick_number, self.fp_task_max or self.iter_pick_number)


def _get(d: dict, key: str, kind, path: str, default=..., check=None, what: str = ""):
    """``d[key]`` checked to be of ``kind`` (and ``check``), or ``default``; a ConfigError names ``path``."""
    if key not in d:
        if default is ...:
            raise ConfigError("required key missing", path)
        return default
    value = d[key]
    ok = isinstance(value, kind) and not (kind in (int, float, (int, float)) and isinstance(value, bool))
    if not ok or (check is not None and not check(value)):
        raise ConfigError(f"expected {what or getattr(kind, '__name__', kind)}, got {json.dumps(value)}", path)
    return value


def _paths(value, base: Path, path: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(p, str) for p in items):
        raise ConfigError(f"expected a path or a non-empty list of paths, got {json.dumps(value)}", path)
    out = []
    for k, p in enumerate(items):
        q = Path(p).expanduser()
        q = q if q.is_absolute() else base / q
        if not q.exists():
            raise ConfigError(f"'{p}' not found (looked in {q.parent})", path if len(items) == 1 else f"{path}[{k}]")
        out.append(str(q.resolve()))
    return out


def train_settings(tp: dict, where: str) -> TrainSettings:
    """:class:`TrainSettings` from a DeePMD-kit-layout dict; ``where`` prefixes the key paths of errors."""
    if not isinstance(tp, dict):
        raise ConfigError(f"expected an object (DeePMD-kit input.json layout), got {json.dumps(tp)[:40]}", where)
    s = TrainSettings()
    model = _get(tp, "model", dict, f"{where}.model", {})
    desc = _get(model, "descriptor", dict, f"{where}.model.descriptor", {})
    s.descriptor_trainable = _get(desc, "trainable", bool, f"{where}.model.descriptor.trainable", False)
    fit = _get(model, "fitting_net", dict, f"{where}.model.fitting_net", {})
    s.fitting_trainable = _get(fit, "trainable", (bool, list), f"{where}.model.fitting_net.trainable",
                               s.fitting_trainable, lambda v: isinstance(v, bool) or (
                                   len(v) > 0 and all(isinstance(x, bool) for x in v)), "a bool or a list of bools")
    lr = _get(tp, "learning_rate", dict, f"{where}.learning_rate", {})
    s.start_lr = float(_get(lr, "start_lr", (int, float), f"{where}.learning_rate.start_lr", s.start_lr,
                            lambda v: v > 0, "a number > 0"))
    s.loss = _get(tp, "loss", dict, f"{where}.loss", None)
    tr = _get(tp, "training", dict, f"{where}.training", {})
    s.numb_steps = _get(tr, "numb_steps", int, f"{where}.training.numb_steps", s.numb_steps, lambda v: v >= 1,
                        "an integer >= 1")
    td = _get(tr, "training_data", dict, f"{where}.training.training_data", {})
    s.batch_size = _get(td, "batch_size", int, f"{where}.training.training_data.batch_size", s.batch_size,
                        lambda v: v >= 1, "an integer >= 1")
    if s.descriptor_trainable and isinstance(s.fitting_trainable, list):
        raise ConfigError("per-layer fitting_net.trainable needs a frozen descriptor (descriptor.trainable false)",
                          f"{where}.model.fitting_net.trainable")
    return s


def parse_simplify(source: str | Path | dict, base: str | Path | None = None) -> SimplifyConfig:
    """Check a simplify.json (a path or a dict) and return a :class:`SimplifyConfig`.

    ``base``: the folder relative paths are resolved against (default: the file's folder, or the
    working directory for a dict).  Errors are one-line :class:`ConfigError` s naming the key.
    """
    name = None
    if isinstance(source, (str, Path)):
        p = Path(source)
        name = str(p)
        try:
            raw = json.loads(p.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"simplify input '{p}' not found") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc}", source=name) from None
        base = Path(base) if base is not None else p.resolve().parent
    else:
        raw = dict(source)
        base = Path(base) if base is not None else Path.cwd()
    try:
        return _parse(raw, base)
    except ConfigError as exc:
        raise exc.with_source(name) from None


def _parse(raw: dict, base: Path) -> SimplifyConfig:
    if not isinstance(raw, dict):
        raise ConfigError("expected a JSON object at the top level")
    d = {}
    for k, v in raw.items():
        if k.startswith("_") or k in IGNORED:
            continue
        key = ALIASES.get(k, k)
        if key not in KNOWN:
            raise ConfigError(f"unknown key (known: {', '.join(sorted(KNOWN))})", k)
        if key in d:
            raise ConfigError(f"given twice (as '{key}' and its alias)", k)
        d[key] = v
    pos_int = dict(check=lambda v: v >= 1, what="an integer >= 1")
    type_map = _get(d, "type_map", list, "type_map", check=lambda v: v and all(isinstance(e, str) for e in v),
                    what="a non-empty list of element names")
    cfg = SimplifyConfig(
        type_map=type_map,
        pick_data=_paths(_get(d, "pick_data", (str, list), "pick_data"), base, "pick_data"),
        model=_paths(_get(d, "training_iter0_model_path", (str, list), "training_iter0_model_path",
                          check=lambda v: isinstance(v, str) or len(v) == 1, what="one model path"),
                     base, "training_iter0_model_path")[0],
        model_head=_get(d, "training_iter0_model_head", str, "training_iter0_model_head", None),
        init_pick_number=_get(d, "init_pick_number", int, "init_pick_number", **pos_int),
        iter_pick_number=_get(d, "iter_pick_number", int, "iter_pick_number", **pos_int),
        f_trust_lo=float(_get(d, "f_trust_lo", (int, float), "f_trust_lo", check=lambda v: v >= 0, what="a number >= 0")),
        f_trust_hi=float(_get(d, "f_trust_hi", (int, float), "f_trust_hi", check=lambda v: v > 0, what="a number > 0")),
        e_trust_lo=float(_get(d, "e_trust_lo", (int, float), "e_trust_lo", 1e10, lambda v: v >= 0, "a number >= 0")),
        e_trust_hi=float(_get(d, "e_trust_hi", (int, float), "e_trust_hi", 1e10, lambda v: v > 0, "a number > 0")),
        numb_models=_get(d, "numb_models", int, "numb_models", 4, lambda v: v >= 2, "an integer >= 2"),
        training_init_model=_get(d, "training_init_model", bool, "training_init_model", False),
        fp_task_max=_get(d, "fp_task_max", int, "fp_task_max", None, **pos_int),
        fp_task_min=_get(d, "fp_task_min", int, "fp_task_min", 1, lambda v: v >= 0, "an integer >= 0"),
        labeled=_get(d, "labeled", bool, "labeled", False),
        fp_calculator=_get(d, "fp_calculator", str, "fp_calculator", None),
        seed=_get(d, "seed", int, "seed", 1),
        max_iter=_get(d, "max_iter", int, "max_iter", 20, **pos_int),
        raw=raw,
    )
    for lo, hi in (("f_trust_lo", "f_trust_hi"), ("e_trust_lo", "e_trust_hi")):
        if getattr(cfg, lo) > getattr(cfg, hi):
            raise ConfigError(f"must be <= {hi} ({getattr(cfg, hi):g}), got {getattr(cfg, lo):g}", lo)
    if "default_training_param" in d and "train_param" in d:
        raise ConfigError("give default_training_param or train_param, not both", "train_param")
    if "train_param" in d:
        tp_path = Path(_paths(_get(d, "train_param", str, "train_param"), base, "train_param")[0])
        try:
            tp = json.loads(tp_path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{tp_path} is not valid JSON: {exc}", "train_param") from None
        cfg.train = train_settings(tp, "train_param")
    elif "default_training_param" in d:
        cfg.train = train_settings(d["default_training_param"], "default_training_param")
    if not cfg.labeled and cfg.fp_calculator is None:
        raise ConfigError("required key missing (the labeller: 'emt', 'emt+d3', 'emt+d3zero' or 'module:callable'; "
                          "or set labeled: true when pick_data already has the new labels)", "fp_calculator")
    if cfg.fp_calculator is not None:
        from mtzoo.simplify.labelers import check_calculator_name

        try:
            check_calculator_name(cfg.fp_calculator)
        except ValueError as exc:
            raise ConfigError(str(exc), "fp_calculator") from None
    return cfg
