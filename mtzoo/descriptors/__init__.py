"""Descriptors: one module per family, registered with DeePMD-kit's names and aliases."""

from mtzoo.descriptors.base import REGISTRY, Descriptor, build_descriptor, canonical_name
from mtzoo.descriptors.e3nn_mace import DescrptE3nnMACE
from mtzoo.descriptors.e3nn_mp import DescrptE3nnMP
from mtzoo.descriptors.hybrid import DescrptHybrid
from mtzoo.descriptors.se_atten import DescrptSeAtten, DescrptSeAttenV2
from mtzoo.descriptors.se_e2_a import DescrptSeA
from mtzoo.descriptors.se_e2_r import DescrptSeR
from mtzoo.descriptors.se_t import DescrptSeT

__all__ = ["REGISTRY", "Descriptor", "DescrptE3nnMACE", "DescrptE3nnMP", "DescrptHybrid", "DescrptSeA", "DescrptSeAtten", "DescrptSeAttenV2", "DescrptSeR", "DescrptSeT", "build_descriptor",
           "canonical_name"]
