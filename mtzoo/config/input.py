"""The whole input file: :class:`InputConfig`, :func:`parse_input` and :func:`load_input`.

Two layouts are accepted, chosen from the keys: DeePMD-kit's single-task layout
(``model.fitting_net``, ``loss``, ``training.training_data``) and its documented v2
multi-task layout (``model.fitting_net_dict``, ``loss_dict``, ``training.data_dict``,
``training.fitting_weight``; :data:`MULTI_TASK_KEYS`, see :mod:`mtzoo.config.multitask`).
Mixing them is an error.  DeePMD-kit v3's multi-task layout (``model.model_dict``,
``model.shared_dict``, ...; :data:`DEEPMD_V3_MULTI_TASK_KEYS`) is rejected with
``"DeePMD-kit v3 multi-task inputs (model_dict/shared_dict) are not supported yet"``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import warnings
from typing import Any

from mtzoo.config.base import ConfigError, Section, as_object, join_path, option, show
from mtzoo.config.model import FITTINGS, FittingConfig, ModelConfig
from mtzoo.config.multitask import DEFAULT_HEAD, TaskConfig, check_name_match
from mtzoo.config.train import (
    LOSSES,
    AdamConfig,
    ExpLearningRateConfig,
    LearningRateConfig,
    LossConfig,
    OptimizerConfig,
    TrainingConfig,
)

__all__ = [
    "DEEPMD_V3_MULTI_TASK_KEYS",
    "MULTI_TASK_KEYS",
    "InputConfig",
    "find_multi_task_key",
    "load_input",
    "parse_input",
]

#: Key paths of the multi-task layout (DeePMD-kit's documented v2 scheme).
MULTI_TASK_KEYS = (
    ("model", "fitting_net_dict"),
    ("loss_dict",),
    ("training", "data_dict"),
    ("training", "fitting_weight"),
)
#: Key paths of DeePMD-kit v3's multi-task layout (not supported yet).
DEEPMD_V3_MULTI_TASK_KEYS = (
    ("model", "model_dict"),
    ("model", "shared_dict"),
    ("training", "model_prob"),
    ("training", "num_epoch_dict"),
)
V3_NOT_SUPPORTED = (
    "DeePMD-kit v3 multi-task inputs (model_dict/shared_dict) are not supported yet; "
    "use fitting_net_dict/loss_dict/data_dict"
)

# DeePMD-kit <= 3.1 kept these in ``training``; 3.2 moves them (deepmd/utils/compat.py).
_LEGACY_OPTIMIZER_KEYS = (
    "opt_type", "kf_blocksize", "kf_start_pref_e", "kf_limit_pref_e", "kf_start_pref_f",
    "kf_limit_pref_f", "weight_decay", "momentum", "muon_momentum", "adam_beta1", "adam_beta2",
    "lr_adjust", "lr_adjust_coeff", "muon_2d_only", "min_2d_dim",
)
_LEGACY_WARMUP_KEYS = ("warmup_steps", "warmup_ratio", "warmup_start_factor")

_VALIDATING_DEFAULTS = {
    "full_validation": False, "ema_full_validation": False, "validation_freq": 5000,
    "save_best": True, "save_best_dir": None, "max_best_ckpt": 1, "validation_metric": "E:MAE",
    "full_val_file": "val.log", "full_val_start": 0.5, "compiled_infer": False,
    "tf32_infer": False, "amp_infer": False,
}


def _validating_off(value: Any) -> bool:
    """absent, null, or only DeePMD-kit's defaults."""
    if value is None:
        return True
    if not isinstance(value, dict):
        return False
    return all(
        k.startswith("_comment") or (k in _VALIDATING_DEFAULTS and v == _VALIDATING_DEFAULTS[k])
        for k, v in value.items()
    )


def _nvnmd_off(value: Any) -> bool:
    """absent, null, or enable false."""
    return value is None or (isinstance(value, dict) and value.get("enable", False) is False)


def find_multi_task_key(data: dict[str, Any], keys_list: tuple = MULTI_TASK_KEYS) -> str | None:
    """Key path of the first of ``keys_list`` (default :data:`MULTI_TASK_KEYS`) in ``data``."""
    for keys in keys_list:
        node: Any = data
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            return ".".join(keys)
    return None


def _migrate_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """Move DeePMD-kit <= 3.1 keys of ``training`` to where 3.2 has them (copy of data)."""
    training = data.get("training")
    if not isinstance(training, dict):
        return data
    data = dict(data)
    training = dict(training)
    data["training"] = training
    if "systems" in training:
        raise ConfigError(
            "DeePMD-kit v1 input layout is not supported; put systems, batch_size, ... "
            "in training.training_data",
            "training.systems",
        )
    if "numb_test" in training:  # DeePMD-kit ignores it since v2.0 and drops it
        warnings.warn("training.numb_test has no effect and is ignored", UserWarning, stacklevel=3)
        del training["numb_test"]
    for section, keys, rename in (
        ("optimizer", _LEGACY_OPTIMIZER_KEYS, {"opt_type": "type"}),
        ("learning_rate", _LEGACY_WARMUP_KEYS, {}),
    ):
        moved = [k for k in keys if k in training]
        if not moved:
            continue
        target = data.get(section)
        target = {} if target is None else target
        if not isinstance(target, dict):
            raise ConfigError(f"expected an object, got {show(target)}", section)
        target = dict(target)
        for key in moved:
            new = rename.get(key, key)
            if new in target:
                raise ConfigError(
                    f"also given as {section}.{new}; give it only once, in {section}",
                    join_path("training", key),
                )
            target[new] = training.pop(key)
        data[section] = target
    return data


def _resolve(registry: Any, node: Any) -> type | None:
    """The schema a raw object's ``type`` picks (None when it cannot be told)."""
    name = node.get("type", registry.default) if isinstance(node, dict) else registry.default
    try:
        return registry.lookup(name, "") if isinstance(name, str) else None
    except ConfigError:  # the section parser reports it
        return None


def _mismatch(loss: str, fitting: Any, loss_path: str, fitting_path: str) -> ConfigError:
    return ConfigError(
        f"loss type '{loss}' does not fit the '{fitting.type_name}' fitting net ({fitting_path}.type); "
        f"use '{fitting.default_loss}'",
        join_path(loss_path, "type"),
    )


def _with_loss_type(loss: Any, fitting: Any, loss_path: str, fitting_path: str) -> Any:
    """A raw loss without ``type`` gets the fitting's loss type; absent/null -> its default.
    A loss type that does not fit the fitting type is an error."""
    fit_cls = _resolve(FITTINGS, fitting)
    kind = fit_cls.default_loss if fit_cls is not None else LOSSES.default
    if loss is None:
        return {"type": kind}
    if isinstance(loss, dict) and "type" not in loss:
        return {"type": kind, **loss}
    loss_cls = _resolve(LOSSES, loss)
    if fit_cls is not None and loss_cls is not None and loss_cls.type_name != kind:
        raise _mismatch(loss_cls.type_name, fit_cls, loss_path, fitting_path)
    return loss


# (section, single-task key, multi-task key)
_SCHEME_KEYS = (
    ("model", "fitting_net", "fitting_net_dict"),
    ("", "loss", "loss_dict"),
    ("training", "training_data", "data_dict"),
    ("training", "validation_data", "data_dict"),
)


def _prepare_scheme(data: dict[str, Any]) -> dict[str, Any]:
    """Check that the input uses one scheme (single- or multi-task) and fill loss types.

    Returns a copy of ``data`` where ``loss`` (single task) or every head's ``loss_dict``
    entry (multi-task) is present and has a ``type`` (the default loss of its fitting).
    """
    sections = {"": data, **{k: data.get(k) for k in ("model", "training")}}
    nodes = {  # keys given as null count as absent
        k: {key: value for key, value in v.items() if value is not None} if isinstance(v, dict) else {}
        for k, v in sections.items()
    }
    model = nodes["model"]
    multi = "fitting_net_dict" in model
    for section, single_key, multi_key in _SCHEME_KEYS:
        node = nodes[section]
        if single_key in node and multi_key in node:
            raise ConfigError(
                f"{join_path(section, single_key)} and {join_path(section, multi_key)} are mutually exclusive "
                "(single-task and multi-task schemes); give only one",
                join_path(section, single_key if multi and single_key != "fitting_net" else multi_key),
            )
        if multi and single_key in node:
            raise ConfigError(
                f"single-task key in a multi-task input (model.fitting_net_dict is given); "
                f"use {join_path(section, multi_key)}",
                join_path(section, single_key),
            )
    if not multi:
        for keys, instead in zip(MULTI_TASK_KEYS[1:], ("use loss, or", "use training.training_data, or", "")):
            where = find_multi_task_key(data, (keys,))
            if where is not None:
                raise ConfigError(
                    "multi-task key in a single-task input (model.fitting_net_dict is not given); "
                    f"{instead or 'give'} model.fitting_net_dict for a multi-task input",
                    where,
                )
        loss = _with_loss_type(data.get("loss"), model.get("fitting_net"), "loss", "model.fitting_net")
        return {**data, "loss": loss}
    if isinstance(sections["training"], dict) and "data_dict" not in nodes["training"]:
        raise ConfigError(
            "missing required key (multi-task input: model.fitting_net_dict is given)", "training.data_dict"
        )
    heads = model["fitting_net_dict"]
    losses = data.get("loss_dict")
    losses = {} if losses is None else losses
    if not isinstance(heads, dict) or not isinstance(losses, dict):
        return data  # reported by the section parsers
    filled = {
        name: _with_loss_type(
            losses.get(name), fitting, f"loss_dict.{name}", f"model.fitting_net_dict.{name}"
        )
        for name, fitting in heads.items() if not name.startswith("_comment")
    }
    filled.update((k, v) for k, v in losses.items() if k not in filled)
    return {**data, "loss_dict": filled}


@dataclasses.dataclass(kw_only=True)
class InputConfig(Section):
    """A complete input (DeePMD-kit's ``input.json`` layout), single- or multi-task.

    Attributes
    ----------
    model : ModelConfig
        The model (type map, descriptor, fitting net or ``fitting_net_dict``); required.
    learning_rate : LearningRateConfig
        The learning-rate schedule (default: ``exp`` with DeePMD's defaults).
    optimizer : OptimizerConfig
        The optimizer (default: ``Adam``).
    loss : LossConfig or None
        The loss of a single-task input (default: the default loss of the fitting type,
        ``ener`` or ``tensor``); None in a multi-task input.
    loss_dict : dict of str to LossConfig, or None
        Multi-task input: the loss of every head (heads left out of the input get the
        default loss of their fitting type); None in a single-task input.
    training : TrainingConfig
        Data and training-loop options; required.

    Notes
    -----
    The loss type must fit the fitting type (``ener`` -> ``ener``, ``dipole``/``polar``
    -> ``tensor``).  :meth:`tasks` gives both layouts as a list of
    :class:`~mtzoo.config.multitask.TaskConfig`.  ``validating`` and ``nvnmd`` are
    recognised but accepted only at their defaults.  :meth:`to_dict` gives the completed
    input (DeePMD's ``out.json``) in the layout of the input, which :func:`parse_input`
    reads back to an equal object.
    """

    model: ModelConfig = option(doc="The model.")
    learning_rate: LearningRateConfig = option(
        ExpLearningRateConfig(), doc="The definition of learning rate."
    )
    optimizer: OptimizerConfig = option(AdamConfig(), doc="The optimizer definition.")
    loss: LossConfig | None = option(
        None, omit_none=True, doc="The definition of loss function (single-task input)."
    )
    loss_dict: dict[str, LossConfig] | None = option(
        None, omit_none=True, doc="The loss of each head (multi-task input)."
    )
    training: TrainingConfig = option(doc="The training options.")

    _unsupported = {"validating": _validating_off, "nvnmd": _nvnmd_off}

    @classmethod
    def parse(cls, data: Any, path: str = "") -> InputConfig:
        """Parse an input dict (legacy ``training`` keys are migrated first)."""
        data = as_object(data, path)
        where = find_multi_task_key(data, DEEPMD_V3_MULTI_TASK_KEYS)
        if where is not None:
            raise ConfigError(V3_NOT_SUPPORTED, where)
        return super().parse(_prepare_scheme(_migrate_legacy(data)), path)

    @property
    def multi_task(self) -> bool:
        """Whether the input uses the multi-task layout (``model.fitting_net_dict``)."""
        return self.model.multi_task

    @property
    def losses(self) -> dict[str, LossConfig]:
        """Head name -> loss (a single-task input has one head, ``"default"``)."""
        if self.loss_dict is not None:
            return dict(self.loss_dict)
        return {DEFAULT_HEAD: self.loss} if self.loss is not None else {}

    def tasks(self) -> list[TaskConfig]:
        """The tasks, in ``fitting_net_dict`` order (one task ``"default"`` for a
        single-task input, with weight 1)."""
        t, losses = self.training, self.losses
        out = []
        for name, fitting in self.model.heads.items():
            if self.multi_task:
                data = t.data_dict[name]  # type: ignore[index]
                train, valid, weight = data.training_data, data.validation_data, t.weight(name)
            else:
                train, valid, weight = t.training_data, t.validation_data, 1.0
            out.append(TaskConfig(name, fitting, losses[name], train, valid, weight))  # type: ignore[arg-type]
        return out

    def untrained_heads(self) -> list[str]:
        """Heads that ``training.fitting_weight`` leaves out (not trained; the trainer warns)."""
        return self.training.untrained_heads()

    def validate(self, path: str) -> None:
        """Cross-section checks: one scheme, head names, loss types, weights, warmup."""
        heads = self.model.heads
        if self.multi_task:
            t = self.training
            if t.data_dict is None:
                raise ConfigError("missing required key (multi-task input)", join_path(path, "training.data_dict"))
            check_name_match(heads, t.data_dict, join_path(path, "training.data_dict"))
            check_name_match(heads, self.loss_dict or {}, join_path(path, "loss_dict"), missing_ok=True)
            if t.fitting_weight is not None:
                where = join_path(path, "training.fitting_weight")
                check_name_match(heads, t.fitting_weight, where, missing_ok=True)
                if not any(t.weight(name) > 0 for name in heads):
                    raise ConfigError("all weights are 0 (or missing); at least one head needs a weight > 0", where)
        elif self.training.multi_task or self.loss_dict is not None:
            raise ConfigError(
                "multi-task key in a single-task input (model.fitting_net_dict is not given)",
                join_path(path, "loss_dict" if self.loss_dict is not None else "training.data_dict"),
            )
        elif self.loss is None:
            raise ConfigError("missing required key", join_path(path, "loss"))
        losses = self.losses
        for name, fitting in heads.items():
            self._check_loss_type(fitting, losses[name], name, path)
        self._check_warmup(path)

    def _check_loss_type(self, fitting: FittingConfig, loss: LossConfig, name: str, path: str) -> None:
        if loss.type != fitting.default_loss:
            loss_path = join_path(path, "loss") if not self.multi_task else join_path(path, f"loss_dict.{name}")
            raise _mismatch(loss.type, fitting, loss_path, self.model.head_path(name, join_path(path, "model")))

    def _check_warmup(self, path: str) -> None:
        steps = self.training.numb_steps
        if steps is None:
            return
        warmup = self.learning_rate.warmup_steps_for(steps)
        key = "warmup_ratio" if self.learning_rate.warmup_ratio is not None else "warmup_steps"
        if (steps > 0 and warmup >= steps) or (steps == 0 and warmup != 0):
            raise ConfigError(
                f"warmup ({warmup} steps) must be shorter than training.numb_steps ({steps})",
                join_path(join_path(path, "learning_rate"), key),
            )


def parse_input(d: dict[str, Any], source: str = "<dict>") -> InputConfig:
    """Parse and check an input dict (DeePMD-kit single-task or v2 multi-task layout).

    Parameters
    ----------
    d : dict
        The input, as loaded from JSON; it is not modified.
    source : str
        Name shown in error messages (the file name).

    Returns
    -------
    InputConfig
        The typed, completed configuration.

    Raises
    ------
    ConfigError
        One-line message ``"<source>: <key.path>: <reason>"``.
    """
    try:
        if not isinstance(d, dict):
            raise ConfigError(f"expected a JSON object at the top level, got {show(d)}")
        return InputConfig.parse(copy.deepcopy(d))
    except ConfigError as err:
        raise err.with_source(source) from None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out and not key.startswith("_comment"):
            raise ConfigError(f"duplicate key {show(key)} in a JSON object")
        out[key] = value
    return out


def load_input(path: str | os.PathLike[str]) -> InputConfig:
    """Read a JSON input file and parse it with :func:`parse_input`.

    Raises
    ------
    ConfigError
        For an unreadable file, malformed JSON (with line and column), a duplicated key,
        or an invalid input; the message starts with the file name.
    """
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as err:
        raise ConfigError(f"cannot read the file: {err.strerror or err}", source=source) from None
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}", source=source
        ) from None
    except ConfigError as err:
        raise err.with_source(source) from None
    return parse_input(data, source=source)

