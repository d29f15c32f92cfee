"""Losses with DeePMD-kit's normalisation and scheduled prefactors.

``ener`` (DeePMD ``EnergyStdLoss``, legacy 1/N scaling): for a batch of frames with
:math:`N_b` atoms,

.. math::

    L = p_e \\,\\overline{\\Delta E_b^2 / N_b} + p_f\\, \\overline{\\Delta F^2}
      + p_v\\, \\overline{\\lVert\\Delta W_b\\rVert^2 / (9 N_b)},\\qquad
    p(t) = p_\\text{limit} + (p_\\text{start} - p_\\text{limit})\\,\\eta(t)/\\eta_0

where bars are means over the frames (atoms x 3 for forces) that carry the label.
Reported metrics (DeePMD's lcurve keys): ``rmse`` = :math:`\\sqrt L`, ``rmse_e`` (per atom),
``rmse_f``, ``rmse_v`` (per atom, only when the virial term is on).
"""

from __future__ import annotations

import math

import torch

from mtzoo import keys as K
from mtzoo.config import EnerLossConfig


class EnergyLoss:
    """Energy/force/virial loss of one energy head.

    Parameters
    ----------
    cfg : EnerLossConfig
        Prefactors.
    start_lr : float
        :math:`\\eta_0`, to scale the prefactors with the learning rate.
    """

    def __init__(self, cfg: EnerLossConfig, start_lr: float) -> None:
        self.cfg, self.start_lr = cfg, float(start_lr)
        self.use_e = cfg.start_pref_e > 0 or cfg.limit_pref_e > 0
        self.use_f = cfg.start_pref_f > 0 or cfg.limit_pref_f > 0
        self.use_v = cfg.start_pref_v > 0 or cfg.limit_pref_v > 0

    def needs_forces(self) -> bool:
        return self.use_f

    def needs_virial(self) -> bool:
        return self.use_v

    def prefactors(self, lr: float) -> tuple[float, float, float]:
        c, coef = self.cfg, lr / self.start_lr
        return (c.limit_pref_e + (c.start_pref_e - c.limit_pref_e) * coef,
                c.limit_pref_f + (c.start_pref_f - c.limit_pref_f) * coef,
                c.limit_pref_v + (c.start_pref_v - c.limit_pref_v) * coef)

    def __call__(self, pred: dict, batch, lr: float) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss tensor and metrics (NaN where no frame of the batch carries the label)."""
        pe, pf, pv = self.prefactors(lr)
        natoms = batch[K.NUM_ATOMS].to(torch.float64)
        loss = pred[K.ENERGY].new_zeros(())
        metrics: dict[str, float] = {}
        if self.use_e:
            m = batch[K.has(K.ENERGY)]
            d2 = (pred[K.ENERGY] - batch[K.ENERGY]) ** 2 * m
            nm = m.sum()
            if nm > 0:
                loss = loss + pe * (d2 / natoms).sum() / nm
                metrics["rmse_e"] = math.sqrt(float((d2.detach() / natoms**2).sum() / nm))
            else:
                metrics["rmse_e"] = math.nan
        if self.use_f:
            m = batch[K.has(K.FORCES)][batch[K.BATCH]]  # per atom
            d2 = ((pred[K.FORCES] - batch[K.FORCES]) ** 2).sum(-1) * m
            nm = 3.0 * m.sum()
            if nm > 0:
                l2 = d2.sum() / nm
                loss = loss + pf * l2
                metrics["rmse_f"] = math.sqrt(float(l2.detach()))
            else:
                metrics["rmse_f"] = math.nan
        if self.use_v:
            m = batch[K.has(K.VIRIAL)]
            d2 = ((pred[K.VIRIAL] - batch[K.VIRIAL]) ** 2).sum((-1, -2)) * m
            nm = 9.0 * m.sum()
            if nm > 0:
                loss = loss + pv * (d2 / natoms).sum() / nm
                metrics["rmse_v"] = math.sqrt(float((d2.detach() / natoms**2).sum() / nm))
            else:
                metrics["rmse_v"] = math.nan
        metrics["rmse"] = math.sqrt(max(float(loss.detach()), 0.0))
        return loss, metrics
