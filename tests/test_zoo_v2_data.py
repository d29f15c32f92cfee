"""examples/data/make_zoo_v2.py: the fixed molecule split and the label cache format (no tblite/PySCF needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ase.collections")

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "data" / "make_zoo_v2.py"
#: the held-out molecules of zoo v2, fixed before any label was computed (every 6th of the sorted candidates)
HELD_OUT = ["C2H6NH", "C3H8", "CH2OCH2", "CH3CN", "CH3OH", "H2CCHCN", "HCN", "NCCN", "cyclobutane"]


@pytest.fixture(scope="module")
def zoo_v2():
    spec = importlib.util.spec_from_file_location("make_zoo_v2", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_split_is_fixed_disjoint_and_covers_the_candidates(zoo_v2):
    from ase.collections import g2

    train, held = zoo_v2.split_molecules()
    assert held == HELD_OUT
    assert not set(train) & set(held)
    assert sorted(train + held) == list(zoo_v2.candidates())
    assert len(train) >= 30 and zoo_v2.split_molecules() == (train, held)
    for name in train + held:
        atoms = g2[name]
        assert set(atoms.get_chemical_symbols()) <= {"H", "C", "N", "O"} and 2 <= len(atoms) <= 12
        assert atoms.get_atomic_numbers().sum() % 2 == 0 and not atoms.get_initial_magnetic_moments().any()
    # the seeds do not depend on which molecules a run is given
    assert zoo_v2.seed("CH3OH", 800.0) == zoo_v2.SEED + 100 * zoo_v2.candidates().index("CH3OH") + 2


@pytest.mark.parametrize("k", [1, 2, 3, 8, 13])
def test_spread_order_is_a_permutation_that_starts_at_both_ends(zoo_v2, k):
    order = zoo_v2.spread_order(k)
    assert sorted(order) == list(range(k))
    assert order[:2] == ([0, k - 1] if k > 1 else [0])


def test_label_chunk_round_trip(zoo_v2, tmp_path):
    rng = np.random.default_rng(0)
    labels = {i: {"energy": rng.normal(), "force": rng.normal(size=(3, 3)), "dipole": rng.normal(size=3),
                  "wall": 1.0} for i in (8, 0, 4)}
    path = tmp_path / "xtb" / "H2O_300K.npz"
    zoo_v2.save_chunk(path, labels)
    back = zoo_v2.load_chunk(path)
    assert sorted(back) == [0, 4, 8] and not list(tmp_path.rglob("*.tmp.npz"))
    for i, lab in labels.items():
        for key, value in lab.items():
            np.testing.assert_array_equal(back[i][key], value)


def _run(args, cwd):
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-W", "ignore::FutureWarning", str(SCRIPT), *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_make_zoo_v2_assembles_the_shipped_set(tmp_path):
    """``--assemble`` rebuilds the shipped systems from the shipped label cache, file for file."""
    shipped = SCRIPT.parent / "zoo_v2"
    if not (shipped / ".cache").is_dir():
        pytest.skip("no zoo_v2 cache shipped")
    (tmp_path / ".cache").symlink_to(shipped / ".cache")
    _run(["--assemble", "--out", str(tmp_path)], tmp_path)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.glob("[!.]*/**/*.npy"))
    assert made == sorted(p.relative_to(shipped) for p in shipped.glob("[!.]*/**/*.npy"))
    for rel in made:
        np.testing.assert_array_equal(np.load(tmp_path / rel), np.load(shipped / rel), err_msg=str(rel))
    assert (tmp_path / "split.json").read_text() == (shipped / "split.json").read_text()


def test_make_zoo_v2_smoke(tmp_path):
    """``--smoke``: xTB MD, xTB and PBE labels on a few frames of a training and a held-out molecule."""
    pytest.importorskip("tblite.ase", reason="tblite not installed")
    pytest.importorskip("pyscf", reason="pyscf not installed")
    from mtzoo.data.readers import load_systems

    r = _run(["--smoke", "--out", str(tmp_path)], tmp_path)
    assert "wrote" in r.stdout
    for level in ("xtb", "dft"):
        for part in ("H2O/train", "H2O/valid", "CH3OH/test"):
            (system,) = load_systems(tmp_path / level / part)
            assert all(system.has_label(k) and np.isfinite(system.labels[k]).all()
                       for k in ("energy", "force", "dipole")), (level, part)
