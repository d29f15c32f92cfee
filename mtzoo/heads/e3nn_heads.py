"""Native tensor heads for descriptors with e3nn irreps features (``irreps_out``, e.g. ``e3nn_mp``).

:func:`mtzoo.heads.build_head` picks these for the ``dipole`` / ``polar`` fitting types when the
descriptor declares ``irreps_out``; they output the same keys as the se_* tensor heads
(:mod:`mtzoo.heads.tensor`), so the tensor loss and evaluation work unchanged.

A per-type equivariant linear readout (one e3nn ``Linear`` to ``ntypes`` copies of the target
irreps; atom :math:`i` of type :math:`t` takes copy :math:`t`) of the equivariant features
:math:`h_i` (``keys.EQUIVARIANT``):

.. math::

    \\boldsymbol\\mu_i = L^{1o}_{t}(h_i)

    \\alpha_i = s_t\\, C\\big(L^{0e}_{t}(h_i),\\, L^{2e}_{t}(h_i)\\big)
      + [\\text{shift\\_diag}]\\; s_t\\, \\tfrac13 \\operatorname{tr} B_t\\, I_3

with :math:`C` the change of basis from ``1x0e + 1x2e`` to symmetric 3x3 matrices
(``e3nn.io.CartesianTensor("ij=ji")``), :math:`s_t` the per-type ``scale`` and :math:`B_t`
the per-type mean label (``out_bias``, from :func:`~mtzoo.heads.tensor.tensor_out_bias`).
e3nn's ``1o`` basis is Cartesian ``(x, y, z)``, so the dipole needs no change of basis.
Both are exactly equivariant (up to round-off) because :math:`h_i` is.  Types outside
``sel_type`` (or in ``exclude_types``) output exactly zero.

Keys of the se_* tensor fittings that concern their MLPs (``neuron``, ``resnet_dt``,
``activation_function``, ``fit_diag``) are accepted so that one input file works with either
descriptor, and stored; the linear readout does not use them.  ``layer_name`` (parameter
sharing) is not supported here and is rejected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from e3nn import o3
from e3nn.io import CartesianTensor

from mtzoo import keys as K
from mtzoo.heads.base import Head, OutputDef
from mtzoo.heads.tensor import _type_list, tensor_out_bias
from mtzoo.nn.common import default_dtype, to_dtype


class E3nnTensorHead(Head):
    """Shared part of :class:`E3nnDipoleHead` and :class:`E3nnPolarHead`.

    Parameters
    ----------
    ntypes : int
        Number of atom types.
    irreps_in : str
        Irreps of the descriptor's equivariant features (given by ``build_head``).
    dim_descrpt, mixed_types : accepted for the common head interface (unused).
    precision, seed, trainable : as for the se_* heads (``trainable`` may be a list: all must agree).
    sel_type, exclude_types : atom types that carry the tensor (None: all) / that output zero.
    neuron, resnet_dt, activation_function : accepted and stored (see module docstring).
    layer_name : must be None.
    """

    _atom_key = ""
    target = o3.Irreps("")

    def __init__(self, ntypes: int, irreps_in: str, dim_descrpt: int = 0, mixed_types: bool = True,
                 neuron: Sequence[int] = (120, 120, 120), resnet_dt: bool = True, activation_function: str = "tanh",
                 precision: str = "default", trainable: bool | Sequence[bool] = True,
                 seed: int | Sequence[int] | None = None, sel_type: int | Sequence[int] | None = None,
                 exclude_types: Sequence[int] = (), layer_name: Sequence[str | None] | None = None) -> None:
        super().__init__()
        if layer_name and any(n is not None for n in layer_name):
            raise ValueError(f"layer_name (parameter sharing) is not supported by the e3nn '{self.head_type}' head")
        self.ntypes, self.irreps_in = int(ntypes), o3.Irreps(irreps_in)
        self.neuron, self.resnet_dt, self.activation_function = [int(n) for n in neuron], bool(resnet_dt), activation_function
        self.precision, self.seed = precision, seed
        self.trainable = trainable if isinstance(trainable, bool) else [bool(t) for t in trainable]
        self.sel_type = None if sel_type is None else _type_list(sel_type, ntypes, "sel_type")
        self.exclude_types = _type_list(exclude_types, ntypes, "exclude_types")
        self.dtype = to_dtype(precision)
        with torch.random.fork_rng(devices=[]), default_dtype(torch.float64):  # e3nn constants in float64
            if seed is not None:
                torch.manual_seed(int(np.ravel(seed)[0]))
            self.linear = o3.Linear(self.irreps_in, o3.Irreps([(self.ntypes, ir) for _, ir in self.target]))
        self.linear.to(self.dtype)
        if not (all(self.trainable) if isinstance(self.trainable, list) else self.trainable):
            self.linear.requires_grad_(False)
        keep = torch.tensor([t in self.sel_types() for t in range(self.ntypes)], dtype=torch.bool)
        self.register_buffer("type_keep", keep, persistent=False)

    def sel_types(self) -> list[int]:
        """Types whose atoms carry the tensor (in ``sel_type`` and not in ``exclude_types``)."""
        sel = range(self.ntypes) if self.sel_type is None else self.sel_type
        return [t for t in sel if t not in self.exclude_types]

    def check_descriptor(self, descriptor) -> None:
        irreps = getattr(descriptor, "irreps_out", None)
        have = set() if irreps is None else {ir for _, ir in o3.Irreps(irreps)}
        missing = [str(ir) for _, ir in self.target if ir not in have]
        if irreps is None or o3.Irreps(irreps) != self.irreps_in or missing:
            hint = ("; it was built with scalar_last_layer (0e outputs only, chosen when every head is an energy "
                    "head): train the descriptor with \"scalar_last_layer\": false to add this head"
                    if getattr(descriptor, "scalar_last_layer", False) else "")
            raise ValueError(f"the e3nn '{self.head_type}' head needs equivariant features {self.irreps_in} with "
                             f"{' and '.join(str(ir) for _, ir in self.target)} channels; descriptor "
                             f"'{descriptor.type_name}' provides {irreps}{hint}")

    def get_config(self) -> dict:
        return {"type": self.head_type, "neuron": self.neuron, "resnet_dt": self.resnet_dt,
                "activation_function": self.activation_function, "precision": self.precision,
                "trainable": self.trainable, "seed": self.seed, "sel_type": self.sel_type,
                "exclude_types": self.exclude_types}

    def _per_type(self, h: torch.Tensor, atom_type: torch.Tensor) -> list[torch.Tensor]:
        """Readout of each target irrep for each atom's own type: list of ``[N, 2l+1]``."""
        y = self.linear(h)  # (ntypes x ir) for each target irrep, in target order
        out, start = [], 0
        for _, ir in self.target:
            block = y[:, start: start + self.ntypes * ir.dim].view(-1, self.ntypes, ir.dim)
            out.append(block[torch.arange(h.shape[0], device=h.device), atom_type])
            start += self.ntypes * ir.dim
        return out

    def _assemble(self, parts: list[torch.Tensor], atom_type: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, features: dict[str, torch.Tensor], atom_type: torch.Tensor) -> dict[str, torch.Tensor]:
        h = features[K.EQUIVARIANT].to(self.dtype)
        out = self._assemble(self._per_type(h, atom_type), atom_type).to(torch.float64)
        keep = self.type_keep[atom_type].view(-1, *([1] * (out.dim() - 1)))
        return {self._atom_key: torch.where(keep, out, torch.zeros_like(out))}

    def compute_output_stats(self, systems, type_map) -> None:
        """No statistics for the dipole; :class:`E3nnPolarHead` overrides this."""


class E3nnDipoleHead(E3nnTensorHead):
    """Atomic dipoles :math:`\\boldsymbol\\mu_i = L^{1o}_t(h_i)` (see module docstring).

    Shapes
    ------
    equivariant ``[N, irreps_in.dim]``, atom_type ``[N]`` -> ``atomic_dipole`` ``[N, 3]``.
    """

    head_type = "dipole"
    outputs = (OutputDef(K.DIPOLE, K.ATOM_DIPOLE, (3,), reducible=True, differentiable=False),)
    _atom_key = K.ATOM_DIPOLE
    target = o3.Irreps("1x1o")

    def _assemble(self, parts: list[torch.Tensor], atom_type: torch.Tensor) -> torch.Tensor:
        return parts[0]


class E3nnPolarHead(E3nnTensorHead):
    """Atomic polarizabilities from ``1x0e + 1x2e`` (see module docstring).

    Parameters
    ----------
    fit_diag : bool
        Accepted and stored (the readout always gives the full symmetric tensor).
    scale : float or list of float
        Per-type factor :math:`s_t`.
    shift_diag : bool
        Add :math:`s_t \\operatorname{tr} B_t / 3\\, I` (``out_bias`` from the training labels).
    **kwargs
        As in :class:`E3nnTensorHead`.

    Shapes
    ------
    equivariant ``[N, irreps_in.dim]``, atom_type ``[N]`` -> ``atomic_polarizability`` ``[N, 3, 3]`` (symmetric).
    """

    head_type = "polar"
    outputs = (OutputDef(K.POLARIZABILITY, K.ATOM_POLARIZABILITY, (3, 3), reducible=True, differentiable=False),)
    _atom_key = K.ATOM_POLARIZABILITY
    target = o3.Irreps("1x0e + 1x2e")

    def __init__(self, ntypes: int, irreps_in: str, fit_diag: bool = True, scale: float | Sequence[float] | None = None,
                 shift_diag: bool = True, **kwargs) -> None:
        super().__init__(ntypes, irreps_in, **kwargs)
        self.fit_diag, self.shift_diag = bool(fit_diag), bool(shift_diag)
        scale = 1.0 if scale is None else scale
        scale = [float(scale)] * self.ntypes if np.ndim(scale) == 0 else [float(s) for s in np.ravel(scale)]
        if len(scale) != self.ntypes:
            raise ValueError(f"polar scale has {len(scale)} entries, expected one per type ({self.ntypes})")
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float64))
        self.register_buffer("out_bias", torch.zeros(self.ntypes, 3, 3, dtype=torch.float64))
        # change of basis 1x0e + 1x2e -> symmetric 3x3, exactly symmetrised: [6, 3, 3]
        with default_dtype(torch.float64):
            q = CartesianTensor("ij=ji").to_cartesian(torch.eye(6, dtype=torch.float64))
        self.register_buffer("basis", (q + q.transpose(1, 2)) / 2, persistent=False)

    def get_config(self) -> dict:
        return {**super().get_config(), "fit_diag": self.fit_diag, "scale": self.scale.tolist(),
                "shift_diag": self.shift_diag}

    def _assemble(self, parts: list[torch.Tensor], atom_type: torch.Tensor) -> torch.Tensor:
        x = torch.cat(parts, dim=1)  # [N, 6] = (0e, 2e)
        s = self.scale.to(x.dtype)[atom_type]
        out = torch.einsum("nk,kab->nab", x, self.basis.to(x.dtype)) * s[:, None, None]
        if self.shift_diag:
            mean_diag = torch.diagonal(self.out_bias, dim1=-2, dim2=-1).mean(-1).to(out.dtype)
            out = out + (mean_diag[atom_type] * s)[:, None, None] * torch.eye(3, dtype=out.dtype, device=out.device)
        return out

    @torch.no_grad()
    def compute_output_stats(self, systems, type_map, rcond: float | None = None) -> None:
        """``out_bias`` from the polarizability labels (as :class:`mtzoo.heads.tensor.PolarHead`)."""
        bias = tensor_out_bias(systems, type_map, K.POLARIZABILITY, K.ATOM_POLARIZABILITY, self.sel_types(), rcond)
        if bias is not None:
            self.out_bias.copy_(torch.as_tensor(bias.reshape(self.ntypes, 3, 3)))
