"""Head interface: what a head needs from the descriptor and what it outputs.

Each head declares its outputs (:class:`OutputDef`); the model wrapper reduces per-atom
outputs over frames and differentiates the energy (forces, virial) in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class OutputDef:
    """Declarative output of a head.

    Attributes
    ----------
    name : str
        Key of the frame value in the model's output dict (:mod:`mtzoo.keys`).
    atom_name : str
        Key of the per-atom value that the head returns (summed into ``name`` when reducible).
    shape : tuple[int, ...]
        Per-atom shape of the quantity (``()`` for a scalar).
    reducible : bool
        Summed over the atoms of a frame to give the frame value.
    differentiable : bool
        Forces and virial are its negative gradients (energy).
    """

    name: str
    atom_name: str
    shape: tuple[int, ...] = ()
    reducible: bool = True
    differentiable: bool = False


class Head(nn.Module):
    """Base class; subclasses set ``head_type``, ``outputs`` and ``needs_rot``."""

    head_type: str = ""
    outputs: tuple[OutputDef, ...] = ()
    needs_rot: bool = False
    #: the head has ``energy_and_grad(features, atom_type, fold)``: its energy and the energy's
    #: gradient with respect to the features without autograd (inference with forces)
    energy_grad_by_hand: bool = False
    #: ``energy_and_grad`` accepts the folded se_e2_a descriptor (``Descriptor.folded_index``)
    takes_folded: bool = False

    def __init__(self) -> None:
        super().__init__()
        #: a two-body energy term of the head (:class:`mtzoo.heads.pair.PairCorrection`; energy heads
        #: may set it) or None.  An instance attribute, not a class one: a module assigned later must
        #: be found through ``nn.Module``'s registry.
        self.pair = None

    def check_descriptor(self, descriptor) -> None:
        """Raise ValueError when ``descriptor`` cannot feed this head."""
        if self.needs_rot and getattr(descriptor, "dim_rot", 0) == 0:
            raise ValueError(f"a '{self.head_type}' head needs equivariant axis vectors, which "
                             f"descriptor '{descriptor.type_name}' does not provide")

    def forward(self, features: dict[str, torch.Tensor], atom_type: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-atom outputs keyed by each :class:`OutputDef`'s ``atom_name``.

        The model sums reducible outputs over the atoms of each frame; heads never see frames.
        """
        raise NotImplementedError

    def get_config(self) -> dict:  # pragma: no cover - interface
        raise NotImplementedError


def type_order(atom_type: torch.Tensor, ntypes: int) -> tuple[list[int], torch.Tensor | None]:
    """Number of atoms of each type and the stable order that groups them by type (None when
    they are grouped already, as in DeePMD npy systems).

    Shapes
    ------
    atom_type ``[N]`` -> ``ntypes`` counts, order ``[N]`` or None.
    """
    sizes = torch.bincount(atom_type, minlength=ntypes).tolist()
    grouped = atom_type.numel() < 2 or bool((atom_type[1:] >= atom_type[:-1]).all())
    return sizes, (None if grouped else torch.argsort(atom_type, stable=True))


def apply_per_type(nets, x: torch.Tensor, atom_type: torch.Tensor, ntypes: int, out_dim: int) -> torch.Tensor:
    """Net ``nets[t]`` on the rows of atoms of type ``t``, results back in atom order.

    Atoms already grouped by type (DeePMD npy systems are) are split without any gather;
    otherwise they are sorted with ``index_select`` and put back with ``index_copy`` (whose
    backward passes are gathers, not scatters).

    Shapes
    ------
    x ``[N, D]``, atom_type ``[N]`` -> ``[N, out_dim]``.
    """
    sizes, order = type_order(atom_type, ntypes)
    xs = x if order is None else x.index_select(0, order)
    parts = [net(p) for net, p in zip(nets, torch.split(xs, sizes)) if p.shape[0]]
    if not parts:
        return x.new_empty(x.shape[0], out_dim)
    out = torch.cat(parts) if len(parts) > 1 else parts[0]
    return out if order is None else out.new_empty(out.shape).index_copy(0, order, out)
