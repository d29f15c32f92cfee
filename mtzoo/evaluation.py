"""Evaluate a model on data: predictions for frames, and DeePMD-style error metrics.

Metrics per system (and over all systems, frames weighted equally), each as RMSE and MAE:

* energy heads: energy per atom, forces (per component), virial per atom;
* dipole / polar heads: the frame tensor (per component) and the atomic tensor (per component,
  atoms of the head's selected types only, as DeePMD-kit's ``dp test``).  Tensor labels carry
  no unit convention in DeePMD-kit data, so they are reported in "label units".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mtzoo import keys as K
from mtzoo.data.graph import collate, system_graphs
from mtzoo.data.system import System
from mtzoo.model import Model, Predictor

UNITS = {"energy_per_atom": "eV/atom", "force": "eV/A", "virial_per_atom": "eV/atom"}
LABEL_UNITS = "label units"


def _is_energy_head(model: Model, head: str) -> bool:
    return any(o.differentiable for o in model.heads[head].outputs)


def _predict_tensor(model: Model, graphs: list, head: str, batch_size: int) -> dict[str, np.ndarray]:
    """Frame ``[nf, *shape]`` and atomic ``[nf, natoms, *shape]`` values of each output of a tensor head."""
    outputs = model.heads[head].outputs
    out: dict[str, list] = {k: [] for o in outputs for k in (o.name, o.atom_name)}
    for i in range(0, len(graphs), batch_size):
        batch = collate(graphs[i: i + batch_size]).to(model.device)
        pred = Predictor(model)(batch, head=head, forces=False, virial=False)
        nb = batch.num_graphs
        for o in outputs:
            out[o.name].append(pred[o.name].detach().cpu().numpy())
            out[o.atom_name].append(pred[o.atom_name].detach().cpu().numpy().reshape(nb, -1, *o.shape))
    return {k: np.concatenate(v) for k, v in out.items()}


def predict_system(model: Model, system: System, head: str | None = None, batch_size: int = 8,
                   nframes: int | None = None) -> dict[str, np.ndarray]:
    """Predictions for the frames of ``system``.

    Energy heads: energies ``[nf]``, forces ``[nf, natoms, 3]``, virials ``[nf, 3, 3]``.
    Tensor heads: ``dipole`` ``[nf, 3]`` and ``atomic_dipole`` ``[nf, natoms, 3]``, or
    ``polarizability`` ``[nf, 3, 3]`` and ``atomic_polarizability`` ``[nf, natoms, 3, 3]``.
    """
    head = model.resolve_head(head)
    graphs = system_graphs(system, model.type_map, model.rcut)[:nframes]
    out: dict[str, list] = {K.ENERGY: [], K.FORCES: [], K.VIRIAL: []}
    was_training = model.training
    model.eval()
    try:
        if not _is_energy_head(model, head):
            return _predict_tensor(model, graphs, head, batch_size)
        for i in range(0, len(graphs), batch_size):
            batch = collate(graphs[i: i + batch_size]).to(model.device)
            pred = Predictor(model)(batch, head=head)
            nb = batch.num_graphs
            out[K.ENERGY].append(pred[K.ENERGY].detach().cpu().numpy())
            out[K.FORCES].append(pred[K.FORCES].detach().cpu().numpy().reshape(nb, -1, 3))
            out[K.VIRIAL].append(pred[K.VIRIAL].detach().cpu().numpy())
    finally:
        model.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}


def _errors(pred: np.ndarray, ref: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, int]:
    return (np.asarray(pred) - np.asarray(ref)).ravel() / scale, int(np.asarray(ref).size)


def evaluate(model: Model, systems: Sequence[System], head: str | None = None, nframes: int | None = None,
             batch_size: int = 8, progress: bool | None = None) -> dict:
    """Errors of ``head`` on each system and over all of them (a progress bar over the systems on
    interactive terminals, or when ``progress`` is True).

    Returns
    -------
    dict
        ``{"head", "systems": [{"name", "nframes", "natoms", "<metric>": {"rmse", "mae", "n"}}],
        "total": {...}}`` with metrics ``energy_per_atom``, ``force``, ``virial_per_atom``
        (present only where the data has labels), units in ``"units"``.
    """
    head = model.resolve_head(head)
    if not _is_energy_head(model, head):
        return _evaluate_tensor(model, systems, head, nframes, batch_size)
    from mtzoo.progress import Progress

    bar = Progress(len(systems), 0, progress, unit="systems")
    rows, pooled = [], {m: [] for m in UNITS}
    for i, s in enumerate(systems):
        pred = predict_system(model, s, head, batch_size, nframes)
        bar.update(i + 1)
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
    bar.close()
    total = {}
    for metric, errs in pooled.items():
        if errs:
            e = np.concatenate(errs)
            total[metric] = {"rmse": float(np.sqrt(np.mean(e**2))), "mae": float(np.mean(np.abs(e))), "n": int(e.size)}
    return {"head": head, "systems": rows, "total": total, "units": UNITS}


def _stats(err: np.ndarray) -> dict:
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))), "n": int(err.size)}


def _evaluate_tensor(model: Model, systems: Sequence[System], head: str, nframes: int | None, batch_size: int) -> dict:
    """:func:`evaluate` for a dipole / polar head: metrics named after the frame and atomic label keys."""
    hd = model.heads[head]
    sel_types = hd.sel_types() if hasattr(hd, "sel_types") else list(range(len(model.type_map)))
    metrics = [k for o in hd.outputs for k in (o.name, o.atom_name)]
    units = {m: LABEL_UNITS for m in metrics}
    rows, pooled = [], {m: [] for m in metrics}
    for s in systems:
        pred = predict_system(model, s, head, batch_size, nframes)
        nf = len(next(iter(pred.values())))
        row = {"name": s.name, "nframes": nf, "natoms": s.natoms}
        sel = np.isin(s.model_types(model.type_map), sel_types)
        for o in hd.outputs:
            for key, atomic in ((o.name, False), (o.atom_name, True)):
                if key not in s.labels or not s.masks[key][:nf].any():
                    continue
                mask = s.masks[key][:nf]
                p, ref = pred[key][mask], s.labels[key][:nf][mask]
                if atomic:
                    p, ref = p[:, sel], ref[:, sel]
                if ref.size == 0:
                    continue
                err = (p - ref).ravel()
                row[key] = _stats(err)
                pooled[key].append(err)
        rows.append(row)
    total = {m: _stats(np.concatenate(e)) for m, e in pooled.items() if e}
    return {"head": head, "head_type": hd.head_type, "sel_type": sel_types, "systems": rows, "total": total,
            "units": units}


def format_table(result: dict) -> str:
    """Plain-text table of :func:`evaluate`'s result."""
    units = result.get("units", UNITS)
    metrics = [m for m in units if m in result["total"]]
    head = f"head: {result['head']}\n"
    cols = ["system", "frames"] + [f"{m} RMSE / MAE ({units[m]})" for m in metrics]
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


