"""Readers that turn data files into :class:`~mtzoo.data.system.System` objects.

Supported sources
-----------------
* DeePMD-kit system folders (``type.raw`` + ``set.*/*.npy``, or the raw-text variant with
  ``coord.raw`` etc. at the top level), and parent folders of such systems.
* Anything :func:`ase.io.read` reads (extxyz, ASE ``.db``, VASP OUTCAR, ...).
* In-memory :class:`ase.Atoms` and pymatgen ``Structure`` / ``Molecule`` objects.

Every reader returns ``list[System]``, each already :meth:`~System.check`-ed.  Bad input
raises :class:`~mtzoo.data.system.DataError` with a one-line message that names the path
(or key) and what was expected; no raw numpy or ASE traceback escapes.

Units are taken as they come: DeePMD-kit data (and ASE) use Angstrom, eV, eV/A.  ASE
stress (eV/A^3, ASE sign) is converted to the DeePMD virial ``-stress * volume`` (eV).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mtzoo import keys as K
from mtzoo.data.system import BAD_FRAMES, DataError, System

__all__ = [
    "read_deepmd",
    "read_ase",
    "from_atoms",
    "from_pymatgen",
    "load_systems",
    "find_deepmd_systems",
]

# DeePMD-kit file stem of each label and the number of values it holds per frame
# (``None``: natoms * 3).
_DEEPMD_LABELS = ((K.ENERGY, "energy", 1), (K.FORCES, "force", None), (K.VIRIAL, "virial", 9))
# tensor labels: file stem, values per frame (global) or per atom (atomic), per-frame shape
_DEEPMD_TENSOR_LABELS = (
    (K.DIPOLE, "dipole", 3, False, (3,)),
    (K.ATOM_DIPOLE, "atomic_dipole", 3, True, (3,)),
    (K.POLARIZABILITY, "polarizability", 9, False, (3, 3)),
    (K.ATOM_POLARIZABILITY, "atomic_polarizability", 9, True, (3, 3)),
)


def label_frame_shape(key: str, natoms: int) -> tuple[int, ...]:
    """Shape of one frame of label ``key`` (``()`` for the energy): :func:`mtzoo.keys.frame_shape`."""
    return K.frame_shape(key, natoms)


def _read_atomic_tensor(fname: Path, nf: int, natoms: int, ncomp: int, where: str) -> np.ndarray:
    """``[nf, natoms * ncomp]`` atomic tensor label, or a DataError naming the expected size."""
    arr = _load_array(fname)
    per = natoms * ncomp
    if arr.size == nf * per:
        return arr.reshape(nf, per)
    got = arr.size / nf
    hint = ""
    if arr.size % (nf * ncomp) == 0 and arr.size // (nf * ncomp) < natoms:
        hint = (f" ({arr.size // (nf * ncomp)} atoms x {ncomp}: the older DeePMD-kit layout with only the "
                "sel_type atoms is not supported; write every atom, zeros for the others)")
    raise DataError(
        f"{where}: {fname.name} has shape {arr.shape} ({got:g} values per frame for {nf} frames); expected "
        f"natoms*{ncomp} = {per} values per frame (natoms = {natoms} from type.raw){hint}"
    )


def _one_line(msg: object) -> str:
    return " ".join(str(msg).split())


# --------------------------------------------------------------------------------------
# DeePMD-kit folders
# --------------------------------------------------------------------------------------
def _read_type_raw(path: Path) -> np.ndarray:
    fname = path / "type.raw"
    try:
        tokens = fname.read_text().split()
    except OSError as exc:
        raise DataError(f"cannot read {fname}: {_one_line(exc)}") from None
    if not tokens:
        raise DataError(f"{fname} is empty (expected one integer atom type per atom)")
    try:
        types = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        raise DataError(f"{fname}: expected integer atom types, got {tokens[:5]}...") from None
    if types.min() < 0:
        raise DataError(f"{fname}: negative atom type {int(types.min())}")
    return types


def _read_type_map(path: Path, types: np.ndarray) -> list[str] | None:
    fname = path / "type_map.raw"
    if not fname.is_file():
        return None
    try:
        type_map = fname.read_text().split()
    except OSError as exc:
        raise DataError(f"cannot read {fname}: {_one_line(exc)}") from None
    if int(types.max()) >= len(type_map):
        raise DataError(
            f"{path / 'type.raw'}: atom type {int(types.max())} but {fname} names only "
            f"{len(type_map)} types {type_map}"
        )
    return type_map


def _load_array(fname: Path) -> np.ndarray:
    """Load a ``.npy`` or whitespace-separated ``.raw`` file as a float64 array."""
    try:
        if fname.suffix == ".npy":
            arr = np.load(fname, allow_pickle=False)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # empty file warning: handled below
                arr = np.loadtxt(fname, ndmin=2)
        return np.asarray(arr, dtype=np.float64)
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"cannot read {fname}: {_one_line(exc)}") from None


def _fit_frames(arr: np.ndarray, fname: Path, nf: int, per_frame: int, what: str, where: str) -> np.ndarray:
    """Reshape ``arr`` to ``[nf, per_frame]`` or raise a DataError explaining the mismatch."""
    if arr.size == nf * per_frame:
        return arr.reshape(nf, per_frame)
    if arr.size % per_frame == 0 and (arr.ndim < 2 or arr.shape[-1] == per_frame or per_frame == 1):
        raise DataError(
            f"{where}: {fname.name} has {arr.size // per_frame} frames but "
            f"{'coord.npy' if fname.suffix == '.npy' else 'coord.raw'} has {nf}"
        )
    raise DataError(
        f"{where}: {fname.name} has shape {arr.shape} (size {arr.size}); expected "
        f"{nf} frames x {per_frame} values ({what}), size {nf * per_frame}"
    )


def _read_frames(where: Path, natoms: int, periodic: bool, ext: str) -> dict[str, np.ndarray]:
    """Read coord/box/labels of one set folder (``ext='.npy'``) or a raw system (``'.raw'``)."""
    if (where / "real_atom_types.npy").exists():
        raise DataError(
            f"{where}: mixed-type data (real_atom_types.npy) is not supported; convert it to "
            "one system per composition"
        )
    coord_file = where / f"coord{ext}"
    if not coord_file.is_file():
        raise DataError(f"{where}: coord{ext} not found (required)")
    coord = _load_array(coord_file)
    per_atom = natoms * 3
    if coord.size == 0:
        raise DataError(f"{coord_file} has no frames")
    if coord.size % per_atom != 0:
        raise DataError(
            f"{coord_file}: shape {coord.shape} (size {coord.size}) is not a multiple of "
            f"natoms*3 = {per_atom} (natoms = {natoms} from type.raw)"
        )
    nf = coord.size // per_atom
    out = {"coord": coord.reshape(nf, natoms, 3)}
    if periodic:
        box_file = where / f"box{ext}"
        if not box_file.is_file():
            raise DataError(f"{where}: box{ext} not found (required unless the system has a 'nopbc' file)")
        box = _fit_frames(_load_array(box_file), box_file, nf, 9, "3x3 cell", str(where))
        out["box"] = box.reshape(nf, 3, 3)
    for key, stem, per in _DEEPMD_LABELS:
        fname = where / f"{stem}{ext}"
        if fname.is_file():
            per = per_atom if per is None else per
            arr = _fit_frames(_load_array(fname), fname, nf, per, f"{stem} per frame", str(where))
            shape = {K.ENERGY: (nf,), K.FORCES: (nf, natoms, 3), K.VIRIAL: (nf, 3, 3)}[key]
            out[key] = arr.reshape(shape)
    for key, stem, ncomp, atomic, _ in _DEEPMD_TENSOR_LABELS:
        fname = where / f"{stem}{ext}"
        if not fname.is_file():
            continue
        if atomic:
            arr = _read_atomic_tensor(fname, nf, natoms, ncomp, str(where))
        else:
            arr = _fit_frames(_load_array(fname), fname, nf, ncomp, f"{stem} per frame", str(where))
        out[key] = arr.reshape((nf,) + label_frame_shape(key, natoms))
    return out


def read_deepmd(path: str | Path) -> list[System]:
    """Read one DeePMD-kit system folder.

    Parameters
    ----------
    path : str or Path
        Folder with ``type.raw``, optional ``type_map.raw`` and ``nopbc``, and either
        ``set.*/`` folders of ``.npy`` files (``coord``, ``box``, ``energy``, ``force``,
        ``virial``, and the tensor labels ``dipole`` ``[nf, 3]``, ``atomic_dipole``
        ``[nf, natoms*3]``, ``polarizability`` ``[nf, 9]``, ``atomic_polarizability``
        ``[nf, natoms*9]``) or the same data as ``.raw`` text files at the top level.
        Atomic tensor labels hold every atom in ``type.raw`` order (zeros for atoms of types
        without the tensor); the older layout with only ``sel_type`` atoms is rejected.

    Returns
    -------
    list[System]
        One system holding the frames of all sets, in sorted set order.  A label present
        in some sets only is zero-filled elsewhere with its mask False there.

    Raises
    ------
    DataError
        Missing folder or files, empty ``type.raw``, or arrays whose sizes disagree (an
        atomic tensor label not of size ``natoms * 3`` / ``natoms * 9`` per frame included).
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"system folder not found: {path}")
    if not (path / "type.raw").is_file():
        raise DataError(f"{path}: type.raw not found (expected a DeePMD-kit system folder)")
    types = _read_type_raw(path)
    natoms = int(types.size)
    type_map = _read_type_map(path, types)
    periodic = not (path / "nopbc").exists()

    set_dirs = sorted(p for p in path.glob("set.*") if p.is_dir())
    if set_dirs:
        parts = [_read_frames(d, natoms, periodic, ".npy") for d in set_dirs]
    elif (path / "coord.raw").is_file():
        parts = [_read_frames(path, natoms, periodic, ".raw")]
    else:
        raise DataError(f"{path}: no set.* folders and no coord.raw (expected DeePMD-kit npy or raw data)")

    coord = np.concatenate([p["coord"] for p in parts])
    box = np.concatenate([p["box"] for p in parts]) if periodic else None
    labels, masks = {}, {}
    for key in [k for k, _, _ in _DEEPMD_LABELS] + [k for k, *_ in _DEEPMD_TENSOR_LABELS]:
        if not any(key in p for p in parts):
            continue
        arrays, flags = [], []
        for p in parts:
            n = p["coord"].shape[0]
            have = key in p
            arrays.append(p[key] if have else np.zeros((n,) + label_frame_shape(key, natoms)))
            flags.append(np.full(n, have, dtype=bool))
        labels[key] = np.concatenate(arrays)
        masks[key] = np.concatenate(flags)

    elements = [type_map[t] for t in types] if type_map is not None else None
    system = System(name=str(path), elements=elements, types=types, coord=coord, box=box,
                    labels=labels, masks=masks)
    system.check()
    return [system]


def find_deepmd_systems(path: str | Path) -> list[Path]:
    """System folders at or below ``path``.

    ``path`` itself when it holds ``type.raw``; otherwise every folder below it that
    holds ``type.raw`` (searched recursively, as DeePMD-kit does), sorted.  Empty list
    when there is none.
    """
    path = Path(path)
    if (path / "type.raw").is_file():
        return [path]
    return sorted(p.parent for p in path.rglob("type.raw") if p.is_file())


# --------------------------------------------------------------------------------------
# ASE / pymatgen: frames grouped by their element sequence
# --------------------------------------------------------------------------------------
def _stress_to_virial(stress: Any, volume: float, where: str) -> np.ndarray:
    s = np.asarray(stress, dtype=np.float64)
    if s.shape == (6,):
        xx, yy, zz, yz, xz, xy = s
        s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    elif s.size == 9:
        s = s.reshape(3, 3)
    else:
        raise DataError(f"{where}: stress has shape {s.shape}; expected Voigt 6 or 3x3")
    return -s * volume


def _frame_from_atoms(atoms: Any, where: str) -> dict[str, Any]:
    """Positions, cell and labels of one ``ase.Atoms`` (labels never trigger a calculation)."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any() and not pbc.all():
        raise DataError(
            f"{where}: mixed periodicity pbc={pbc.tolist()} is not supported yet "
            "(frames must be periodic in all three directions or in none)"
        )
    periodic = bool(pbc.all())
    cell = np.array(atoms.cell[:], dtype=np.float64) if periodic else None
    volume = abs(float(np.linalg.det(cell))) if periodic else 0.0
    if periodic and volume < 1e-8:
        raise DataError(f"{where}: periodic frame with a zero-volume cell {cell.tolist()}")

    results: dict[str, Any] = {}
    calc = atoms.calc
    if calc is not None and getattr(calc, "results", None):
        try:
            stale = bool(calc.check_state(atoms))
        except Exception:  # noqa: BLE001 - exotic calculators: trust their results
            stale = False
        if not stale:
            results = calc.results
    info, arrays = atoms.info, atoms.arrays
    labels: dict[str, np.ndarray] = {}
    energy = results.get("energy", info.get("energy"))
    if energy is not None:
        labels[K.ENERGY] = np.asarray(energy, dtype=np.float64).reshape(())
    forces = results.get("forces", arrays.get("forces"))
    if forces is not None:
        labels[K.FORCES] = np.asarray(forces, dtype=np.float64).reshape(len(atoms), 3)
    if periodic:
        stress = results.get("stress", info.get("stress"))
        if stress is not None:
            labels[K.VIRIAL] = _stress_to_virial(stress, volume, where)
        elif info.get("virial") is not None:
            labels[K.VIRIAL] = np.asarray(info["virial"], dtype=np.float64).reshape(3, 3)
    n = len(atoms)
    for key, value in ((K.DIPOLE, results.get("dipole", info.get("dipole"))),
                       (K.POLARIZABILITY, info.get("polarizability")),
                       (K.ATOM_DIPOLE, arrays.get("atomic_dipole")),
                       (K.ATOM_POLARIZABILITY, arrays.get("atomic_polarizability"))):
        if value is None:
            continue
        shape = label_frame_shape(key, n)
        arr = np.asarray(value, dtype=np.float64)
        if arr.size != int(np.prod(shape)):
            raise DataError(f"{where}: {key} has shape {arr.shape}; expected {shape}")
        labels[key] = arr.reshape(shape)
    return {
        "symbols": tuple(atoms.get_chemical_symbols()),
        "coord": np.array(atoms.positions, dtype=np.float64),
        "box": cell,
        "labels": labels,
    }


def _group_frames(frames: list[dict[str, Any]], name: str) -> list[System]:
    """Group frames by (element sequence, periodic) into checked systems, first-seen order."""
    if not frames:
        raise DataError(f"{name}: no frames")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for fr in frames:
        groups.setdefault((fr["symbols"], fr["box"] is not None), []).append(fr)
    systems = []
    for gi, ((symbols, periodic), members) in enumerate(groups.items()):
        natoms = len(symbols)
        if natoms == 0:
            raise DataError(f"{name}: frame with no atoms")
        labels, masks = {}, {}
        for key in K.LABEL_KEYS + K.TENSOR_LABEL_KEYS:
            if not any(key in fr["labels"] for fr in members):
                continue
            shape = label_frame_shape(key, natoms)
            labels[key] = np.stack([fr["labels"].get(key, np.zeros(shape)) for fr in members])
            masks[key] = np.array([key in fr["labels"] for fr in members], dtype=bool)
        sys_name = name
        if len(groups) > 1:
            counts: dict[str, int] = {}
            for s in symbols:
                counts[s] = counts.get(s, 0) + 1
            sys_name = f"{name} [group {gi}: {''.join(f'{e}{n}' for e, n in counts.items())}]"
        system = System(
            name=sys_name,
            elements=list(symbols),
            types=np.zeros(natoms, dtype=np.int64),  # unused: elements carry the types
            coord=np.stack([fr["coord"] for fr in members]),
            box=np.stack([fr["box"] for fr in members]) if periodic else None,
            labels=labels,
            masks=masks,
        )
        system.check()
        systems.append(system)
    return systems


def from_atoms(atoms_or_list: Any, name: str = "ase.Atoms") -> list[System]:
    """Systems from in-memory :class:`ase.Atoms` (one object or an iterable of them).

    Frames are grouped by their element sequence (same order) and periodicity.  Labels
    come from stored calculator results (e.g. a ``SinglePointCalculator``; an attached
    calculator is never asked to compute), else from ``atoms.info["energy"]``,
    ``atoms.arrays["forces"]``, ``atoms.info["stress"]`` or ``atoms.info["virial"]``.
    Tensor labels: ``dipole`` (calculator result or ``atoms.info["dipole"]``, 3 values),
    ``atoms.info["polarizability"]`` (9 values), ``atoms.arrays["atomic_dipole"]``
    ``[n, 3]`` and ``atoms.arrays["atomic_polarizability"]`` ``[n, 9]``.
    Stress (ASE sign, eV/A^3, Voigt 6 or 3x3) becomes the virial ``-stress * volume``.

    Parameters
    ----------
    atoms_or_list : ase.Atoms or iterable of ase.Atoms
    name : str
        Used as the systems' name in error messages.

    Raises
    ------
    DataError
        Mixed periodicity (periodic along some but not all axes), a zero cell, or an
        object that is not ``ase.Atoms``.
    """
    from ase import Atoms

    frames_in = [atoms_or_list] if isinstance(atoms_or_list, Atoms) else list(atoms_or_list)
    frames = []
    for i, atoms in enumerate(frames_in):
        if not isinstance(atoms, Atoms):
            raise DataError(f"{name}: item {i} is a {type(atoms).__name__}, expected ase.Atoms")
        frames.append(_frame_from_atoms(atoms, f"{name} frame {i}"))
    return _group_frames(frames, name)


def read_ase(path: str | Path, index: Any = ":", format: str | None = None) -> list[System]:
    """Read any file :func:`ase.io.read` understands (extxyz, ASE db, OUTCAR, ...).

    Parameters
    ----------
    path : str or Path
    index : str, int or slice
        Frames to read, as for :func:`ase.io.read` (default: all).
    format : str, optional
        ASE format name; guessed from the file when None.

    Returns
    -------
    list[System]
        Frames grouped by element sequence (see :func:`from_atoms`).

    Raises
    ------
    DataError
        File missing or unreadable (the ASE message is kept, with the path).
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        images = ase.io.read(path, index=index, format=format)
    except Exception as exc:  # noqa: BLE001 - ASE raises many kinds; keep message + path
        raise DataError(f"cannot read {path} with ASE: {type(exc).__name__}: {_one_line(exc)}") from None
    if not isinstance(images, list):
        images = [images]
    if not images:
        raise DataError(f"{path}: no frames selected by index {index!r}")
    return from_atoms(images, name=str(path))


def _frame_from_pymatgen(obj: Any, where: str) -> dict[str, Any]:
    from pymatgen.core import Molecule, Structure

    if not isinstance(obj, (Structure, Molecule)):
        raise DataError(f"{where}: a {type(obj).__name__}, expected pymatgen Structure or Molecule")
    if not obj.is_ordered:
        raise DataError(f"{where}: disordered sites (partial occupancies) are not supported")
    symbols = []
    for site in obj:
        sp = site.specie
        symbols.append(str(getattr(sp, "element", sp).symbol))
    periodic = isinstance(obj, Structure)
    box = np.array(obj.lattice.matrix, dtype=np.float64) if periodic else None
    labels: dict[str, np.ndarray] = {}
    props = getattr(obj, "properties", None) or {}
    if props.get("energy") is not None:
        labels[K.ENERGY] = np.asarray(props["energy"], dtype=np.float64).reshape(())
    forces = obj.site_properties.get("forces")
    if forces is not None and all(f is not None for f in forces):
        labels[K.FORCES] = np.asarray(forces, dtype=np.float64).reshape(len(obj), 3)
    return {"symbols": tuple(symbols), "coord": np.array(obj.cart_coords, dtype=np.float64),
            "box": box, "labels": labels}


def from_pymatgen(obj_or_list: Any, name: str = "pymatgen") -> list[System]:
    """Systems from pymatgen ``Structure`` (periodic) or ``Molecule`` (non-periodic) objects.

    Labels are taken when present: ``obj.properties["energy"]`` (eV) and
    ``obj.site_properties["forces"]`` (eV/A).  pymatgen is imported only here.

    Parameters
    ----------
    obj_or_list : Structure, Molecule, or an iterable of them
    name : str
        Used as the systems' name in error messages.
    """
    try:
        from pymatgen.core import Molecule, Structure
    except ImportError as exc:  # pragma: no cover - pymatgen is a dependency
        raise DataError(f"{name}: pymatgen is needed to read pymatgen objects ({exc})") from None
    items = [obj_or_list] if isinstance(obj_or_list, (Structure, Molecule)) else list(obj_or_list)
    frames = [_frame_from_pymatgen(o, f"{name} item {i}") for i, o in enumerate(items)]
    return _group_frames(frames, name)


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------
_DEEPMD_FORMATS = ("deepmd", "deepmd/npy", "deepmd/raw", "npy", "raw")


def _is_pymatgen(obj: Any) -> bool:
    return type(obj).__module__.startswith("pymatgen.")


def _load_path(path: Path, fmt: str) -> list[System]:
    if not path.exists():
        raise DataError(f"system folder not found: {path}")
    if path.is_dir():
        if fmt not in ("auto",) + _DEEPMD_FORMATS:
            raise DataError(f"{path} is a folder but format {fmt!r} expects a file")
        found = find_deepmd_systems(path)
        if not found:
            raise DataError(
                f"{path}: no type.raw here or in any subfolder (expected a DeePMD-kit system "
                "folder or a folder of them)"
            )
        return [s for d in found for s in read_deepmd(d)]
    if fmt in _DEEPMD_FORMATS:
        raise DataError(f"{path} is a file but format {fmt!r} expects a DeePMD-kit system folder")
    return read_ase(path, format=None if fmt in ("auto", "ase") else fmt)


def load_systems(sources: Any, fmt: str = "auto", bad_frames: str = "error") -> list[System]:
    """Load data systems from paths or in-memory objects.

    Parameters
    ----------
    sources : str, Path, ase.Atoms, pymatgen object, or a list of them
        * a folder with ``type.raw``: one DeePMD-kit system (:func:`read_deepmd`);
        * a folder without ``type.raw``: every system folder below it (recursive, sorted),
          as DeePMD-kit expands ``systems`` entries;
        * a file: read with ASE (:func:`read_ase`);
        * ``ase.Atoms`` / pymatgen ``Structure`` / ``Molecule`` objects (consecutive
          objects of one kind are grouped together).
    fmt : str
        ``"auto"`` (default), ``"deepmd"`` (also ``"deepmd/npy"``, ``"deepmd/raw"``),
        ``"ase"``, or an ASE format name such as ``"extxyz"``.
    bad_frames : {"error", "drop"}
        Frames with NaN or inf coordinates or labels: an error naming system, frame and key
        (default), or dropped with a warning.

    Returns
    -------
    list[System]
        In the order of ``sources``.

    Raises
    ------
    DataError
        For any missing or malformed input (one line naming the path).
    """
    if bad_frames not in ("error", "drop"):
        raise ValueError(f"bad_frames: expected 'error' or 'drop', got {bad_frames!r}")
    token = BAD_FRAMES.set(bad_frames)
    try:
        return _load_systems(sources, fmt)
    finally:
        BAD_FRAMES.reset(token)


def _load_systems(sources: Any, fmt: str) -> list[System]:
    from ase import Atoms

    if isinstance(sources, (str, Path, Atoms)) or _is_pymatgen(sources):
        sources = [sources]
    elif not isinstance(sources, Iterable):
        raise DataError(f"data sources must be paths or structures, got {type(sources).__name__}")
    systems: list[System] = []
    pending: list[Any] = []
    pending_kind = None

    def flush() -> None:
        nonlocal pending, pending_kind
        if pending:
            if pending_kind == "ase":
                systems.extend(from_atoms(pending, name="ase.Atoms"))
            else:
                systems.extend(from_pymatgen(pending, name="pymatgen"))
        pending, pending_kind = [], None

    for src in sources:
        kind = "ase" if isinstance(src, Atoms) else "pymatgen" if _is_pymatgen(src) else None
        if kind is not None:
            if kind != pending_kind:
                flush()
            pending.append(src)
            pending_kind = kind
            continue
        flush()
        if not isinstance(src, (str, Path)):
            raise DataError(f"data source {src!r} is a {type(src).__name__}; expected a path, "
                            "ase.Atoms or pymatgen Structure/Molecule")
        systems.extend(_load_path(Path(src).expanduser(), fmt))
    flush()
    return systems
