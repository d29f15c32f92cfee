"""Heads: energy (forces and virial by autograd), dipole and polarizability (equivariant tensors)."""

import inspect

from mtzoo.heads.base import Head, OutputDef
from mtzoo.heads.energy import EnergyHead, fit_energy_bias
from mtzoo.heads.tensor import DipoleHead, PolarHead, TensorHead

HEADS: dict[str, type[Head]] = {"ener": EnergyHead, "dipole": DipoleHead, "polar": PolarHead}


def build_head(config: dict, ntypes: int, descriptor) -> Head:
    """Build a head from its config dict (``type`` plus constructor keys) for ``descriptor``.

    Heads whose constructor takes ``dim_rot`` receive the descriptor's number of axis vectors;
    a head that needs them (``needs_rot``) on a descriptor without them fails here, before any
    weight is created.
    """
    cfg = dict(config)
    kind = cfg.pop("type", "ener")
    if kind not in HEADS:
        raise ValueError(f"fitting_net type '{kind}' unknown (available: {sorted(HEADS)})")
    cls = HEADS[kind]
    dim_rot = int(getattr(descriptor, "dim_rot", 0))
    if cls.needs_rot and dim_rot == 0:
        raise ValueError(f"a '{kind}' head needs equivariant axis vectors (rot_mat), which descriptor "
                         f"'{descriptor.type_name}' does not provide (dim_rot = 0)")
    if "dim_rot" in inspect.signature(cls.__init__).parameters:
        cfg["dim_rot"] = dim_rot
    head = cls(ntypes=ntypes, dim_descrpt=descriptor.dim_out, mixed_types=descriptor.mixed_types, **cfg)
    head.check_descriptor(descriptor)
    return head


__all__ = ["HEADS", "DipoleHead", "EnergyHead", "Head", "OutputDef", "PolarHead", "TensorHead", "build_head",
           "fit_energy_bias"]
