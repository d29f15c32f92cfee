"""Neighbour list: the compiled cell list (neighbors_ext.cpp) against vesin and against brute force.

Both must give the same set of ordered pairs (centre i, neighbour j, integer image shift S) for
orthorhombic and strongly skewed cells, cells smaller than the cutoff (several images of one
atom, an atom's own images), atoms outside the home cell, non-periodic clusters with large
empty regions, one atom and no pairs; the list is sorted by centre and every edge is shorter
than rcut.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mtzoo.data.graph import neighbor_list, vesin_neighbor_list


@pytest.fixture(autouse=True)
def _compiled():
    from mtzoo.nn.extension import compiled

    if compiled() is None:
        pytest.skip("compiled extension unavailable here (no compiler?)")


def _pairs(edge_index: np.ndarray, shift: np.ndarray) -> list[tuple]:
    s = np.rint(shift).astype(int)
    assert np.array_equal(s, shift), "shifts must be integers"
    return sorted(zip(edge_index[1].tolist(), edge_index[0].tolist(), map(tuple, s.tolist())))


def _brute(pos: np.ndarray, cell: np.ndarray | None, rcut: float) -> list[tuple]:
    if cell is None:
        images = [(0, 0, 0)]
    else:
        d = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)  # lattice-plane distances
        reach = [int(np.ceil((rcut + 2 * np.abs(pos @ np.linalg.inv(cell)).max() * dk) / dk)) for dk in d]
        images = list(itertools.product(*[range(-r, r + 1) for r in reach]))
    out = []
    for img in images:
        off = np.zeros(3) if cell is None else np.array(img, dtype=float) @ cell
        vec = pos[None, :, :] + off - pos[:, None, :]  # [i, j, 3]
        close = np.einsum("ijk,ijk->ij", vec, vec) < rcut ** 2
        for i, j in zip(*np.nonzero(close)):
            if i != j or any(img):
                out.append((int(i), int(j), tuple(int(v) for v in img)))
    return sorted(out)


def _check(pos: np.ndarray, cell: np.ndarray | None, rcut: float, brute: bool = False) -> int:
    ei, sh = neighbor_list(pos, cell, rcut)
    assert ei.dtype == np.int64 and sh.dtype == np.float64 and ei.shape[1] == sh.shape[0]
    assert (np.diff(ei[1]) >= 0).all(), "edges must be sorted by centre"
    vec = pos[ei[0]] - pos[ei[1]] + (0 if cell is None else sh @ cell)
    assert (np.linalg.norm(vec, axis=1) < rcut).all()
    got = _pairs(ei, sh)
    box = np.zeros((3, 3)) if cell is None else cell
    assert got == _pairs(*vesin_neighbor_list(pos, box, cell is not None, rcut))
    if brute:
        assert got == _brute(pos, cell, rcut)
    return len(got)


def test_water_sized_box_matches_vesin():
    rng = np.random.default_rng(1)
    cell = np.diag([12.44, 12.44, 12.44])
    pos = rng.uniform(0, 12.44, (192, 3))
    assert _check(pos, cell, 6.0) > 10000


@pytest.mark.parametrize("seed", range(6))
def test_random_periodic_cells_match_vesin_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    for _ in range(15):
        n = int(rng.integers(1, 40))
        rcut = float(rng.uniform(0.8, 6.0))
        cell = np.diag(rng.uniform(1.5, 10.0, 3)) + rng.uniform(-2.0, 2.0, (3, 3)) * (seed % 2)
        d = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)
        if d.min() < 0.3 * rcut:  # needle-thin cells: millions of images, not a test of correctness
            continue
        pos = rng.uniform(-0.5, 1.5, (n, 3)) @ cell  # atoms outside the home cell too
        _check(pos, cell, rcut, brute=n <= 20)


def test_cell_smaller_than_cutoff_has_self_images():
    cell = np.array([[2.5, 0.0, 0.0], [1.25, 2.165, 0.0], [0.0, 0.0, 3.0]])
    pos = np.array([[0.1, 0.2, 0.3]])
    ei, sh = neighbor_list(pos, cell, 6.0)
    assert (ei == 0).all() and len(sh) > 50  # one atom: all its images within 6 A
    _check(pos, cell, 6.0, brute=True)


@pytest.mark.parametrize("seed", range(3))
def test_non_periodic_clusters_match_vesin_and_brute_force(seed):
    rng = np.random.default_rng(10 + seed)
    # two clusters far apart: most of the bounding box is empty
    a = rng.normal(0.0, 1.5, (25, 3))
    b = rng.normal(0.0, 1.5, (15, 3)) + np.array([80.0, -40.0, 5.0])
    _check(np.concatenate([a, b]), None, 4.0, brute=True)


def test_one_atom_and_no_pairs():
    assert _check(np.zeros((1, 3)), None, 5.0) == 0
    assert _check(np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]]), None, 5.0) == 0
    ei, sh = neighbor_list(np.zeros((0, 3)), None, 5.0)
    assert ei.shape == (2, 0) and sh.shape == (0, 3)


def test_non_finite_positions_are_a_clear_error():
    from mtzoo.data.system import DataError

    pos = np.zeros((3, 3))
    pos[1, 2] = np.nan
    with pytest.raises(DataError, match=r"not finite.*atoms \[1\]"):
        neighbor_list(pos, np.eye(3) * 5.0, 2.0)
