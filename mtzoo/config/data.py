"""Schemas of the data sections: ``training.training_data``, ``training.validation_data``
and the entries of ``training.data_dict`` (multi-task inputs).

Key names, defaults and aliases follow DeePMD-kit 3.2 (``deepmd/utils/argcheck.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from mtzoo.config.base import Section, each, ge, gt, one_of, option, show

__all__ = ["DataConfig", "TaskDataConfig", "ValidationDataConfig"]


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else value


def _check_systems(systems: list[str]) -> str | None:
    if not systems:
        return "must not be empty"
    return None if all(systems) else "system paths must not be empty"


def _check_batch_size(value: Any) -> str | None:
    if isinstance(value, list):
        return each(gt(0), nonempty=True)(value)
    if isinstance(value, int):
        return gt(0)(value)
    rule, _, number = value.partition(":")
    if rule == "auto" and (not number or (number.isdigit() and int(number) > 0)):
        return None
    if rule in ("mixed", "max", "filter", "mix"):
        return f"{show(value)}: \"{rule}:N\" batch sizes are not supported by mtzoo yet"
    return f'must be an int > 0, a list of int, "auto" or "auto:N" (N > 0), got {show(value)}'


def _check_auto_prob(value: str) -> str | None:
    if value in ("prob_uniform", "prob_sys_size"):
        return None
    head, *blocks = value.split(";")
    ok = head == "prob_sys_size" and bool(blocks)
    for block in blocks:
        parts = block.split(":")
        try:
            ok = ok and len(parts) == 3 and int(parts[0]) >= 0 and int(parts[1]) >= 0 and float(parts[2]) >= 0
        except ValueError:
            ok = False
    if ok:
        return None
    return (
        'must be "prob_uniform", "prob_sys_size" or "prob_sys_size;start:end:weight;...", '
        f"got {show(value)}"
    )


@dataclasses.dataclass(kw_only=True)
class DataConfig(Section):
    """``training.training_data``: the data systems and how batches are drawn.

    Attributes
    ----------
    systems : list of str
        System directories, or parent directories searched recursively (a single string
        is stored as a one-item list).  Relative paths are relative to the input file's
        directory at run time.
    batch_size : int, str or list of int
        Frames per batch: an int for all systems, a list with one int per system,
        ``"auto"`` (``batch_size * natoms >= 32``) or ``"auto:N"`` (``>= N``).
    set_prefix : str
        Prefix of the data set directories (``set.000``, ...).
    auto_prob : str
        System probabilities (alias ``auto_prob_style``): ``"prob_uniform"``,
        ``"prob_sys_size"`` (proportional to the number of batches) or
        ``"prob_sys_size;start:end:weight;..."``.
    sys_probs : list of float or None
        Explicit probability of each system (alias ``sys_weights``); overrides
        ``auto_prob``.
    mixed_batch : bool or None
        mtzoo extension: draw every batch from all systems' frames together (one shuffled pass
        over every frame, ``batch_size`` frames per batch, as MACE and NequIP do) instead of from
        one system at a time (DeePMD-kit; the default).  Needs one integer ``batch_size``;
        ``auto_prob`` and ``sys_probs`` do not apply (every frame is drawn once per pass).
    """

    systems: list[str] = option(
        accept=list[str] | str, convert=_as_list, check=_check_systems,
        doc="The data systems (a path or a list of paths; parents are searched recursively).",
    )
    batch_size: int | str | list[int] = option(
        "auto", check=_check_batch_size,
        doc='Batch size: int, list of int (one per system), "auto" or "auto:N".',
    )
    set_prefix: str = option("set", doc="The prefix of the data set directories.")
    bad_frames: str | None = option(
        None, omit_none=True, check=one_of("error", "drop"),
        doc="mtzoo extension: frames with NaN/inf coordinates or labels are an error naming them "
            "(\"error\", the default when absent) or dropped with a warning (\"drop\").",
    )
    auto_prob: str = option(
        "prob_sys_size", aliases=("auto_prob_style",), check=_check_auto_prob,
        doc="How the probability of each system is determined.",
    )
    sys_probs: list[float] | None = option(
        None, aliases=("sys_weights",), check=each(ge(0), nonempty=True),
        doc="The probability of each system (same length as systems).",
    )
    mixed_batch: bool | None = option(
        None, omit_none=True,
        doc="mtzoo extension: true draws each batch from the frames of all systems together (one shuffled "
            "pass over every frame, as MACE and NequIP); false or absent: one system per batch (DeePMD-kit). "
            "Needs one integer batch_size.",
    )

    _unsupported: ClassVar[dict[str, Any]] = {"rglob_patterns": None, "min_pair_dist": 0.0}


@dataclasses.dataclass(kw_only=True)
class ValidationDataConfig(DataConfig):
    """``training.validation_data``: as :class:`DataConfig`, plus ``numb_btch``.

    Attributes
    ----------
    numb_btch : int
        Number of batches drawn at each validation (alias ``numb_batch``, > 0).
    """

    numb_btch: int = option(
        1, aliases=("numb_batch",), check=gt(0),
        doc="Number of batches to be sampled for each validation period.",
    )

    _unsupported: ClassVar[dict[str, Any]] = {"rglob_patterns": None}


@dataclasses.dataclass(kw_only=True)
class TaskDataConfig(Section):
    """An entry of ``training.data_dict`` (multi-task input): the data of one head.

    Attributes
    ----------
    training_data : DataConfig
        Training data of the head (required).
    validation_data : ValidationDataConfig or None
        Its validation data.

    ``stat_file``/``stat_file_mode`` (DeePMD-kit v3) are recognised, only at their defaults.
    """

    training_data: DataConfig = option(doc="Configurations of training data.")
    validation_data: ValidationDataConfig | None = option(None, doc="Configurations of validation data.")

    _unsupported: ClassVar[dict[str, Any]] = {"stat_file": None, "stat_file_mode": "update"}
