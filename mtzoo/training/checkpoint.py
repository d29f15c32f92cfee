"""Checkpoints: written atomically, pruned to ``max_ckpt_keep``, loaded with ``weights_only``.

A checkpoint is ``{format_version, kind: "checkpoint", step, input (completed config),
model_config, model (state_dict), optimizer, lr_schedule, tasks (samplers), scheduler,
torch_rng, best, versions}``; with ``training.enable_ema`` the ``model`` entry holds the
moving-average weights (what freeze and load_model read) and ``raw_model`` and ``ema`` are
added (what ``--restart`` resumes from).  The model is rebuilt from code, never unpickled.  ``SAVE_CKPT-STEP.pt`` files sit in the run folder with
``SAVE_CKPT.pt`` (a copy of the newest) and a ``checkpoint`` text file naming it, as in
DeePMD-kit.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

FORMAT_VERSION = 1
#: A frozen model file (``mtzoo freeze``, :func:`mtzoo.zoo.frozen.save_model`): its ``kind`` and the
#: newest ``format_version`` this mtzoo reads.
MODEL_KIND = "mtzoo-model"
MODEL_FORMAT_VERSION = 1


def atomic_save(obj: dict, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(text: str, path: str | Path) -> None:
    """Write a text file atomically (temporary file + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def versions() -> dict[str, str]:
    import e3nn
    import torch_geometric

    from mtzoo._version import __version__

    return {"mtzoo": str(__version__), "torch": str(torch.__version__), "torch_geometric": str(torch_geometric.__version__),
            "e3nn": str(e3nn.__version__)}


def save_checkpoint(state: dict, workdir: Path, save_ckpt: str, step: int, max_keep: int) -> Path:
    """Write ``SAVE_CKPT-STEP.pt`` and ``SAVE_CKPT.pt`` atomically; keep the newest ``max_keep``."""
    stem = Path(save_ckpt).name.removesuffix(".pt")
    folder = workdir / Path(save_ckpt).parent
    path = folder / f"{stem}-{step}.pt"
    state = {"format_version": FORMAT_VERSION, "kind": "checkpoint", "step": step, "versions": versions(), **state}
    atomic_save(state, path)
    atomic_save(state, folder / f"{stem}.pt")
    atomic_write_text(f"{path.name}\n", folder / "checkpoint")
    old = sorted(folder.glob(f"{stem}-*.pt"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    for p in old[: max(len(old) - max_keep, 0)]:
        p.unlink(missing_ok=True)
    return path


def as_path(value, what: str) -> Path:
    """``Path(value)``, or a ``TypeError`` naming ``what`` and the type given (not pathlib's own message)."""
    if isinstance(value, (str, os.PathLike)):
        return Path(value)
    raise TypeError(f"{what}: expected a path (str or os.PathLike), got {type(value).__name__} {value!r:.80}")


def safe_load(path: str | Path, what: str = "mtzoo file"):
    """``torch.load(path, weights_only=True)`` on the CPU with one-line errors naming ``path``.

    A file holding pickled objects other than tensors and plain containers is refused, and the
    message does not pass on torch's hint to reload it with ``weights_only=False`` (that would
    run whatever code the file carries).
    """
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"{path}: not a readable {what}: it holds pickled Python objects other than tensors "
                         "and plain data, which mtzoo never loads (they could run code)") from None
    except Exception as exc:  # empty, truncated or foreign file
        lines = str(exc).strip().splitlines()
        detail = f": {lines[0][:200]}" if lines else ""
        raise ValueError(f"{path}: not a readable {what} ({exc.__class__.__name__}{detail})") from None


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint (``weights_only=True``); a folder means its newest checkpoint."""
    path = as_path(path, "checkpoint")
    if path.is_dir():
        marker = path / "checkpoint"
        if not marker.exists():
            raise FileNotFoundError(f"{path}: no 'checkpoint' file naming the newest checkpoint")
        path = path / marker.read_text().strip()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = safe_load(path, "mtzoo checkpoint")
    if not isinstance(state, dict) or state.get("kind") != "checkpoint":
        raise ValueError(f"{path}: not an mtzoo checkpoint")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {state['format_version']} is newer than this mtzoo ({FORMAT_VERSION})")
    return state


def read_model_file(path: str | Path, what: str = "model file", accept_checkpoint: bool = False) -> dict:
    """The one reader of a frozen model file (``weights_only``; no pickled code runs).

    Returns the file's dict ``{format_version, kind, model_config, state_dict, type_map, heads,
    metadata}`` after checking that it exists, is an mtzoo model and is not newer than this mtzoo.
    With ``accept_checkpoint`` a training checkpoint is returned instead (``kind`` ``"checkpoint"``,
    :func:`load_checkpoint`'s dict: weights under ``model``).  ``what`` names the file in errors.
    """
    path = as_path(path, what)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    state = safe_load(path, "mtzoo model")
    if accept_checkpoint and isinstance(state, dict) and state.get("kind") == "checkpoint":
        return load_checkpoint(path)
    if not isinstance(state, dict) or state.get("kind") != MODEL_KIND:
        raise ValueError(f"{path}: not an mtzoo model file (expected kind '{MODEL_KIND}')")
    if state.get("format_version", 0) > MODEL_FORMAT_VERSION:
        raise ValueError(f"{path}: model format {state['format_version']} is newer than this mtzoo "
                         f"({MODEL_FORMAT_VERSION})")
    return state
