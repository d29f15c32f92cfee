"""Evaluate a model on data: predictions for frames, and DeePMD-style error metrics.

Metrics per system (and over all systems, frames weighted equally):
energy per atom, forces (per component), virial per atom; each as RMSE and MAE.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtzoo import keys as K
from mtzoo.data.graph import collate, system_graphs
from mtzoo.data.system import System
from mtzoo.model import Model

UNITS = {"energy_per_atom": "eV/atom", "force": "eV/A", "virial_per_atom": "eV/atom"}


def predict_system(model: Model, system: System, head: str | None = None, batch_size: int = 8,
                   nframes: int | None = None) -> dict[str, np.ndarray]:
    """Energies ``[nf]``, forces ``[nf, natoms, 3]``, virials ``[nf, 3, 3]`` for the frames of ``system``."""
    graphs = system_graphs(system, model.type_map, model.rcut)[:nframes]
    out: dict[str, list] = {K.ENERGY: [], K.FORCES: [], K.VIRIAL: []}
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(graphs), batch_size):
            batch = collate(graphs[i: i + batch_size])
            pred = model(batch, head=head, create_graph=False)
            nb = batch.num_graphs
            out[K.ENERGY].append(pred[K.ENERGY].detach().numpy())
            out[K.FORCES].append(pred[K.FORCES].detach().numpy().reshape(nb, -1, 3))
            out[K.VIRIAL].append(pred[K.VIRIAL].detach().numpy())
    finally:
        model.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}


def _errors(pred: np.ndarray, ref: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, int]:
    return (np.asarray(pred) - np.asarray(ref)).ravel() / scale, int(np.asarray(ref).size)


def evaluate(model: Model, systems: Sequence[System], head: str | None = None, nframes: int | None = None,
             batch_size: int = 8) -> dict:
    """Errors of ``head`` on each system and over all of them.

    Returns
    -------
    dict
        ``{"head", "systems": [{"name", "nframes", "natoms", "<metric>": {"rmse", "mae", "n"}}],
        "total": {...}}`` with metrics ``energy_per_atom``, ``force``, ``virial_per_atom``
        (present only where the data has labels), units in ``"units"``.
    """
    head = model.resolve_head(head)
    rows, pooled = [], {m: [] for m in UNITS}
    for s in systems:
        pred = predict_system(model, s, head, batch_size, nframes)
        nf = len(pred[K.ENERGY])
        row = {"name": s.name, "nframes": nf, "natoms": s.natoms}
        for metric, key, per_atom in (("energy_per_atom", K.ENERGY, True), ("force", K.FORCES, False),
                                      ("virial_per_atom", K.VIRIAL, True)):
            if key not in s.labels:
                continue
            mask = s.masks[key][:nf]
            if not mask.any():
                continue
            err, _ = _errors(pred[key][mask], s.labels[key][:nf][mask], s.natoms if per_atom else 1.0)
            row[metric] = {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))), "n": int(err.size)}
            pooled[metric].append(err)
        rows.append(row)
    total = {}
    for metric, errs in pooled.items():
        if errs:
            e = np.concatenate(errs)
            total[metric] = {"rmse": float(np.sqrt(np.mean(e**2))), "mae": float(np.mean(np.abs(e))), "n": int(e.size)}
    return {"head": head, "systems": rows, "total": total, "units": UNITS}


def format_table(result: dict) -> str:
    """Plain-text table of :func:`evaluate`'s result."""
    metrics = [m for m in UNITS if m in result["total"]]
    head = f"head: {result['head']}\n"
    cols = ["system", "frames"] + [f"{m} RMSE / MAE ({UNITS[m]})" for m in metrics]
    lines = [cols]
    for row in result["systems"] + [{"name": "ALL", "nframes": sum(r["nframes"] for r in result["systems"]),
                                     **result["total"]}]:
        cells = [str(row["name"]), str(row["nframes"])]
        for m in metrics:
            cells.append(f"{row[m]['rmse']:.4e} / {row[m]['mae']:.4e}" if m in row else "-")
        lines.append(cells)
    widths = [max(len(r[i]) for r in lines) for i in range(len(cols))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*lines[0]), "  ".join("-" * w for w in widths)] + [fmt.format(*r) for r in lines[1:]]
    return head + "\n".join(out)


