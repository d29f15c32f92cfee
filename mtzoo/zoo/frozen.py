"""Frozen models: one file with format version, config, type_map, statistics and weights.

``{format_version, kind: "mtzoo-model", model_config, state_dict, type_map, heads,
metadata}``; statistics (``davg``/``dstd``, energy biases) are buffers in the state dict.
Loading rebuilds the model from ``model_config`` and reads the file with
``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mtzoo.model import Model, build_model, model_config
from mtzoo.training.checkpoint import MODEL_FORMAT_VERSION as FORMAT_VERSION
from mtzoo.training.checkpoint import MODEL_KIND as KIND
from mtzoo.training.checkpoint import as_path, atomic_save, load_checkpoint, read_model_file, versions
#: Precisions a model can be cast to (:func:`cast_model`), by name or torch dtype.
DTYPES = {"float32": torch.float32, "float64": torch.float64, torch.float32: torch.float32,
          torch.float64: torch.float64}


def save_model(model: Model, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``model`` as a frozen model file (atomically)."""
    path = Path(path)
    atomic_save({"format_version": FORMAT_VERSION, "kind": KIND, "model_config": model_config(model),
                 "state_dict": model.state_dict(), "type_map": model.type_map, "heads": model.head_names(),
                 "metadata": {"versions": versions(), **(metadata or {})}}, path)
    return path


def load_model(path: str | Path, uncompress: bool = False) -> Model:
    """Read a frozen model (or a training checkpoint) into an eval-mode :class:`~mtzoo.model.Model`.

    ``uncompress``: build a compressed model (``mtzoo compress``) with its embedding nets instead
    of its tables (for training or fine-tuning from it; the weights are the same).
    """
    path = as_path(path, "load_model")
    if path.suffix in (".dp", ".yaml", ".yml") and path.exists():
        from mtzoo.zoo.deepmd_import import model_from_deepmd

        return model_from_deepmd(path).eval()
    return model_from_state(read_model_file(path, accept_checkpoint=True), uncompress=uncompress)


def model_from_state(state: dict, uncompress: bool = False) -> Model:
    """An eval-mode :class:`~mtzoo.model.Model` from :func:`~mtzoo.training.checkpoint.read_model_file`'s
    dict (a model file, or a checkpoint: its weights under ``model``)."""
    if state.get("kind") == "checkpoint":
        model = build_model(state["model_config"])
        model.load_state_dict(state["model"])
        return model.eval()
    config = state["model_config"]
    if uncompress:
        config = {**config, "descriptor": {k: v for k, v in config["descriptor"].items() if k != "compress"}}
    model = build_model(config)
    model.load_state_dict(state["state_dict"])
    return model.eval()


def freeze(checkpoint: str | Path = ".", output: str | Path = "frozen_model.pth", head: str | None = None) -> Path:
    """Freeze a training checkpoint (file or run folder) into a model file.

    Parameters
    ----------
    checkpoint : str or Path
        Checkpoint file, or a run folder (its newest checkpoint).
    output : str or Path
        Model file to write.
    head : str or None
        Keep only this head (a single-head model); default: every head (the united model).
    """
    state = load_checkpoint(as_path(checkpoint, "freeze: checkpoint"))
    as_path(output, "freeze: output")
    model = build_model(state["model_config"])
    model.load_state_dict(state["model"])
    if head is not None:
        model = single_head(model, head)
    return save_model(model, output, {"step": state["step"], "input": state.get("input"),
                                      "source_heads": list(state["model_config"]["heads"]),
                                      "data_paths": state.get("data_paths")})


def single_head(model: Model, head: str) -> Model:
    """A model with the shared descriptor and only ``head`` (weights copied)."""
    name = model.resolve_head(head)
    cfg = model_config(model)
    cfg["heads"] = {name: {**cfg["heads"][name], "layer_name": None}}
    out = build_model(cfg)
    keep = {k: v for k, v in model.state_dict().items() if k.startswith("descriptor.") or k.startswith(f"heads.{name}.")}
    out.load_state_dict(keep)
    return out.eval()


def cast_model(model: Model, dtype) -> Model:
    """Same architecture and weights with ``precision`` set to ``dtype`` in descriptor and heads.

    Models carry their precision in their config (the descriptor computes in it), so a cast
    rebuilds the model from its config and copies the weights (statistics stay float64 where
    the model keeps them so).  ``dtype``: ``"float32"``, ``"float64"`` or the torch dtype.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, not {dtype!r}")
    dtype = DTYPES[dtype]
    if model.dtype == dtype:
        return model
    name = {torch.float32: "float32", torch.float64: "float64"}[dtype]
    cfg = model_config(model)
    cfg["descriptor"] = dict(cfg["descriptor"], precision=name)
    cfg["heads"] = {h: dict(c, precision=name) for h, c in cfg["heads"].items()}
    new = build_model(cfg)
    target = new.state_dict()
    new.load_state_dict({k: v.to(target[k].dtype) for k, v in model.state_dict().items()})
    return new.to(next(model.parameters()).device).train(model.training)


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file (read in 1 MiB blocks)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
