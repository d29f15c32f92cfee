"""Shared fixtures: float64 by default, one thread, the shared DeePMD data when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "deepmd-examples"
WATER = SHARED / "examples" / "water"
AGAU = REPO / "examples" / "data" / "agau_emt"


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def water_dir() -> Path:
    if not (WATER / "data" / "data_0").is_dir():
        pytest.skip("shared DeePMD water data not present (../shared/data/deepmd-examples)")
    return WATER


def water_frames(n: int = 2):
    """First ``n`` frames of shared water data_0 as a System (skips when absent)."""
    from mtzoo.data.readers import read_deepmd

    if not (WATER / "data" / "data_0").is_dir():
        pytest.skip("shared DeePMD water data not present")
    s = read_deepmd(WATER / "data" / "data_0")[0]
    s.coord, s.box = s.coord[:n], s.box[:n]
    s.labels = {k: v[:n] for k, v in s.labels.items()}
    s.masks = {k: v[:n] for k, v in s.masks.items()}
    return s


def molecule_system():
    """A non-periodic ethanol-like molecule (C2H6O) as a System, no labels."""
    from mtzoo.data.system import System

    pos = np.array([[0.0, 0.0, 0.0], [1.52, 0.0, 0.0], [2.0, 1.35, 0.0], [-0.39, 1.02, 0.0], [-0.39, -0.51, 0.88],
                    [-0.39, -0.51, -0.88], [1.9, -0.52, 0.89], [1.9, -0.52, -0.89], [2.95, 1.3, 0.1]])
    el = ["C", "C", "O", "H", "H", "H", "H", "H", "H"]
    rng = np.random.default_rng(0)
    pos = pos + rng.normal(scale=0.05, size=pos.shape)
    return System("ethanol", el, np.zeros(len(el), dtype=np.int64), pos[None], None)
