"""Schemas of the tensor heads: the ``dipole`` and ``polar`` fittings and the ``tensor`` loss.

Key names, defaults and aliases follow DeePMD-kit 3.2 (``deepmd/utils/argcheck.py``,
``fitting_dipole``, ``fitting_polar``, ``loss_tensor``); keys of DeePMD-kit's fitting
classes that argcheck does not list (``trainable``, ``layer_name``, ``exclude_types``,
``r_differentiable``, ``c_differentiable``) are accepted too, and written by ``to_dict``
only when not at their default (so that DeePMD-kit reads mtzoo's ``out.json``).  A ``dipole``/``polar``
fitting is trained with a ``tensor`` loss (checked by :class:`~mtzoo.config.InputConfig`;
a loss given without ``type`` gets ``"tensor"``).

Importing this module registers the schemas in :data:`~mtzoo.config.FITTINGS` and
:data:`~mtzoo.config.LOSSES` (``mtzoo.config`` does).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, ClassVar

from mtzoo.config.base import ConfigError, each, ge, gt, join_path, option, show
from mtzoo.config.model import (
    FITTINGS,
    FittingConfig,
    _doc_activation,
    _doc_precision,
    check_activation,
    check_precision,
)
from mtzoo.config.train import LOSSES, LossConfig

__all__ = ["DipoleFittingConfig", "PolarFittingConfig", "TensorFittingConfig", "TensorLossConfig"]


def _as_type_list(value: Any) -> list[int]:
    return [value] if isinstance(value, int) else value


def _check_sel_type(value: list[int]) -> str | None:
    if len(set(value)) != len(value):
        return f"duplicate type index in {show(value)}"
    return each(ge(0))(value)


def _sel_type_option(alias: str, what: str) -> Any:
    return option(
        None, aliases=(alias,), accept=list[int] | int | None, convert=_as_type_list,
        check=_check_sel_type, omit_none=True,
        doc=f"The atom types (indices into type_map) for which the atomic {what} is fitted;"
        " an int is a one-item list; null (default) selects all types.",
    )


def _check_scale(value: Any) -> str | None:
    values = value if isinstance(value, list) else [value]
    if not values:
        return "must not be empty"
    if all(math.isfinite(v) for v in values):
        return None
    return f"must be finite, got {show(value)}"


@dataclasses.dataclass(kw_only=True)
class TensorFittingConfig(FittingConfig):
    """Keys shared by the ``dipole`` and ``polar`` fittings (not a type of its own).

    A tensor fitting net maps the descriptor of each selected atom to ``M`` coefficients
    (``M`` = the descriptor's embedding width) that are contracted with the rotation matrix
    of the descriptor (DeePMD-kit's construction).

    Attributes
    ----------
    neuron : list of int
        Hidden-layer widths (alias ``n_neuron``).
    activation_function, precision : str
        See :data:`~mtzoo.config.model.ACTIVATIONS` and
        :data:`~mtzoo.config.model.PRECISIONS`.
    resnet_dt : bool
        Use a "timestep" in the skip connections.
    trainable : bool or list of bool
        Whether the net is trained; a list gives one flag per layer (``len(neuron) + 1``).
        Written by ``to_dict`` only when not ``true`` (DeePMD-kit's argcheck does not list
        it for tensor fittings).
    seed : int or None
        Random seed for parameter initialisation.
    layer_name : list of str or None, or None
        Per-layer names (``len(neuron) + 1``) for parameter sharing.
    sel_type : list of int or None
        Atom types whose atomic tensor is fitted (None = all types).
    exclude_types : list of int
        Atom types whose atomic tensor is not fitted (zero); DeePMD-kit's PyTorch way to
        select types.  :meth:`selected_types` combines both.
    numb_fparam, numb_aparam, default_fparam, dim_case_embd
        Recognised; only the defaults (0, 0, None, 0) are supported yet.
    """

    default_loss: ClassVar[str] = "tensor"

    neuron: list[int] = option(
        [120, 120, 120], aliases=("n_neuron",), check=each(gt(0)),
        doc="The number of neurons in each hidden layer of the fitting net.",
    )
    activation_function: str = option(
        "tanh", convert=str.lower, check=check_activation, doc=_doc_activation
    )
    resnet_dt: bool = option(True, doc='Whether to use a "Timestep" in the skip connection.')
    precision: str = option("default", check=check_precision, doc=_doc_precision)
    trainable: bool | list[bool] = option(
        True, doc="Whether the fitting net is trainable; a list gives one flag per layer (len(neuron)+1)."
    )
    seed: int | None = option(None, doc="Random seed for parameter initialization of the fitting net.")
    layer_name: list[str | None] | None = option(
        None, omit_none=True,
        doc="Name of each layer (len(neuron)+1); layers with equal names share parameters.",
    )
    numb_fparam: int = option(0, only_default=True, doc="Dimension of the frame parameter.")
    numb_aparam: int = option(0, only_default=True, doc="Dimension of the atomic parameter.")
    default_fparam: list[float] | None = option(
        None, only_default=True, omit_none=True, doc="Default frame parameter."
    )
    dim_case_embd: int = option(0, only_default=True, doc="Dimension of the case embedding.")
    exclude_types: list[int] = option(
        [], check=_check_sel_type, doc="Atom types whose atomic tensor is not fitted (zero)."
    )

    _unsupported: ClassVar[dict[str, Any]] = {"rcond": None}

    if TYPE_CHECKING:
        sel_type: list[int] | None  # declared by the subclasses (their alias differs)

    def selected_types(self, ntypes: int) -> list[int]:
        """Sorted indices of the types whose atomic tensor is fitted: ``sel_type`` (all
        types when None) without ``exclude_types``."""
        chosen = self.sel_type if self.sel_type is not None else range(ntypes)
        return sorted(t for t in chosen if t not in self.exclude_types)

    def check_ntypes(self, ntypes: int, path: str) -> None:
        """Type indices are ``< ntypes``; at least one type is selected."""
        for key in ("sel_type", "exclude_types"):
            for t in getattr(self, key) or []:
                if t >= ntypes:
                    raise ConfigError(
                        f"type index {t} out of range for {ntypes} types in type_map", join_path(path, key)
                    )
        if not self.selected_types(ntypes):
            raise ConfigError(
                "no atom type is left to fit (sel_type minus exclude_types is empty)", join_path(path, "sel_type")
            )

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`Section.to_dict`, without ``trainable`` while ``true`` and
        ``exclude_types`` while empty."""
        out = super().to_dict()
        if out.get("trainable") is True:
            del out["trainable"]
        if out.get("exclude_types") == []:
            del out["exclude_types"]
        return out


@FITTINGS.register("dipole")
@dataclasses.dataclass(kw_only=True)
class DipoleFittingConfig(TensorFittingConfig):
    """``dipole``: atomic dipoles (a 3-vector per selected atom); the frame dipole is their
    sum.  Keys as :class:`TensorFittingConfig` (``sel_type`` alias ``dipole_type``);
    ``r_differentiable``/``c_differentiable`` are recognised, only ``true`` supported."""

    sel_type: list[int] | None = _sel_type_option("dipole_type", "dipole")

    _unsupported: ClassVar[dict[str, Any]] = {
        **TensorFittingConfig._unsupported, "r_differentiable": True, "c_differentiable": True,
    }

    def output_width(self, embedding_width: int | None) -> int | str:
        """``M`` coefficients."""
        return embedding_width if embedding_width is not None else "M"


@FITTINGS.register("polar")
@dataclasses.dataclass(kw_only=True)
class PolarFittingConfig(TensorFittingConfig):
    """``polar``: atomic polarizabilities (a 3x3 matrix per selected atom); the frame
    polarizability is their sum.

    Attributes
    ----------
    sel_type : list of int or None
        As in :class:`TensorFittingConfig` (alias ``pol_type``).
    fit_diag : bool
        Fit only the diagonal of the rotation-invariant matrix (``M`` outputs; else
        ``M * M``), converted to the polarizability by contraction with the rotation matrix.
    scale : float or list of float
        The output of type ``i`` is scaled by ``scale[i]`` (a float: the same for all
        types; a list: one value per type in ``type_map``); :meth:`scale_per_type`.
    shift_diag : bool
        Shift the diagonal by a per-type constant fitted from the data (after ``scale``).
    """

    fit_diag: bool = option(
        True, doc="Fit the diagonal part of the rotational invariant polarizability matrix."
    )
    scale: float | list[float] = option(
        1.0, check=_check_scale,
        doc="The output of the fitting net (polarizability matrix) is scaled by scale"
        " (a float, or one value per type).",
    )
    shift_diag: bool = option(True, doc="Whether to shift the diagonal of polar (per type, from the data).")
    sel_type: list[int] | None = _sel_type_option("pol_type", "polarizability")

    def output_width(self, embedding_width: int | None) -> int | str:
        """``M`` coefficients with ``fit_diag``, else ``M * M``."""
        if embedding_width is None:
            return "M" if self.fit_diag else "M*M"
        return embedding_width if self.fit_diag else embedding_width * embedding_width

    def scale_per_type(self, ntypes: int) -> list[float]:
        """``scale`` as one value per type."""
        return list(self.scale) if isinstance(self.scale, list) else [self.scale] * ntypes

    def check_ntypes(self, ntypes: int, path: str) -> None:
        """``sel_type`` indices ``< ntypes``; a ``scale`` list has one value per type."""
        super().check_ntypes(ntypes, path)
        if isinstance(self.scale, list) and len(self.scale) != ntypes:
            raise ConfigError(
                f"expected one value per type in type_map ({ntypes}), got {len(self.scale)}: {show(self.scale)}",
                join_path(path, "scale"),
            )


@LOSSES.register("tensor")
@dataclasses.dataclass(kw_only=True)
class TensorLossConfig(LossConfig):
    """``tensor``: loss of a ``dipole``/``polar`` head.

    Attributes
    ----------
    pref : float
        Prefactor (>= 0) of the loss on the frame label (``dipole.npy`` /
        ``polarizability.npy``, the sum over the selected atoms).
    pref_atomic : float
        Prefactor (>= 0) of the loss on the atomic label (``atomic_dipole.npy`` /
        ``atomic_polarizability.npy``).  ``pref`` and ``pref_atomic`` are not both 0.
    enable_atomic_weight : bool
        Recognised; only ``false`` is supported yet.
    """

    pref: float = option(1.0, check=ge(0), doc="The prefactor of the weight of the global (frame) loss.")
    pref_atomic: float = option(1.0, check=ge(0), doc="The prefactor of the weight of the atomic loss.")
    enable_atomic_weight: bool = option(
        False, only_default=True, doc="If true, the atomic loss is reweighted."
    )

    def validate(self, path: str) -> None:
        """``pref`` and ``pref_atomic`` are not both 0."""
        if self.pref == 0 and self.pref_atomic == 0:
            raise ConfigError("pref and pref_atomic are both 0; nothing would be trained", join_path(path, "pref"))
