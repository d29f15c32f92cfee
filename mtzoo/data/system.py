"""In-memory container for one data system: frames that share atom count and atom types.

This mirrors a DeePMD-kit system folder (``type.raw`` + ``set.*``): every frame of a
:class:`System` has the same atoms in the same order, so coordinates and labels are
stacked numpy arrays.  Readers for other formats (ASE, pymatgen) group frames by
composition into several systems.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

import numpy as np

from mtzoo import keys as K


class DataError(ValueError):
    """Bad input data: the message names the file or key and what was expected."""


#: What :meth:`System.check` does with frames holding NaN/inf coordinates or labels: ``"error"``
#: (default) or ``"drop"`` (with a warning); set for one call by ``load_systems(bad_frames=...)``.
BAD_FRAMES: contextvars.ContextVar[str] = contextvars.ContextVar("mtzoo_bad_frames", default="error")


def _more(frames: np.ndarray) -> str:
    """`` (and N more frames: a, b, ...)`` for a list of bad frame indices."""
    if frames.size <= 1:
        return ""
    return f" (and {frames.size - 1} more frames: {', '.join(str(int(f)) for f in frames[1:6])}{', ...' if frames.size > 6 else ''})"


@dataclass
class System:
    """Frames of one composition.

    Parameters
    ----------
    name : str
        Where the data came from (a folder or file path); used in every error message.
    elements : list[str] or None
        Element symbol of each atom, length ``natoms``.  ``None`` when the source only gives
        integer types without names (DeePMD folder without ``type_map.raw``): then
        ``types`` index the model's ``type_map`` directly, as in DeePMD-kit.
    types : np.ndarray
        Integer type of each atom, shape ``[natoms]`` (only meaningful when
        ``elements`` is None).
    coord : np.ndarray
        Positions, shape ``[nframes, natoms, 3]`` (Angstrom).
    box : np.ndarray or None
        Cells, shape ``[nframes, 3, 3]`` (rows are lattice vectors); ``None`` when the
        frames are not periodic (``nopbc``).
    labels : dict[str, np.ndarray]
        Label arrays keyed by :mod:`mtzoo.keys` names: ``energy`` ``[nframes]``,
        ``force`` ``[nframes, natoms, 3]``, ``virial`` ``[nframes, 3, 3]``, and the tensor
        labels ``dipole`` ``[nframes, 3]``, ``atomic_dipole`` ``[nframes, natoms, 3]``,
        ``polarizability`` ``[nframes, 3, 3]``, ``atomic_polarizability``
        ``[nframes, natoms, 3, 3]`` (units as given by the data).  A label that some frames
        lack is stored with zeros there and ``masks[key]`` False.
    masks : dict[str, np.ndarray]
        Boolean ``[nframes]`` per label key: which frames carry it.
    """

    name: str
    elements: list[str] | None
    types: np.ndarray
    coord: np.ndarray
    box: np.ndarray | None
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def nframes(self) -> int:
        return int(self.coord.shape[0])

    @property
    def natoms(self) -> int:
        return int(self.coord.shape[1])

    @property
    def periodic(self) -> bool:
        return self.box is not None

    def has_label(self, key: str) -> bool:
        """True when at least one frame carries label ``key``."""
        return key in self.labels and bool(np.any(self.masks.get(key, False)))

    def model_types(self, type_map: list[str]) -> np.ndarray:
        """Atom types as indices into the model's ``type_map``.

        Raises
        ------
        DataError
            If an element of this system is not in ``type_map`` (names the element and the
            system), or if integer-only types exceed ``len(type_map)``.
        """
        if self.elements is None:
            if self.types.size and int(self.types.max()) >= len(type_map):
                raise DataError(
                    f"{self.name}: atom type {int(self.types.max())} in type.raw but the "
                    f"model's type_map has only {len(type_map)} entries {type_map} "
                    "(add type_map.raw to the system to map types by element name)"
                )
            return self.types.astype(np.int64)
        index = {e: i for i, e in enumerate(type_map)}
        unknown = sorted({e for e in self.elements if e not in index})
        if unknown:
            raise DataError(
                f"{self.name}: element(s) {unknown} not in the model's type_map {type_map}"
            )
        return np.array([index[e] for e in self.elements], dtype=np.int64)

    def check(self) -> None:
        """Validate shapes; raise :class:`DataError` naming the system and array."""
        nf, na = self.nframes, self.natoms
        if self.coord.ndim != 3 or self.coord.shape[2] != 3:
            raise DataError(f"{self.name}: coord must have shape [nframes, natoms, 3], got {self.coord.shape}")
        if self.types.shape != (na,):
            raise DataError(f"{self.name}: {na} atoms in coord but {self.types.shape[0]} types")
        if self.elements is not None and len(self.elements) != na:
            raise DataError(f"{self.name}: {na} atoms in coord but {len(self.elements)} element names")
        if self.box is not None and self.box.shape != (nf, 3, 3):
            raise DataError(f"{self.name}: box must have shape [{nf}, 3, 3], got {self.box.shape}")
        problems = []  # (frames, what) of non-finite coordinates and labels
        bad = np.nonzero(~np.isfinite(self.coord).all(axis=(1, 2)))[0]
        if bad.size:
            problems.append((bad, "coordinates are not finite (NaN or inf)"))
        for key, arr in self.labels.items():
            want = (nf,) + K.frame_shape(key, na) if key in K.ITEM_SHAPES else None
            if want is not None and arr.shape != want:
                raise DataError(f"{self.name}: label '{key}' has shape {arr.shape}, expected {want}")
            mask = self.masks.get(key)
            if mask is None or mask.shape != (nf,):
                raise DataError(f"{self.name}: label '{key}' lacks a [{nf}] frame mask")
            finite = np.isfinite(arr.reshape(nf, -1)).all(axis=1)
            bad = np.nonzero(mask.astype(bool) & ~finite)[0]
            if bad.size:
                problems.append((bad, f"label '{key}' is not finite (NaN or inf)"))
        if problems:
            self._bad_frames(problems)

    def _bad_frames(self, problems: list) -> None:
        """Raise (``bad_frames="error"``, the default) or drop the frames with non-finite values
        (``load_systems(..., bad_frames="drop")`` / a data section's ``bad_frames: "drop"``), warned."""
        import warnings

        if BAD_FRAMES.get() != "drop":
            bad, what = problems[0]
            raise DataError(f"{self.name}: frame {int(bad[0])}: {what}{_more(bad)}; fix or remove these frames "
                            "(or drop them: bad_frames \"drop\" in the data section)")
        drop = np.unique(np.concatenate([b for b, _ in problems]))
        keep = np.setdiff1d(np.arange(self.nframes), drop)
        if not keep.size:
            raise DataError(f"{self.name}: every frame has non-finite coordinates or labels")
        warnings.warn(f"{self.name}: dropped {drop.size} of {self.nframes} frames with non-finite values "
                      f"({'; '.join(w for _, w in problems)}): frames {drop[:10].tolist()}"
                      f"{' ...' if drop.size > 10 else ''}", stacklevel=4)
        self.coord = self.coord[keep]
        self.box = None if self.box is None else self.box[keep]
        self.labels = {k: v[keep] for k, v in self.labels.items()}
        self.masks = {k: v[keep] for k, v in self.masks.items()}
