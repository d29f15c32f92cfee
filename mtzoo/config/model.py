"""Schemas of the ``model`` section: the model, its descriptor and its fitting net.

Key names, defaults and aliases follow DeePMD-kit 3.2 (``deepmd/utils/argcheck.py``).
Descriptor and fitting types are :class:`~mtzoo.config.base.Variant` schemas picked by
``"type"``; to add one, write its dataclass and decorate it with
``@DESCRIPTORS.register(name, aliases)`` (or ``FITTINGS``).  DeePMD-kit types that mtzoo
does not implement yet are listed in the registries so that they give a clear
``"not implemented yet"`` error rather than "unknown".  The ``dipole`` and ``polar``
fittings are in :mod:`mtzoo.config.tensor`.

A single-task model has one fitting net (``fitting_net``); a multi-task model (DeePMD-kit
v2 scheme) has named heads (``fitting_net_dict``) sharing the descriptor, see
:mod:`mtzoo.config.multitask`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from mtzoo.config.base import (
    ConfigError,
    Registry,
    Variant,
    each,
    ge,
    gt,
    join_path,
    one_of,
    option,
    show,
)
from mtzoo.config.multitask import DEFAULT_HEAD, check_head_names, check_shared_layers

__all__ = [
    "ACTIVATIONS",
    "DESCRIPTORS",
    "FITTINGS",
    "MODELS",
    "PRECISIONS",
    "DescriptorConfig",
    "EnerFittingConfig",
    "FittingConfig",
    "ModelConfig",
    "SeE2AConfig",
]

def _check_pair_correction(v) -> str | None:
    """``pair_correction``: a dict with ``rcut`` and only the keys of :class:`mtzoo.heads.pair.PairCorrection`."""
    if v is None:
        return None
    if not isinstance(v, dict):
        return f"must be a dict (keys rcut, n_basis, r_min, r_max, width), got {type(v).__name__}"
    extra = sorted(set(v) - {"rcut", "n_basis", "r_min", "r_max", "width"})
    if extra:
        return f"unknown key(s) {extra} (expected rcut, n_basis, r_min, r_max, width)"
    if not isinstance(v.get("rcut"), (int, float)) or v["rcut"] <= 0:
        return f"needs rcut > 0, got {v.get('rcut')!r}"
    return None


#: Activation functions accepted by mtzoo (DeePMD-kit names; matched case-insensitively).
ACTIVATIONS = ("tanh", "relu", "relu6", "softplus", "sigmoid", "gelu", "gelu_tf", "silu", "linear", "none")
#: Parameter precisions; ``"default"`` follows the interface precision (float64).
PRECISIONS = ("default", "float64", "float32", "float16", "bfloat16")

DESCRIPTORS = Registry(
    "descriptor",
    unimplemented={
        "loc_frame": (),
        "se_a_tpe": ("se_a_ebd",),
        "se_a_ebd_v2": ("se_a_tpe_v2",),
        "se_a_mask": (),
        "se_e3_tebd": (),
        "dpa2": (),
        "dpa3": (),
        "dpa4": ("DPA4", "SeZM", "sezm"),
        "dpa4c": ("DPA4C",),
    },
)
FITTINGS = Registry(
    "fitting",
    default="ener",
    unimplemented={
        "dos": (),
        "property": (),
        "population": (),
        "dpa4_ener": ("sezm_ener",),
    },
)
MODELS = Registry(
    "model",
    default="standard",
    unimplemented={
        "dpa4": ("DPA4", "SeZM", "sezm"),
        "frozen": (),
        "pairtab": (),
        "pairwise_dprc": (),
        "linear_ener": (),
    },
)

_doc_activation = (
    "Activation function: one of " + ", ".join(ACTIVATIONS) + ". Matched case-insensitively and"
    " stored lower-case; \"gelu\" is the tanh approximation, \"gelu_tf\" the exact erf form."
)
_doc_precision = (
    "Precision of the parameters: one of " + ", ".join(PRECISIONS) + "; \"default\" follows the"
    " interface precision (float64)."
)


def check_activation(value: str) -> str | None:
    """Check an (already lower-cased) activation name."""
    if value in ACTIVATIONS:
        return None
    if value.startswith(("silut", "custom_silu")):
        return f"activation {show(value)} is not supported by mtzoo yet"
    return f"must be one of {', '.join(ACTIVATIONS)}, got {show(value)}"


check_precision = one_of(*PRECISIONS)


def dtype_name(precision: str) -> str:
    """The torch dtype name of a precision: ``"default"`` -> ``"float64"``."""
    return "float64" if precision == "default" else precision


def _check_sel(value: Any) -> str | None:
    if isinstance(value, str):
        if value == "auto":
            return None
        if value.startswith("auto:"):
            try:
                factor = float(value[5:])
            except ValueError:
                factor = float("nan")
            if factor > 0:
                return None
        return f'must be a list of int, "auto" or "auto:FACTOR" (FACTOR > 0), got {show(value)}'
    return each(ge(0), nonempty=True)(value)


def _check_pair(pair: list[int]) -> str | None:
    if len(pair) != 2:
        return f"must be a pair [type_i, type_j], got {show(pair)}"
    return None if min(pair) >= 0 else f"must hold type indices >= 0, got {show(pair)}"


def _check_type_map(names: list[str]) -> str | None:
    if not names:
        return "must not be empty"
    seen: set[str] = set()
    for name in names:
        if not name:
            return "type names must not be empty"
        if name in seen:
            return f"duplicate type {show(name)}"
        seen.add(name)
    return None


# --------------------------------------------------------------------------- descriptors


@dataclasses.dataclass(kw_only=True)
class DescriptorConfig(Variant):
    """Base of the descriptor schemas (``model.descriptor``); ``type`` picks the schema.

    Implemented types are in ``DESCRIPTORS.available``.
    """

    registry: ClassVar[Registry] = DESCRIPTORS
    #: Whether the descriptor outputs axis vectors (``rot_mat``), which tensor fittings need.
    provides_rot: ClassVar[bool] = True
    #: Whether the descriptor outputs e3nn irreps features (``e3nn_mp``, ``e3nn_mace``), which the e3nn
    #: implementations of the tensor fittings read instead of axis vectors.
    provides_irreps: ClassVar[bool] = False

    @property
    def dtype_name(self) -> str:
        """Parameter dtype name: ``precision`` with ``"default"`` resolved to ``"float64"``."""
        return dtype_name(self.precision)

    @property
    def auto_sel_factor(self) -> float | None:
        """The FACTOR of an ``"auto[:FACTOR]"`` sel (1.1 for ``"auto"``), None for an explicit sel."""
        sel = getattr(self, "sel", None)
        if not isinstance(sel, str):
            return None
        return 1.1 if sel == "auto" else float(sel[5:])

    @property
    def dim_out(self) -> int | None:
        """Width of the descriptor (the fitting nets' input), None when not known from the config."""
        return None

    @property
    def embedding_width(self) -> int | None:
        """Width ``M`` of the rotation matrix that tensor heads contract with (None: unknown)."""
        return None

    def check_ntypes(self, ntypes: int, path: str) -> None:
        """Checks that need the number of atom types (``len(type_map)``)."""


@DESCRIPTORS.register("se_e2_a", aliases=("se_a",))
@dataclasses.dataclass(kw_only=True)
class SeE2AConfig(DescriptorConfig):
    """``se_e2_a`` (alias ``se_a``): smooth Deep Potential descriptor from the full
    relative coordinates (DeePMD-kit's ``descrpt_se_a_args``).

    Attributes
    ----------
    sel : list of int or str
        Selected number of neighbours of each type (one entry per type in ``type_map``),
        or ``"auto"`` / ``"auto:FACTOR"`` (stored as given; resolved later from the data:
        the largest neighbour count of each type times FACTOR, ``"auto"`` meaning 1.1,
        rounded up to a multiple of 4).
    rcut, rcut_smth : float
        Cut-off radius (> 0) and the start of the smoothing (``0 <= rcut_smth < rcut``).
    neuron : list of int
        Widths of the embedding-net hidden layers (positive, non-empty).
    axis_neuron : int
        Size of the sub-matrix of the embedding matrix (alias ``n_axis_neuron``),
        ``1 <= axis_neuron <= neuron[-1]``.
    activation_function, precision : str
        See :data:`ACTIVATIONS` and :data:`PRECISIONS`; :attr:`dtype_name` resolves
        ``"default"``.
    resnet_dt : bool
        Use a "timestep" in the skip connections.
    type_one_side : bool
        Embedding nets depend on the neighbour type only (else on both types).
    trainable : bool
        Whether the embedding-net parameters are trained.
    seed : int or None
        Random seed for parameter initialisation.
    exclude_types : list of [int, int]
        Type pairs that do not interact; indices must be ``< len(type_map)``.
    env_protection : float
        Protection against division by zero in the environment matrix (>= 0).
    set_davg_zero : bool
        Set the normalisation average to zero.
    """

    sel: list[int] | str = option(
        "auto", check=_check_sel,
        doc="Selected number of neighbours per type (list with one int per type), or \"auto\"/"
        "\"auto:FACTOR\" to derive it from the data (\"auto\" = \"auto:1.1\").",
    )
    rcut: float = option(6.0, check=gt(0), doc="The cut-off radius.")
    rcut_smth: float = option(
        0.5, check=ge(0), doc="Where smoothing starts: the 1/r term is smoothed from rcut_smth to rcut."
    )
    neuron: list[int] = option(
        [10, 20, 40], check=each(gt(0), nonempty=True),
        doc="Number of neurons in each hidden layer of the embedding net.",
    )
    axis_neuron: int = option(
        4, aliases=("n_axis_neuron",), check=ge(1),
        doc="Size of the submatrix of G (the embedding matrix) used to build the descriptor.",
    )
    activation_function: str = option(
        "tanh", convert=str.lower, check=check_activation, doc=_doc_activation
    )
    resnet_dt: bool = option(False, doc='Whether to use a "Timestep" in the skip connection.')
    type_one_side: bool = option(
        False, doc="Embedding nets vary by neighbour type only (else by both centre and neighbour type)."
    )
    precision: str = option("default", check=check_precision, doc=_doc_precision)
    trainable: bool = option(True, doc="Whether the parameters in the embedding net are trainable.")
    seed: int | None = option(None, doc="Random seed for parameter initialization.")
    exclude_types: list[list[int]] = option(
        [], check=each(_check_pair),
        doc="Excluded type pairs, e.g. [[0, 1]]: no interaction between type 0 and type 1.",
    )
    env_protection: float = option(
        0.0, check=ge(0), doc="Protection against division by zero in the environment matrix."
    )
    set_davg_zero: bool = option(False, doc="Set the normalization average to zero.")

    @property
    def dim_out(self) -> int:
        """``neuron[-1] * axis_neuron``."""
        return self.neuron[-1] * self.axis_neuron

    @property
    def embedding_width(self) -> int:
        """``neuron[-1]``."""
        return self.neuron[-1]

    def validate(self, path: str) -> None:
        """``rcut_smth < rcut`` and ``axis_neuron <= neuron[-1]``."""
        if not self.rcut_smth < self.rcut:
            raise ConfigError(
                f"must be < rcut ({self.rcut}), got {show(self.rcut_smth)}", join_path(path, "rcut_smth")
            )
        if self.axis_neuron > self.neuron[-1]:
            raise ConfigError(
                f"must be <= neuron[-1] ({self.neuron[-1]}), got {self.axis_neuron}",
                join_path(path, "axis_neuron"),
            )

    def check_ntypes(self, ntypes: int, path: str) -> None:
        """``len(sel) == ntypes`` (unless auto) and ``exclude_types`` indices ``< ntypes``."""
        if not isinstance(self.sel, str) and len(self.sel) != ntypes:
            raise ConfigError(
                f"expected one entry per type in type_map ({ntypes}), got {len(self.sel)}: {show(self.sel)}",
                join_path(path, "sel"),
            )
        for i, pair in enumerate(self.exclude_types):
            if max(pair) >= ntypes:
                raise ConfigError(
                    f"type index {max(pair)} out of range for {ntypes} types in type_map",
                    join_path(join_path(path, "exclude_types"), i),
                )


# --------------------------------------------------------------------------- fittings


@dataclasses.dataclass(kw_only=True)
class FittingConfig(Variant):
    """Base of the fitting-net schemas (``model.fitting_net``); ``type`` defaults to ``"ener"``.

    The implemented schemas all have ``neuron``, ``activation_function``, ``precision``,
    ``trainable`` and ``layer_name`` (one fitting net per atom type of ``len(neuron)``
    hidden layers plus a linear output layer).

    Attributes
    ----------
    default_loss : str
        The loss type this fitting is trained with (``"ener"`` or ``"tensor"``); a loss of
        another type is an error, and a loss given without ``type`` gets this one.
    """

    registry: ClassVar[Registry] = FITTINGS
    default_loss: ClassVar[str] = "ener"

    if TYPE_CHECKING:  # fields of every implemented schema (declared there, with defaults)
        neuron: list[int]
        activation_function: str
        precision: str
        trainable: bool | list[bool]
        layer_name: list[str | None] | None

    @property
    def dtype_name(self) -> str:
        """Parameter dtype name: ``precision`` with ``"default"`` resolved to ``"float64"``."""
        return dtype_name(self.precision)

    @property
    def trainable_layers(self) -> list[bool]:
        """``trainable`` as one flag per layer (``len(neuron) + 1``)."""
        if isinstance(self.trainable, bool):
            return [self.trainable] * (len(self.neuron) + 1)
        return list(self.trainable)

    def output_width(self, embedding_width: int | None) -> int | str:
        """Width of the output layer; for tensor fittings it depends on the descriptor's
        ``embedding_width`` ``M`` (given as None when unknown: the result is then the
        symbol ``"M"`` or ``"M*M"``)."""
        return 1

    def validate(self, path: str) -> None:
        """Lengths of ``trainable`` (when a list) and ``layer_name`` are ``len(neuron) + 1``."""
        nlayer = len(self.neuron) + 1
        for key in ("trainable", "layer_name"):
            value = getattr(self, key)
            if isinstance(value, list) and len(value) != nlayer:
                raise ConfigError(
                    f"expected len(neuron) + 1 = {nlayer} items (hidden layers and output layer), "
                    f"got {len(value)}",
                    join_path(path, key),
                )

    def check_ntypes(self, ntypes: int, path: str) -> None:
        """Checks that need the number of atom types (``len(type_map)``)."""


@FITTINGS.register("ener")
@dataclasses.dataclass(kw_only=True)
class EnerFittingConfig(FittingConfig):
    """``ener``: per-atom energy fitting net (DeePMD-kit's ``fitting_ener``).

    Attributes
    ----------
    neuron : list of int
        Hidden-layer widths (alias ``n_neuron``).
    activation_function, precision : str
        See :data:`ACTIVATIONS` and :data:`PRECISIONS`.
    resnet_dt : bool
        Use a "timestep" in the skip connections.
    trainable : bool or list of bool
        Whether the net is trained; a list gives one flag per layer (``len(neuron) + 1``:
        hidden layers then the output layer).
    rcond : float or None
        ``rcond`` of the least-squares fit of the initial per-type energy shift.
    seed : int or None
        Random seed for parameter initialisation.
    atom_ener : list of float or None
        Energy of an isolated atom of each type (None = not fixed); at most ntypes items.
    layer_name : list of str or None, or None
        Per-layer names (``len(neuron) + 1``) for parameter sharing.
    correction_neuron : list of int or None
        mtzoo extension: widths of a zero-initialised correction net added to the fitting net.
    zero_init : bool
        mtzoo extension: the fitting nets' output layers start at zero (no forces before training).
    numb_fparam, numb_aparam, default_fparam, dim_case_embd, use_aparam_as_mask
        Recognised; only the defaults (0, 0, None, 0, false) are supported yet.
    """

    neuron: list[int] = option(
        [120, 120, 120], aliases=("n_neuron",), check=each(gt(0)),
        doc="The number of neurons in each hidden layer of the fitting net.",
    )
    activation_function: str = option(
        "tanh", convert=str.lower, check=check_activation, doc=_doc_activation
    )
    precision: str = option("default", check=check_precision, doc=_doc_precision)
    resnet_dt: bool = option(True, doc='Whether to use a "Timestep" in the skip connection.')
    trainable: bool | list[bool] = option(
        True, doc="Whether the fitting net is trainable; a list gives one flag per layer (len(neuron)+1)."
    )
    rcond: float | None = option(
        None, doc="Condition number of the least-squares fit of the initial energy shift of each type."
    )
    seed: int | None = option(None, doc="Random seed for parameter initialization of the fitting net.")
    atom_ener: list[float | None] = option(
        [], doc="The atomic energy in vacuum for each type (null: not fixed)."
    )
    layer_name: list[str | None] | None = option(
        None, omit_none=True,
        doc="Name of each layer (len(neuron)+1); layers with equal names share parameters.",
    )
    correction_neuron: list[int] | None = option(
        None, omit_none=True, check=each(gt(0)),
        doc="mtzoo extension: hidden widths of a per-type correction net added to the fitting net, its "
            "output layer initialised to zero (fine-tuning a level of theory as an old head plus a "
            "learned difference: mtzoo finetune --head-mode correction). Default: none.",
    )
    pair_correction: dict | None = option(
        None, omit_none=True, check=_check_pair_correction,
        doc="mtzoo extension: a two-body term added to the head, zero until fitted (fine-tuning a level of "
            "theory; mtzoo finetune adds it for the ridge fit): keys rcut (required), n_basis (8), r_min (0.9), "
            "r_max (3.0), width (null: the centre spacing); see mtzoo.heads.pair. Default: none.",
    )
    zero_init: bool = option(
        False, omit_default=True, doc="mtzoo extension: start the output layer of the fitting nets at zero (weights and bias), so "
                   "that before training the head predicts the least-squares atomic energies and no forces "
                   "(DeePMD-kit's random initialisation otherwise). Default: false.",
    )
    numb_fparam: int = option(0, only_default=True, doc="Dimension of the frame parameter.")
    numb_aparam: int = option(0, only_default=True, doc="Dimension of the atomic parameter.")
    default_fparam: list[float] | None = option(
        None, only_default=True, omit_none=True, doc="Default frame parameter."
    )
    dim_case_embd: int = option(0, only_default=True, doc="Dimension of the case embedding.")
    use_aparam_as_mask: bool = option(
        False, only_default=True, doc="Use the aparam as a mask of real/virtual atoms."
    )

    _unsupported = {"exclude_types": []}

    def check_ntypes(self, ntypes: int, path: str) -> None:
        """``atom_ener`` has at most ``ntypes`` items."""
        if len(self.atom_ener) > ntypes:
            raise ConfigError(
                f"expected at most one value per type in type_map ({ntypes}), got {len(self.atom_ener)}",
                join_path(path, "atom_ener"),
            )


# --------------------------------------------------------------------------- model


def _any_bool(value: Any) -> bool:
    """any bool: no effect without use_srtab."""
    return isinstance(value, bool)


def _bridging_off(value: Any) -> bool:
    """absent, null or "none"."""
    return value is None or (isinstance(value, str) and value.lower() == "none")


@MODELS.register("standard")
@dataclasses.dataclass(kw_only=True)
class ModelConfig(Variant):
    """The ``model`` section (DeePMD-kit's ``standard`` model).

    Exactly one of ``fitting_net`` (single-task input) and ``fitting_net_dict``
    (multi-task input, DeePMD-kit v2 scheme) is given; :attr:`heads` gives both as a dict.

    Attributes
    ----------
    type_map : list of str
        Name of each atom type (required, unique); its length is the number of types.
    descriptor : DescriptorConfig
        The descriptor of the atomic environment (shared by all heads).
    fitting_net : FittingConfig or None
        The fitting net of a single-task input.
    fitting_net_dict : dict of str to FittingConfig, or None
        The heads of a multi-task input (name -> fitting net), in input order.  Names are
        non-empty and contain no ``"."``.  Layers of several heads (or of one head) with
        the same ``layer_name`` share parameters; their shapes, activation, precision and
        trainability must agree (checked here as far as the config tells).
    data_stat_nbatch : int
        Number of frames per system used for the input normalisation statistics.
    data_stat_protect : float
        Protection parameter of the atomic energy regression.
    data_bias_nsample : int
        Number of samples per system used to compute/change the energy bias.

    Keys that DeePMD-kit accepts but mtzoo does not implement yet (``type_embedding``,
    ``use_srtab``, non-empty ``pair_exclude_types``/``atom_exclude_types``, ``spin``,
    ``preset_out_bias``, ``modifier``, ``compress``, ...) are accepted only at their default.
    """

    registry: ClassVar[Registry] = MODELS

    type_map: list[str] = option(
        check=_check_type_map, doc="Name of each atom type; the number of types is its length."
    )
    descriptor: DescriptorConfig = option(doc="The descriptor of atomic environment.")
    fitting_net: FittingConfig | None = option(
        None, omit_none=True, doc="The fitting of physical properties (single-task input)."
    )
    fitting_net_dict: dict[str, FittingConfig] | None = option(
        None, omit_none=True,
        doc="The fitting nets of a multi-task input, by head name; they share the descriptor.",
    )
    data_stat_nbatch: int = option(
        10, check=gt(0), doc="Number of frames in each system used for the data statistics."
    )
    data_stat_protect: float = option(
        1e-2, check=gt(0), doc="Protect parameter for atomic energy regression."
    )
    data_bias_nsample: int = option(
        10, check=gt(0), doc="Number of samples in a system to compute and change the energy bias."
    )
    atom_exclude_types: list[int] = option(
        [], doc="Atom types whose atomic outputs are zero.  mtzoo applies it to dipole and polar heads "
                "(merged into each head's exclude_types, as DeePMD-kit's atomic model does); energy heads "
                "do not support it yet.",
    )

    _unsupported = {
        "type_embedding": None,
        "use_srtab": None,
        "smin_alpha": None,
        "sw_rmin": None,
        "sw_rmax": None,
        "srtab_add_bias": _any_bool,
        "pair_exclude_types": [],
        "preset_out_bias": None,
        "modifier": None,
        "compress": None,
        "spin": None,
        "finetune_head": None,
        "model_branch_alias": [],
        "info": {},
        "bridging_method": _bridging_off,
        "bridging_r_inner": 0.5,
        "bridging_r_outer": 0.8,
    }

    @property
    def ntypes(self) -> int:
        """Number of atom types, ``len(type_map)``."""
        return len(self.type_map)

    @property
    def multi_task(self) -> bool:
        """Whether the heads are given by ``fitting_net_dict``."""
        return self.fitting_net_dict is not None

    @property
    def heads(self) -> dict[str, FittingConfig]:
        """Head name -> fitting net; a single-task model has one head, ``"default"``."""
        if self.fitting_net_dict is not None:
            return dict(self.fitting_net_dict)
        return {DEFAULT_HEAD: self.fitting_net} if self.fitting_net is not None else {}

    def head_path(self, name: str, path: str = "model") -> str:
        """Key path of head ``name``'s fitting net (``model.fitting_net_dict.NAME``)."""
        if self.fitting_net_dict is None:
            return join_path(path, "fitting_net")
        return join_path(join_path(path, "fitting_net_dict"), name)

    def validate(self, path: str) -> None:
        """One of fitting_net/fitting_net_dict; checks against ``type_map``; shared layers."""
        for i, t in enumerate(self.atom_exclude_types):
            if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < self.ntypes:
                raise ConfigError(f"must be an atom type index in [0, {self.ntypes}) (type_map {self.type_map}), "
                                  f"got {t!r}", join_path(join_path(path, "atom_exclude_types"), i))
        if self.atom_exclude_types:
            for name, fit in self.heads.items():
                if fit is not None and getattr(fit, "type", "ener") not in ("dipole", "polar"):
                    raise ConfigError(f"not supported by mtzoo yet with a '{fit.type}' fitting (head '{name}'); "
                                      "it is applied to dipole and polar heads only", join_path(path, "atom_exclude_types"))
        if self.fitting_net is not None and self.fitting_net_dict is not None:
            raise ConfigError(
                "fitting_net and fitting_net_dict are mutually exclusive (single-task and "
                "multi-task schemes); give only one",
                join_path(path, "fitting_net_dict"),
            )
        if self.fitting_net is None and self.fitting_net_dict is None:
            raise ConfigError(
                "missing required key (or fitting_net_dict for a multi-task input)",
                join_path(path, "fitting_net"),
            )
        if self.fitting_net_dict is not None:
            check_head_names(self.fitting_net_dict, join_path(path, "fitting_net_dict"))
        self.descriptor.check_ntypes(self.ntypes, join_path(path, "descriptor"))
        for name, fitting in self.heads.items():
            fitting.check_ntypes(self.ntypes, self.head_path(name, path))
            tensor_ok = self.descriptor.provides_rot or self.descriptor.provides_irreps
            if fitting.default_loss == "tensor" and not tensor_ok:
                raise ConfigError(
                    f"a '{fitting.type}' fitting needs the descriptor's axis vectors (rot_mat) or e3nn features, and "
                    f"descriptor '{self.descriptor.type}' has neither; use se_e2_a, e3nn_mp or e3nn_mace",
                    join_path(self.head_path(name, path), "type"),
                )
        check_shared_layers(self.heads, self.descriptor, lambda name: self.head_path(name, path))

