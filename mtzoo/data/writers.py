"""Writing systems back to DeePMD-kit's npy layout, subsets of frames, and seeded splits.

Used by fine-tuning to hold out validation frames from a user's training data, and by the
benchmarks to draw training sets.  The layout is the one :func:`mtzoo.data.readers.read_deepmd`
reads: ``type.raw``, ``type_map.raw`` (when the system has element names), ``nopbc`` (when not
periodic) and ``set.000/{coord,box,energy,force,virial,...}.npy`` with one row per frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtzoo import keys as K
from mtzoo.data.system import DataError, System

#: DeePMD-kit file stem of each label key
_STEMS = {K.ENERGY: "energy", K.FORCES: "force", K.VIRIAL: "virial", K.DIPOLE: "dipole",
          K.ATOM_DIPOLE: "atomic_dipole", K.POLARIZABILITY: "polarizability",
          K.ATOM_POLARIZABILITY: "atomic_polarizability"}


def subset(system: System, frames: Sequence[int], name: str | None = None) -> System:
    """The frames ``frames`` of ``system`` (in that order) as a new System."""
    idx = np.asarray(list(frames), dtype=np.int64)
    return dataclasses.replace(
        system, name=name or f"{system.name}[{len(idx)} frames]", coord=system.coord[idx],
        box=None if system.box is None else system.box[idx],
        labels={k: v[idx] for k, v in system.labels.items()}, masks={k: v[idx] for k, v in system.masks.items()})


def write_deepmd(system: System, folder: str | Path) -> Path:
    """Write ``system`` as a DeePMD-kit npy system (one ``set.000``); returns the folder.

    A label is written when every frame carries it; a label only some frames carry cannot be
    expressed in one DeePMD set and is a :class:`DataError`.
    """
    folder = Path(folder)
    sset = folder / "set.000"
    sset.mkdir(parents=True, exist_ok=True)
    if system.elements is not None:
        type_map = list(dict.fromkeys(system.elements))
        (folder / "type_map.raw").write_text("".join(f"{e}\n" for e in type_map))
        types = [type_map.index(e) for e in system.elements]
    else:
        types = [int(t) for t in system.types]
    (folder / "type.raw").write_text("".join(f"{t}\n" for t in types))
    nf = system.nframes
    np.save(sset / "coord.npy", system.coord.reshape(nf, -1))
    if system.periodic:
        np.save(sset / "box.npy", system.box.reshape(nf, 9))
    else:
        (folder / "nopbc").write_text("")
    for key, values in system.labels.items():
        mask = np.asarray(system.masks.get(key, np.ones(nf, dtype=bool)), dtype=bool)
        if not mask.any():
            continue
        if not mask.all():
            raise DataError(f"{system.name}: label '{key}' is on {int(mask.sum())} of {nf} frames; a DeePMD set "
                            "holds a label for all of its frames or none")
        np.save(sset / f"{_STEMS[key]}.npy", values.reshape(nf, -1) if key != K.ENERGY else values.reshape(nf))
    return folder


def split_frames(systems: Sequence[System], fraction: float, seed: int,
                 min_frames: int = 3) -> tuple[list[System], list[System]]:
    """Seeded split of every system into (train, valid) parts, ``fraction`` of its frames held out.

    Each system with at least ``min_frames`` frames gives ``max(1, round(fraction * nframes))``
    frames, drawn by a seeded permutation, to validation; smaller systems stay whole in training.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    train, valid = [], []
    for s in systems:
        order = rng.permutation(s.nframes)
        nv = max(1, int(round(fraction * s.nframes))) if s.nframes >= min_frames else 0
        if nv:
            valid.append(subset(s, np.sort(order[:nv]), f"{s.name} (validation split)"))
        train.append(subset(s, np.sort(order[nv:]), f"{s.name} (training split)"))
    return train, valid
