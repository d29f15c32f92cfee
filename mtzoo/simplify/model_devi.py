r"""Model deviation of a committee of models: DeePMD-kit's ``dp model-devi`` definitions.

A committee is a list of members, each a model and the head that predicts the shared level of
theory: several model files (one head each), or several heads of one multi-head model trained on
the same level from different seeds.  Every member predicts energies :math:`E^k`, forces
:math:`\mathbf F^k_i` and virials :math:`\Xi^k` of the same frames; with
:math:`\langle y\rangle = \frac1{n_m}\sum_k y^k` the committee mean,

.. math::

    \epsilon_{\mathbf F, i} = \sqrt{\langle \lVert \mathbf F_i^k - \langle \mathbf F_i\rangle \rVert^2\rangle},
    \qquad
    \epsilon_{\Xi, \alpha\beta} = \frac1N \sqrt{\langle (\Xi^k_{\alpha\beta} - \langle\Xi_{\alpha\beta}\rangle)^2\rangle},
    \qquad
    \epsilon_E = \frac1N \sqrt{\langle (E^k - \langle E\rangle)^2\rangle}

(population standard deviations over the :math:`n_m` members; :math:`N` atoms per frame).  Per
frame DeePMD-kit reports ``max_devi_f``, ``min_devi_f``, ``avg_devi_f`` (max, min and mean of
:math:`\epsilon_{\mathbf F, i}` over the atoms), ``max_devi_v``, ``min_devi_v`` (max and min of
:math:`\epsilon_{\Xi,\alpha\beta}` over the 9 components), ``avg_devi_v`` (:math:`\lVert
\epsilon_\Xi\rVert_F / 3`) and ``devi_e`` (:math:`\epsilon_E`, energy per atom).  Reference:
DeePMD-kit ``doc/test/model-deviation.md`` and ``deepmd/infer/model_devi.py`` (v3.2), whose file
layout :func:`write_model_devi_out` follows: a ``#`` header naming the system, a ``#`` line of
column names, then ``step`` (``%12d``) and the seven deviations (``%19.6e``) per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtzoo import keys as K

#: the columns of DeePMD-kit's model_devi.out, in order (``step`` first)
COLUMNS = ("step", "max_devi_v", "min_devi_v", "avg_devi_v", "max_devi_f", "min_devi_f", "avg_devi_f", "devi_e")


def devi_f(forces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Force deviation per frame: max, min and mean over the atoms of :math:`\epsilon_{\mathbf F,i}`.

    Parameters
    ----------
    forces : np.ndarray
        ``[n_models, n_frames, n_atoms, 3]`` forces of each member (eV/A).

    Returns
    -------
    tuple of np.ndarray
        ``max_devi_f``, ``min_devi_f``, ``avg_devi_f``, each ``[n_frames]`` (eV/A).
    """
    f = np.asarray(forces, dtype=np.float64)
    per_atom = np.sqrt(np.mean(np.sum((f - f.mean(axis=0)) ** 2, axis=-1), axis=0))  # [n_frames, n_atoms]
    return per_atom.max(axis=-1), per_atom.min(axis=-1), per_atom.mean(axis=-1)


def devi_v(virials: np.ndarray, natoms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Virial deviation per frame (per atom): max, min over the 9 components, and :math:`\lVert\epsilon_\Xi\rVert/3`.

    Parameters
    ----------
    virials : np.ndarray
        ``[n_models, n_frames, 3, 3]`` (or ``[..., 9]``) virials of each member (eV).
    natoms : int
        Atoms per frame :math:`N`.

    Returns
    -------
    tuple of np.ndarray
        ``max_devi_v``, ``min_devi_v``, ``avg_devi_v``, each ``[n_frames]`` (eV/atom).
    """
    v = np.asarray(virials, dtype=np.float64)
    v = v.reshape(*v.shape[:2], 9) / natoms
    comp = v.std(axis=0)  # [n_frames, 9]
    return comp.max(axis=-1), comp.min(axis=-1), np.linalg.norm(comp, axis=-1) / 3.0


def devi_e(energies: np.ndarray, natoms: int) -> np.ndarray:
    r"""Energy deviation per frame, per atom: :math:`\epsilon_E`, ``[n_frames]`` (eV/atom).

    Parameters
    ----------
    energies : np.ndarray
        ``[n_models, n_frames]`` total energies of each member (eV).
    natoms : int
        Atoms per frame :math:`N`.
    """
    return (np.asarray(energies, dtype=np.float64) / natoms).std(axis=0)


def deviations(energies: np.ndarray, forces: np.ndarray, virials: np.ndarray) -> np.ndarray:
    """The seven deviation columns of one system, ``[n_frames, 7]`` in :data:`COLUMNS` order (no step).

    Parameters
    ----------
    energies : np.ndarray
        ``[n_models, n_frames]`` (eV).
    forces : np.ndarray
        ``[n_models, n_frames, n_atoms, 3]`` (eV/A).
    virials : np.ndarray
        ``[n_models, n_frames, 3, 3]`` (eV).
    """
    f = np.asarray(forces)
    if f.ndim != 4 or f.shape[0] < 2:
        raise ValueError(f"model deviation needs forces [n_models >= 2, n_frames, n_atoms, 3], got shape {f.shape}")
    natoms = f.shape[2]
    return np.stack([*devi_v(virials, natoms), *devi_f(f), devi_e(energies, natoms)], axis=1)


def _members(committee) -> list[tuple[object, str | None]]:
    """``[(model, head)]`` from a committee given as models, (model, head) pairs or paths."""
    from mtzoo.zoo.frozen import load_model

    out = []
    for m in committee:
        model, head = m if isinstance(m, tuple) else (m, None)
        if isinstance(model, (str, Path)):
            model = load_model(model)
        out.append((model, model.resolve_head(head)))
    if len(out) < 2:
        raise ValueError(f"a committee needs at least 2 members, got {len(out)}")
    return out


def committee_predictions(committee, system, batch_size: int = 8) -> dict[str, np.ndarray]:
    """Energies ``[n_models, nf]``, forces ``[n_models, nf, n, 3]`` and virials ``[n_models, nf, 3, 3]``.

    Each member runs :func:`mtzoo.evaluation.predict_system` on ``system`` (heads of one model run
    one after the other: the descriptor pass is repeated per head).
    """
    from mtzoo.evaluation import predict_system

    preds = [predict_system(model, system, head=head, batch_size=batch_size) for model, head in _members(committee)]
    return {k: np.stack([p[k] for p in preds]) for k in (K.ENERGY, K.FORCES, K.VIRIAL)}


def model_devi(committee, systems: Sequence, batch_size: int = 8) -> list[np.ndarray]:
    """Model deviation of ``committee`` on every frame of ``systems`` (Python API of ``mtzoo model-devi``).

    Parameters
    ----------
    committee : sequence
        At least two members: model files, :class:`~mtzoo.model.Model` objects (single-head), or
        ``(model, head)`` pairs (several heads of one model predicting the same level).
    systems : sequence of System
        Frames to evaluate (:func:`mtzoo.load_systems`).

    Returns
    -------
    list of np.ndarray
        Per system ``[n_frames, 8]`` in :data:`COLUMNS` order, ``step`` = frame index.
    """
    members = _members(committee)
    out = []
    for s in systems:
        p = committee_predictions(members, s, batch_size)
        devi = deviations(p[K.ENERGY], p[K.FORCES], p[K.VIRIAL])
        out.append(np.concatenate([np.arange(s.nframes, dtype=np.float64)[:, None], devi], axis=1))
    return out


def format_model_devi(devi: np.ndarray, header: str = "") -> str:
    """Text of one system's block of DeePMD-kit's model_devi.out (``# header``, ``# column names``, rows)."""
    lines = [f"# {header}", "# " + f"{'step':10s}" + "".join(f"{c:19s}" for c in COLUMNS[1:])]
    for row in np.asarray(devi):
        lines.append(f"{int(row[0]):12d}" + "".join(f"{x:19.6e}" for x in row[1:]))
    return "\n".join(lines) + "\n"


def write_model_devi_out(devis: Sequence[np.ndarray], path: str | Path, headers: Sequence[str]) -> Path:
    """Write the blocks of ``devis`` (one per system, headed by ``headers``) to ``path`` (atomically)."""
    from mtzoo.training.checkpoint import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text("".join(format_model_devi(d, h) for d, h in zip(devis, headers)), path)
    return path


def read_model_devi_out(path: str | Path) -> list[tuple[str, np.ndarray]]:
    """Blocks of a model_devi.out (ours or DeePMD-kit's): ``[(header, [n_frames, 8] array)]``.

    Columns are found by name, so a file whose column order differs is read correctly.
    """
    blocks: list[tuple[str, list]] = []
    cols = None
    header = ""
    for line in Path(path).read_text().splitlines():
        if line.startswith("#"):
            words = line[1:].split()
            if "step" in words and "max_devi_f" in words:
                cols = [words.index(c) for c in COLUMNS]
                blocks.append((header, []))
            else:
                header = line[1:].strip()
        elif line.strip():
            if cols is None:
                raise ValueError(f"{path}: data line before the column names")
            vals = line.split()
            blocks[-1][1].append([float(vals[c]) for c in cols])
    return [(h, np.array(rows, dtype=np.float64).reshape(-1, len(COLUMNS))) for h, rows in blocks]
