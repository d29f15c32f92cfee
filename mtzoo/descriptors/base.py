"""Descriptor interface and registry (with DeePMD-kit's aliases).

Every descriptor maps the edge vectors of a neighbour graph to per-atom features and
declares, at build time, what it outputs so that heads can check they can be attached:

* ``dim_out``: width of the invariant per-atom features (``keys.DESCRIPTOR``);
* ``dim_rot``: number of per-atom axis vectors (``keys.ROT_MAT``, shape ``[N, dim_rot, 3]``),
  0 when the descriptor carries no equivariant vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Descriptor(nn.Module):
    """Base class: subclasses set ``rcut``, ``ntypes``, ``dim_out``, ``dim_rot``, ``mixed_types``."""

    rcut: float
    ntypes: int
    dim_out: int
    dim_rot: int = 0
    mixed_types: bool = False
    type_name: str = ""

    def forward(self, edge_vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward_with_pullback(self, edge_vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor,
                              folded: bool = False):
        r"""Inference without autograd: :meth:`forward`'s features and a function that maps
        :math:`\partial E/\partial \mathcal D` (``[N, dim_out]``) to :math:`\partial E/\partial
        \mathbf r_e` (``[E, 3]``), or None where this descriptor has no such path (then
        :meth:`mtzoo.model.Model.forward` differentiates :meth:`forward` with autograd).
        Only the descriptor output's gradient is taken (not that of the rotation matrix).
        ``folded``: the descriptor in the layout of the descriptor's ``folded_index()`` (se_e2_a)."""
        return None

    def folded_index(self):
        """The folded layout of the descriptor (its symmetric block stored once) that
        :meth:`forward_with_pullback` can produce, or None where the descriptor has none (se_e2_a has)."""
        return None

    def compute_stats(self, graphs: Sequence) -> None:  # pragma: no cover - interface
        """Set input statistics from training graphs."""
        raise NotImplementedError

    def get_config(self) -> dict:  # pragma: no cover - interface
        """Constructor arguments (DeePMD key names) that rebuild this descriptor."""
        raise NotImplementedError


REGISTRY: dict[str, type[Descriptor]] = {}


def register(name: str):
    """Class decorator adding a descriptor under its canonical ``name`` (DeePMD-kit's aliases are
    declared once, with the input schema: :data:`mtzoo.config.model.DESCRIPTORS`)."""

    def wrap(cls: type[Descriptor]) -> type[Descriptor]:
        REGISTRY[name] = cls
        cls.type_name = name
        return cls

    return wrap


def canonical_name(name: str) -> str:
    """Registry name for ``name`` or a DeePMD-kit alias of it (the schema's table of names)."""
    from mtzoo.config import DESCRIPTORS

    name = DESCRIPTORS.canonical(name) or name
    if name not in REGISTRY:
        raise ValueError(f"descriptor type '{name}' unknown (available: {sorted(REGISTRY)})")
    return name


def build_descriptor(config: dict, ntypes: int) -> Descriptor:
    """Build a descriptor from its config dict (``type`` plus constructor keys)."""
    cfg = dict(config)
    cls = REGISTRY[canonical_name(cfg.pop("type"))]
    return cls(ntypes=ntypes, **cfg)
