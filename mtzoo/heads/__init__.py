"""Heads: energy (forces and virial by autograd); dipole and polarizability follow."""

from mtzoo.heads.base import Head, OutputDef
from mtzoo.heads.energy import EnergyHead, fit_energy_bias

HEADS: dict[str, type[Head]] = {"ener": EnergyHead}


def build_head(config: dict, ntypes: int, descriptor) -> Head:
    """Build a head from its config dict (``type`` plus constructor keys) for ``descriptor``."""
    cfg = dict(config)
    kind = cfg.pop("type", "ener")
    if kind not in HEADS:
        raise ValueError(f"fitting_net type '{kind}' unknown (available: {sorted(HEADS)})")
    head = HEADS[kind](ntypes=ntypes, dim_descrpt=descriptor.dim_out, mixed_types=descriptor.mixed_types, **cfg)
    head.check_descriptor(descriptor)
    return head


__all__ = ["HEADS", "EnergyHead", "Head", "OutputDef", "build_head", "fit_energy_bias"]
