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

``tensor`` (DeePMD ``TensorLoss``, dipole / polarizability heads): see :class:`TensorLoss`.
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


class TensorLoss:
    """DeePMD-kit's ``tensor`` loss (``deepmd/pt/loss/tensor.py``) for a dipole or polar head.

    With :math:`\\Delta` the prediction minus the label, :math:`d` the tensor size (3 or 9),
    :math:`\\mathcal F` the frames that carry the global label and :math:`\\mathcal A` the atoms
    of selected types (``sel_type``) in frames that carry the atomic label:

    .. math::

        L = p_a\\, \\frac{\\sum_{i \\in \\mathcal A} \\lVert \\Delta\\boldsymbol\\tau_i \\rVert^2}{d\\,|\\mathcal A|}
          + p_g\\, \\frac{\\sum_{b \\in \\mathcal F} \\lVert \\Delta\\boldsymbol\\tau_b \\rVert^2}{d\\,|\\mathcal F|}

    ``pref`` (:math:`p_g`) and ``pref_atomic`` (:math:`p_a`) are constants (DeePMD does not
    schedule them with the learning rate); a term whose prefactor is 0 is off.  Metrics, with
    DeePMD 3's lcurve names (``name`` = ``dipole`` or ``polar``): ``rmse_local_<name>`` =
    :math:`\\sqrt{\\text{atomic term}}`, ``rmse_global_<name>`` = :math:`\\sqrt{\\text{global term}} / \\bar N`
    (:math:`\\bar N` = mean atoms per labelled frame), and ``rmse`` = :math:`\\sqrt L` (TF's
    total).  DeePMD's PyTorch backend averages the atomic term over all atoms; here only atoms of
    selected types count, as in its TF backend (the same when every type is selected).

    Parameters
    ----------
    kind : str
        ``"dipole"`` or ``"polar"`` (the head type).
    pref, pref_atomic : float
        Prefactors (>= 0, not both 0) of the global and atomic terms.
    sel_type : list of int or None
        Types whose atoms enter the atomic term (None: all).

    Shapes
    ------
    ``pred`` and ``batch`` hold ``dipole`` ``[B, 3]`` / ``atomic_dipole`` ``[N, 3]`` (or
    ``polarizability`` ``[B, 3, 3]`` / ``atomic_polarizability`` ``[N, 3, 3]``); the batch also
    ``has_<key>`` ``[B]``, ``atom_type`` ``[N]``, ``batch`` ``[N]``, ``natoms`` ``[B]``.
    """

    KEYS = {"dipole": (K.DIPOLE, K.ATOM_DIPOLE, 3), "polar": (K.POLARIZABILITY, K.ATOM_POLARIZABILITY, 9)}

    def __init__(self, kind: str, pref: float = 0.0, pref_atomic: float = 0.0,
                 sel_type: list[int] | None = None) -> None:
        if kind not in self.KEYS:
            raise ValueError(f"tensor loss for head type '{kind}' unknown (expected one of {sorted(self.KEYS)})")
        if pref < 0 or pref_atomic < 0 or (pref == 0 and pref_atomic == 0):
            raise ValueError(f"tensor loss: pref ({pref}) and pref_atomic ({pref_atomic}) must be >= 0 and not both 0")
        self.kind, self.pref, self.pref_atomic = kind, float(pref), float(pref_atomic)
        self.key, self.atom_key, self.size = self.KEYS[kind]
        self.sel_type = None if sel_type is None else [int(t) for t in sel_type]

    @classmethod
    def for_head(cls, head, pref: float = 0.0, pref_atomic: float = 0.0) -> "TensorLoss":
        """Loss for a :class:`~mtzoo.heads.tensor.TensorHead` (its type and selected types)."""
        return cls(head.head_type, pref, pref_atomic, head.sel_types())

    def needs_forces(self) -> bool:
        return False

    def needs_virial(self) -> bool:
        return False

    def __call__(self, pred: dict, batch, lr: float) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss tensor and metrics (NaN where no frame of the batch carries the label); ``lr`` is unused."""
        ref = pred.get(self.key, pred.get(self.atom_key))
        loss = ref.new_zeros(())
        metrics: dict[str, float] = {}
        if self.pref_atomic > 0:
            name = f"rmse_local_{self.kind}"
            metrics[name] = math.nan
            if self.atom_key in batch and self.atom_key in pred:
                m = batch[K.has(self.atom_key)][batch[K.BATCH]]  # per atom
                if self.sel_type is not None:
                    sel = torch.as_tensor(self.sel_type, dtype=batch[K.ATOM_TYPE].dtype, device=m.device)
                    m = m * torch.isin(batch[K.ATOM_TYPE], sel).to(m.dtype)
                d2 = (pred[self.atom_key] - batch[self.atom_key]).reshape(m.shape[0], -1).pow(2).sum(-1) * m
                nm = self.size * m.sum()
                if nm > 0:
                    l2 = d2.sum() / nm
                    loss = loss + self.pref_atomic * l2
                    metrics[name] = math.sqrt(float(l2.detach()))
        if self.pref > 0:
            name = f"rmse_global_{self.kind}"
            metrics[name] = math.nan
            if self.key in batch and self.key in pred:
                m = batch[K.has(self.key)]
                d2 = (pred[self.key] - batch[self.key]).reshape(m.shape[0], -1).pow(2).sum(-1) * m
                nm = m.sum()
                if nm > 0:
                    l2 = d2.sum() / (self.size * nm)
                    loss = loss + self.pref * l2
                    natoms = float((batch[K.NUM_ATOMS].to(m.dtype) * m).sum() / nm)
                    metrics[name] = math.sqrt(float(l2.detach())) / natoms
        metrics["rmse"] = math.sqrt(max(float(loss.detach()), 0.0))
        return loss, metrics
