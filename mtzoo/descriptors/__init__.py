"""Descriptors: one module per family, registered with DeePMD-kit's names and aliases."""

from mtzoo.descriptors.base import REGISTRY, Descriptor, build_descriptor, canonical_name
from mtzoo.descriptors.se_e2_a import DescrptSeA
from mtzoo.descriptors.se_e2_r import DescrptSeR
from mtzoo.descriptors.se_t import DescrptSeT

__all__ = ["REGISTRY", "Descriptor", "DescrptSeA", "DescrptSeR", "DescrptSeT", "build_descriptor", "canonical_name"]
