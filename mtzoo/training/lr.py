"""Learning-rate schedule: DeePMD-kit 3.2's ``exp`` decay with optional linear warmup.

With :math:`N` total steps, :math:`W` warmup steps, :math:`T = N - W`, start rate
:math:`\\eta_0`, stop rate :math:`\\eta_s`, warmup start factor :math:`f` and decay steps :math:`s`:

.. math::

    \\eta(t) = \\begin{cases} \\eta_0 \\left(f + (1 - f)\\, t / W\\right) & t < W \\\\
      \\max\\left(\\eta_0\\, r^{\\lfloor (t - W)/s \\rfloor}, \\eta_s\\right) & t \\ge W \\end{cases}

with :math:`r` = ``decay_rate`` if given, else :math:`r = (\\eta_s/\\eta_0)^{s/T}` (and
:math:`s` replaced by ``100 if T//10 > 100 else T//100 + 1`` when :math:`s \\ge T`).
``smooth`` drops the floor.
"""

from __future__ import annotations

import math

from mtzoo.config import ExpLearningRateConfig


class ExpDecayLR:
    """Callable ``lr(step)`` for an ``exp`` learning-rate config and a run of ``numb_steps``."""

    def __init__(self, cfg: ExpLearningRateConfig, numb_steps: int) -> None:
        self.start_lr = float(cfg.start_lr)
        self.stop_lr = float(cfg.final_lr)
        self.warmup = int(cfg.warmup_steps_for(numb_steps))
        self.warmup_start = float(cfg.warmup_start_factor)
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

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.start_lr * (self.warmup_start + (1.0 - self.warmup_start) * step / self.warmup)
        k = (step - self.warmup) / self.decay_steps
        if not self.smooth:
            k = math.floor(k)
        return max(self.start_lr * self.rate**k, self.stop_lr)
