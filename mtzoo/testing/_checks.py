"""Checks of energy heads: derivatives, symmetry, cutoff, batching and precision (:mod:`mtzoo.testing`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from mtzoo import keys as K
from mtzoo.testing._frames import (Frame, as_frame, assert_close, energies, equivalent_frames, evaluate, float32_copy,
                                   strained)


def _central_differences(model, head: str, frames_pm: list, h: float) -> np.ndarray:
    """``-(E(+h) - E(-h)) / 2h`` of each pair of displaced frames ``[+h, -h, +h, -h, ...]``, evaluated
    in batches (:func:`energies`; :func:`check_batch_independence` checks that batching is exact)."""
    e = energies(model, frames_pm, head).reshape(-1, 2)
    return -(e[:, 0] - e[:, 1]) / (2 * h)


def check_forces_fd(model, atoms, head: str, h: float = 1e-5, rtol: float = 1e-6, max_atoms: int | None = 12,
                    seed: int = 0) -> float:
    r"""Forces against central differences of the energy: :math:`F_{ia} = -\partial E/\partial x_{ia}`.

    .. math:: F_{ia} \approx -\frac{E(x + h e_{ia}) - E(x - h e_{ia})}{2h}

    The displaced frames are evaluated in batches (:func:`energies`; batching is exact to
    round-off, which :func:`check_batch_independence` checks).

    Parameters
    ----------
    model : mtzoo.model.Model
        Float64 model (the differences need it).
    atoms : ase.Atoms, System, (System, int) or Frame
        The geometry (see :func:`as_frame`).
    head : str
        Energy head.
    h : float
        Displacement in Angstrom.
    rtol : float
        Tolerance relative to the largest force component of the frame.
    max_atoms : int or None
        All coordinates of frames with at most ``max_atoms`` atoms (all of them when None), else
        those of ``max_atoms`` atoms drawn with ``seed``.
    seed : int

    Returns
    -------
    float
        The relative error.
    """
    frame = as_frame(atoms, model.type_map)
    force = evaluate(model, frame, head)[K.FORCES]
    n = frame.natoms
    rng = np.random.default_rng(seed)
    idx = np.arange(n) if max_atoms is None or n <= max_atoms else np.sort(rng.choice(n, max_atoms, replace=False))
    displaced = []
    for i in idx:
        for d in range(3):
            for sgn in (1.0, -1.0):
                pos = frame.pos.copy()
                pos[i, d] += sgn * h
                displaced.append(frame.replace(pos=pos))
    fd = _central_differences(model, head, displaced, h).reshape(len(idx), 3)
    scale = float(np.abs(force).max())
    assert scale > 0, "forces are identically zero: the check would be vacuous"
    return assert_close(f"forces vs FD (atoms {idx.tolist()}, h={h})", force[idx], fd, rtol, scale)


def check_virial_fd(model, atoms, head: str, h: float = 1e-6, rtol: float = 1e-6) -> float:
    r"""Virial against central differences of a homogeneous strain, and the identities it obeys.

    .. math:: W_{ab} = -\frac{\partial E}{\partial \varepsilon_{ab}}, \qquad
              x' = x (I + \varepsilon), \quad h' = h (I + \varepsilon)

    (row vectors; the cell ``h`` only when periodic), all 9 components.  Also: ``W`` is
    symmetric (rotation invariance); periodic frames have stress :math:`\sigma = -W/V` (to 1e-12);
    finite frames have zero stress and :math:`W = \sum_i x_i \otimes F_i` (to 1e-10), which
    follows from :math:`W = -\sum_e r_e \otimes \partial E/\partial r_e` over the edges.

    Parameters
    ----------
    model, atoms, head
        As for :func:`check_forces_fd`.
    h : float
        Strain step.
    rtol : float
        Tolerance relative to the largest virial component.

    Returns
    -------
    float
        The relative error of the virial against the differences.
    """
    frame = as_frame(atoms, model.type_map)
    ref = evaluate(model, frame, head)
    w = ref[K.VIRIAL][0]
    strains = []
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = h
            strains += [strained(frame, eps), strained(frame, -eps)]
    fd = _central_differences(model, head, strains, h).reshape(3, 3)
    scale = float(np.abs(w).max())
    assert scale > 0, "virial is identically zero: the check would be vacuous"
    kind = "cell+positions" if frame.periodic else "positions"
    err = assert_close(f"virial vs FD of a strain of {kind} (h={h})", w, fd, rtol, scale)
    assert_close("virial symmetry W vs W^T", w, w.T, max(rtol, 1e-10), scale)
    stress = ref[K.STRESS][0]
    if frame.periodic:
        vol = abs(float(np.linalg.det(frame.cell)))
        assert_close("stress vs -virial/volume", stress, -w / vol, 1e-12, scale / vol)
    else:
        assert np.all(stress == 0.0), f"non-periodic frame has non-zero stress {stress.tolist()}"
        xf = np.einsum("ia,ib->ab", frame.pos, ref[K.FORCES])
        assert_close("finite-system virial vs sum_i x_i (x) F_i", w, xf, 1e-10, scale)
    return err


def _compare(what: str, got: dict, want: dict, rtol: float, perm: np.ndarray | None = None,
             rot: np.ndarray | None = None) -> float:
    """Energy, atom energies, forces and virial of a transformed frame vs the transformed reference."""
    f_ref, w_ref, ae_ref = want[K.FORCES], want[K.VIRIAL][0], want[K.ATOM_ENERGY]
    if perm is not None:
        f_ref, ae_ref = f_ref[perm], ae_ref[perm]
    if rot is not None:
        f_ref = f_ref @ rot.T
        w_ref = rot @ w_ref @ rot.T
    return max(assert_close(f"{what}: energy", got[K.ENERGY], want[K.ENERGY], rtol),
               assert_close(f"{what}: atom energies", got[K.ATOM_ENERGY], ae_ref, rtol),
               assert_close(f"{what}: forces", got[K.FORCES], f_ref, rtol, float(np.abs(f_ref).max())),
               assert_close(f"{what}: virial", got[K.VIRIAL][0], w_ref, rtol, float(np.abs(w_ref).max())))


def check_invariance(model, atoms, head: str, rtol: float = 1e-10, seed: int = 0) -> float:
    r"""Energy invariant, forces and virial equivariant under the copies of :func:`equivalent_frames`.

    .. math:: E(x R^T + t) = E(x), \quad F(x R^T + t) = F(x) R^T, \quad W(x R^T + t) = R W(x) R^T

    and atom energies and forces follow a permutation of the atoms; periodic frames also under
    wrapping, lattice shifts of single atoms and unimodular cell changes.  The total force
    vanishes (so a translation leaves the virial of a finite frame unchanged).

    Parameters
    ----------
    model, atoms, head
        As for :func:`check_forces_fd`.
    rtol : float
        Tolerance relative to the largest component of each reference output.
    seed : int
        Seeds the rotation, translation, permutation and lattice shifts.

    Returns
    -------
    float
        The largest relative error.
    """
    frame = as_frame(atoms, model.type_map)
    ref = evaluate(model, frame, head)
    fsum = ref[K.FORCES].sum(0)
    fscale = float(np.abs(ref[K.FORCES]).max())
    assert np.abs(fsum).max() <= rtol * fscale * max(frame.natoms, 1), f"total force {fsum.tolist()} is not zero"
    worst = 0.0
    for name, f2, perm, rot in equivalent_frames(frame, np.random.default_rng(seed)):
        worst = max(worst, _compare(name, evaluate(model, f2, head), ref, rtol, perm, rot))
    return worst


@functools.lru_cache(maxsize=4)
def _line_directions(rng_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random unit vector ``u`` and a unit vector ``v`` orthogonal to it."""
    u = np.random.default_rng(rng_seed).normal(size=3)
    u /= np.linalg.norm(u)
    v = np.cross(u, [0.0, 0.0, 1.0])
    return u, v / np.linalg.norm(v)


def _line_cluster(symbols: Sequence[str], r: float, rng_seed: int = 3) -> tuple[Frame, np.ndarray]:
    """Atom 0 at the origin, atom 1 at ``r * u`` (``u`` a fixed unit vector), a spectator atom 2
    about 1.1 A from atom 0 on the far side (so it sees atom 1 cross its own cutoff elsewhere)."""
    u, v = _line_directions(rng_seed)
    pos = np.array([np.zeros(3), r * u, -0.8 * u + 0.75 * v])
    return Frame(list(symbols), pos, None), u.copy()


def _crossing(model, head: str, a: str, b: str, r0: float, step: float, tol: float, at_rcut: bool) -> dict:
    """Errors of energy and forces as atom 1 of :func:`_line_cluster` crosses ``r0`` (see
    :func:`check_cutoff_smoothness`); the four positions are evaluated as one batch."""
    ks = (-3, -1, 1, 3)
    out = evaluate(model, [_line_cluster([a, b, a], r0 + k * step)[0] for k in ks], head)
    vals = {k: (out[K.ENERGY][n], out[K.FORCES][3 * n: 3 * n + 3]) for n, k in enumerate(ks)}
    # force scale of the cluster, floored at 1e-3 eV/A so that tiny forces do not make it vacuous
    fscale = max([float(np.abs(vals[k][1]).max()) for k in vals] + [1e-3])
    e_floor = 64 * np.finfo(np.float64).eps * max(abs(vals[k][0]) for k in vals)  # round-off of an energy difference
    what = f"pair {a}-{b} crossing r={r0}"
    jump_e, pred_e = vals[1][0] - vals[-1][0], (vals[3][0] - vals[-3][0]) / 3
    err_e = max(abs(jump_e - pred_e) - e_floor, 0.0) / (fscale * step)
    assert err_e <= tol, (f"{what}: energy jump {jump_e:.6e} over 2*{step} vs smooth prediction {pred_e:.6e} "
                          f"((difference - round-off {e_floor:.1e}) / (max|F| d) = {err_e:.3e} > {tol})")
    jump_f, pred_f = vals[1][1] - vals[-1][1], (vals[3][1] - vals[-3][1]) / 3
    err_f = float(np.abs(jump_f - pred_f).max()) / fscale
    assert err_f <= tol, (f"{what}: force jump {jump_f.tolist()} vs smooth prediction {pred_f.tolist()} "
                          f"(relative difference {err_f:.3e} > {tol})")
    errs = {"jump_E": err_e, "jump_F": err_f}
    if at_rcut:
        errs["rcut_F"] = assert_close(f"{what}: forces just inside vs just outside", vals[-1][1], vals[1][1], tol,
                                      fscale)
        de = abs(vals[-1][0] - vals[1][0])
        assert de <= tol * fscale * step + e_floor, (f"{what}: energy changes by {de:.3e} over a step of {2 * step} "
                                                     "across rcut")
    return errs


def _beyond_rcut(model, head: str, a: str, b: str) -> float:
    """An atom of type ``b`` beyond rcut of a cluster changes nothing and has the isolated-atom energy."""
    rcut = float(model.rcut)
    frame, u = _line_cluster([a, b, a], min(0.9 * rcut, 2.0))
    x = -u * (float((frame.pos @ -u).max()) + rcut * (1 + 1e-9))
    with_x = frame.replace(pos=np.vstack([frame.pos, x[None]]), symbols=frame.symbols + [b])
    d_min = np.linalg.norm(frame.pos - x, axis=1).min()
    assert d_min > rcut, d_min
    out_c, out_x = evaluate(model, frame, head), evaluate(model, with_x, head)
    # energies only: an edge-less frame is covered by check_isolated_atom
    out_lone = evaluate(model, Frame([b], x[None].copy(), None), head, forces=False)
    what = f"atom {b} at {d_min:.6f} A > rcut={rcut} from cluster {frame.symbols}"
    errs = [assert_close(f"{what}: cluster atom energies", out_x[K.ATOM_ENERGY][:3], out_c[K.ATOM_ENERGY], 1e-12),
            assert_close(f"{what}: its atom energy vs the isolated atom", out_x[K.ATOM_ENERGY][3:],
                         out_lone[K.ATOM_ENERGY], 1e-12),
            assert_close(f"{what}: cluster forces", out_x[K.FORCES][:3], out_c[K.FORCES], 1e-12)]
    assert np.all(out_x[K.FORCES][3] == 0.0), f"{what}: non-zero force {out_x[K.FORCES][3].tolist()} on it"
    errs += [assert_close(f"{what}: total energy = cluster + isolated atom", out_x[K.ENERGY],
                          out_c[K.ENERGY] + out_lone[K.ENERGY], 1e-12),
             assert_close(f"{what}: virial", out_x[K.VIRIAL], out_c[K.VIRIAL], 1e-12)]
    return max(errs)


def check_cutoff_smoothness(model, head: str, step: float = 1e-6, tol: float = 1e-8,
                            pairs: Sequence[tuple[str, str]] | None = None,
                            radii: Sequence[float] | None = None) -> dict[str, float]:
    r"""Energy and forces are :math:`C^1` as one atom crosses each radius; nothing acts beyond rcut.

    For each radius :math:`r_0` and type pair, one atom moves along a line through :math:`r_0`
    (with a spectator of the first type) and the jump over :math:`2d` must equal its smooth
    prediction to :math:`O(d^2)`:

    .. math:: X(r_0 + d) - X(r_0 - d) = \tfrac13 \left(X(r_0 + 3d) - X(r_0 - 3d)\right)

    for the energy (in units of :math:`\max|F|\,d`, after a round-off floor) and the forces
    (relative to :math:`\max|F|`); a step of size J leaves 2J/3.  At ``rcut`` also
    :math:`F(r_c - d) = F(r_c + d)` and :math:`|E(r_c - d) - E(r_c + d)| \le` ``tol`` :math:`\max|F|\,d`.
    Then an atom just beyond ``rcut`` of every other atom must leave their atom energies, forces
    and the virial unchanged, feel no force and have the isolated atom's energy (to 1e-12).

    Parameters
    ----------
    model : mtzoo.model.Model
    head : str
        Energy head.
    step : float
        ``d`` in Angstrom.
    tol : float
    pairs : sequence of (str, str), optional
        Element pairs (moving atom's partner, moving atom); all pairs of ``model.type_map`` by default.
    radii : sequence of float, optional
        Crossing radii; by default ``model.rcut`` and the descriptor's ``rcut_smth`` when it is
        above 0.3 A (a hybrid descriptor passes its members' cutoffs as well).

    Returns
    -------
    dict[str, float]
        The largest errors: ``jump_E``, ``jump_F``, ``rcut_F`` and ``beyond``.
    """
    rcut = float(model.rcut)
    if radii is None:
        rs = getattr(model.descriptor, "rcut_smth", None)
        radii = [rcut] + ([float(rs)] if rs is not None and rs > 0.3 else [])
    tm = list(model.type_map)
    errs = {"jump_E": 0.0, "jump_F": 0.0, "rcut_F": 0.0, "beyond": 0.0}
    for a, b in [(a, b) for a in tm for b in tm] if pairs is None else pairs:
        for r0 in radii:
            for key, value in _crossing(model, head, a, b, float(r0), step, tol, at_rcut=r0 == rcut).items():
                errs[key] = max(errs[key], value)
        errs["beyond"] = max(errs["beyond"], _beyond_rcut(model, head, a, b))
    return errs


def check_isolated_atom(model, head: str) -> None:
    """Frames without edges evaluate: zero forces and virial, the energy with and without forces equal.

    One atom of each element (energy to 1e-14 of ``max(|E|, 1 eV)``), and two atoms 1.5 rcut apart.
    """
    rcut = float(model.rcut)
    for sym in model.type_map:
        lone = Frame([sym], np.zeros((1, 3)), None)
        e_only = evaluate(model, lone, head, forces=False)[K.ENERGY]
        out = evaluate(model, lone, head)
        assert np.all(out[K.FORCES] == 0.0), f"isolated {sym}: forces {out[K.FORCES].tolist()}"
        assert np.all(out[K.VIRIAL] == 0.0), f"isolated {sym}: virial {out[K.VIRIAL].tolist()}"
        assert_close(f"isolated {sym}: energy with and without forces", out[K.ENERGY], e_only, 1e-14,
                     scale=max(float(np.abs(e_only).max()), 1.0))
    pair = Frame(list(model.type_map[:2]), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.5 * rcut]]), None)
    out = evaluate(model, pair, head)
    assert np.all(out[K.FORCES] == 0.0), f"two atoms beyond rcut: forces {out[K.FORCES].tolist()}"


def check_batch_independence(model, frames, head: str, rtol: float = 1e-12) -> float:
    """A batch of frames gives each frame's outputs alone: energy, atom energies, forces, virial, stress.

    Parameters
    ----------
    model : mtzoo.model.Model
    frames : sequence of ase.Atoms, System, (System, int) or Frame
        At least two; mixing sizes and periodicity makes the check stronger.
    head : str
        Energy head.
    rtol : float
        Relative to the largest component of each output alone.

    Returns
    -------
    float
        The largest relative error.
    """
    flist = [as_frame(f, model.type_map) for f in frames]
    assert len(flist) >= 2, "need at least two frames"
    batched = evaluate(model, flist, head)
    start, worst = 0, 0.0
    for k, f in enumerate(flist):
        alone = evaluate(model, f, head)
        sl = slice(start, start + f.natoms)
        what = (f"frame {k} ({f.natoms} atoms, {'periodic' if f.periodic else 'non-periodic'}) in a batch of "
                f"{[g.natoms for g in flist]}")
        errs = [assert_close(f"{what}: energy", batched[K.ENERGY][k], alone[K.ENERGY][0], rtol),
                assert_close(f"{what}: atom energies", batched[K.ATOM_ENERGY][sl], alone[K.ATOM_ENERGY], rtol),
                assert_close(f"{what}: forces", batched[K.FORCES][sl], alone[K.FORCES], rtol),
                assert_close(f"{what}: virial", batched[K.VIRIAL][k], alone[K.VIRIAL][0], rtol)]
        if f.periodic:
            errs.append(assert_close(f"{what}: stress", batched[K.STRESS][k], alone[K.STRESS][0], rtol))
        else:
            assert np.all(batched[K.STRESS][k] == 0.0), f"{what}: non-zero stress in the batch"
        worst = max([worst] + errs)
        start += f.natoms
    return worst


def check_dtype_float32(model, atoms, head: str, rtol: float = 1e-5, force_rtol: float = 1e-3) -> float:
    """A float32 copy (:func:`float32_copy`) agrees with the float64 model.

    Parameters
    ----------
    model : mtzoo.model.Model
        Float64 model.
    atoms : frame or list of frames
        As :func:`as_frame` takes them.
    head : str
        Energy head.
    rtol : float
        Energies, relative to the largest float64 energy.
    force_rtol : float
        Forces, relative to the largest float64 force component.

    Returns
    -------
    float
        The largest relative error of the energies.
    """
    m32 = float32_copy(model)
    assert m32.dtype == torch.float32
    worst = 0.0
    for obj in atoms if isinstance(atoms, list) else [atoms]:
        frame = as_frame(obj, model.type_map)
        o64, o32 = evaluate(model, frame, head), evaluate(m32, frame, head)
        worst = max(worst, assert_close("float32 vs float64: energy", o32[K.ENERGY], o64[K.ENERGY], rtol))
        assert_close("float32 vs float64: forces", o32[K.FORCES], o64[K.FORCES], force_rtol)
    return worst
