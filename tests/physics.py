"""Descriptor-agnostic physics checks for mtzoo models (NequIP ``utils/unittests`` / e3nn ``assert_equivariant`` style).

Every check takes a built :class:`mtzoo.model.Model`, a head name and frames given as
``ase.Atoms`` or mtzoo :class:`~mtzoo.data.system.System` (its frame ``0`` unless a
``(system, iframe)`` tuple is passed).  Graphs are (re)built through :mod:`mtzoo.data.graph`
for every geometry, since neighbour lists change when atoms move.  The checks assert with
messages naming the quantity, the worst component and the numbers, and return the largest
relative error they saw (so tests can report it).

Conventions checked (see :mod:`mtzoo.keys` and :mod:`mtzoo.model`):

* forces :math:`F = -\\partial E/\\partial x`;
* virial :math:`W_{ab} = -\\partial E/\\partial \\varepsilon_{ab}` for the homogeneous deformation
  ``pos' = pos (I + eps)``, ``cell' = cell (I + eps)`` (row vectors), all 9 components;
  stress :math:`= -W/V` (periodic frames), zero for non-periodic frames;
* for a finite (non-periodic) frame :math:`W = \\sum_i \\mathbf x_i \\otimes \\mathbf F_i`
  (from :math:`W = -\\sum_e \\mathbf r_e \\otimes \\mathbf g_e` with
  :math:`\\mathbf r_e = \\mathbf x_{j_e} - \\mathbf x_{i_e}` and
  :math:`\\mathbf F_k = \\sum_{i_e = k} \\mathbf g_e - \\sum_{j_e = k} \\mathbf g_e`), which also
  equals :math:`-\\partial E/\\partial \\varepsilon` for a strain of the positions alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mtzoo import keys as K
from mtzoo.data.graph import collate, system_graphs
from mtzoo.data.system import System


# ------------------------------------------------------------------------------------------
# frames and evaluation
# ------------------------------------------------------------------------------------------
@dataclass
class Frame:
    """One geometry: element symbols, positions ``[n, 3]`` and cell ``[3, 3]`` (None = not periodic)."""

    symbols: list[str]
    pos: np.ndarray
    cell: np.ndarray | None

    @property
    def natoms(self) -> int:
        return len(self.symbols)

    @property
    def periodic(self) -> bool:
        return self.cell is not None

    def replace(self, pos=None, cell="keep", symbols=None) -> "Frame":
        return Frame(list(self.symbols if symbols is None else symbols),
                     np.array(self.pos if pos is None else pos, dtype=np.float64),
                     (None if self.cell is None else self.cell.copy()) if isinstance(cell, str)
                     else (None if cell is None else np.array(cell, dtype=np.float64)))


def as_frame(obj, type_map: Sequence[str] | None = None) -> Frame:
    """``Frame`` from an ``ase.Atoms``, a ``System`` (frame 0), a ``(System, iframe)`` tuple or a ``Frame``."""
    if isinstance(obj, Frame):
        return obj.replace()
    iframe = 0
    if isinstance(obj, tuple):
        obj, iframe = obj
    if isinstance(obj, System):
        if obj.elements is not None:
            symbols = list(obj.elements)
        else:
            if type_map is None:
                raise ValueError(f"{obj.name}: integer-typed system needs the model's type_map")
            symbols = [type_map[int(t)] for t in obj.types]
        cell = None if obj.box is None else np.array(obj.box[iframe], dtype=np.float64)
        return Frame(symbols, np.array(obj.coord[iframe], dtype=np.float64), cell)
    # ase.Atoms
    pbc = np.asarray(obj.pbc, dtype=bool)
    cell = np.array(obj.cell[:], dtype=np.float64) if pbc.all() else None
    return Frame(list(obj.get_chemical_symbols()), np.array(obj.positions, dtype=np.float64), cell)


def frame_graph(model, frame: Frame):
    """PyG graph of ``frame`` for ``model`` (neighbour list built afresh)."""
    system = System("physics-check", list(frame.symbols), np.zeros(frame.natoms, dtype=np.int64),
                    frame.pos[None].copy(), None if frame.cell is None else frame.cell[None].copy())
    return system_graphs(system, model.type_map, model.rcut)[0]


def evaluate(model, frames, head: str, forces: bool = True) -> dict[str, np.ndarray]:
    """Model outputs of one frame or a list of frames (batched), as float64 numpy arrays."""
    single = isinstance(frames, Frame)
    flist = [frames] if single else list(frames)
    batch = collate([frame_graph(model, f) for f in flist])
    out = model(batch, head=head, forces=forces, virial=forces, create_graph=False)
    return {k: v.detach().to(torch.float64).numpy() for k, v in out.items()}


def energy(model, frame: Frame, head: str) -> float:
    return float(evaluate(model, frame, head, forces=False)[K.ENERGY][0])


def _rel(a: np.ndarray, b: np.ndarray, scale: float | None = None) -> tuple[float, tuple]:
    """max |a - b| / scale (scale defaults to max |b|, floored at 1e-300), and the worst index."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = np.abs(a - b)
    s = float(np.abs(b).max()) if scale is None else float(scale)
    s = max(s, 1e-300)
    idx = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    return (float(diff.max()) / s if diff.size else 0.0), idx


def _assert_close(what: str, got, want, rtol: float, scale: float | None = None) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != expected {want.shape}"
    err, idx = _rel(got, want, scale)
    s = float(np.abs(want).max()) if scale is None else scale
    assert err <= rtol, (f"{what}: relative error {err:.3e} > {rtol:.1e} at {idx}: got {got[idx]!r}, "
                         f"expected {want[idx]!r} (scale {s:.3e})")
    return err


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random proper rotation (det +1)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


# ------------------------------------------------------------------------------------------
# 1. forces vs finite differences
# ------------------------------------------------------------------------------------------
def check_forces_fd(model, atoms, head: str, h: float = 1e-5, rtol: float = 1e-6, max_atoms: int | None = 12,
                    seed: int = 0) -> float:
    """Central differences of the energy vs model forces (float64).

    All coordinates when the frame has at most ``max_atoms`` atoms, else a random subset of
    ``max_atoms`` atoms (x 3).  Error relative to the largest force component of the frame.
    """
    frame = as_frame(atoms, model.type_map)
    ref = evaluate(model, frame, head)
    force = ref[K.FORCES]
    n = frame.natoms
    rng = np.random.default_rng(seed)
    atoms_idx = np.arange(n) if max_atoms is None or n <= max_atoms else np.sort(rng.choice(n, max_atoms, replace=False))
    fd = np.zeros((len(atoms_idx), 3))
    for a, i in enumerate(atoms_idx):
        for d in range(3):
            e = []
            for sgn in (1.0, -1.0):
                pos = frame.pos.copy()
                pos[i, d] += sgn * h
                e.append(energy(model, frame.replace(pos=pos), head))
            fd[a, d] = -(e[0] - e[1]) / (2 * h)
    scale = float(np.abs(force).max())
    assert scale > 0, "forces are identically zero: the check would be vacuous"
    return _assert_close(f"forces vs FD (atoms {atoms_idx.tolist()}, h={h})", force[atoms_idx], fd, rtol, scale)


# ------------------------------------------------------------------------------------------
# 2. virial vs finite differences of a homogeneous strain
# ------------------------------------------------------------------------------------------
def strained(frame: Frame, eps: np.ndarray) -> Frame:
    """``pos (I + eps)`` and ``cell (I + eps)`` (row vectors); the cell only when periodic."""
    f = np.eye(3) + eps
    return frame.replace(pos=frame.pos @ f, cell=None if frame.cell is None else frame.cell @ f)


def check_virial_fd(model, atoms, head: str, h: float = 1e-6, rtol: float = 1e-6) -> float:
    """Virial ``W_ab = -dE/d eps_ab`` (all 9 components, central differences); stress; finite-system identity.

    Periodic frames strain cell and positions together and check ``stress = -W / V``.
    Non-periodic frames strain the positions and also check ``W = sum_i x_i (x) F_i`` and a zero stress.
    Errors relative to the largest virial component.
    """
    frame = as_frame(atoms, model.type_map)
    ref = evaluate(model, frame, head)
    w = ref[K.VIRIAL][0]
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = []
            for sgn in (1.0, -1.0):
                eps = np.zeros((3, 3))
                eps[a, b] = sgn * h
                e.append(energy(model, strained(frame, eps), head))
            fd[a, b] = -(e[0] - e[1]) / (2 * h)
    scale = float(np.abs(w).max())
    assert scale > 0, "virial is identically zero: the check would be vacuous"
    kind = "cell+positions" if frame.periodic else "positions"
    err = _assert_close(f"virial vs FD of a strain of {kind} (h={h})", w, fd, rtol, scale)
    # rotation invariance makes the virial symmetric
    _assert_close("virial symmetry W vs W^T", w, w.T, max(rtol, 1e-10), scale)
    stress = ref[K.STRESS][0]
    if frame.periodic:
        vol = abs(float(np.linalg.det(frame.cell)))
        _assert_close("stress vs -virial/volume", stress, -w / vol, 1e-12, scale / vol)
    else:
        assert np.all(stress == 0.0), f"non-periodic frame has non-zero stress {stress.tolist()}"
        xf = np.einsum("ia,ib->ab", frame.pos, ref[K.FORCES])
        _assert_close("finite-system virial vs sum_i x_i (x) F_i", w, xf, 1e-10, scale)
    return err


# ------------------------------------------------------------------------------------------
# 3. invariance / equivariance
# ------------------------------------------------------------------------------------------
def _compare(what: str, got: dict, want: dict, rtol: float, perm: np.ndarray | None = None,
             rot: np.ndarray | None = None) -> float:
    """Energy, atom energies, forces and virial of a transformed frame vs the transformed reference."""
    f_ref, w_ref, ae_ref = want[K.FORCES], want[K.VIRIAL][0], want[K.ATOM_ENERGY]
    if perm is not None:
        f_ref, ae_ref = f_ref[perm], ae_ref[perm]
    if rot is not None:
        f_ref = f_ref @ rot.T
        w_ref = rot @ w_ref @ rot.T
    errs = [
        _assert_close(f"{what}: energy", got[K.ENERGY], want[K.ENERGY], rtol),
        _assert_close(f"{what}: atom energies", got[K.ATOM_ENERGY], ae_ref, rtol),
        _assert_close(f"{what}: forces", got[K.FORCES], f_ref, rtol, float(np.abs(f_ref).max())),
        _assert_close(f"{what}: virial", got[K.VIRIAL][0], w_ref, rtol, float(np.abs(w_ref).max())),
    ]
    return max(errs)


def equivalent_frames(frame: Frame, rng: np.random.Generator) -> list[tuple[str, Frame, np.ndarray | None, np.ndarray | None]]:
    """``(name, frame', perm, rot)``: transformed copies with the expected index map and rotation."""
    n = frame.natoms
    rot = random_rotation(rng)
    perm = rng.permutation(n)
    shift = rng.normal(size=3) * 3.0
    out = [
        ("rotation", frame.replace(pos=frame.pos @ rot.T, cell=None if frame.cell is None else frame.cell @ rot.T),
         None, rot),
        ("translation", frame.replace(pos=frame.pos + shift), None, None),
        ("permutation", frame.replace(pos=frame.pos[perm], symbols=[frame.symbols[p] for p in perm]), perm, None),
    ]
    if frame.periodic:
        cell = frame.cell
        frac = frame.pos @ np.linalg.inv(cell)
        out.append(("wrapped into the cell", frame.replace(pos=(frac % 1.0) @ cell), None, None))
        lattice = rng.integers(-2, 3, size=(n, 3)) * (rng.random(n) < 0.5)[:, None]
        out.append(("atoms shifted by lattice vectors", frame.replace(pos=frame.pos + lattice @ cell), None, None))
        for m in (np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]]), np.array([[1, 0, 0], [-1, 1, 0], [0, 2, 1]]),
                  np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]])):
            assert round(abs(np.linalg.det(m))) == 1
            out.append((f"equivalent cell M h, M={m.tolist()}", frame.replace(cell=m @ cell), None, None))
        everything = frame.replace(pos=((frame.pos + shift) @ rot.T)[perm], cell=np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]]) @ cell @ rot.T,
                                   symbols=[frame.symbols[p] for p in perm])
        out.append(("rotation+translation+permutation+cell", everything, perm, rot))
    else:
        everything = frame.replace(pos=((frame.pos + shift) @ rot.T)[perm], symbols=[frame.symbols[p] for p in perm])
        out.append(("rotation+translation+permutation", everything, perm, rot))
    return out


def check_invariance(model, atoms, head: str, rtol: float = 1e-10, seed: int = 0) -> float:
    """Energy invariant and forces/virial equivariant under rotation, translation, permutation,
    and (periodic frames) wrapping, lattice shifts of single atoms and unimodular cell changes.

    A translation changes the (non-periodic) virial by ``t (x) sum_i F_i``, which vanishes since
    the total force is zero; that is checked too.
    """
    frame = as_frame(atoms, model.type_map)
    ref = evaluate(model, frame, head)
    fsum = ref[K.FORCES].sum(0)
    fscale = float(np.abs(ref[K.FORCES]).max())
    assert np.abs(fsum).max() <= rtol * fscale * max(frame.natoms, 1), f"total force {fsum.tolist()} is not zero"
    rng = np.random.default_rng(seed)
    worst = 0.0
    for name, f2, perm, rot in equivalent_frames(frame, rng):
        worst = max(worst, _compare(name, evaluate(model, f2, head), ref, rtol, perm, rot))
    return worst


# ------------------------------------------------------------------------------------------
# 4. smoothness at rcut and rcut_smth, and exact zero contribution beyond rcut
# ------------------------------------------------------------------------------------------
def _line_cluster(symbols: Sequence[str], r: float, rng_seed: int = 3) -> tuple[Frame, np.ndarray]:
    """Atom 0 at the origin, atom 1 at ``r * u`` (``u`` a fixed unit vector), a spectator atom 2
    at 1.1 A from atom 0 on the far side (so it sees atom 1 cross its own cutoff elsewhere)."""
    rng = np.random.default_rng(rng_seed)
    u = rng.normal(size=3)
    u /= np.linalg.norm(u)
    v = np.cross(u, [0.0, 0.0, 1.0])
    v /= np.linalg.norm(v)
    pos = np.array([np.zeros(3), r * u, -0.8 * u + 0.75 * v])
    return Frame(list(symbols), pos, None), u


def check_cutoff_smoothness(model, head: str, step: float = 1e-6, tol: float = 1e-8,
                            pairs: Sequence[tuple[str, str]] | None = None) -> dict[str, float]:
    """Energy and forces are continuous as one atom moves through ``r = rcut`` and ``r = rcut_smth``.

    For each crossing radius ``r0`` the jump ``X(r0 + d) - X(r0 - d)`` is compared with its smooth
    prediction ``(X(r0 + 3d) - X(r0 - 3d)) / 3`` (equal to O(d^2) for C^1 functions; a step of
    size J leaves 2J/3); at ``rcut`` also ``F(rcut - d) == F(rcut + d)`` directly and
    ``|E(rcut - d) - E(rcut + d)| <= tol * d``.  Tolerances are relative to the largest force of
    the cluster.  Then an atom placed just beyond ``rcut`` of every other atom must leave the other
    atoms' energies and forces unchanged and have exactly the energy of the isolated atom.

    Returns the largest relative errors seen, by name.
    """
    rcut = float(model.rcut)
    rs = getattr(model.descriptor, "rcut_smth", None)
    tm = list(model.type_map)
    if pairs is None:
        pairs = [(a, b) for a in tm for b in tm]
    errs = {"jump_E": 0.0, "jump_F": 0.0, "rcut_F": 0.0, "beyond": 0.0}
    radii = [("rcut", rcut)] + ([("rcut_smth", float(rs))] if rs is not None and rs > 0.3 else [])
    for a, b in pairs:
        spectator = a  # same type as atom 0, so it interacts even when the pair (a, b) is excluded
        for label, r0 in radii:
            vals = {}
            for k in (-3, -1, 1, 3):
                frame, _ = _line_cluster([a, b, spectator], r0 + k * step)
                out = evaluate(model, frame, head)
                vals[k] = (out[K.ENERGY][0], out[K.FORCES])
            # force scale of the cluster, floored at 1e-3 eV/A so that tiny forces do not make it vacuous
            fscale = max([float(np.abs(vals[k][1]).max()) for k in vals] + [1e-3])
            # round-off floor of an energy difference
            e_floor = 64 * np.finfo(np.float64).eps * max(abs(vals[k][0]) for k in vals)
            what = f"pair {a}-{b} crossing {label}={r0}"
            jump_e = vals[1][0] - vals[-1][0]
            pred_e = (vals[3][0] - vals[-3][0]) / 3
            err_e = max(abs(jump_e - pred_e) - e_floor, 0.0) / (fscale * step)
            assert err_e <= tol, (f"{what}: energy jump {jump_e:.6e} over 2*{step} vs smooth prediction {pred_e:.6e} "
                                  f"((difference - round-off {e_floor:.1e}) / (max|F| d) = {err_e:.3e} > {tol})")
            jump_f = vals[1][1] - vals[-1][1]
            pred_f = (vals[3][1] - vals[-3][1]) / 3
            err_f = float(np.abs(jump_f - pred_f).max()) / fscale
            assert err_f <= tol, (f"{what}: force jump {jump_f.tolist()} vs smooth prediction {pred_f.tolist()} "
                                  f"(relative difference {err_f:.3e} > {tol})")
            errs["jump_E"] = max(errs["jump_E"], err_e)
            errs["jump_F"] = max(errs["jump_F"], err_f)
            if label == "rcut":
                err = _assert_close(f"{what}: forces just inside vs just outside", vals[-1][1], vals[1][1], tol, fscale)
                de = abs(vals[-1][0] - vals[1][0])
                assert de <= tol * fscale * step + e_floor, f"{what}: energy changes by {de:.3e} over a step of {2 * step} across rcut"
                errs["rcut_F"] = max(errs["rcut_F"], err)
        # an atom beyond rcut of every other atom contributes exactly nothing
        frame, u = _line_cluster([a, b, spectator], min(0.9 * rcut, 2.0))
        far_dir = -u
        lone = frame.pos @ far_dir
        x = far_dir * (float(lone.max()) + rcut * (1 + 1e-9))
        x_sym = b
        with_x = frame.replace(pos=np.vstack([frame.pos, x[None]]), symbols=frame.symbols + [x_sym])
        d_min = np.linalg.norm(frame.pos - x, axis=1).min()
        assert d_min > rcut, d_min
        out_c = evaluate(model, frame, head)
        out_x = evaluate(model, with_x, head)
        # energies only: an edge-less frame is covered by check_isolated_atom
        out_lone = evaluate(model, Frame([x_sym], x[None].copy(), None), head, forces=False)
        what = f"atom {x_sym} at {d_min:.6f} A > rcut={rcut} from cluster {frame.symbols}"
        e1 = _assert_close(f"{what}: cluster atom energies", out_x[K.ATOM_ENERGY][:3], out_c[K.ATOM_ENERGY], 1e-12)
        e2 = _assert_close(f"{what}: its atom energy vs the isolated atom", out_x[K.ATOM_ENERGY][3:], out_lone[K.ATOM_ENERGY], 1e-12)
        e3 = _assert_close(f"{what}: cluster forces", out_x[K.FORCES][:3], out_c[K.FORCES], 1e-12)
        assert np.all(out_x[K.FORCES][3] == 0.0), f"{what}: non-zero force {out_x[K.FORCES][3].tolist()} on it"
        e4 = _assert_close(f"{what}: total energy = cluster + isolated atom", out_x[K.ENERGY],
                           out_c[K.ENERGY] + out_lone[K.ENERGY], 1e-12)
        e5 = _assert_close(f"{what}: virial", out_x[K.VIRIAL], out_c[K.VIRIAL], 1e-12)
        errs["beyond"] = max(errs["beyond"], e1, e2, e3, e4, e5)
    return errs


def check_isolated_atom(model, head: str) -> None:
    """Frames without any edge (one atom; two atoms farther apart than rcut) evaluate with
    forces and virial: zero forces, zero virial, energy = sum of the isolated-atom energies."""
    rcut = float(model.rcut)
    for sym in model.type_map:
        lone = Frame([sym], np.zeros((1, 3)), None)
        e_only = evaluate(model, lone, head, forces=False)[K.ENERGY]
        out = evaluate(model, lone, head)
        assert np.all(out[K.FORCES] == 0.0), f"isolated {sym}: forces {out[K.FORCES].tolist()}"
        assert np.all(out[K.VIRIAL] == 0.0), f"isolated {sym}: virial {out[K.VIRIAL].tolist()}"
        # round-off of the two evaluation paths: relative to max(|E|, 1 eV) (a few ulps of an O(1) energy)
        _assert_close(f"isolated {sym}: energy with and without forces", out[K.ENERGY], e_only, 1e-14,
                      scale=max(float(np.abs(e_only).max()), 1.0))
    pair = Frame(list(model.type_map[:2]), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.5 * rcut]]), None)
    out = evaluate(model, pair, head)
    assert np.all(out[K.FORCES] == 0.0), f"two atoms beyond rcut: forces {out[K.FORCES].tolist()}"


# ------------------------------------------------------------------------------------------
# 5. batching
# ------------------------------------------------------------------------------------------
def check_batch_independence(model, frames, head: str, rtol: float = 1e-12) -> float:
    """Outputs of a batch of frames equal those of each frame alone (energy, atom energies, forces, virial, stress)."""
    flist = [as_frame(f, model.type_map) for f in frames]
    assert len(flist) >= 2, "need at least two frames"
    batched = evaluate(model, flist, head)
    start, worst = 0, 0.0
    for k, f in enumerate(flist):
        alone = evaluate(model, f, head)
        sl = slice(start, start + f.natoms)
        what = f"frame {k} ({f.natoms} atoms, {'periodic' if f.periodic else 'non-periodic'}) in a batch of {[g.natoms for g in flist]}"
        errs = [
            _assert_close(f"{what}: energy", batched[K.ENERGY][k], alone[K.ENERGY][0], rtol),
            _assert_close(f"{what}: atom energies", batched[K.ATOM_ENERGY][sl], alone[K.ATOM_ENERGY], rtol),
            _assert_close(f"{what}: forces", batched[K.FORCES][sl], alone[K.FORCES], rtol),
            _assert_close(f"{what}: virial", batched[K.VIRIAL][k], alone[K.VIRIAL][0], rtol),
        ]
        if f.periodic:
            errs.append(_assert_close(f"{what}: stress", batched[K.STRESS][k], alone[K.STRESS][0], rtol))
        else:
            assert np.all(batched[K.STRESS][k] == 0.0), f"{what}: non-zero stress in the batch"
        worst = max([worst] + errs)
        start += f.natoms
    return worst


# ------------------------------------------------------------------------------------------
# 6. float32 model
# ------------------------------------------------------------------------------------------
def float32_copy(model):
    """Same architecture and weights with ``precision = "float32"`` in descriptor and heads."""
    from mtzoo.model import build_model, model_config

    cfg = model_config(model)
    cfg["descriptor"] = dict(cfg["descriptor"], precision="float32")
    cfg["heads"] = {name: dict(h, precision="float32") for name, h in cfg["heads"].items()}
    m32 = build_model(cfg)
    target = m32.state_dict()
    src = model.state_dict()
    assert set(src) == set(target), f"state_dict keys differ: {sorted(set(src) ^ set(target))}"
    m32.load_state_dict({k: v.to(target[k].dtype) for k, v in src.items()})
    return m32.eval()


def check_dtype_float32(model, atoms, head: str, rtol: float = 1e-5, force_rtol: float = 1e-3) -> float:
    """A float32 copy gives energies within ``rtol`` of the float64 model (relative to the
    non-bias part as well as to the total), and forces within ``force_rtol`` of the largest force."""
    m32 = float32_copy(model)
    assert m32.dtype == torch.float32
    frames = atoms if isinstance(atoms, list) else [atoms]
    worst = 0.0
    for obj in frames:
        frame = as_frame(obj, model.type_map)
        o64 = evaluate(model, frame, head)
        o32 = evaluate(m32, frame, head)
        e = _assert_close("float32 vs float64: energy", o32[K.ENERGY], o64[K.ENERGY], rtol)
        f = _assert_close("float32 vs float64: forces", o32[K.FORCES], o64[K.FORCES], force_rtol)
        worst = max(worst, e)
        assert f <= force_rtol
    return worst


# ------------------------------------------------------------------------------------------
# 7. tensor heads (dipole, polarizability)
# ------------------------------------------------------------------------------------------
def _rotate_tensor(x: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """``R x`` for vectors ``[..., 3]``, ``R x R^T`` for rank-2 tensors ``[..., 3, 3]``."""
    if x.shape[-2:] == (3, 3):
        return np.einsum("ab,...bc,dc->...ad", rot, x, rot)
    return x @ rot.T


def check_tensor_equivariance(model, frame, head: str, rtol: float = 1e-12, seed: int = 0) -> float:
    """Frame and atomic tensors of a dipole / polarizability head transform exactly.

    For every transformed copy of :func:`equivalent_frames` (random rotation ``R``, with the
    cell rotated too when periodic; translation; permutation; and for periodic frames wrapping,
    lattice shifts of single atoms and unimodular cell changes): dipoles go to ``R d``,
    polarizabilities to ``R A R^T``, atomic values are permuted with the atoms, and everything
    else is unchanged.  Also: the frame tensor is the sum of the atomic ones, polarizabilities are
    symmetric, and a batch of [frame, rattled copy, rotated copy] gives each frame's values alone.
    Tolerances are relative to the largest component of each reference output.
    """
    fr = as_frame(frame, model.type_map)
    outputs = [o for o in model.heads[head].outputs if not o.differentiable]
    assert outputs, f"head '{head}' has no tensor output"
    ref = evaluate(model, fr, head, forces=False)
    worst = 0.0
    for o in outputs:
        assert np.abs(ref[o.atom_name]).max() > 0, f"{o.atom_name} is identically zero: the check would be vacuous"
        worst = max(worst, _assert_close(f"{o.name} = sum of {o.atom_name}", ref[o.name][0], ref[o.atom_name].sum(0), rtol,
                                         float(np.abs(ref[o.atom_name]).max()) * max(fr.natoms, 1)))
        if o.shape == (3, 3):
            for key in (o.name, o.atom_name):
                worst = max(worst, _assert_close(f"{key} symmetric", ref[key], np.swapaxes(ref[key], -1, -2), rtol))
    rng = np.random.default_rng(seed)
    transformed = equivalent_frames(fr, rng)
    for name, f2, perm, rot in transformed:
        got = evaluate(model, f2, head, forces=False)
        for o in outputs:
            g_ref, a_ref = ref[o.name], ref[o.atom_name]
            if perm is not None:
                a_ref = a_ref[perm]
            if rot is not None:
                g_ref, a_ref = _rotate_tensor(g_ref, rot), _rotate_tensor(a_ref, rot)
            worst = max(worst,
                        _assert_close(f"{name}: {o.name}", got[o.name], g_ref, rtol),
                        _assert_close(f"{name}: {o.atom_name}", got[o.atom_name], a_ref, rtol))
    # batch independence
    rattled = fr.replace(pos=fr.pos + rng.normal(scale=0.05, size=fr.pos.shape))
    flist = [fr, rattled, transformed[0][1]]
    batched = evaluate(model, flist, head, forces=False)
    start = 0
    for k, f in enumerate(flist):
        alone = evaluate(model, f, head, forces=False)
        for o in outputs:
            worst = max(worst,
                        _assert_close(f"batch frame {k}: {o.name}", batched[o.name][k], alone[o.name][0], rtol),
                        _assert_close(f"batch frame {k}: {o.atom_name}", batched[o.atom_name][start:start + f.natoms],
                                      alone[o.atom_name], rtol))
        start += f.natoms
    return worst


def keep_default_dtype(build):
    """``build(*args)`` with torch's default dtype restored afterwards (model builders may change it)."""
    def wrapped(*args):
        old = torch.get_default_dtype()
        try:
            return build(*args)
        finally:
            torch.set_default_dtype(old)
    return wrapped


def report(request, name: str, value) -> None:
    """Record a measured figure on the test (``user_properties``) and print it (``pytest -s``)."""
    request.node.user_properties.append((name, value))
    print(f"\n{request.node.name}: {name} = {value}")
