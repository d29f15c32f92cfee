"""Parity plots (prediction vs label) for ``mtzoo test --plot``; matplotlib is imported lazily."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtzoo import keys as K
from mtzoo.data.system import System
from mtzoo.evaluation import predict_system

# label key -> (panel title, divide by atoms)
PANELS = {K.ENERGY: ("energy per atom (eV/atom)", True), K.FORCES: ("force components (eV/A)", False),
          K.VIRIAL: ("virial per atom (eV/atom)", True), K.DIPOLE: ("dipole (label units)", False),
          K.ATOM_DIPOLE: ("atomic dipole (label units)", False),
          K.POLARIZABILITY: ("polarizability (label units)", False),
          K.ATOM_POLARIZABILITY: ("atomic polarizability (label units)", False)}


def parity_plot(model, systems_by_head: dict[str, Sequence[System]], path: str | Path,
                nframes: int | None = None) -> Path:
    """One row of panels per head (one panel per label present): prediction against label, with y = x.

    Parameters
    ----------
    model : Model
        The model.
    systems_by_head : dict
        Head name -> systems to evaluate it on.
    path : str or Path
        Output image (format from the suffix, e.g. ``.png``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for head, systems in systems_by_head.items():
        data: dict[str, tuple[list, list]] = {}
        for s in systems:
            pred = predict_system(model, s, head, nframes=nframes)
            for key, arr in pred.items():
                if key not in s.labels or key not in PANELS:
                    continue
                mask = s.masks[key][: len(arr)]
                if not mask.any():
                    continue
                scale = s.natoms if PANELS[key][1] else 1.0
                p, r = data.setdefault(key, ([], []))
                p.append(np.asarray(arr)[mask].ravel() / scale)
                r.append(np.asarray(s.labels[key][: len(arr)])[mask].ravel() / scale)
        if data:
            rows.append((head, data))
    if not rows:
        raise ValueError("nothing to plot: the systems carry no labels of these heads")
    ncol = max(len(d) for _, d in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(4 * ncol, 4 * len(rows)), squeeze=False)
    for i, (head, data) in enumerate(rows):
        for j, (key, (p, r)) in enumerate(data.items()):
            ax = axes[i, j]
            p, r = np.concatenate(p), np.concatenate(r)
            ax.scatter(r, p, s=4, alpha=0.5)
            lo, hi = float(min(r.min(), p.min())), float(max(r.max(), p.max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            rmse = float(np.sqrt(np.mean((p - r) ** 2)))
            ax.set_title(f"{head}: {PANELS[key][0]}\nRMSE {rmse:.3g}", fontsize=9)
            ax.set_xlabel("label")
            ax.set_ylabel("prediction")
        for j in range(len(data), ncol):
            axes[i, j].axis("off")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
