"""Registry of named, versioned pretrained models shipped inside the package.

The models live in ``mtzoo/zoo/models/``: one frozen model file per entry
(:mod:`mtzoo.zoo.frozen` format) and ``index.json``, a list of entries::

    {"name", "version", "file", "sha256", "size_bytes", "heads": [{"name", "level_of_theory", "units"}],
     "elements", "type_map", "cutoff", "descriptor", "description", "model_card", "license",
     "check": {"frame", "energy": {head: eV}}}

``check`` records the energy of every head on :func:`check_frame` at build time (float64), so
tests can verify that a shipped file still gives the numbers it was published with.
Entries are built by ``model_cards/recipes/build_zoo.py``; each has a model card.

>>> import mtzoo
>>> [m["name"] for m in mtzoo.list_pretrained()]                      # doctest: +SKIP
['agau-emt-d3-v1']
>>> model = mtzoo.load_pretrained("agau-emt-d3-v1", head="emt_d3bj")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"
INDEX = MODELS_DIR / "index.json"

__all__ = ["MODELS_DIR", "check_frame", "get_entry", "list_pretrained", "load_pretrained", "verify"]


def _index(index: str | Path | None = None) -> list[dict]:
    path = Path(index) if index is not None else INDEX
    if not path.exists():
        return []
    return json.loads(path.read_text())["models"]


def list_pretrained(index: str | Path | None = None) -> list[dict]:
    """Entries of the zoo (copies of ``index.json``'s records), in index order."""
    return copy.deepcopy(_index(index))


def get_entry(name: str, index: str | Path | None = None) -> dict:
    """The index record of ``name``; an unknown name is a ``KeyError`` listing the available ones."""
    entries = _index(index)
    for e in entries:
        if e["name"] == name:
            return copy.deepcopy(e)
    raise KeyError(f"no pretrained model '{name}' in the zoo (available: {[e['name'] for e in entries]})")


def verify(entry: dict, models_dir: str | Path | None = None) -> Path:
    """Path of the entry's file after checking its SHA-256; a mismatch is a ``ValueError`` with both hashes."""
    from mtzoo.zoo.frozen import file_sha256

    path = Path(models_dir if models_dir is not None else MODELS_DIR) / entry["file"]
    if not path.exists():
        raise FileNotFoundError(f"pretrained model '{entry['name']}': file {path} is missing from the installation")
    got = file_sha256(path)
    if got != entry["sha256"]:
        raise ValueError(f"pretrained model '{entry['name']}': checksum mismatch for {path}: "
                         f"expected sha256 {entry['sha256']}, got {got} (corrupt or modified file)")
    return path


def load_pretrained(name_or_path: str | Path, head: str | None = None, dtype=None, device="cpu",
                    index: str | Path | None = None, compress: bool | dict = False):
    """Load a zoo model by name (checksum verified) or a model file by path.

    Parameters
    ----------
    name_or_path : str, Path or dict
        A zoo name (:func:`list_pretrained`; one of its entries works too) or the path of a model file (anything
        :func:`mtzoo.zoo.frozen.load_model` reads).  A missing file (a ``Path``, or a string with
        a ``/`` or a model suffix) is a ``FileNotFoundError``; any other string that is not a zoo
        name is a ``KeyError``; both list the zoo's names.
    head : str or None
        Return a single-head model with only this head (:func:`mtzoo.zoo.frozen.single_head`);
        an unknown head is a ``KeyError`` listing the model's heads.  Default: every head.
    dtype : {None, "float32", "float64", torch.float32, torch.float64}
        Rebuild the model at this precision (:func:`mtzoo.zoo.frozen.cast_model`).
    device : str or torch.device
        Where the model is put.
    index : str or Path or None
        Another ``index.json`` (its files next to it); default: the package's.
    compress : bool or dict
        Tabulate the descriptor's embedding nets for faster inference
        (:func:`mtzoo.model.compress_model`; a dict gives its ``rmin``/``tol``).

    Returns
    -------
    mtzoo.model.Model
        In eval mode.
    """
    from mtzoo.zoo.frozen import cast_model, load_model, single_head

    if isinstance(name_or_path, dict):  # an entry of list_pretrained()
        if "name" not in name_or_path:
            raise KeyError(f"expected a zoo name, a model path or an entry of list_pretrained() (a dict with "
                           f"'name'), got a dict with keys {sorted(name_or_path)}")
        name_or_path = name_or_path["name"]
    from mtzoo.training.checkpoint import as_path

    p = as_path(name_or_path, "load_pretrained")
    names = [e["name"] for e in _index(index)]
    if isinstance(name_or_path, str) and name_or_path in names:
        entry = get_entry(name_or_path, index)
        path = verify(entry, Path(index).parent if index is not None else None)
    elif p.exists():
        path = p
    elif isinstance(name_or_path, Path) or "/" in str(name_or_path) or p.suffix in (".pth", ".pt", ".dp", ".yaml"):
        raise FileNotFoundError(f"model file not found: {name_or_path} (pretrained models of the zoo: {names})")
    else:
        raise KeyError(f"'{name_or_path}' is neither a pretrained model of the zoo (available: {names}) "
                       "nor an existing model file")
    model = load_model(path)
    if head is not None:
        model = single_head(model, head)  # resolve_head raises, listing the heads
    if dtype is not None:
        model = cast_model(model, dtype)
    if compress:
        from mtzoo.model import compress_model

        compress_model(model, **(compress if isinstance(compress, dict) else {}))
    return model.to(device).eval()


def check_frame(kind: str = "agau"):
    """The fixed frame the zoo records check outputs on.

    Parameters
    ----------
    kind : {"agau", "hcno"}
        ``"agau"``: a rattled 32-atom fcc Ag16Au16 cell (2x2x2 conventional fcc cell,
        a = 4.085 A, the first 16 atoms Ag, the rest Au), periodic.  ``"hcno"``: acetamide
        (CH3CONH2, ASE g2 geometry, 9 atoms with H, C, N and O), not periodic.  Both rattled
        with ``ase.Atoms.rattle(stdev=0.05, seed=7)``.

    Returns
    -------
    ase.Atoms
    """
    if kind == "agau":
        from ase.build import bulk

        atoms = bulk("Au", "fcc", a=4.085, cubic=True).repeat((2, 2, 2))
        atoms.symbols[:16] = "Ag"
    elif kind == "hcno":
        from ase.build import molecule

        atoms = molecule("CH3CONH2")
    else:
        raise ValueError(f"check_frame: unknown kind '{kind}' (available: ['agau', 'hcno'])")
    atoms.rattle(stdev=0.05, seed=7)
    return atoms


def resolve_model_path(base, what: str = "base model") -> Path:
    """Model file of ``base`` (zoo name, checksum verified, or a path); ``what`` names it in the error."""
    from mtzoo.training.checkpoint import as_path

    if isinstance(base, str) and base in [e["name"] for e in _index()]:
        return verify(get_entry(base))
    p = as_path(base, what)
    if not p.exists():
        raise FileNotFoundError(f"{what} '{base}' is neither a pretrained model of the zoo "
                                f"(available: {[e['name'] for e in _index()]}) nor an existing file")
    return p
