"""The bundled multi-fidelity molecular data (examples/data/molecules) and its generator."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtzoo import keys as K
from mtzoo.data.readers import load_systems

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data" / "molecules"
SCRIPT = ROOT / "examples" / "data" / "make_molecules.py"
LEVEL_LABELS = {
    "xtb": {K.ENERGY, K.FORCES},
    "dft": {K.ENERGY, K.FORCES, K.DIPOLE},
    "dft_polar": {K.ENERGY, K.FORCES, K.DIPOLE, K.POLARIZABILITY},
    "ccsdt": {K.ENERGY},
}


def _systems(root: Path) -> dict[tuple[str, str, str], object]:
    """(level, molecule, split) -> System for every system folder under root."""
    out = {}
    for level in LEVEL_LABELS:
        for folder in sorted((root / level).glob("*/*")):
            if (folder / "type.raw").is_file():
                (system,) = load_systems(folder)
                out[(level, folder.parent.name, folder.name)] = system
    return out


def _check_systems(root: Path) -> dict:
    systems = _systems(root)
    assert systems, f"no systems under {root}"
    for (level, mol, split), s in systems.items():
        nf, natoms = s.coord.shape[:2]
        assert split in ("train", "valid")
        assert nf > 0 and s.box is None, (level, mol, split)  # nopbc
        assert (root / level / mol / split / "nopbc").exists()
        assert set(s.elements) <= {"H", "C", "N", "O"}
        assert LEVEL_LABELS[level] <= set(s.labels), (level, mol, set(s.labels))
        for key in LEVEL_LABELS[level]:
            assert s.masks[key].all()
            assert np.isfinite(s.labels[key]).all(), (level, mol, key)
        assert s.labels[K.ENERGY].shape == (nf,)
        if K.FORCES in s.labels:
            assert s.labels[K.FORCES].shape == (nf, natoms, 3)
            assert np.abs(s.labels[K.FORCES]).max() < 50.0  # eV/A: sane MD conformers
        if K.POLARIZABILITY in s.labels:
            pol = s.labels[K.POLARIZABILITY]
            assert pol.shape == (nf, 3, 3)
            np.testing.assert_allclose(pol, np.swapaxes(pol, 1, 2), atol=1e-8)
            assert (np.trace(pol, axis1=1, axis2=2) > 0).all()  # A^3
    # the same MD frame has the same atoms at every level: every labelled frame of a
    # sparser level appears (same elements, same coordinates) among the xtb frames
    for (level, mol, split), s in systems.items():
        if level == "xtb":
            continue
        ref = systems.get(("xtb", mol, split))
        assert ref is not None, (level, mol, split)
        assert list(s.elements) == list(ref.elements)
        d = np.abs(s.coord[:, None] - ref.coord[None]).max(axis=(2, 3))  # [nf, nf_xtb]
        assert (d.min(axis=1) < 1e-12).all(), (level, mol, split)
        if level == "dft_polar" and ("dft", mol, split) in systems:  # reuses the dft labels of its frames
            dft = systems[("dft", mol, split)]
            j = np.abs(s.coord[:, None] - dft.coord[None]).max(axis=(2, 3)).argmin(axis=1)
            np.testing.assert_allclose(s.coord, dft.coord[j], atol=1e-12)
            np.testing.assert_allclose(s.labels[K.ENERGY], dft.labels[K.ENERGY][j])
            np.testing.assert_allclose(s.labels[K.DIPOLE], dft.labels[K.DIPOLE][j])
    return systems


@pytest.mark.skipif(not (DATA / "xtb").is_dir(), reason="examples/data/molecules not generated")
def test_bundled_molecule_data():
    systems = _check_systems(DATA)
    assert (DATA / "PROVENANCE.md").is_file()
    assert {lv for lv, _, _ in systems} >= {"xtb", "dft"}


_HAVE_QC = importlib.util.find_spec("tblite") is not None and importlib.util.find_spec("pyscf") is not None


@pytest.mark.skipif(not _HAVE_QC, reason="tblite and pyscf are needed to generate the data")
def test_make_molecules_smoke(tmp_path):
    out = tmp_path / "mol"
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    systems = _check_systems(out)
    assert {lv for lv, _, _ in systems} == set(LEVEL_LABELS)
    assert "smoke mode" in (out / "PROVENANCE.md").read_text()
    # resumable: a second run finds every label in the cache and only re-assembles
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "frame" not in r.stdout.replace("frames per level", "")
