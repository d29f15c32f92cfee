"""Schemas of the ``loss`` and ``training`` sections (``learning_rate`` and ``optimizer`` re-exported).

Key names, defaults and aliases follow DeePMD-kit 3.2 (``deepmd/utils/argcheck.py``).
Loss types are :class:`~mtzoo.config.base.Variant` schemas registered in :data:`LOSSES`
(the ``tensor`` loss is in :mod:`mtzoo.config.tensor`); the learning-rate and optimizer
schemas are in :mod:`mtzoo.config.optim`, the data sections in :mod:`mtzoo.config.data`,
both re-exported here.  ``training`` holds either the single-task data
(``training_data``/``validation_data``) or the multi-task ``data_dict`` and
``fitting_weight`` (see :mod:`mtzoo.config.multitask`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, ClassVar

from mtzoo.config.base import (
    ConfigError,
    Registry,
    Section,
    Variant,
    ge,
    gt,
    in_range,
    join_path,
    one_of,
    option,
    show,
)
from mtzoo.config.data import DataConfig, TaskDataConfig, ValidationDataConfig
from mtzoo.config.multitask import TASK_SCHEDULES
from mtzoo.config.optim import (
    DEFAULT_STOP_LR,
    LEARNING_RATES,
    OPTIMIZERS,
    AdamConfig,
    AdamWConfig,
    CosineLearningRateConfig,
    ExpLearningRateConfig,
    LearningRateConfig,
    OptimizerConfig,
    PlateauLearningRateConfig,
)

__all__ = [
    "DEFAULT_STOP_LR",
    "LEARNING_RATES",
    "LOSSES",
    "OPTIMIZERS",
    "AdamConfig",
    "AdamWConfig",
    "CosineLearningRateConfig",
    "DataConfig",
    "EnerLossConfig",
    "ExpLearningRateConfig",
    "LearningRateConfig",
    "LossConfig",
    "OptimizerConfig",
    "PlateauLearningRateConfig",
    "TaskDataConfig",
    "TrainingConfig",
    "ValidationDataConfig",
]

LOSSES = Registry(
    "loss",
    default="ener",
    unimplemented={
        "dens": (), "ener_spin": (), "dos": (), "population": (), "property": (),
    },
)


# --------------------------------------------------------------------------- loss


@dataclasses.dataclass(kw_only=True)
class LossConfig(Variant):
    """Base of the loss schemas (``loss``); ``type`` defaults to ``"ener"``."""

    registry: ClassVar[Registry] = LOSSES


def _pref(default: float, what: str, when: str) -> Any:
    return option(default, check=ge(0), doc=f"Prefactor of the {what} loss {when} (>= 0).")


@LOSSES.register("ener", aliases=("ener_hess",))
@dataclasses.dataclass(kw_only=True)
class EnerLossConfig(LossConfig):
    """``ener``: energy / force / virial / atomic-energy loss with scheduled prefactors.

    A prefactor goes from ``start_pref_*`` at the start to ``limit_pref_*`` in the limit
    of training, following the learning rate as in DeePMD-kit:
    ``pref(t) = limit + (start - limit) * lr(t) / start_lr``.  A term is on only when both
    of its prefactors are non-zero (DeePMD-kit's rule; one zero prefactor turns the term off,
    with a warning).  Prefactors are floats >= 0.

    Attributes
    ----------
    start_pref_e, limit_pref_e : float
        Energy (defaults 0.02, 1.0).
    start_pref_f, limit_pref_f : float
        Force (defaults 1000, 1.0).
    start_pref_v, limit_pref_v : float
        Virial (defaults 0, 0).
    start_pref_ae, limit_pref_ae : float
        Atomic energy (defaults 0, 0).
    start_pref_pf, limit_pref_pf, relative_f, enable_atom_ener_coeff, use_huber
        Recognised; only the defaults (0, 0, None, false, false) are supported yet.
    """

    start_pref_e: float = _pref(0.02, "energy", "at the start")
    limit_pref_e: float = _pref(1.0, "energy", "in the limit")
    start_pref_f: float = _pref(1000.0, "force", "at the start")
    limit_pref_f: float = _pref(1.0, "force", "in the limit")
    start_pref_v: float = _pref(0.0, "virial", "at the start")
    limit_pref_v: float = _pref(0.0, "virial", "in the limit")
    start_pref_ae: float = _pref(0.0, "atomic energy", "at the start")
    limit_pref_ae: float = _pref(0.0, "atomic energy", "in the limit")
    start_pref_pf: float = option(
        0.0, only_default=True, doc="Prefactor of the atomic prefactor force loss at the start."
    )
    limit_pref_pf: float = option(
        0.0, only_default=True, doc="Prefactor of the atomic prefactor force loss in the limit."
    )
    relative_f: float | None = option(None, only_default=True, doc="Shift of the relative force error.")
    enable_atom_ener_coeff: bool = option(False, only_default=True, doc="Energy as sum_i c_i E_i.")
    use_huber: bool = option(False, only_default=True, doc="Use the Huber loss.")

    _unsupported = {
        "start_pref_h": 0.0,
        "limit_pref_h": 0.0,
        "use_default_pf": False,
        "start_pref_gf": 0.0,
        "limit_pref_gf": 0.0,
        "numb_generalized_coord": 0,
        "loss_func": "mse",
        "f_use_norm": False,
        "huber_delta": 0.01,
        "intensive_ener_virial": False,
    }


def _check_device(value: Any) -> str | None:
    import torch

    if not isinstance(value, str):
        return f"expected a device name such as \"cpu\" or \"cuda\", got {show(value)}"
    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        return f"not a torch device: {value!r} (expected e.g. \"cpu\", \"cuda\", \"cuda:0\")"
    return None


def _check_weight(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"expected a number >= 0, got {show(value)}"
    if not math.isfinite(value):
        return f"must be a finite number >= 0, got {value}"
    return None if value >= 0 else f"must be >= 0, got {show(value)}"


# --------------------------------------------------------------------------- training


@dataclasses.dataclass(kw_only=True)
class TrainingConfig(Section):
    r"""The ``training`` section.

    A single-task input gives ``training_data`` (and ``validation_data``); a multi-task
    input gives ``data_dict`` (and ``fitting_weight``, ``task_schedule``) instead.

    Attributes
    ----------
    training_data : DataConfig or None
        Training data (required in a single-task input).
    validation_data : ValidationDataConfig or None
        Validation data (single-task input).
    data_dict : dict of str to TaskDataConfig, or None
        Multi-task input: the data of each head (one entry per head of
        ``model.fitting_net_dict``).
    fitting_weight : dict of str to float, or None
        Multi-task input: probability weight (finite, >= 0) of each head's task.  None:
        every head has weight 1; a head it leaves out has weight 0 and is not trained
        (:meth:`untrained_heads`).  Not all weights may be 0.
    task_schedule : str
        How tasks are picked at each step (mtzoo extension): ``"stochastic"`` (default),
        ``"round_robin"`` or ``"joint"`` (the weighted sum of all tasks' losses at every
        step); see :data:`mtzoo.config.multitask.TASK_SCHEDULES`.  Written by ``to_dict``
        for multi-task inputs, or when not the default.
    numb_steps : int or None
        Number of training steps (>= 0; aliases ``stop_batch``, ``num_step``,
        ``num_steps``, ``numb_step``).  Exactly one of ``numb_steps`` and ``numb_epoch``
        must be given.
    numb_epoch : float or None
        Number of epochs (> 0, may be fractional; aliases ``num_epoch``, ``num_epochs``,
        ``numb_epochs``), resolved by the trainer once the data is loaded
        (:func:`mtzoo.training.tasks.epoch_steps`, logged).  Single-task, as DeePMD-kit 3.2:
        ``numb_steps = ceil(numb_epoch * N)`` with ``N = ceil(max_i(nbatch_i / p_i))`` over
        the systems, ``nbatch_i = max(1, nframes_i // batch_size_i)`` the batches of system
        ``i`` per pass and ``p_i`` its sampling probability, so that every system is seen
        ``numb_epoch`` times in expectation.  Multi-task (mtzoo extension; DeePMD-kit has
        ``num_epoch_dict`` instead): ``numb_steps = ceil(numb_epoch * max_k(N_k / q_k))``
        over the trained tasks, with ``q_k`` the fraction of steps that train task ``k``
        (``w_k / sum_j w_j`` stochastic, ``1 / n_tasks`` round_robin, 1 joint): every task
        sees ``numb_epoch`` epochs in expectation.  When the weights are proportional to
        ``N_k`` this is DeePMD-kit's ``num_epoch_dict`` count ``ceil(numb_epoch * sum_k N_k)``.
    seed : int or None
        Seed of the frame sampling.
    disp_file, disp_freq : str, int
        Learning-curve file and how often (steps) it is written.
    save_freq, save_ckpt, max_ckpt_keep : int, str, int
        Checkpoint period (steps), path prefix and how many recent ones are kept.
    disp_training, time_training, disp_avg : bool
        Verbose display, timing, and averaging the training loss over the display
        interval.
    stat_file : str or None
        File (``.h5``/``.hdf5``) or directory where data statistics are cached.
    stat_file_mode : str
        ``"update"`` (create/complete the cache) or ``"read"`` (needs ``stat_file``).
    profiling, profiling_file, enable_profiler : bool, str, bool
        Profiler switches.
    tensorboard, tensorboard_log_dir, tensorboard_freq : bool, str, int
        TensorBoard logging.
    gradient_max_norm : float or None
        Clip the gradient norm to this value (0 or None: no clipping): when the 2-norm of
        all trainable parameters' gradients together, :math:`\|g\|_2`, exceeds it, every
        gradient is scaled by ``gradient_max_norm / ||g||_2`` before the optimizer step
        (``torch.nn.utils.clip_grad_norm_``).  Frozen parameters (``trainable: false``)
        have no gradient and take no part.
    change_bias_after_training : bool
        DeePMD-kit key: after the last step, each energy head's per-type bias :math:`b` is
        shifted by :math:`\arg\min_\delta \|C\delta - (E - \hat E)\|^2` (minimum norm), with
        :math:`C` the ``[nframes, ntypes]`` atom counts of the head's training frames, :math:`E`
        their energies and :math:`\hat E` the trained model's predictions (the averaged model
        with EMA).  Removes the constant energy offset that a force-dominated loss leaves; the
        best-validation checkpoint (``best_metric``) gets its own shift.
    enable_ema : bool
        Keep an exponential moving average of the trainable weights (DeePMD-kit 3.2 key;
        see :class:`mtzoo.training.ema.ParameterEMA`).  The averaged weights are those
        validated (lcurve ``_val`` columns, ``best_metric``, ``plateau``) and written as the
        checkpoints' ``model`` (so ``mtzoo freeze`` gives the averaged model); the raw
        weights and the optimizer state are kept beside them for ``--restart``.
    ema_decay : float
        Decay :math:`d` of the average, in [0, 1): after every optimizer step
        :math:`\bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta` (DeePMD-kit 3.2's
        rule: no warm-up of :math:`d`).  Default 0.999.
    best_metric : str or None
        mtzoo extension: keep the checkpoint with the lowest validation value of this lcurve
        metric (e.g. ``rmse_e``) as ``SAVE_CKPT.best.pt`` beside the last one, evaluated at every
        lcurve line; the mean over the tasks that report it, or ``best_task``'s only.
    best_task : str or None
        mtzoo extension: the task whose metric ``best_metric`` follows (default: all).
    device : str or None
        mtzoo extension: the torch device training runs on (default: ``cuda`` when available,
        else ``cpu``).  Statistics are computed on the CPU, then the model moves.
    """

    training_data: DataConfig | None = option(
        None, omit_none=True, doc="Configurations of training data (single-task input)."
    )
    validation_data: ValidationDataConfig | None = option(
        None, doc="Configurations of validation data (single-task input)."
    )
    data_dict: dict[str, TaskDataConfig] | None = option(
        None, omit_none=True, doc="The data of each head (multi-task input): {training_data, validation_data}."
    )
    fitting_weight: dict[str, float] | None = option(
        None, omit_none=True,
        doc="Probability weight (>= 0) of each head's task (multi-task input); absent: all 1;"
        " a head left out is not trained.",
    )
    task_schedule: str = option(
        "stochastic", check=one_of(*TASK_SCHEDULES),
        doc='How tasks are picked at each step: "stochastic" (one task per step, drawn by weight),'
        ' "round_robin" (one task per step, in turn) or "joint" (weighted sum of all tasks\' losses'
        " every step).",
    )
    numb_steps: int | None = option(
        None, aliases=("stop_batch", "num_step", "num_steps", "numb_step"), check=ge(0), omit_none=True,
        doc="Number of training steps; exclusive with numb_epoch.",
    )
    numb_epoch: float | None = option(
        None, aliases=("num_epoch", "num_epochs", "numb_epochs"), check=gt(0), omit_none=True,
        doc="Number of training epochs (can be fractional); exclusive with numb_steps.",
    )
    seed: int | None = option(None, doc="The random seed for getting frames from the training data set.")
    disp_file: str = option("lcurve.out", doc="The file for printing learning curve.")
    disp_freq: int = option(1000, check=gt(0), doc="The frequency of printing learning curve.")
    save_freq: int = option(1000, check=gt(0), doc="The frequency of saving check point.")
    save_ckpt: str = option("model.ckpt", doc="The path prefix of saving check point files.")
    max_ckpt_keep: int = option(5, check=gt(0), doc="The maximum number of recent checkpoints to keep.")
    disp_training: bool = option(True, doc="Displaying verbose information during training.")
    time_training: bool = option(True, doc="Timing during training.")
    disp_avg: bool = option(False, doc="Display the average training loss over the display interval.")
    stat_file: str | None = option(None, omit_none=True, doc="The file path for saving the data statistics.")
    stat_file_mode: str = option(
        "update", check=one_of("update", "read"), doc="Access mode of stat_file: update or read."
    )
    profiling: bool = option(False, doc="Enable performance profiling.")
    profiling_file: str = option("timeline.json", doc="Output file of the profiling trace.")
    enable_profiler: bool = option(False, doc="Enable the backend profiler.")
    tensorboard: bool = option(False, doc="Enable tensorboard.")
    tensorboard_log_dir: str = option("log", doc="The log directory of tensorboard outputs.")
    tensorboard_freq: int = option(1, check=gt(0), doc="The frequency of writing tensorboard events.")
    best_metric: str | None = option(
        None, omit_none=True,
        doc="mtzoo extension: keep the checkpoint with the lowest validation value of this lcurve metric "
            "(e.g. rmse_e) as SAVE_CKPT.best.pt, checked at every lcurve line.",
    )
    best_task: str | None = option(
        None, omit_none=True, doc="mtzoo extension: the task whose best_metric is followed (default: mean over tasks).",
    )
    gradient_max_norm: float | None = option(
        None, check=ge(0), omit_none=True,
        doc="Clip the 2-norm of the trainable parameters' gradients to this value (0: no clipping).",
    )
    change_bias_after_training: bool = option(
        False, doc="After the last step, shift each energy head's per-type bias by a least-squares fit of the "
                   "trained model's residuals on its training data (also applied to the best checkpoint).",
    )
    enable_ema: bool = option(
        False, doc="Keep an exponential moving average of the weights; validate and freeze the averaged model."
    )
    ema_decay: float = option(
        0.999, check=in_range(0, 1, hi_open=True),
        doc="Decay of the moving average: ema = ema_decay * ema + (1 - ema_decay) * param after every step.",
    )
    device: str | None = option(
        None, omit_none=True, check=_check_device,
        doc="mtzoo extension: where training runs (\"cpu\", \"cuda\", \"cuda:1\", ...); default: cuda when "
            "torch sees a GPU, else cpu.",
    )

    _unsupported = {
        "mixed_precision": None,
        "zero_stage": 0,
        "acc_freq": 1,
        "ema_ckpt_keep": None,
        "ckpt_keep_ratio": None,
        "save_dir": None,
        "neighbor_graph_method": "auto",
        "enable_compile": False,
        "enable_tf32": False,
    }

    @property
    def multi_task(self) -> bool:
        """Whether the data is given by ``data_dict``."""
        return self.data_dict is not None

    def weight(self, head: str) -> float:
        """The ``fitting_weight`` of ``head`` (1.0 without fitting_weight, 0.0 if left out)."""
        if self.fitting_weight is None:
            return 1.0
        return self.fitting_weight.get(head, 0.0)

    def untrained_heads(self) -> list[str]:
        """Heads of ``data_dict`` that ``fitting_weight`` leaves out: they are not trained
        (the trainer warns "head 'x' has no fitting_weight and will not be trained")."""
        if self.data_dict is None or self.fitting_weight is None:
            return []
        return [name for name in self.data_dict if name not in self.fitting_weight]

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`Section.to_dict`; ``task_schedule`` only for multi-task or non-default,
        no ``validation_data`` key in a multi-task input."""
        out = super().to_dict()
        if self.data_dict is None and self.task_schedule == "stochastic":
            del out["task_schedule"]
        if self.data_dict is not None and self.validation_data is None:
            del out["validation_data"]
        return out

    def validate(self, path: str) -> None:
        """Single-task or multi-task data; weights; exactly one of ``numb_steps``/``numb_epoch``;
        ``stat_file_mode="read"`` needs a file."""
        self._validate_data(path)
        if self.numb_steps is None and self.numb_epoch is None:
            raise ConfigError("missing required key (or give numb_epoch)", join_path(path, "numb_steps"))
        if self.numb_steps is not None and self.numb_epoch is not None:
            raise ConfigError(
                "numb_steps and numb_epoch are mutually exclusive; give only one",
                join_path(path, "numb_epoch"),
            )
        if self.stat_file_mode == "read" and not self.stat_file:
            raise ConfigError('"read" requires training.stat_file', join_path(path, "stat_file_mode"))

    def _validate_data(self, path: str) -> None:
        if self.data_dict is None:
            if self.fitting_weight is not None:
                raise ConfigError(
                    "multi-task key without training.data_dict; give data_dict (and model.fitting_net_dict)",
                    join_path(path, "fitting_weight"),
                )
            if self.training_data is None:
                raise ConfigError("missing required key", join_path(path, "training_data"))
            return
        for key in ("training_data", "validation_data"):
            if getattr(self, key) is not None:
                raise ConfigError(
                    f"{key} and data_dict are mutually exclusive (single-task and multi-task schemes); "
                    "give the data of each head in data_dict",
                    join_path(path, key),
                )
        if not self.data_dict:
            raise ConfigError("must name at least one head", join_path(path, "data_dict"))
        if self.fitting_weight is not None:
            weights: dict[str, float] = {}
            for name, value in self.fitting_weight.items():
                if name.startswith("_comment"):
                    continue
                reason = _check_weight(value)
                if reason:
                    raise ConfigError(reason, join_path(join_path(path, "fitting_weight"), name))
                weights[name] = float(value)
            self.fitting_weight = weights
