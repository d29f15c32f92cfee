r"""Energy fitting net (DeePMD-kit ``ener``): one residual MLP per atom type plus a per-type bias.

.. math::

    E_i = \mathcal F_{t_i}(\mathcal D_i) + b_{t_i},\qquad E = \sum_i E_i

The bias :math:`b_t` is fitted by least squares on the training energies
(:func:`fit_energy_bias`) so the nets learn only the remainder.

With ``correction_neuron`` (an mtzoo extension for fine-tuning a new level of theory) each type
also has a correction net :math:`\mathcal C_t` whose output layer starts at zero:

.. math::

    E_i = \mathcal F_{t_i}(\mathcal D_i) + \mathcal C_{t_i}(\mathcal D_i) + b_{t_i}

``mtzoo finetune --head-mode correction`` copies an old head into :math:`\mathcal F` (frozen) and
its shifted bias into :math:`b`, so before training the new head predicts the old level plus the
refitted bias exactly, and training learns the (smoother) difference between the levels.

With ``pair_correction`` the head also has a two-body term :math:`E_i^{\mathrm{pair}}`
(:class:`~mtzoo.heads.pair.PairCorrection`, zero until fitted), added to :math:`E_i` by
:meth:`mtzoo.model.Model.head_outputs`, which has the edge vectors it needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mtzoo import keys as K
from mtzoo.heads.base import Head, OutputDef, apply_per_type, type_order
from mtzoo.heads.pair import PairCorrection
from mtzoo.nn.common import to_dtype
from mtzoo.nn.mlp import FittingNet


class EnergyHead(Head):
    """Per-type energy fitting nets.

    Parameters
    ----------
    ntypes : int
        Number of atom types.
    dim_descrpt : int
        Width of the descriptor.
    neuron : list of int
        Hidden widths.
    resnet_dt, activation_function, precision, seed : as in DeePMD-kit.
    trainable : bool or list of bool
        One flag for all layers or one per layer (hidden layers plus output layer).
    mixed_types : bool
        One shared net for all types (descriptors with type embedding) instead of one per type.
    rcond : float or None
        Cut-off for small singular values in the bias least-squares fit.
    atom_ener : list of float or None
        Fixed energies of isolated atoms per type (None entries are fitted).
    correction_neuron : list of int or None
        Hidden widths of the correction nets, one per type also for mixed-type descriptors (so the
        correction knows the element) (None: none); their output layers are initialised to zero,
        so they add nothing until trained.  Always trainable.
    zero_init : bool
        Start the nets' output layers at zero (weights and bias): before training the head predicts
        its per-type bias :math:`b_t` (the least-squares atomic energies) and no forces, instead of
        the random energy surface of DeePMD-kit's initialisation (an mtzoo extension).

    Shapes
    ------
    descriptor ``[N, dim_descrpt]``, atom_type ``[N]`` -> ``atom_energy`` ``[N]``.
    """

    head_type = "ener"
    outputs = (OutputDef(K.ENERGY, K.ATOM_ENERGY, (), reducible=True, differentiable=True),)

    def __init__(self, ntypes: int, dim_descrpt: int, neuron: Sequence[int] = (120, 120, 120), resnet_dt: bool = True,
                 activation_function: str = "tanh", precision: str = "default",
                 trainable: bool | Sequence[bool] = True, seed: int | Sequence[int] | None = None,
                 mixed_types: bool = False, rcond: float | None = None,
                 atom_ener: Sequence[float | None] | None = None, layer_name: Sequence[str | None] | None = None,
                 correction_neuron: Sequence[int] | None = None, pair_correction: dict | None = None,
                 zero_init: bool = False) -> None:
        super().__init__()
        self.ntypes, self.dim_descrpt = ntypes, dim_descrpt
        self.neuron = [int(n) for n in neuron]
        self.resnet_dt, self.activation_function, self.precision = bool(resnet_dt), activation_function, precision
        self.trainable = trainable if isinstance(trainable, bool) else [bool(t) for t in trainable]
        self.seed, self.mixed_types, self.rcond = seed, bool(mixed_types), rcond
        self.atom_ener = list(atom_ener) if atom_ener else []
        self.layer_name = list(layer_name) if layer_name else None
        self.dtype = to_dtype(precision)
        n_nets = 1 if mixed_types else ntypes
        self.nets = nn.ModuleList(
            FittingNet(dim_descrpt, 1, self.neuron, activation_function, resnet_dt, self.dtype,
                       seed=None if seed is None else [int(seed), t], trainable=trainable)
            for t in range(n_nets)
        )
        self.zero_init = bool(zero_init)
        if self.zero_init:
            with torch.no_grad():
                for net in self.nets:
                    _zero_output(net)
        self.register_buffer("bias_atom_e", torch.zeros(ntypes, dtype=torch.float64))
        self.correction_neuron = None if correction_neuron is None else [int(n) for n in correction_neuron]
        self.corrections = None
        if self.correction_neuron is not None:
            base_seed = 0 if seed is None else int(seed if isinstance(seed, int) else seed[0])
            self.corrections = nn.ModuleList(
                FittingNet(dim_descrpt, 1, self.correction_neuron, activation_function, resnet_dt, self.dtype,
                           seed=[base_seed, 1000 + t], trainable=True)
                for t in range(ntypes)  # one per type even with a mixed-type descriptor (element-aware)
            )
            with torch.no_grad():  # the correction starts at exactly zero
                for net in self.corrections:
                    _zero_output(net)
        self.pair = None if pair_correction is None else PairCorrection(ntypes, **pair_correction)

    def get_config(self) -> dict:
        cfg = {"type": "ener", "neuron": self.neuron, "resnet_dt": self.resnet_dt,
               "activation_function": self.activation_function, "precision": self.precision,
               "trainable": self.trainable, "seed": self.seed, "rcond": self.rcond,
               "atom_ener": self.atom_ener, "layer_name": self.layer_name}
        if self.correction_neuron is not None:
            cfg["correction_neuron"] = self.correction_neuron
        if self.zero_init:
            cfg["zero_init"] = True
        if self.pair is not None:
            cfg["pair_correction"] = self.pair.get_config()
        return cfg

    def forward(self, features: dict[str, torch.Tensor], atom_type: torch.Tensor) -> dict[str, torch.Tensor]:
        desc = features[K.DESCRIPTOR].to(self.dtype)
        out = self._run_nets(self.nets, desc, atom_type)
        if self.corrections is not None:
            out = out + apply_per_type(self.corrections, desc, atom_type, self.ntypes, 1).squeeze(-1)
        return {K.ATOM_ENERGY: out.to(torch.float64) + self.bias_atom_e[atom_type]}

    def _run_nets(self, nets, desc: torch.Tensor, atom_type: torch.Tensor) -> torch.Tensor:
        if self.mixed_types:
            return nets[0](desc).squeeze(-1)
        return apply_per_type(nets, desc, atom_type, self.ntypes, 1).squeeze(-1)

    #: :meth:`energy_and_grad` takes se_e2_a's folded descriptor (``fold``)
    energy_grad_by_hand = True
    takes_folded = True

    def energy_and_grad(self, features: dict[str, torch.Tensor], atom_type: torch.Tensor,
                        fold: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Atomic energies and :math:`\\partial E/\\partial \\mathcal D` (:math:`E = \\sum_i E_i`)
        from the fitting nets' hand-written backward pass
        (:meth:`~mtzoo.nn.mlp.FittingNet.value_and_input_grad`): the forces path of
        :meth:`mtzoo.model.Model.forward` when no graph of the derivatives is kept.  Same values
        as :meth:`forward` and autograd; nothing is recorded for autograd.

        ``fold`` (keep, mirror; :func:`mtzoo.descriptors.se_e2_a.folded_index`): the descriptor
        comes in that folded layout ``[N, F]`` and the first layers' weights are folded to match;
        ``dE/dD`` is then in the folded layout too.

        Shapes
        ------
        descriptor ``[N, D]``, atom_type ``[N]`` -> ``atom_energy [N]`` (float64), ``dE/dD [N, D]``
        (the descriptor's dtype).
        """
        desc = features[K.DESCRIPTOR]
        x = desc.detach().to(self.dtype)
        e, g = self._value_and_grad(self.nets, x, atom_type, fold)
        if self.corrections is not None:
            ec, gc = self._value_and_grad(self.corrections, x, atom_type, fold, per_type=True)
            e, g = e + ec, g + gc
        return e.squeeze(-1).to(torch.float64) + self.bias_atom_e[atom_type], g.to(desc.dtype)

    def _value_and_grad(self, nets, x: torch.Tensor, atom_type: torch.Tensor, fold,
                        per_type: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, 1]`` values and ``[N, D]`` input gradients of one set of nets (one shared net for
        mixed types unless ``per_type``)."""
        if self.mixed_types and not per_type:
            return nets[0].value_and_input_grad(x, fold=fold)
        sizes, order = type_order(atom_type, self.ntypes)
        xs = x if order is None else x.index_select(0, order)
        # each type's rows of dE/dD written in place (no concatenation of [N, D] parts)
        e, g = x.new_empty(x.shape[0], 1), torch.empty_like(x)
        for net, p, ep, gp in zip(nets, torch.split(xs, sizes), torch.split(e, sizes), torch.split(g, sizes)):
            if p.shape[0]:
                net.value_and_input_grad(p, out=(ep, gp), fold=fold)
        if order is not None:
            e, g = e.new_empty(e.shape).index_copy(0, order, e), g.new_empty(g.shape).index_copy(0, order, g)
        return e, g

    @torch.no_grad()
    def compute_output_stats(self, systems, type_map) -> None:
        """Per-type energy bias from a least-squares fit to the energies of ``systems``."""
        bias = energy_bias_from_systems(systems, type_map, self.rcond, self.atom_ener)
        if bias is not None:
            self.bias_atom_e.copy_(torch.as_tensor(bias, dtype=torch.float64))

    def load_deepmd(self, data: dict, out_bias: np.ndarray | None = None) -> None:
        """Copy nets and bias from DeePMD-kit's serialized ``ener`` fitting (plus the atomic model's ``out_bias``)."""
        for net, nd in zip(self.nets, data["nets"]["networks"]):
            net.load_deepmd(nd)
        bias = np.asarray(data["@variables"]["bias_atom_e"]).reshape(self.ntypes)
        if out_bias is not None:
            bias = bias + np.asarray(out_bias).reshape(-1, self.ntypes)[0]
        self.bias_atom_e.copy_(torch.as_tensor(bias, dtype=torch.float64))


def _zero_output(net) -> None:
    """Set the output layer of a fitting net to zero (weights and bias)."""
    net.layers[-1].weight.zero_()
    if net.layers[-1].bias is not None:
        net.layers[-1].bias.zero_()


def fit_energy_bias(type_counts: np.ndarray, energies: np.ndarray, rcond: float | None = None,
                    atom_ener: Sequence[float | None] | None = None) -> np.ndarray:
    """Least-squares per-type energies :math:`b = \\arg\\min \\|C b - E\\|^2`.

    Parameters
    ----------
    type_counts : np.ndarray
        ``[nframes, ntypes]`` atoms of each type per frame.
    energies : np.ndarray
        ``[nframes]`` total energies.
    rcond : float or None
        Passed to ``numpy.linalg.lstsq``.
    atom_ener : list or None
        Fixed values per type (None = fit); fixed types are removed from the fit.

    Returns
    -------
    np.ndarray
        ``[ntypes]`` bias; types absent from the data get 0 (or their fixed value).
    """
    c = np.asarray(type_counts, dtype=np.float64)
    e = np.asarray(energies, dtype=np.float64).copy()
    nt = c.shape[1]
    bias = np.zeros(nt)
    fixed = {t: v for t, v in enumerate(atom_ener or []) if v is not None}
    for t, v in fixed.items():
        bias[t] = v
        e -= c[:, t] * v
    free = [t for t in range(nt) if t not in fixed and c[:, t].any()]
    if free:
        sol, *_ = np.linalg.lstsq(c[:, free], e, rcond=rcond)
        bias[free] = sol
    return bias


def energy_bias_from_systems(systems, type_map, rcond=None, atom_ener=None, predict=None) -> np.ndarray | None:
    """:func:`fit_energy_bias` over every frame of ``systems`` that has an energy label (None if none has).

    ``predict`` (optional): a function ``system -> [nframes]`` energies; the fit is then to the
    residuals ``E - predict(system)`` (a bias *shift*, as in fine-tuning).
    """
    counts, energies = [], []
    for s in systems:
        if K.ENERGY not in s.labels or not s.masks[K.ENERGY].any():
            continue
        m = s.masks[K.ENERGY]
        c = np.bincount(s.model_types(list(type_map)), minlength=len(type_map))
        counts.append(np.repeat(c[None], int(m.sum()), 0))
        e = s.labels[K.ENERGY]
        energies.append((e - predict(s))[m] if predict is not None else e[m])
    if not counts:
        return None
    return fit_energy_bias(np.concatenate(counts), np.concatenate(energies), rcond, atom_ener)


def undetermined_compositions(type_counts: np.ndarray, type_map: Sequence[str]) -> str | None:
    r"""A message when the frames' compositions do not determine every per-element energy.

    With :math:`C` the ``[nframes, ntypes]`` atom counts, the per-element energies of the elements
    present are fixed by a least-squares fit only when :math:`\mathrm{rank}\, C` equals their
    number; otherwise a molecule whose composition is not a combination of the frames' ones gets
    an energy offset along the null space of :math:`C` that no frame constrains.  Returns None when
    every per-element energy is determined, else one sentence naming the compositions seen.
    """
    c = np.asarray(type_counts, dtype=np.float64)
    present = np.flatnonzero(c.any(0))
    if present.size == 0:
        return None
    rank = int(np.linalg.matrix_rank(c[:, present]))
    if rank >= present.size:
        return None
    rows = np.unique(c[:, present].astype(int), axis=0)
    names = [_hill_formula({type_map[t]: int(n) for t, n in zip(present, row) if n}) for row in rows]
    return (f"the frames have {len(rows)} composition(s) ({', '.join(names)}) for {present.size} elements "
            f"({', '.join(type_map[t] for t in present)}): {present.size - rank} combination(s) of the per-element "
            "energies are not determined, so molecules of other compositions get an energy offset that no frame "
            "constrains (the old level's, shifted by the minimum-norm fit); add frames of other compositions")


def _hill_formula(counts: dict[str, int]) -> str:
    """Chemical formula in Hill order (C, H, then the others alphabetically; all alphabetical without C)."""
    order = (["C", "H"] if "C" in counts else []) + sorted(e for e in counts if "C" not in counts or e not in ("C", "H"))
    return "".join(f"{e}{counts[e] if counts[e] > 1 else ''}" for e in order if e in counts)
