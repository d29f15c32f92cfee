"""Tensor fitting nets (DeePMD-kit ``dipole`` and ``polar``): equivariant by construction.

A per-type residual MLP maps the invariant descriptor :math:`\\mathcal D_i` of atom :math:`i`
(type :math:`t`) to coefficients that are contracted with the descriptor's axis vectors
:math:`\\mathcal R_i \\in \\mathbb R^{M_1 \\times 3}` (``rot_mat``; rows rotate as vectors), so
rotating the frame by :math:`Q` maps :math:`\\mathcal R_i \\to \\mathcal R_i Q^\\top` and the
outputs transform exactly as vectors / rank-2 tensors.

Dipole (``deepmd/dpmodel/fitting/dipole_fitting.py``):

.. math::

    \\mathbf w_i = \\mathcal F_t(\\mathcal D_i) + \\mathbf b_t \\in \\mathbb R^{M_1},\\qquad
    \\boldsymbol\\mu_i = \\mathbf w_i^\\top \\mathcal R_i \\in \\mathbb R^3

Polarizability (``polarizability_fitting.py`` + ``DPPolarAtomicModel.apply_out_stat``), with
:math:`s_t` = ``scale[t]``:

.. math::

    \\mathbf w_i = s_t\\,(\\mathcal F_t(\\mathcal D_i) + \\mathbf b_t),\\qquad
    P_i = \\begin{cases} \\operatorname{diag}(\\mathbf w_i) & \\text{fit\\_diag} \\\\
          \\tfrac12 (W_i + W_i^\\top),\\ W_i = \\mathbf w_i \\text{ as } M_1 \\times M_1 & \\text{otherwise}\\end{cases}

    \\alpha_i = \\mathcal R_i^\\top P_i \\mathcal R_i
      + [\\text{shift\\_diag}]\\; s_t\\,\\big(c_t + \\tfrac13 \\operatorname{tr} B_t\\big)\\, I_3

where :math:`\\mathbf b_t` is the fitting's ``bias_atom_e``, :math:`c_t` its ``constant_matrix``
and :math:`B_t` the atomic model's ``out_bias`` of type :math:`t` (``[3, 3]``; only the mean of
its diagonal is used, and only with ``shift_diag``).  The dipole model ignores ``out_bias``.

Types outside ``sel_type`` (equivalently in ``exclude_types``) output exactly zero; DeePMD-kit
spells this ``atom_exclude_types`` on the model (``sel_type`` in its TF backend), and its atomic
model copies it to the fitting's ``exclude_types``.  Frame values are the sums of the atomic ones
(done by :class:`mtzoo.model.Model`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mtzoo import keys as K
from mtzoo.heads.base import Head, OutputDef, apply_per_type
from mtzoo.nn.common import to_dtype
from mtzoo.nn.mlp import FittingNet


def _type_list(values, ntypes: int, what: str) -> list[int]:
    out = sorted({int(v) for v in ([values] if isinstance(values, (int, np.integer)) else values)})
    bad = [v for v in out if not 0 <= v < ntypes]
    if bad:
        raise ValueError(f"{what}: atom types {bad} out of range for {ntypes} types")
    return out


class TensorHead(Head):
    """Shared part of the dipole and polarizability heads: per-type nets, bias, type selection.

    Parameters
    ----------
    ntypes : int
        Number of atom types.
    dim_descrpt : int
        Width of the invariant descriptor.
    dim_rot : int
        Number of axis vectors :math:`M_1` of the descriptor (``rot_mat`` ``[N, M1, 3]``); must be > 0.
    neuron : list of int
        Hidden widths of the fitting nets.
    resnet_dt, activation_function, precision, seed : as in DeePMD-kit.
    trainable : bool or list of bool
        One flag for all layers or one per layer (hidden layers plus output layer).
    sel_type : int, list of int or None
        Types that carry the tensor (None: all); the others output exactly zero.
    exclude_types : list of int
        Types that output exactly zero (DeePMD-kit's ``atom_exclude_types``); combined with ``sel_type``.
    layer_name : list or None
        Stored for DeePMD compatibility (parameter sharing is not implemented).
    mixed_types : bool
        One shared net for all types instead of one per type.
    """

    needs_rot = True
    _atom_key = ""

    def __init__(self, ntypes: int, dim_descrpt: int, dim_rot: int, neuron: Sequence[int] = (120, 120, 120),
                 resnet_dt: bool = True, activation_function: str = "tanh", precision: str = "default",
                 trainable: bool | Sequence[bool] = True, seed: int | Sequence[int] | None = None,
                 sel_type: int | Sequence[int] | None = None, exclude_types: Sequence[int] = (),
                 layer_name: Sequence[str | None] | None = None, mixed_types: bool = False) -> None:
        super().__init__()
        if int(dim_rot) < 1:
            raise ValueError(f"a '{self.head_type}' head needs equivariant axis vectors (rot_mat), but the "
                             f"descriptor has dim_rot={dim_rot}; use a descriptor that provides them (e.g. se_e2_a)")
        self.ntypes, self.dim_descrpt, self.dim_rot = int(ntypes), int(dim_descrpt), int(dim_rot)
        self.neuron = [int(n) for n in neuron]
        self.resnet_dt, self.activation_function, self.precision = bool(resnet_dt), activation_function, precision
        self.trainable = trainable if isinstance(trainable, bool) else [bool(t) for t in trainable]
        self.seed, self.mixed_types = seed, bool(mixed_types)
        self.sel_type = None if sel_type is None else _type_list(sel_type, ntypes, "sel_type")
        self.exclude_types = _type_list(exclude_types, ntypes, "exclude_types")
        self.layer_name = list(layer_name) if layer_name else None
        self.dtype = to_dtype(precision)
        n_nets = 1 if self.mixed_types else self.ntypes
        self.nets = nn.ModuleList(
            FittingNet(self.dim_descrpt, self.net_out_dim, self.neuron, activation_function, resnet_dt, self.dtype,
                       seed=None if seed is None else [int(seed), t], trainable=trainable)
            for t in range(n_nets)
        )
        self.register_buffer("bias_atom_e", torch.zeros(self.ntypes, self.net_out_dim, dtype=torch.float64))
        keep = torch.tensor([t in self.sel_types() for t in range(self.ntypes)], dtype=torch.bool)
        self.register_buffer("type_keep", keep, persistent=False)

    # ------------------------------------------------------------------------------------------
    @property
    def net_out_dim(self) -> int:
        return self.dim_rot

    def sel_types(self) -> list[int]:
        """Types whose atoms carry the tensor (in ``sel_type`` and not in ``exclude_types``)."""
        sel = range(self.ntypes) if self.sel_type is None else self.sel_type
        return [t for t in sel if t not in self.exclude_types]

    def get_config(self) -> dict:
        return {"type": self.head_type, "neuron": self.neuron, "resnet_dt": self.resnet_dt,
                "activation_function": self.activation_function, "precision": self.precision,
                "trainable": self.trainable, "seed": self.seed, "sel_type": self.sel_type,
                "exclude_types": self.exclude_types, "layer_name": self.layer_name}

    def _fit(self, desc: torch.Tensor, atom_type: torch.Tensor) -> torch.Tensor:
        """:math:`\\mathcal F_t(\\mathcal D_i) + \\mathbf b_t`, ``[N, net_out_dim]`` in the head's dtype."""
        if self.mixed_types:
            out = self.nets[0](desc)
        else:
            out = apply_per_type(self.nets, desc, atom_type, self.ntypes, self.net_out_dim)
        return out + self.bias_atom_e.to(out.dtype)[atom_type]

    def _contract(self, w: torch.Tensor, rot: torch.Tensor, atom_type: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, features: dict[str, torch.Tensor], atom_type: torch.Tensor) -> dict[str, torch.Tensor]:
        desc = features[K.DESCRIPTOR].to(self.dtype)
        rot = features[K.ROT_MAT].to(self.dtype)
        out = self._contract(self._fit(desc, atom_type), rot, atom_type).to(torch.float64)
        keep = self.type_keep[atom_type].view(-1, *([1] * (out.dim() - 1)))
        return {self._atom_key: torch.where(keep, out, torch.zeros_like(out))}

    def compute_output_stats(self, systems, type_map) -> None:
        """Output statistics from training data (DeePMD-kit ``set-by-statistic``).

        The dipole model has none (DeePMD-kit computes an ``out_bias`` but never applies it);
        :class:`PolarHead` overrides this.
        """

    def _load_common(self, data: dict) -> None:
        if int(data.get("embedding_width", self.dim_rot)) != self.dim_rot:
            raise ValueError(f"DeePMD fitting embedding_width {data['embedding_width']} != descriptor dim_rot {self.dim_rot}")
        nets = data["nets"]["networks"]
        if len(nets) != len(self.nets):
            raise ValueError(f"DeePMD fitting has {len(nets)} nets, mtzoo built {len(self.nets)}")
        for net, nd in zip(self.nets, nets):
            net.load_deepmd(nd)
        bias = np.asarray(data["@variables"]["bias_atom_e"], dtype=np.float64).reshape(self.ntypes, self.net_out_dim)
        self.bias_atom_e.copy_(torch.as_tensor(bias))


class DipoleHead(TensorHead):
    """Atomic dipoles :math:`\\boldsymbol\\mu_i = (\\mathcal F_t(\\mathcal D_i) + \\mathbf b_t)^\\top \\mathcal R_i`
    (DeePMD-kit ``dipole`` fitting; see the module docstring).

    Parameters are those of :class:`TensorHead`.

    Shapes
    ------
    descriptor ``[N, dim_descrpt]``, rot_mat ``[N, M1, 3]``, atom_type ``[N]`` ->
    ``atomic_dipole`` ``[N, 3]`` (summed by the model into ``dipole`` ``[B, 3]``).
    """

    head_type = "dipole"
    outputs = (OutputDef(K.DIPOLE, K.ATOM_DIPOLE, (3,), reducible=True, differentiable=False),)
    _atom_key = K.ATOM_DIPOLE

    def _contract(self, w: torch.Tensor, rot: torch.Tensor, atom_type: torch.Tensor) -> torch.Tensor:
        return torch.bmm(w.unsqueeze(1), rot).squeeze(1)  # [N, 1, M1] @ [N, M1, 3]

    def load_deepmd(self, fitting: dict, out_bias: np.ndarray | None = None, out_std: np.ndarray | None = None) -> None:
        """Copy nets and ``bias_atom_e`` from DeePMD-kit's serialized ``dipole`` fitting.

        ``out_bias`` / ``out_std`` of the atomic model are accepted and ignored, as DeePMD-kit's
        dipole atomic model does (``DPDipoleAtomicModel.apply_out_stat`` returns its input).
        """
        self._load_common(fitting)


class PolarHead(TensorHead):
    """Atomic polarizabilities :math:`\\alpha_i = \\mathcal R_i^\\top P_i \\mathcal R_i + \\text{shift}`
    (DeePMD-kit ``polar`` fitting; see the module docstring for :math:`P_i` and the shift).

    Parameters
    ----------
    fit_diag : bool
        The net outputs the :math:`M_1` diagonal entries of :math:`P_i` (True) or all
        :math:`M_1^2` entries, symmetrised (False).
    scale : float or list of float
        Per-type factor :math:`s_t` applied to the net output (and to the diagonal shift).
    shift_diag : bool
        Add :math:`s_t (c_t + \\operatorname{tr} B_t / 3) I`.
    **kwargs
        As in :class:`TensorHead`.

    Shapes
    ------
    descriptor ``[N, dim_descrpt]``, rot_mat ``[N, M1, 3]``, atom_type ``[N]`` ->
    ``atomic_polarizability`` ``[N, 3, 3]`` (symmetric; summed into ``polarizability`` ``[B, 3, 3]``).
    """

    head_type = "polar"
    outputs = (OutputDef(K.POLARIZABILITY, K.ATOM_POLARIZABILITY, (3, 3), reducible=True, differentiable=False),)
    _atom_key = K.ATOM_POLARIZABILITY

    def __init__(self, ntypes: int, dim_descrpt: int, dim_rot: int, fit_diag: bool = True,
                 scale: float | Sequence[float] | None = None, shift_diag: bool = True, **kwargs) -> None:
        self.fit_diag = bool(fit_diag)
        super().__init__(ntypes, dim_descrpt, dim_rot, **kwargs)
        self.shift_diag = bool(shift_diag)
        if scale is None:
            scale = 1.0
        scale = [float(scale)] * self.ntypes if np.ndim(scale) == 0 else [float(s) for s in np.ravel(scale)]
        if len(scale) != self.ntypes:
            raise ValueError(f"polar scale has {len(scale)} entries, expected one per type ({self.ntypes})")
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float64))
        self.register_buffer("constant_matrix", torch.zeros(self.ntypes, dtype=torch.float64))
        self.register_buffer("out_bias", torch.zeros(self.ntypes, 3, 3, dtype=torch.float64))

    @property
    def net_out_dim(self) -> int:
        return self.dim_rot if self.fit_diag else self.dim_rot * self.dim_rot

    def get_config(self) -> dict:
        return {**super().get_config(), "fit_diag": self.fit_diag, "scale": self.scale.tolist(),
                "shift_diag": self.shift_diag}

    def _contract(self, w: torch.Tensor, rot: torch.Tensor, atom_type: torch.Tensor) -> torch.Tensor:
        s = self.scale.to(w.dtype)[atom_type]
        w = w * s.unsqueeze(-1)
        if self.fit_diag:
            pr = w.unsqueeze(-1) * rot  # diag(w) R: [N, M1, 3]
        else:
            p = w.view(-1, self.dim_rot, self.dim_rot)
            pr = torch.bmm((p + p.transpose(1, 2)) / 2, rot)
        out = torch.bmm(rot.transpose(1, 2), pr)  # R^T P R: [N, 3, 3]
        if self.shift_diag:
            eye = torch.eye(3, dtype=out.dtype, device=out.device)
            c = (self.constant_matrix.to(out.dtype)[atom_type] * s)[:, None, None]
            out = out + c * eye
            mean_diag = torch.diagonal(self.out_bias, dim1=-2, dim2=-1).mean(-1).to(out.dtype)
            out = out + (mean_diag[atom_type] * s)[:, None, None] * eye
        return out

    @torch.no_grad()
    def compute_output_stats(self, systems, type_map, rcond: float | None = None) -> None:
        """Set ``out_bias`` from the labels of ``systems`` (DeePMD-kit's ``set-by-statistic``).

        See :func:`tensor_out_bias`; only the mean of its diagonal enters the output (with ``shift_diag``).
        """
        bias = tensor_out_bias(systems, type_map, K.POLARIZABILITY, K.ATOM_POLARIZABILITY, self.sel_types(), rcond)
        if bias is not None:
            self.out_bias.copy_(torch.as_tensor(bias.reshape(self.ntypes, 3, 3)))

    def load_deepmd(self, fitting: dict, out_bias: np.ndarray | None = None, out_std: np.ndarray | None = None) -> None:
        """Copy nets, ``bias_atom_e``, ``scale`` and ``constant_matrix`` from DeePMD-kit's ``polar``
        fitting, and the atomic model's ``out_bias`` (``[1, ntypes, 9]``; ``out_std`` is unused by
        DeePMD-kit's polar model and ignored here)."""
        self._load_common(fitting)
        var = fitting["@variables"]
        self.scale.copy_(torch.as_tensor(np.asarray(var["scale"], dtype=np.float64).reshape(self.ntypes)))
        self.constant_matrix.copy_(torch.as_tensor(np.asarray(var["constant_matrix"], dtype=np.float64).reshape(self.ntypes)))
        if fitting.get("fit_diag", self.fit_diag) != self.fit_diag or fitting.get("shift_diag", self.shift_diag) != self.shift_diag:
            raise ValueError("DeePMD fitting fit_diag/shift_diag differ from this head's")
        if out_bias is not None:
            self.out_bias.copy_(torch.as_tensor(np.asarray(out_bias, dtype=np.float64).reshape(-1, self.ntypes, 9)[0]
                                                .reshape(self.ntypes, 3, 3)))


def tensor_out_bias(systems, type_map: Sequence[str], key: str, atom_key: str, sel_types: Sequence[int],
                    rcond: float | None = None) -> np.ndarray | None:
    """Per-type output bias of a tensor label, as DeePMD-kit's ``compute_output_stats``.

    Atomic labels give the mean over the atoms of each type,
    :math:`B_t = \\langle \\boldsymbol\\tau_i \\rangle_{t_i = t}`; frame labels the least-squares
    solution of :math:`\\sum_t n_{bt} B_t = \\boldsymbol\\tau_b` with :math:`n_{bt}` the number of
    atoms of type :math:`t` in frame :math:`b`, counting only types in ``sel_types``.  Atomic
    statistics take precedence; types without atoms there take the frame solution, and types
    in neither get 0.

    Shapes
    ------
    returns ``[ntypes, d]`` (``d`` = 3 or 9), or None when no system has either label.
    """
    nt = len(type_map)
    keep = np.isin(np.arange(nt), list(sel_types))
    atomic, counts, frames = [], [], []
    for s in systems:
        types = s.model_types(list(type_map))
        if atom_key in s.labels and s.masks[atom_key].any():
            lab = s.labels[atom_key][s.masks[atom_key]]
            atomic.append((np.broadcast_to(types, lab.shape[:2]).ravel(), lab.reshape(-1, lab[0, 0].size)))
        if key in s.labels and s.masks[key].any():
            lab = s.labels[key][s.masks[key]]
            counts.append(np.repeat((np.bincount(types, minlength=nt) * keep)[None], lab.shape[0], 0))
            frames.append(lab.reshape(lab.shape[0], -1))
    if not atomic and not frames:
        return None
    dim = (atomic[0][1] if atomic else frames[0]).shape[1]
    bias = np.full((nt, dim), np.nan)
    if atomic:
        t_all = np.concatenate([t for t, _ in atomic])
        v_all = np.concatenate([v for _, v in atomic])
        for t in range(nt):
            if (t_all == t).any():
                bias[t] = v_all[t_all == t].mean(0)
    if frames:
        glob, *_ = np.linalg.lstsq(np.concatenate(counts).astype(np.float64), np.concatenate(frames), rcond=rcond)
        bias = np.where(np.isnan(bias), glob, bias)
    return np.nan_to_num(bias)
