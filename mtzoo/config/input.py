"""The whole input file: :class:`InputConfig`, :func:`parse_input` and :func:`load_input`.

Only DeePMD-kit's single-task layout is implemented.  Multi-task inputs are recognised
by their keys (:data:`MULTI_TASK_KEYS`) and rejected with ``"multi-task inputs are not
supported yet"``; a multi-task schema would sit next to :class:`InputConfig` (with
``model.model_dict`` -> ``dict[str, ModelConfig]``, ``loss_dict`` -> ``dict[str,
LossConfig]``, ``training.data_dict`` -> per-branch data) and be selected in
:func:`parse_input` where the multi-task check is now.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import warnings
from typing import Any

from mtzoo.config.base import ConfigError, Section, as_object, join_path, option, show
from mtzoo.config.model import ModelConfig
from mtzoo.config.train import (
    AdamConfig,
    ExpLearningRateConfig,
    EnerLossConfig,
    LearningRateConfig,
    LossConfig,
    OptimizerConfig,
    TrainingConfig,
)

__all__ = ["MULTI_TASK_KEYS", "InputConfig", "find_multi_task_key", "load_input", "parse_input"]

#: Key paths that only occur in DeePMD-kit multi-task inputs.
MULTI_TASK_KEYS = (
    ("model", "model_dict"),
    ("model", "shared_dict"),
    ("model", "fitting_net_dict"),
    ("loss_dict",),
    ("training", "data_dict"),
    ("training", "model_prob"),
    ("training", "num_epoch_dict"),
    ("training", "fitting_weight"),
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
    """``validating`` is accepted when absent/null or with DeePMD's defaults only."""
    if value is None:
        return True
    if not isinstance(value, dict):
        return False
    return all(
        k.startswith("_comment") or (k in _VALIDATING_DEFAULTS and v == _VALIDATING_DEFAULTS[k])
        for k, v in value.items()
    )


def _nvnmd_off(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and value.get("enable", False) is False)


def find_multi_task_key(data: dict[str, Any]) -> str | None:
    """Key path of the first multi-task key in ``data`` (see :data:`MULTI_TASK_KEYS`)."""
    for keys in MULTI_TASK_KEYS:
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


@dataclasses.dataclass(kw_only=True)
class InputConfig(Section):
    """A complete single-task input (DeePMD-kit's ``input.json`` layout).

    Attributes
    ----------
    model : ModelConfig
        The model (type map, descriptor, fitting net); required.
    learning_rate : LearningRateConfig
        The learning-rate schedule (default: ``exp`` with DeePMD's defaults).
    optimizer : OptimizerConfig
        The optimizer (default: ``Adam``).
    loss : LossConfig
        The loss (default: ``ener``).
    training : TrainingConfig
        Data and training-loop options; required.

    ``validating`` and ``nvnmd`` are recognised but accepted only at their defaults.
    :meth:`to_dict` gives the completed input (DeePMD's ``out.json``), which
    :func:`parse_input` reads back to an equal object.
    """

    model: ModelConfig = option(doc="The model.")
    learning_rate: LearningRateConfig = option(
        ExpLearningRateConfig(), doc="The definition of learning rate."
    )
    optimizer: OptimizerConfig = option(AdamConfig(), doc="The optimizer definition.")
    loss: LossConfig = option(EnerLossConfig(), doc="The definition of loss function.")
    training: TrainingConfig = option(doc="The training options.")

    _unsupported = {"validating": _validating_off, "nvnmd": _nvnmd_off}

    @classmethod
    def parse(cls, data: Any, path: str = "") -> InputConfig:
        """Parse a single-task input dict (legacy ``training`` keys are migrated first)."""
        return super().parse(_migrate_legacy(as_object(data, path)), path)

    def validate(self, path: str) -> None:
        """Cross-section checks: warmup shorter than the run."""
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
    """Parse and check an input dict (DeePMD-kit single-task layout).

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
        where = find_multi_task_key(d)
        if where is not None:
            raise ConfigError("multi-task inputs are not supported yet", where)
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

