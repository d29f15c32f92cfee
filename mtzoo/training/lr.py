r"""Learning-rate schedules: DeePMD-kit 3.2's ``exp`` and ``cosine``, mtzoo's ``plateau``.

Every schedule starts with the same optional linear warmup.  With :math:`N` total steps,
:math:`W` warmup steps, :math:`T = N - W`, start rate :math:`\eta_0`, stop rate
:math:`\eta_s` and warmup start factor :math:`f`, the rate of step :math:`t` (0-based) is

.. math::

    \eta(t) = \eta_0 \left(f + (1 - f)\, t / W\right) \qquad (t < W)

and after the warmup, with :math:`\tau = t - W`:

* ``exp``: :math:`\max(\eta_0\, r^{\lfloor \tau/s \rfloor}, \eta_s)` with :math:`r` =
  ``decay_rate`` if given, else :math:`r = (\eta_s/\eta_0)^{s/T}` (and :math:`s` replaced by
  ``100 if T//10 > 100 else T//100 + 1`` when :math:`s \ge T`); ``smooth`` drops the floor
  of the exponent.
* ``cosine``: :math:`\eta_s + \tfrac12(\eta_0 - \eta_s)(1 + \cos(\pi\tau/T))` for
  :math:`\tau < T`, then :math:`\eta_s`.
* ``plateau``: :math:`\eta_0`, multiplied by ``factor`` (never below :math:`\eta_s`) after
  ``patience`` lcurve lines without a new lowest validation value (:meth:`PlateauLR.observe`).

The loss prefactors follow whichever schedule as :math:`\eta(t)/\eta_0` (DeePMD-kit's rule,
:class:`~mtzoo.training.loss.EnergyLoss`).  :func:`make_schedule` builds the schedule of a
``learning_rate`` config; the configs and their keys are in :mod:`mtzoo.config.optim`.
"""

from __future__ import annotations

import math

from mtzoo.config import (
    CosineLearningRateConfig,
    ExpLearningRateConfig,
    LearningRateConfig,
    PlateauLearningRateConfig,
)


class Schedule:
    """Callable ``lr(step)``: the warmup, then :meth:`decayed` of the steps after it.

    Parameters
    ----------
    cfg : LearningRateConfig
        The ``learning_rate`` section.
    numb_steps : int
        Steps of the run (warmup included).

    Attributes
    ----------
    metric : str or None
        The lcurve validation metric the schedule follows (:meth:`observe`); None when it
        follows none.
    """

    metric: str | None = None

    def __init__(self, cfg: LearningRateConfig, numb_steps: int) -> None:
        self.start_lr = float(cfg.start_lr)
        self.stop_lr = float(cfg.final_lr)
        self.numb_steps = int(numb_steps)
        self.warmup = int(cfg.warmup_steps_for(numb_steps))
        self.warmup_start = float(cfg.warmup_start_factor)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.start_lr * (self.warmup_start + (1.0 - self.warmup_start) * step / self.warmup)
        return self.decayed(step - self.warmup)

    def decayed(self, tau: int) -> float:
        """The rate ``tau`` steps after the warmup."""
        raise NotImplementedError

    def observe(self, value: float, step: int) -> None:
        """Take the validation value of :attr:`metric` of the lcurve line at ``step`` (no-op here)."""

    def state_dict(self) -> dict:
        """What a checkpoint keeps (empty for schedules that depend on the step only)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""


class ExpDecayLR(Schedule):
    """``exp``: DeePMD-kit 3.2's stepped (or ``smooth``) exponential decay."""

    def __init__(self, cfg: ExpLearningRateConfig, numb_steps: int) -> None:
        super().__init__(cfg, numb_steps)
        self.smooth = bool(getattr(cfg, "smooth", False))
        t = max(numb_steps - self.warmup, 0)
        s = int(cfg.decay_steps)
        if cfg.decay_rate is not None:
            self.decay_steps, self.rate = s, float(cfg.decay_rate)
        else:
            if s >= t:
                s = 100 if t // 10 > 100 else t // 100 + 1
            self.decay_steps = s
            self.rate = (max(self.stop_lr, 1e-10) / self.start_lr) ** (s / t) if t > 0 else 1.0

    def decayed(self, tau: int) -> float:
        k = tau / self.decay_steps
        if not self.smooth:
            k = math.floor(k)
        return max(self.start_lr * self.rate**k, self.stop_lr)


class CosineLR(Schedule):
    """``cosine``: DeePMD-kit 3.2's cosine annealing from ``start_lr`` to ``stop_lr`` over ``numb_steps - W``."""

    def __init__(self, cfg: CosineLearningRateConfig, numb_steps: int) -> None:
        super().__init__(cfg, numb_steps)
        self.span = max(numb_steps - self.warmup, 0)

    def decayed(self, tau: int) -> float:
        if self.span == 0:
            return self.start_lr
        if tau >= self.span:
            return self.stop_lr
        return self.stop_lr + 0.5 * (self.start_lr - self.stop_lr) * (1.0 + math.cos(math.pi * tau / self.span))


class PlateauLR(Schedule):
    r"""``plateau`` (mtzoo extension): :math:`\eta \leftarrow \max(\gamma\eta, \eta_s)` after ``patience`` lines without improvement.

    The trainer calls :meth:`observe` at every lcurve line with the validation value of
    :attr:`metric`.  A value improves when it is strictly below the lowest so far; the
    ``patience``-th line in a row that does not improve multiplies the rate by
    :math:`\gamma` = ``factor`` (floored at ``stop_lr``) and restarts the count.  Lines at
    steps :math:`\le W` (all their steps were warmup) are not counted.
    """

    def __init__(self, cfg: PlateauLearningRateConfig, numb_steps: int) -> None:
        super().__init__(cfg, numb_steps)
        self.metric = str(cfg.metric)
        self.factor, self.patience = float(cfg.factor), int(cfg.patience)
        self.current, self.best, self.bad, self.reductions = self.start_lr, math.inf, 0, 0

    def decayed(self, tau: int) -> float:
        return self.current

    def observe(self, value: float, step: int) -> None:
        if step <= self.warmup:
            return
        if value < self.best:
            self.best, self.bad = float(value), 0
            return
        self.bad += 1
        if self.bad >= self.patience:
            rate = max(self.current * self.factor, self.stop_lr)
            self.reductions += rate < self.current
            self.current, self.bad = rate, 0

    def state_dict(self) -> dict:
        return {"current": self.current, "best": self.best, "bad": self.bad, "reductions": self.reductions}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.current, self.best = float(state["current"]), float(state["best"])
            self.bad, self.reductions = int(state["bad"]), int(state["reductions"])


#: Schedule class of each ``learning_rate.type``.
SCHEDULES: dict[str, type[Schedule]] = {"exp": ExpDecayLR, "cosine": CosineLR, "plateau": PlateauLR}


def make_schedule(cfg: LearningRateConfig, numb_steps: int) -> Schedule:
    """The schedule of a ``learning_rate`` config for a run of ``numb_steps`` steps."""
    return SCHEDULES[cfg.type](cfg, numb_steps)
