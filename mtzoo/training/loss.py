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

A term is on when both of its prefactors are non-zero, as DeePMD-kit's ``has_e`` / ``has_f`` /
``has_v``; a term with one zero prefactor is off (with a warning, since that is rarely meant).

``tensor`` (DeePMD ``TensorLoss``, dipole / polarizability heads): see :class:`TensorLoss`.

Shapes (:data:`mtzoo.keys.ITEM_SHAPES`): prediction and label of a graph-level quantity are
``[B, *item]`` (energy ``[B]``, virial ``[B, 3, 3]``, dipole ``[B, 3]``, polarizability
``[B, 3, 3]``), per-atom ones ``[N, *item]``, masks ``[B]``.  Every loss checks them with
:func:`check_shapes` before computing anything: a mismatch is a ``ValueError``, never a broadcast.
"""

from __future__ import annotations

import math
import warnings

import torch

from mtzoo import keys as K
from mtzoo.config import EnerLossConfig


def check_shapes(pred: dict, batch, keys, where: str) -> None:
    """Raise ``ValueError`` unless prediction, label and mask of every key in ``keys`` have the batch layout.

    Parameters
    ----------
    pred : dict
        Model outputs.
    batch : Batch
        Collated graphs (labels, ``has_<key>`` masks ``[B]``, ``natoms`` ``[B]``, ``atom_type`` ``[N]``).
    keys : iterable of str
        Keys to check (those present in both ``pred`` and ``batch``).
    where : str
        Name of the loss, for the message.
    """
    nframes, natoms = int(batch[K.NUM_ATOMS].shape[0]), int(batch[K.ATOM_TYPE].shape[0])
    for key in keys:
        if key not in batch or key not in pred:
            continue
        want = K.batch_shape(key, nframes, natoms)
        for what, t in (("prediction", pred[key]), ("label", batch[key])):
            if tuple(t.shape) != want:
                raise ValueError(f"{where}: {what} '{key}' has shape {tuple(t.shape)}, expected {want} "
                                 f"({nframes} frames, {natoms} atoms; see mtzoo.keys.ITEM_SHAPES)")
        mask = batch[K.has(key)]
        if tuple(mask.shape) != (nframes,):
            raise ValueError(f"{where}: mask '{K.has(key)}' has shape {tuple(mask.shape)}, expected ({nframes},)")


def _term_on(start: float, limit: float, name: str) -> bool:
    """DeePMD-kit's rule: a scheduled term is on when both prefactors are non-zero."""
    if (start == 0) != (limit == 0):
        warnings.warn(f"loss: start_pref_{name} = {start} and limit_pref_{name} = {limit}: the {name} term is "
                      f"off, as in DeePMD-kit (a term needs both prefactors non-zero; a small limit such "
                      f"as 1e-3 keeps it on)", stacklevel=3)
    return start != 0 and limit != 0


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
        self.use_e = _term_on(cfg.start_pref_e, cfg.limit_pref_e, "e")
        self.use_f = _term_on(cfg.start_pref_f, cfg.limit_pref_f, "f")
        self.use_v = _term_on(cfg.start_pref_v, cfg.limit_pref_v, "v")

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
        check_shapes(pred, batch, (K.ENERGY, K.FORCES, K.VIRIAL), "ener loss")
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
        check_shapes(pred, batch, (self.key, self.atom_key), f"tensor loss ({self.kind})")
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
