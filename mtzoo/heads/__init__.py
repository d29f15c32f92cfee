"""Heads: energy (forces and virial by autograd), dipole and polarizability (equivariant tensors)."""

import inspect

from mtzoo.heads.base import Head, OutputDef
from mtzoo.heads.e3nn_heads import E3nnDipoleHead, E3nnPolarHead
from mtzoo.heads.energy import EnergyHead, fit_energy_bias
from mtzoo.heads.tensor import DipoleHead, PolarHead, TensorHead

HEADS: dict[str, type[Head]] = {"ener": EnergyHead, "dipole": DipoleHead, "polar": PolarHead}
#: implementations of the tensor fitting types for descriptors with e3nn features (``irreps_out``)
E3NN_HEADS: dict[str, type[Head]] = {"dipole": E3nnDipoleHead, "polar": E3nnPolarHead}


def build_head(config: dict, ntypes: int, descriptor) -> Head:
    """Build a head from its config dict (``type`` plus constructor keys) for ``descriptor``.

    ``dipole`` / ``polar`` on a descriptor that declares e3nn ``irreps_out`` (``e3nn_mp``) give the
    native e3nn heads (:data:`E3NN_HEADS`).  Heads whose constructor takes ``dim_rot`` receive the
    descriptor's number of axis vectors; a head that needs them (``needs_rot``) on a descriptor
    without them fails here, before any weight is created.
    """
    cfg = dict(config)
    kind = cfg.pop("type", "ener")
    if kind not in HEADS:
        raise ValueError(f"fitting_net type '{kind}' unknown (available: {sorted(HEADS)})")
    cls = HEADS[kind]
    if getattr(descriptor, "irreps_out", None) is not None and kind in E3NN_HEADS:
        # equivariant-feature descriptors (e3nn_mp): native e3nn readouts, same outputs and config keys
        cls = E3NN_HEADS[kind]
        head = cls(ntypes=ntypes, irreps_in=str(descriptor.irreps_out), dim_descrpt=descriptor.dim_out,
                   mixed_types=descriptor.mixed_types, **cfg)
        head.check_descriptor(descriptor)
        return head
    dim_rot = int(getattr(descriptor, "dim_rot", 0))
    if cls.needs_rot and dim_rot == 0:
        raise ValueError(f"a '{kind}' head needs equivariant axis vectors (rot_mat), which descriptor "
                         f"'{descriptor.type_name}' does not provide (dim_rot = 0)")
    if "dim_rot" in inspect.signature(cls.__init__).parameters:
        cfg["dim_rot"] = dim_rot
    head = cls(ntypes=ntypes, dim_descrpt=descriptor.dim_out, mixed_types=descriptor.mixed_types, **cfg)
    head.check_descriptor(descriptor)
    return head


__all__ = ["E3NN_HEADS", "HEADS", "DipoleHead", "E3nnDipoleHead", "E3nnPolarHead", "EnergyHead", "Head", "OutputDef",
           "PolarHead", "TensorHead", "build_head", "fit_energy_bias"]
