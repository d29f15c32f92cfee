"""Schemas of the radial (``se_e2_r``), three-body (``se_e3``) and ``hybrid`` descriptors.

Key names, defaults and aliases follow DeePMD-kit 3.2 (``descrpt_se_r_args``,
``descrpt_se_t_args``, ``descrpt_hybrid_args`` in ``deepmd/utils/argcheck.py``).  Registered in
:data:`mtzoo.config.model.DESCRIPTORS` when :mod:`mtzoo.config` is imported (its ``__init__`` imports this module).
Neither descriptor has axis vectors, so a ``dipole``/``polar`` fitting on them is rejected
(:attr:`provides_rot`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from mtzoo.config.base import ConfigError, each, ge, gt, join_path, one_of, option, show
from mtzoo.config.model import (
    DESCRIPTORS,
    DescriptorConfig,
    _check_pair,
    _check_sel,
    _doc_activation,
    _doc_precision,
    check_activation,
    check_precision,
)

__all__ = ["HybridConfig", "SeAttenConfig", "SeAttenV2Config", "SeE2RConfig", "SeTConfig"]


@dataclasses.dataclass(kw_only=True)
class _RadialFamilyConfig(DescriptorConfig):
    """Keys shared by se_e2_r and se_e3 (see :class:`~mtzoo.config.model.SeE2AConfig` for their meaning)."""

    provides_rot: ClassVar[bool] = False

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
    activation_function: str = option(
        "tanh", convert=str.lower, check=check_activation, doc=_doc_activation
    )
    resnet_dt: bool = option(False, doc='Whether to use a "Timestep" in the skip connection.')

    @property
    def dim_out(self) -> int:
        """``neuron[-1]``."""
        return self.neuron[-1]

    def validate(self, path: str) -> None:
        """``rcut_smth < rcut``."""
        if not self.rcut_smth < self.rcut:
            raise ConfigError(
                f"must be < rcut ({self.rcut}), got {show(self.rcut_smth)}", join_path(path, "rcut_smth")
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


@DESCRIPTORS.register("se_e2_r", aliases=("se_r",))
@dataclasses.dataclass(kw_only=True)
class SeE2RConfig(_RadialFamilyConfig):
    """``se_e2_r`` (alias ``se_r``): radial-only smooth descriptor (DeePMD-kit's ``descrpt_se_r_args``).

    :math:`\\mathcal D_i = \\frac{1}{5N_c}\\sum_{\\text{slots}} \\mathcal N(\\hat s)` with
    ``dim_out = neuron[-1]`` (see :mod:`mtzoo.descriptors.se_e2_r`).

    Attributes
    ----------
    sel, rcut, rcut_smth, neuron, activation_function, resnet_dt, precision, trainable, seed,
    exclude_types, env_protection, set_davg_zero
        As for ``se_e2_a``.
    type_one_side : bool
        Embedding nets depend on the neighbour type only (else on both types).  DeePMD-kit's
        default is false; its pt/jax backends implement only true.
    """

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
    set_davg_zero: bool = option(False, doc="Set the normalization average to zero.")
    env_protection: float = option(
        0.0, check=ge(0), doc="Protection against division by zero in the environment matrix."
    )


@DESCRIPTORS.register("se_e3", aliases=("se_at", "se_a_3be", "se_t"))
@dataclasses.dataclass(kw_only=True)
class SeTConfig(_RadialFamilyConfig):
    """``se_e3`` (aliases ``se_at``, ``se_a_3be``, ``se_t``): three-body embedding of the angles
    between pairs of neighbours (DeePMD-kit's ``descrpt_se_t_args``); ``dim_out = neuron[-1]``
    (see :mod:`mtzoo.descriptors.se_t`).

    Attributes
    ----------
    sel, rcut, rcut_smth, neuron, activation_function, resnet_dt, precision, trainable, seed,
    set_davg_zero, exclude_types, env_protection
        As for ``se_e2_a``.
    """

    precision: str = option("default", check=check_precision, doc=_doc_precision)
    trainable: bool = option(True, doc="Whether the parameters in the embedding net are trainable.")
    seed: int | None = option(None, doc="Random seed for parameter initialization.")
    set_davg_zero: bool = option(False, doc="Set the normalization average to zero.")
    exclude_types: list[list[int]] = option(
        [], check=each(_check_pair),
        doc="Excluded type pairs, e.g. [[0, 1]]: no interaction between type 0 and type 1.",
    )
    env_protection: float = option(
        0.0, check=ge(0), doc="Protection against division by zero in the environment matrix."
    )


def _check_members(value: list) -> str | None:
    return None if value else "must hold at least one descriptor"


@DESCRIPTORS.register("hybrid")
@dataclasses.dataclass(kw_only=True)
class HybridConfig(DescriptorConfig):
    """``hybrid``: the concatenation of a list of descriptors (DeePMD-kit's ``descrpt_hybrid_args``).

    Each member is a full descriptor section with its own ``type``, ``rcut`` and ``sel``; the
    model's neighbour graph is built at the largest cutoff (:attr:`rcut`) and each member sees
    the edges inside its own (see :mod:`mtzoo.descriptors.hybrid`).

    Attributes
    ----------
    list : list of DescriptorConfig
        The members (parsed from their JSON objects when the section is validated; errors name
        ``...list[k].key``).
    """

    list: list[dict[str, Any]] = option(  # noqa: A003 - DeePMD's key
        check=_check_members, doc="Build a descriptor from the concatenation of the list of descriptors."
    )

    def validate(self, path: str) -> None:
        """Parse every member as a descriptor section (path ``list[k]``)."""
        base = join_path(path, "list")
        self.list = [
            m if isinstance(m, DescriptorConfig) else DESCRIPTORS.parse(m, join_path(base, k))
            for k, m in enumerate(self.list)
        ]

    @property
    def members(self) -> list[DescriptorConfig]:
        """The member sections (alias of ``list``)."""
        return self.list

    @property
    def provides_rot(self) -> bool:  # type: ignore[override]
        """Whether some member outputs axis vectors (their rotation matrices are concatenated)."""
        return any(m.provides_rot for m in self.members)

    @property
    def rcut(self) -> float:
        """The largest cutoff of the members (the model's neighbour graph)."""
        return max(float(m.rcut) for m in self.members)

    @property
    def trainable(self) -> bool:
        """Whether every member is trainable."""
        return all(bool(getattr(m, "trainable", True)) for m in self.members)

    @property
    def dim_out(self) -> int | None:
        """Sum of the members' widths (None when one is unknown)."""
        dims = [m.dim_out for m in self.members]
        return None if any(d is None for d in dims) else sum(dims)

    @property
    def embedding_width(self) -> int | None:
        """Sum of the axis-vector counts of the members that have them (None when unknown or none)."""
        rot = [m for m in self.members if m.provides_rot]
        widths = [m.embedding_width for m in rot]
        return None if not rot or any(w is None for w in widths) else sum(widths)

    def check_ntypes(self, ntypes: int, path: str) -> None:
        """Every member's checks."""
        base = join_path(path, "list")
        for k, m in enumerate(self.members):
            m.check_ntypes(ntypes, join_path(base, k))


# --------------------------------------------------------------------------- e3nn_mp


def _check_irreps(value: str) -> str | None:
    from e3nn import o3  # lazy: e3nn is only needed by this descriptor

    try:
        irreps = o3.Irreps(value)
    except (ValueError, AssertionError) as exc:
        return f"not e3nn irreps ({exc}): {show(value)}"
    if not any(ir == o3.Irrep("0e") for _, ir in irreps):
        return f"must contain 0e channels (the invariant descriptor), got {show(value)}"
    return None


@DESCRIPTORS.register("e3nn_mp")
@dataclasses.dataclass(kw_only=True)
class E3nnMPConfig(DescriptorConfig):
    """``e3nn_mp``: equivariant message passing with e3nn (NequIP class; see
    :mod:`mtzoo.descriptors.e3nn_mp`).  ``dim_out`` = the number of ``0e`` channels of
    ``hidden_irreps``; no axis vectors, but e3nn irreps features (:attr:`provides_irreps`), which
    the ``dipole``/``polar`` fittings read through their e3nn implementations.

    Attributes
    ----------
    rcut : float
        Cut-off radius (> 0); a polynomial envelope (C^2 at rcut) smooths the radial basis.
    lmax : int
        Highest degree of the edge spherical harmonics (1 to 3).
    num_layers : int
        Number of interaction layers (>= 1).
    hidden_irreps : str
        Irreps of the node features, e.g. ``"32x0e + 16x1o + 8x2e"`` (must contain ``0e``).
    n_radial : int
        Number of Bessel radial functions.
    radial_neurons : list of int
        Hidden widths of the radial MLP giving the tensor-product weights of each edge.
    avg_num_neighbors : float or None
        Normalisation of the neighbour sum; None (default): the mean from the training data.
    precision, trainable, seed
        As for ``se_e2_a``.
    """

    provides_rot: ClassVar[bool] = False
    provides_irreps: ClassVar[bool] = True

    rcut: float = option(5.0, check=gt(0), doc="The cut-off radius.")
    lmax: int = option(2, check=lambda v: None if 1 <= v <= 3 else f"must be 1, 2 or 3, got {v}",
                       doc="Highest degree of the spherical harmonics of the edge directions (1 to 3).")
    num_layers: int = option(2, check=ge(1), doc="Number of interaction (message-passing) layers.")
    hidden_irreps: str = option("32x0e + 16x1o + 8x2e", check=_check_irreps,
                                doc="e3nn irreps of the node features of every layer (must contain 0e).")
    n_radial: int = option(8, check=gt(0), doc="Number of Bessel radial basis functions.")
    radial_neurons: list[int] = option([64], check=each(gt(0)),
                                       doc="Hidden widths of the radial MLP that weights each edge's tensor product.")
    avg_num_neighbors: float | None = option(
        None, check=gt(0), doc="Normalisation of the sum over neighbours; null: mean neighbour count in the data."
    )
    precision: str = option("default", check=check_precision, doc=_doc_precision)
    trainable: bool = option(True, doc="Whether the descriptor parameters are trainable.")
    seed: int | None = option(None, doc="Random seed for parameter initialization.")

    @property
    def dim_out(self) -> int:
        """Number of ``0e`` channels in ``hidden_irreps``."""
        from e3nn import o3

        return sum(mul for mul, ir in o3.Irreps(self.hidden_irreps) if ir == o3.Irrep("0e"))


def _check_mace_irreps(value: str) -> str | None:
    from e3nn import o3

    err = _check_irreps(value)
    if err is None and len({mul for mul, _ in o3.Irreps(value).simplify()}) != 1:
        return f"every irrep must have the same number of channels (e.g. \"32x0e + 32x1o\"), got {show(value)}"
    return err


@DESCRIPTORS.register("e3nn_mace")
@dataclasses.dataclass(kw_only=True)
class E3nnMACEConfig(DescriptorConfig):
    """``e3nn_mace``: MACE-class equivariant descriptor (symmetric product basis of correlation
    order up to 3 on each message-passing layer; see :mod:`mtzoo.descriptors.e3nn_mace`).
    ``dim_out`` = ``num_layers`` x the ``0e`` channels (the scalars of every layer); e3nn irreps
    features for the ``dipole``/``polar`` fittings (:attr:`provides_irreps`).

    Attributes
    ----------
    rcut : float
        Cut-off radius (> 0).
    lmax : int
        Highest degree of the edge spherical harmonics and of the atomic basis (1 to 3).
    num_layers : int
        Number of layers (>= 1).
    hidden_irreps : str
        Node-feature irreps, one multiplicity for all, with ``0e`` (e.g. ``"32x0e + 32x1o"``).
    correlation : int
        Correlation order of the product basis (1 to 3).
    n_radial : int
        Number of Bessel radial basis functions.
    radial_neurons : list of int
        Hidden widths of the radial MLP.
    envelope_exponent : int
        Exponent p of the polynomial cut-off envelope.
    avg_num_neighbors : float or None
        Normalisation of the sum over neighbours; None (default): the mean from the training data.
    first_layer_residual : bool
        First layer with a residual self-connection instead of the element mixing of its atomic basis.
    scalar_last_layer : bool or None
        Last layer with ``0e`` outputs only (MACE's); None: true when every head of the model is an
        energy head (resolved when the model is built), false when a dipole or polarizability
        head reads the equivariant features.
    normalize_atomic_basis : bool
        Scale each layer's atomic basis to unit mean square on the training data.
    product_weights : str
        ``"minimal"`` (one weight per independent coupling) or ``"mace"`` (MACE's redundant
        weights, one per ordering of the factors).
    precision, trainable, seed
        As for ``se_e2_a``.
    """

    provides_rot: ClassVar[bool] = False
    provides_irreps: ClassVar[bool] = True

    rcut: float = option(5.0, check=gt(0), doc="The cut-off radius.")
    lmax: int = option(3, check=lambda v: None if 1 <= v <= 3 else f"must be 1, 2 or 3, got {v}",
                       doc="Highest degree of the spherical harmonics and of the atomic basis (1 to 3).")
    num_layers: int = option(2, check=ge(1), doc="Number of message-passing layers.")
    hidden_irreps: str = option("32x0e + 32x1o", check=_check_mace_irreps,
                                doc="e3nn irreps of the node features (one multiplicity, must contain 0e).")
    correlation: int = option(3, check=lambda v: None if 1 <= v <= 3 else f"must be 1, 2 or 3, got {v}",
                              doc="Correlation order of the symmetric product basis (body order + 1).")
    n_radial: int = option(8, check=gt(0), doc="Number of Bessel radial basis functions.")
    radial_neurons: list[int] = option([64, 64, 64], check=each(gt(0)), doc="Hidden widths of the radial MLP.")
    envelope_exponent: int = option(5, check=gt(0), doc="Exponent p of the polynomial cut-off envelope.")
    avg_num_neighbors: float | None = option(
        None, check=gt(0), doc="Normalisation of the sum over neighbours; null: mean neighbour count in the data."
    )
    first_layer_residual: bool = option(
        False, doc="First layer with the residual self-connection of the later layers (MACE 0.3.16's default "
                   "first block) instead of an element-dependent mixing of its atomic basis.")
    scalar_last_layer: bool | None = option(
        None, doc="Last layer with 0e outputs only, as MACE's (about a quarter less work per step); null: true "
                  "when every head is an energy head, false when a dipole or polarizability head needs the "
                  "equivariant features.")
    normalize_atomic_basis: bool = option(
        True, doc="Scale each layer's atomic basis to unit mean square on the training data at the start "
                  "(false: unscaled, as MACE's).")
    product_weights: str = option(
        "minimal", check=one_of("minimal", "mace"),
        doc="Weights of the product basis: 'minimal', one per independent symmetric coupling; 'mace', one per "
            "coupling path in every order of the factors (MACE's generalised Clebsch-Gordan set, redundant: "
            "the same functions, trained faster by Adam).")
    precision: str = option("default", check=check_precision, doc=_doc_precision)
    trainable: bool = option(True, doc="Whether the descriptor parameters are trainable.")
    seed: int | None = option(None, doc="Random seed for parameter initialization.")

    @property
    def dim_out(self) -> int:
        """``num_layers`` x the number of ``0e`` channels in ``hidden_irreps``."""
        from e3nn import o3

        return self.num_layers * sum(mul for mul, ir in o3.Irreps(self.hidden_irreps).simplify() if ir == o3.Irrep("0e"))


def _check_atten_sel(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None if value > 0 else f"must be > 0, got {show(value)}"
    return _check_sel(value)


@dataclasses.dataclass(kw_only=True)
class _SeAttenCommonConfig(DescriptorConfig):
    """Keys shared by se_atten and se_atten_v2 (DeePMD-kit's ``descrpt_se_atten_common_args``)."""

    sel: int | list[int] | str = option(
        "auto", check=_check_atten_sel,
        doc="Total number of selected neighbours (all types mixed): an int, a list (only its sum matters), "
        "or \"auto\"/\"auto:FACTOR\".",
    )
    rcut: float = option(6.0, check=gt(0), doc="The cut-off radius.")
    rcut_smth: float = option(0.5, check=ge(0), doc="Where smoothing starts.")
    neuron: list[int] = option([10, 20, 40], check=each(gt(0), nonempty=True),
                               doc="Number of neurons in each hidden layer of the embedding net.")
    axis_neuron: int = option(4, aliases=("n_axis_neuron",), check=ge(1),
                              doc="Size of the submatrix of G (the embedding matrix).")
    lmax: int = option(1, only_default=True, doc="Highest moment degree (only 1, DeePMD's default, is supported).")
    activation_function: str = option("tanh", convert=str.lower, check=check_activation, doc=_doc_activation)
    resnet_dt: bool = option(False, doc='Whether to use a "Timestep" in the skip connection.')
    type_one_side: bool = option(False, doc="Embedding input uses the neighbour's type embedding only.")
    precision: str = option("default", check=check_precision, doc=_doc_precision)
    trainable: bool = option(True, doc="Whether the descriptor parameters are trainable.")
    seed: int | None = option(None, doc="Random seed for parameter initialization.")
    exclude_types: list[list[int]] = option([], check=each(_check_pair), doc="Excluded type pairs, e.g. [[0, 1]].")
    env_protection: float = option(0.0, check=ge(0), doc="Protection against division by zero in the environment matrix.")
    attn: int = option(128, check=gt(0), doc="Hidden width of the attention layers.")
    attn_layer: int = option(2, check=ge(0), doc="Number of attention layers.")
    attn_dotr: bool = option(True, doc="Multiply the attention weights by the dot products of the neighbour directions.")
    attn_mask: bool = option(False, only_default=True, doc="Mask the diagonal of the attention (not supported).")
    trainable_ln: bool = option(True, doc="Trainable layer-norm scale and shift.")
    ln_eps: float | None = option(None, check=gt(0), doc="Layer-norm epsilon (null: 1e-5).")
    tebd_dim: int = option(8, check=gt(0), doc="Dimension of the type embedding.")
    use_econf_tebd: bool = option(False, only_default=True, doc="Electronic-configuration type embedding (not supported).")
    use_tebd_bias: bool = option(False, doc="Bias in the type embedding.")
    scaling_factor: float = option(1.0, check=gt(0), doc="Attention logits scaled by (attn * scaling_factor)^-0.5.")
    normalize: bool = option(True, doc="Normalise q, k, v before the attention.")
    temperature: float | None = option(None, check=gt(0), doc="Logit scaling instead of (attn*scaling_factor)^-0.5.")
    concat_output_tebd: bool = option(True, doc="Append the centre's type embedding to the descriptor.")

    @property
    def dim_out(self) -> int:
        """``neuron[-1] * axis_neuron`` (+ ``tebd_dim`` with ``concat_output_tebd``)."""
        return self.neuron[-1] * self.axis_neuron + (self.tebd_dim if self.concat_output_tebd else 0)

    @property
    def embedding_width(self) -> int:
        """``neuron[-1]``."""
        return self.neuron[-1]

    def validate(self, path: str) -> None:
        """``rcut_smth < rcut``, ``axis_neuron <= neuron[-1]`` and a supported padding mode."""
        if not self.rcut_smth < self.rcut:
            raise ConfigError(f"must be < rcut ({self.rcut}), got {show(self.rcut_smth)}", join_path(path, "rcut_smth"))
        if self.axis_neuron > self.neuron[-1]:
            raise ConfigError(f"must be <= neuron[-1] ({self.neuron[-1]}), got {self.axis_neuron}",
                              join_path(path, "axis_neuron"))
        if not self.set_davg_zero and not self._strip_smooth:
            raise ConfigError(
                "set_davg_zero = false is supported only with tebd_input_mode 'strip' and smooth_type_embedding "
                "(DeePMD-kit otherwise feeds its empty neighbour slots the type of the first atom of the frame)",
                join_path(path, "set_davg_zero"))

    _strip_smooth: ClassVar[bool] = True

    def check_ntypes(self, ntypes: int, path: str) -> None:
        """``exclude_types`` indices ``< ntypes`` (``sel`` may have any length: only its sum matters)."""
        for i, pair in enumerate(self.exclude_types):
            if max(pair) >= ntypes:
                raise ConfigError(f"type index {max(pair)} out of range for {ntypes} types in type_map",
                                  join_path(join_path(path, "exclude_types"), i))


@DESCRIPTORS.register("se_atten", aliases=("dpa1",))
@dataclasses.dataclass(kw_only=True)
class SeAttenConfig(_SeAttenCommonConfig):
    """``se_atten`` (alias ``dpa1``): attention over the neighbours with a type embedding
    (DeePMD-kit's ``descrpt_se_atten_args``; see :mod:`mtzoo.descriptors.se_atten`).

    ``set_davg_zero`` (default true) may be false only with ``tebd_input_mode: "strip"`` and
    ``smooth_type_embedding: true``.
    """

    stripped_type_embedding: bool | None = option(None, omit_none=True,
                                                  doc="Deprecated: true = tebd_input_mode \"strip\".")
    smooth_type_embedding: bool = option(False, aliases=("smooth_type_embdding",),
                                         doc="Smooth attention weights (switch function on logits and weights).")
    set_davg_zero: bool = option(True, doc="Set the normalization average to zero.")
    tebd_input_mode: str = option("concat", check=one_of("concat", "strip"),
                                  doc="How the type embedding enters the embedding net: \"concat\" or \"strip\".")

    @property
    def _strip_smooth(self) -> bool:  # type: ignore[override]
        mode = self.tebd_input_mode if self.stripped_type_embedding is None else (
            "strip" if self.stripped_type_embedding else "concat")
        return mode == "strip" and self.smooth_type_embedding


@DESCRIPTORS.register("se_atten_v2")
@dataclasses.dataclass(kw_only=True)
class SeAttenV2Config(_SeAttenCommonConfig):
    """``se_atten_v2``: se_atten with ``tebd_input_mode: "strip"`` and smooth attention
    (DeePMD-kit's ``descrpt_se_atten_v2_args``)."""

    set_davg_zero: bool = option(False, doc="Set the normalization average to zero.")
