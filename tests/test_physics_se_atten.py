"""Names of the se_atten + ener physics models for the tests that import them (test_inference_paths);
the physics checks are in tests/test_physics.py."""

from __future__ import annotations

from physics import HEAD, atten_model as model_for, frames_for

__all__ = ["HEAD", "frames_for", "model_for"]
