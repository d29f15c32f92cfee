"""Names of the se_e2_a + ener physics models for the tests that import them (test_compress,
test_inference_paths, test_training_kernels); the physics checks are in tests/test_physics.py."""

from __future__ import annotations

import functools

import pytest

from physics import HEAD, SE_A_SYSTEMS, SE_A_VARIANTS, frames_for as _frames_for, se_a_model as model_for

SYSTEMS = SE_A_SYSTEMS
CASES = [pytest.param(s, v, id=f"{s}-{v}") for s in SYSTEMS for v in SE_A_VARIANTS]
frames_for = functools.partial(_frames_for, n_agau=3)

__all__ = ["CASES", "HEAD", "SYSTEMS", "frames_for", "model_for"]
