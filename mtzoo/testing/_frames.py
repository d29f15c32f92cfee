"""Frames, evaluation and comparison helpers of :mod:`mtzoo.testing`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mtzoo import keys as K
from mtzoo.data.graph import collate, system_graphs
from mtzoo.data.system import System


@dataclass
class Frame:
    """One geometry, in float64.

    Attributes
    ----------
    symbols : list[str]
        Element symbols, one per atom.
    pos : numpy.ndarray
        Cartesian positions in Angstrom.
    cell : numpy.ndarray or None
        Cell vectors as rows; None for a non-periodic (finite) frame.

    Shapes
    ------
    ``pos``: ``[n, 3]``; ``cell``: ``[3, 3]``.
    """

    symbols: list[str]
    pos: np.ndarray
    cell: np.ndarray | None

    @property
    def natoms(self) -> int:
        """Number of atoms."""
        return len(self.symbols)

    def replace(self, pos=None, cell="keep", symbols=None) -> Frame:
        """A copy with new positions, cell (None: not periodic) or symbols; the rest copied."""
        return Frame(list(self.symbols if symbols is None else symbols),
                     np.array(self.pos if pos is None else pos, dtype=np.float64),
                     (None if self.cell is None else self.cell.copy()) if isinstance(cell, str)
                     else (None if cell is None else np.array(cell, dtype=np.float64)))

    @property
    def periodic(self) -> bool:
        """True when the frame has a cell (periodic in all three directions)."""
        return self.cell is not None


def as_frame(obj, type_map: Sequence[str] | None = None) -> Frame:
    """A :class:`Frame` from an ``ase.Atoms``, a :class:`~mtzoo.data.system.System`, a tuple or a Frame.

    Parameters
    ----------
    obj : ase.Atoms, System, tuple[System, int] or Frame
        A System gives its frame 0, ``(system, iframe)`` its frame ``iframe``; an ``ase.Atoms``
        is periodic when its ``pbc`` is true in all three directions; a Frame is copied.
    type_map : sequence of str, optional
        Element of each integer type, needed for a System without element names.

    Returns
    -------
    Frame
    """
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
    pbc = np.asarray(obj.pbc, dtype=bool)  # ase.Atoms
    cell = np.array(obj.cell[:], dtype=np.float64) if pbc.all() else None
    return Frame(list(obj.get_chemical_symbols()), np.array(obj.positions, dtype=np.float64), cell)


def frame_graph(model, frame: Frame):
    """The neighbour graph of ``frame`` at ``model.rcut`` (built afresh: neighbours change as atoms move)."""
    system = System("physics-check", list(frame.symbols), np.zeros(frame.natoms, dtype=np.int64),
                    frame.pos[None].copy(), None if frame.cell is None else frame.cell[None].copy())
    return system_graphs(system, model.type_map, model.rcut)[0]


def evaluate(model, frames, head: str, forces: bool = True) -> dict[str, np.ndarray]:
    """Outputs of ``model`` for one frame or a batch of frames, as float64 numpy arrays.

    Parameters
    ----------
    model : mtzoo.model.Model
    frames : Frame or list of Frame
        A list is evaluated as one batch.
    head : str
        Head name.
    forces : bool
        Also forces, virial and stress (energy heads).

    Returns
    -------
    dict[str, numpy.ndarray]
        The model's output dict (keys of :mod:`mtzoo.keys`), frame values stacked over the frames
        and atom values concatenated over them.
    """
    flist = [frames] if isinstance(frames, Frame) else list(frames)
    batch = collate([frame_graph(model, f) for f in flist])
    out = model(batch, head=head, forces=forces, virial=forces, create_graph=False)
    return {k: v.detach().to(torch.float64).numpy() for k, v in out.items()}


def energy(model, frame: Frame, head: str) -> float:
    """Energy of one frame (no derivatives)."""
    return float(evaluate(model, frame, head, forces=False)[K.ENERGY][0])


def energies(model, frames: Sequence[Frame], head: str, max_atoms: int = 4096) -> np.ndarray:
    """Energies ``[len(frames)]`` of many frames (no derivatives), in batches of at most ``max_atoms``
    atoms (at least one frame each): one model call per batch instead of one per frame."""
    out, chunk, natoms = [], [], 0
    for f in list(frames) + [None]:
        if chunk and (f is None or natoms + f.natoms > max_atoms):
            out.append(evaluate(model, chunk, head, forces=False)[K.ENERGY])
            chunk, natoms = [], 0
        if f is not None:
            chunk.append(f)
            natoms += f.natoms
    return np.concatenate(out) if out else np.zeros(0)


def relative_error(a, b, scale: float | None = None) -> tuple[float, tuple]:
    """``max |a - b| / scale`` and the index of the largest difference.

    ``scale`` defaults to ``max |b|``; it is floored at 1e-300.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = np.abs(a - b)
    s = max(float(np.abs(b).max()) if scale is None else float(scale), 1e-300)
    idx = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    return (float(diff.max()) / s if diff.size else 0.0), idx


def assert_close(what: str, got, want, rtol: float, scale: float | None = None) -> float:
    """Assert ``max |got - want| <= rtol * scale`` (scale: ``max |want|`` by default).

    Parameters
    ----------
    what : str
        Names the quantity in the failure message (with the worst index and both values).
    got, want : array_like
        Same shape.
    rtol : float
    scale : float, optional

    Returns
    -------
    float
        The relative error :func:`relative_error` gives.
    """
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != expected {want.shape}"
    err, idx = relative_error(got, want, scale)
    s = float(np.abs(want).max()) if scale is None else scale
    assert err <= rtol, (f"{what}: relative error {err:.3e} > {rtol:.1e} at {idx}: got {got[idx]!r}, "
                         f"expected {want[idx]!r} (scale {s:.3e})")
    return err


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation matrix ``[3, 3]`` (det +1), from the QR decomposition."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def strained(frame: Frame, eps: np.ndarray) -> Frame:
    """``pos (I + eps)`` and ``cell (I + eps)`` (row vectors); the cell only when periodic."""
    f = np.eye(3) + eps
    return frame.replace(pos=frame.pos @ f, cell=None if frame.cell is None else frame.cell @ f)


def _permuted(frame: Frame, perm: np.ndarray, pos: np.ndarray, cell="keep") -> Frame:
    return frame.replace(pos=pos[perm], cell=cell, symbols=[frame.symbols[p] for p in perm])


def equivalent_frames(frame: Frame, rng: np.random.Generator) -> list[tuple[str, Frame, np.ndarray | None,
                                                                          np.ndarray | None]]:
    """Copies of ``frame`` that describe the same physical system, with how outputs map.

    Returns
    -------
    list of (name, frame, perm, rot)
        A random rotation ``R`` (``pos R^T``, the cell too), a translation, a permutation and
        all three at once; for periodic frames also atoms wrapped into the cell, single atoms
        shifted by lattice vectors and unimodular cell changes ``M h``.  ``perm`` (or None) maps
        atom ``i`` of the copy to atom ``perm[i]`` of ``frame``; ``rot`` (or None) is ``R``.
    """
    n = frame.natoms
    rot = random_rotation(rng)
    perm = rng.permutation(n)
    shift = rng.normal(size=3) * 3.0
    out = [
        ("rotation", frame.replace(pos=frame.pos @ rot.T, cell=None if frame.cell is None else frame.cell @ rot.T),
         None, rot),
        ("translation", frame.replace(pos=frame.pos + shift), None, None),
        ("permutation", _permuted(frame, perm, frame.pos), perm, None),
    ]
    moved = (frame.pos + shift) @ rot.T
    if not frame.periodic:
        return out + [("rotation+translation+permutation", _permuted(frame, perm, moved), perm, rot)]
    cell = frame.cell
    frac = frame.pos @ np.linalg.inv(cell)
    out.append(("wrapped into the cell", frame.replace(pos=(frac % 1.0) @ cell), None, None))
    lattice = rng.integers(-2, 3, size=(n, 3)) * (rng.random(n) < 0.5)[:, None]
    out.append(("atoms shifted by lattice vectors", frame.replace(pos=frame.pos + lattice @ cell), None, None))
    shear = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    for m in (shear, np.array([[1, 0, 0], [-1, 1, 0], [0, 2, 1]]), np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]])):
        assert round(abs(np.linalg.det(m))) == 1
        out.append((f"equivalent cell M h, M={m.tolist()}", frame.replace(cell=m @ cell), None, None))
    everything = _permuted(frame, perm, moved, cell=shear @ cell @ rot.T)
    return out + [("rotation+translation+permutation+cell", everything, perm, rot)]


def float32_copy(model):
    """The same architecture and weights with ``precision = "float32"`` in descriptor and heads."""
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
