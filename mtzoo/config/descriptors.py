"""Schemas of the radial (``se_e2_r``) and three-body (``se_e3``) descriptors.

Key names, defaults and aliases follow DeePMD-kit 3.2 (``descrpt_se_r_args``,
``descrpt_se_t_args`` in ``deepmd/utils/argcheck.py``).  Registered in
:data:`mtzoo.config.model.DESCRIPTORS` when :mod:`mtzoo.config.model` is imported.
Neither descriptor has axis vectors, so a ``dipole``/``polar`` fitting on them is rejected
(:attr:`provides_rot`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from mtzoo.config.base import ConfigError, each, ge, gt, join_path, option, show
from mtzoo.config.model import (
    DESCRIPTORS,
    DescriptorConfig,
    _check_pair,
    _check_sel,
    _doc_activation,
    _doc_precision,
    check_activation,
    check_precision,
    dtype_name,
)

__all__ = ["SeE2RConfig", "SeTConfig"]


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
    def dtype_name(self) -> str:
        """Parameter dtype name: ``precision`` with ``"default"`` resolved to ``"float64"``."""
        return dtype_name(self.precision)

    @property
    def auto_sel_factor(self) -> float | None:
        """The FACTOR of an ``"auto[:FACTOR]"`` sel (1.1 for ``"auto"``), None for a list."""
        if not isinstance(self.sel, str):
            return None
        return 1.1 if self.sel == "auto" else float(self.sel[5:])

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
