"""Schemas of the ``learning_rate`` and ``optimizer`` sections.

Key names, defaults and aliases follow DeePMD-kit 3.2 (``deepmd/utils/argcheck.py``);
keys and types that DeePMD-kit does not have are marked "mtzoo extension".  Both are
:class:`~mtzoo.config.base.Variant` schemas registered in :data:`LEARNING_RATES` and
:data:`OPTIMIZERS`; the schedules themselves are in :mod:`mtzoo.training.lr`, the
optimizers are built by :func:`mtzoo.training.optim.make_optimizer`.

========================  ==========================================================
``learning_rate.type``    ``exp`` (default), ``cosine`` (DeePMD-kit 3.2),
                          ``plateau`` (mtzoo extension); ``wsd`` not yet
``optimizer.type``        ``Adam`` (default), ``AdamW`` (DeePMD-kit 3.2); ``LKF``,
                          ``AdaMuon``, ``HybridMuon`` not yet
========================  ==========================================================
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from mtzoo.config.base import ConfigError, Registry, Variant, ge, gt, in_range, join_path, one_of, option

__all__ = [
    "DEFAULT_STOP_LR",
    "LEARNING_RATES",
    "OPTIMIZERS",
    "AdamConfig",
    "AdamWConfig",
    "CosineLearningRateConfig",
    "ExpLearningRateConfig",
    "LearningRateConfig",
    "OptimizerConfig",
    "PlateauLearningRateConfig",
]

LEARNING_RATES = Registry("learning rate", default="exp", unimplemented={"wsd": ()})
OPTIMIZERS = Registry("optimizer", default="Adam", unimplemented={"LKF": (), "AdaMuon": (), "HybridMuon": ()})

#: DeePMD-kit's stop_lr when neither ``stop_lr`` nor ``stop_lr_ratio`` is given.
DEFAULT_STOP_LR = 5e-8

# --------------------------------------------------------------------------- learning rate


@dataclasses.dataclass(kw_only=True)
class LearningRateConfig(Variant):
    r"""Base of the learning-rate schemas (``learning_rate``); ``type`` defaults to ``"exp"``.

    Holds the keys DeePMD-kit shares between all schedules.

    Attributes
    ----------
    start_lr : float
        Learning rate at the start of training, after warmup (> 0).
    stop_lr : float or None
        Learning rate at the end of training (> 0).  Mutually exclusive with
        ``stop_lr_ratio``; when neither is given it is DeePMD-kit's 5e-8.
    stop_lr_ratio : float or None
        ``stop_lr = start_lr * stop_lr_ratio`` (> 0).
    warmup_steps : int
        Steps of linear warmup from ``warmup_start_factor * start_lr`` to ``start_lr``
        (>= 0; 0 = none).  Mutually exclusive with a non-zero ``warmup_ratio``.
    warmup_ratio : float or None
        Warmup steps as a fraction of ``training.numb_steps``:
        ``int(warmup_ratio * numb_steps)``, in [0, 1).
    warmup_start_factor : float
        Initial warmup learning rate as a fraction of ``start_lr`` (>= 0).
    scale_by_worker : str
        How to scale the learning rate with the number of workers (``"linear"``,
        ``"sqrt"``, ``"none"``); accepted and ignored (mtzoo trains in one process).

    Notes
    -----
    Whatever the schedule, the loss prefactors follow the rate as in DeePMD-kit,
    :math:`p(t) = p_\text{limit} + (p_\text{start} - p_\text{limit})\,\eta(t)/\eta_0`
    (:class:`~mtzoo.config.train.EnerLossConfig`); prefactors with ``start_pref ==
    limit_pref`` are constant under every schedule.
    """

    registry: ClassVar[Registry] = LEARNING_RATES

    start_lr: float = option(
        1e-3, check=gt(0), doc="The learning rate at the start of the training (after warmup)."
    )
    stop_lr: float | None = option(
        None, check=gt(0), doc="The learning rate at the end of training; exclusive with stop_lr_ratio."
    )
    stop_lr_ratio: float | None = option(
        None, check=gt(0), doc="stop_lr = start_lr * stop_lr_ratio; exclusive with stop_lr."
    )
    warmup_steps: int = option(0, check=ge(0), doc="Number of steps of linear learning-rate warmup.")
    warmup_ratio: float | None = option(
        None, check=in_range(0, 1, hi_open=True), doc="Warmup steps as a fraction of numb_steps."
    )
    warmup_start_factor: float = option(
        0.0, check=ge(0), doc="The warmup starts from warmup_start_factor * start_lr."
    )
    scale_by_worker: str = option(
        "linear", check=one_of("linear", "sqrt", "none"), doc="Scaling with the number of workers (ignored)."
    )

    def __post_init__(self) -> None:
        if self.stop_lr is None and self.stop_lr_ratio is None:
            self.stop_lr = DEFAULT_STOP_LR

    @property
    def final_lr(self) -> float:
        """The resolved stop learning rate (``stop_lr`` or ``start_lr * stop_lr_ratio``)."""
        if self.stop_lr_ratio is not None:
            return self.start_lr * self.stop_lr_ratio
        return float(self.stop_lr)  # type: ignore[arg-type]

    def warmup_steps_for(self, numb_steps: int) -> int:
        """Warmup steps for a run of ``numb_steps`` steps (``warmup_ratio`` resolved)."""
        if self.warmup_ratio is not None:
            return int(self.warmup_ratio * numb_steps)
        return self.warmup_steps

    def validate(self, path: str) -> None:
        """``stop_lr``/``stop_lr_ratio`` and ``warmup_steps``/``warmup_ratio`` exclusive."""
        if self.stop_lr is not None and self.stop_lr_ratio is not None:
            raise ConfigError(
                "stop_lr and stop_lr_ratio are mutually exclusive; give only one",
                join_path(path, "stop_lr_ratio"),
            )
        if self.warmup_steps != 0 and self.warmup_ratio is not None:
            raise ConfigError(
                "warmup_steps and warmup_ratio are mutually exclusive; give only one",
                join_path(path, "warmup_ratio"),
            )
        if self.final_lr > self.start_lr:
            key = "stop_lr" if self.stop_lr_ratio is None else "stop_lr_ratio"
            raise ConfigError(f"the learning rate would grow: stop learning rate {self.final_lr:g} > start_lr "
                              f"{self.start_lr:g}", join_path(path, key))


@LEARNING_RATES.register("exp")
@dataclasses.dataclass(kw_only=True)
class ExpLearningRateConfig(LearningRateConfig):
    r"""``exp``: exponentially decaying learning rate with optional linear warmup.

    DeePMD-kit 3.2 semantics (``deepmd/dpmodel/utils/learning_rate.py``,
    ``LearningRateExp``).  With :math:`N` = ``training.numb_steps`` (total steps,
    warmup included), :math:`W` the warmup steps (``warmup_steps``, or
    ``int(warmup_ratio * N)``), :math:`T = N - W`, :math:`\eta_0` = ``start_lr``,
    :math:`\eta_s` = ``stop_lr`` (or ``start_lr * stop_lr_ratio``), :math:`f` =
    ``warmup_start_factor`` and :math:`s` = ``decay_steps``, the rate at step :math:`t`
    (0-based) is

    .. math::

        \eta(t) = f\eta_0 + (1 - f)\,\eta_0\, t / W \qquad (t < W),

        \eta(t) = \max\!\big(\eta_0\, r^{\lfloor (t - W)/s \rfloor},\ \eta_s\big) \qquad (t \ge W)

    (with ``smooth`` true the exponent is :math:`(t - W)/s`, not floored).

    * Without ``decay_rate``: if :math:`s \ge T`, :math:`s` is first replaced by
      ``100 if T // 10 > 100 else T // 100 + 1``; then
      :math:`r = (\max(\eta_s, 10^{-10})/\eta_0)^{s/T}` (:math:`r = 1` when
      :math:`T = 0`), so that :math:`\eta` reaches :math:`\eta_s` at :math:`t = N`.
    * With ``decay_rate``: :math:`r` = ``decay_rate`` and :math:`s` is used as given;
      :math:`\eta_s` then only acts as the lower clip.

    Attributes
    ----------
    decay_steps : int
        Decay period :math:`s` in steps (> 0).
    decay_rate : float or None
        Decay factor :math:`r` per period, in (0, 1]; None derives it from ``stop_lr``.
    smooth : bool
        Decay continuously instead of every ``decay_steps`` steps.
    """

    decay_steps: int = option(
        5000, check=gt(0), doc="The learning rate decays every this number of training steps."
    )
    decay_rate: float | None = option(
        None, check=in_range(0, 1, lo_open=True),
        doc="Decay rate per decay_steps; if given it is used instead of interpolating start_lr->stop_lr.",
    )
    smooth: bool = option(False, doc="Decay continuously (true) or every decay_steps steps (false).")



@LEARNING_RATES.register("cosine")
@dataclasses.dataclass(kw_only=True)
class CosineLearningRateConfig(LearningRateConfig):
    r"""``cosine``: cosine annealing from ``start_lr`` to ``stop_lr`` after an optional linear warmup.

    DeePMD-kit 3.2 semantics (``deepmd/dpmodel/utils/learning_rate.py``,
    ``LearningRateCosine``).  With :math:`N` = ``training.numb_steps``, :math:`W` the
    warmup steps, :math:`T = N - W`, :math:`\eta_0` = ``start_lr`` and :math:`\eta_s` the
    stop learning rate, the rate at step :math:`t` (0-based) is the warmup of ``exp`` for
    :math:`t < W`, then

    .. math::

        \eta(t) = \eta_s + \tfrac12 (\eta_0 - \eta_s)\big(1 + \cos(\pi (t - W) / T)\big)
        \qquad (W \le t < N),

    and :math:`\eta_s` from :math:`t = N` on (:math:`\eta_0` throughout when :math:`T = 0`).
    No keys of its own.
    """


@LEARNING_RATES.register("plateau")
@dataclasses.dataclass(kw_only=True)
class PlateauLearningRateConfig(LearningRateConfig):
    r"""``plateau`` (mtzoo extension): reduce the rate when the validation error stops falling.

    After the warmup of ``exp``, the rate starts at :math:`\eta_0` = ``start_lr``.  At every
    lcurve line (every ``training.disp_freq`` steps) the validation value :math:`v` of
    ``metric`` is read from the lcurve ``_val`` columns (mean over the tasks that report it).
    :math:`v` improves when it is below the lowest value so far; after ``patience``
    consecutive lines without improvement the rate becomes

    .. math:: \eta \leftarrow \max(\gamma\, \eta,\ \eta_s)

    with :math:`\gamma` = ``factor`` and :math:`\eta_s` the stop learning rate, and the count
    starts again (the lowest value is kept).  Lines written during the warmup are not
    counted.  It needs validation data; its state (rate, lowest value, count) is saved in
    checkpoints, so ``--restart`` continues it.

    Attributes
    ----------
    factor : float
        :math:`\gamma`, in (0, 1); default 0.8 (MACE's ReduceLROnPlateau factor).
    patience : int
        Lcurve lines without improvement before a reduction (>= 1).  Default 10: the
        lcurve ``_val`` columns come from ``numb_btch`` random batches, so a few lines
        without a new minimum are often noise rather than a plateau.
    metric : str
        The lcurve validation metric followed, e.g. ``"rmse"`` (default, the total loss
        rmse), ``"rmse_e"``, ``"rmse_f"``.
    """

    factor: float = option(
        0.8, check=in_range(0, 1, lo_open=True, hi_open=True),
        doc="mtzoo extension: the rate is multiplied by factor after patience lcurve lines without improvement.",
    )
    patience: int = option(
        10, check=ge(1), doc="mtzoo extension: lcurve lines without a new lowest validation value before a reduction."
    )
    metric: str = option(
        "rmse", doc="mtzoo extension: the lcurve validation metric followed (rmse, rmse_e, rmse_f, ...).",
    )

# --------------------------------------------------------------------------- optimizer


@dataclasses.dataclass(kw_only=True)
class OptimizerConfig(Variant):
    """Base of the optimizer schemas (``optimizer``); ``type`` defaults to ``"Adam"``.

    DeePMD-kit <= 3.1 put ``opt_type`` and the optimizer keys in ``training``; such inputs
    are migrated here by :func:`mtzoo.config.parse_input`, as DeePMD-kit 3.2 does.
    """

    registry: ClassVar[Registry] = OPTIMIZERS


@dataclasses.dataclass(kw_only=True)
class _AdamFamily(OptimizerConfig):
    """Keys shared by ``Adam`` and ``AdamW`` (not a type of its own)."""

    adam_beta1: float = option(0.9, check=in_range(0, 1, hi_open=True), doc="Adam beta1.")
    adam_beta2: float = option(0.999, check=in_range(0, 1, hi_open=True), doc="Adam beta2.")
    weight_decay: float = option(0.0, check=ge(0), doc="Weight decay (L2 penalty on the gradients).")
    amsgrad: bool = option(
        False, omit_default=True,
        doc="mtzoo extension: use the maximum of the past second moments (AMSGrad variant).",
    )


@OPTIMIZERS.register("Adam")
@dataclasses.dataclass(kw_only=True)
class AdamConfig(_AdamFamily):
    r"""``Adam`` (``torch.optim.Adam``).

    Attributes
    ----------
    adam_beta1, adam_beta2 : float
        Decay rates :math:`\beta_1, \beta_2` of the first and second moments, in [0, 1).
    weight_decay : float
        :math:`\lambda` (>= 0), an L2 penalty: :math:`g \leftarrow g + \lambda\theta` before
        the moments.  Default 0.
    amsgrad : bool
        mtzoo extension: the AMSGrad variant (the step divides by the running maximum of
        the second moment).  Default false; written to ``out.json`` only when true.
    """


@OPTIMIZERS.register("AdamW")
@dataclasses.dataclass(kw_only=True)
class AdamWConfig(_AdamFamily):
    r"""``AdamW`` (``torch.optim.AdamW``): Adam with decoupled weight decay.

    Each step first shrinks the weights, :math:`\theta \leftarrow \theta(1 - \eta\lambda)`
    with the current learning rate :math:`\eta`, then takes the Adam step (Loshchilov and
    Hutter, ICLR 2019).  As DeePMD-kit 3.2 (``optimizer_adamw``).

    Attributes
    ----------
    adam_beta1, adam_beta2 : float
        As ``Adam``.
    weight_decay : float
        Decoupled weight decay :math:`\lambda` (>= 0).  Default 0.001, DeePMD-kit 3.2's
        (torch's own default is 0.01).
    amsgrad : bool
        mtzoo extension, as ``Adam``.
    """

    weight_decay: float = option(0.001, check=ge(0), doc="Decoupled weight decay coefficient of AdamW.")
