"""Shared fixtures: float64 by default, one thread, the shared DeePMD data when present."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
#: DeePMD-kit's example data beside the repository; MTZOO_NO_SHARED=1 hides it (what a fresh clone
#: sees: .ci/run runs the suite both ways)
SHARED = (Path("/nonexistent/mtzoo-no-shared") if os.environ.get("MTZOO_NO_SHARED") == "1"
          else REPO.parent / "shared" / "data" / "deepmd-examples")
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


def have_shared_water() -> bool:
    """True when DeePMD-kit's water example (``../shared``) is beside the repository."""
    return (WATER / "data" / "data_0").is_dir()


def water_frames(n: int = 2):
    """``n`` periodic 192-atom water frames as a System.

    DeePMD-kit's water example (first frames of ``data_0``) when ``../shared`` is present;
    otherwise :func:`generated_water` (the same size, density and element order), so that the
    physics and parity tests run on a fresh clone too.
    """
    from mtzoo.data.readers import read_deepmd

    if not have_shared_water():
        return generated_water(n)
    s = read_deepmd(WATER / "data" / "data_0")[0]
    s.coord, s.box = s.coord[:n], s.box[:n]
    s.labels = {k: v[:n] for k, v in s.labels.items()}
    s.masks = {k: v[:n] for k, v in s.masks.items()}
    return s


def generated_water(n: int = 2, nmol: int = 64, seed: int = 0):
    """A fresh copy of :func:`_generated_water` (cached: about 1.4 s per call otherwise)."""
    import copy

    return copy.deepcopy(_generated_water(n, nmol, seed))


@functools.lru_cache(maxsize=8)
def _generated_water(n: int, nmol: int, seed: int):
    r"""Periodic liquid-density water: ``nmol`` molecules (O first, then H, as DeePMD's example), no labels.

    Oxygens on a jittered simple-cubic lattice in a cube of side
    :math:`L = (n_\text{mol}\, 18.015 / (0.6022\,\rho))^{1/3}` (:math:`\rho` = 1 g/cm^3, 12.42 A
    for 64 molecules), O-H 0.9572 A, H-O-H 104.52 deg, each molecule turned by a random rotation,
    redrawn until no two atoms of different molecules are closer than 1.5 A (minimum image).
    Frame ``f`` uses ``seed + f``.
    """
    from mtzoo.data.system import System

    side = round(nmol ** (1 / 3))
    assert side**3 == nmol, "nmol must be a cube"
    box_len = (nmol * 18.015 / 0.6022) ** (1 / 3)
    half = np.deg2rad(104.52) / 2
    local = 0.9572 * np.array([[np.sin(half), np.cos(half), 0.0], [-np.sin(half), np.cos(half), 0.0]])
    frames = []
    for f in range(n):
        rng = np.random.default_rng(seed + f)
        grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)
        ox = (grid + 0.5) * box_len / side + rng.normal(scale=0.15, size=(nmol, 3))
        hyd = np.zeros((nmol, 2, 3))
        for m in range(nmol):
            for _ in range(1000):
                q, _r = np.linalg.qr(rng.normal(size=(3, 3)))
                h = ox[m] + local @ q.T
                if m == 0:
                    break
                placed = np.concatenate([ox[:m], hyd[:m].reshape(-1, 3)])
                d = np.concatenate([h, ox[m:m + 1]])[:, None] - placed[None]
                d -= box_len * np.round(d / box_len)
                if np.linalg.norm(d, axis=-1).min() > 1.5:
                    break
            hyd[m] = h
        frames.append(np.concatenate([ox, hyd.reshape(-1, 3)]))
    coord = np.stack(frames)
    elements = ["O"] * nmol + ["H"] * (2 * nmol)
    box = np.repeat((box_len * np.eye(3))[None], n, axis=0)
    return System("generated-water", elements, np.zeros(len(elements), dtype=np.int64), coord, box)


def tensor_systems(kind: str, split: str = "training") -> dict:
    """``{"atomic_system": System, "global_system": System}`` with dipole or polarizability labels.

    DeePMD-kit's ``water_tensor/<kind>/<split>_data_reformat`` when ``../shared`` is present;
    otherwise bundled water frames (O/H, non-periodic): ``global_system`` the PBE labels of
    ``examples/data/molecules/{dft,dft_polar}/water/train``, ``atomic_system`` the validation
    frames with seeded random atomic labels instead (the tests check bookkeeping, not physics).
    """
    from mtzoo import keys as K
    from mtzoo.data.readers import read_deepmd

    base = WATER.parent / "water_tensor" / kind / f"{split}_data_reformat"
    if base.is_dir():
        return {name: read_deepmd(base / name)[0] for name in ("atomic_system", "global_system")}
    level = "dft" if kind == "dipole" else "dft_polar"
    gkey, akey = (K.DIPOLE, K.ATOM_DIPOLE) if kind == "dipole" else (K.POLARIZABILITY, K.ATOM_POLARIZABILITY)
    root = REPO / "examples" / "data" / "molecules" / level / "water"
    glob = read_deepmd(root / "train")[0]
    glob.labels = {k: v for k, v in glob.labels.items() if k == gkey}
    glob.masks = {k: v for k, v in glob.masks.items() if k == gkey}
    atomic = read_deepmd(root / "valid")[0]
    rng = np.random.default_rng(7)
    atomic.labels = {akey: rng.normal(size=(atomic.nframes,) + K.frame_shape(akey, atomic.natoms))}
    atomic.masks = {akey: np.ones(atomic.nframes, dtype=bool)}
    atomic.name = f"{atomic.name} (random atomic {kind} labels)"
    return {"atomic_system": atomic, "global_system": glob}


def molecule_system():
    """A non-periodic ethanol-like molecule (C2H6O) as a System, no labels."""
    from mtzoo.data.system import System

    pos = np.array([[0.0, 0.0, 0.0], [1.52, 0.0, 0.0], [2.0, 1.35, 0.0], [-0.39, 1.02, 0.0], [-0.39, -0.51, 0.88],
                    [-0.39, -0.51, -0.88], [1.9, -0.52, 0.89], [1.9, -0.52, -0.89], [2.95, 1.3, 0.1]])
    el = ["C", "C", "O", "H", "H", "H", "H", "H", "H"]
    rng = np.random.default_rng(0)
    pos = pos + rng.normal(scale=0.05, size=pos.shape)
    return System("ethanol", el, np.zeros(len(el), dtype=np.int64), pos[None], None)
