"""se_e2_r and se_e3: a tensor head needs axis vectors; the names of their ener physics models for the
tests that import them (test_compress).  The physics checks are in tests/test_physics.py."""

from __future__ import annotations

import pytest

from mtzoo.config import parse_input
from mtzoo.config.base import ConfigError
from mtzoo.model import build_model
from physics import HEAD, frames_for, se_model as model_for

__all__ = ["HEAD", "frames_for", "model_for"]


@pytest.mark.parametrize("kind", ["se_e2_r", "se_r", "se_e3", "se_t"])
def test_tensor_head_needs_axis_vectors(kind):
    """dipole/polar on a descriptor without axis vectors fails when the model (or the input) is built."""
    desc = {"type": kind, "sel": [4, 4], "rcut": 4.0, "neuron": [4, 8]}
    with pytest.raises(ValueError, match="dim_rot = 0"):
        build_model({"type_map": ["O", "H"], "descriptor": desc,
                     "heads": {HEAD: {"type": "dipole", "neuron": [8], "resnet_dt": True}}})
    inp = {"model": {"type_map": ["O", "H"], "descriptor": desc, "fitting_net": {"type": "dipole"}},
           "loss": {"type": "tensor", "pref": 1.0, "pref_atomic": 0.0},
           "training": {"training_data": {"systems": "data/sys"}, "numb_steps": 1}}
    with pytest.raises(ConfigError, match="model.fitting_net.type: a 'dipole' fitting needs the descriptor's axis"):
        parse_input(inp)
