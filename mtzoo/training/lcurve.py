"""The learning curve file (DeePMD-kit's ``lcurve.out`` layout) and the run folder's leftovers.

``lcurve.out``: a header ``# step  <metric>_val <metric>_trn ...  lr`` (per task in multi-task runs,
``_val`` columns only for tasks with validation data), then one row per displayed step.  A run
resumed from a checkpoint drops the rows written after that checkpoint's step.
"""

from __future__ import annotations

import math
from pathlib import Path

from mtzoo.training.checkpoint import atomic_write_text


def truncate_lcurve(path: Path, step: int) -> None:
    """Drop the rows of ``lcurve.out`` after ``step`` (written after the checkpoint a run resumes from)."""
    lines = path.read_text().splitlines(keepends=True)
    keep = []
    for line in lines:
        fields = line.split()
        if line.startswith("#") or not fields:
            keep.append(line)
            continue
        try:
            row_step = int(fields[0])
        except ValueError:
            keep.append(line)
            continue
        if row_step <= step:
            keep.append(line)
    if len(keep) != len(lines):
        atomic_write_text("".join(keep), path)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete ``.NAME.*.tmp`` files left by writes that a killed process never finished."""
    for p in folder.glob(".*.tmp"):
        p.unlink(missing_ok=True)
    for sub in {p.parent for p in folder.glob("*/.*.tmp")}:
        for p in sub.glob(".*.tmp"):
            p.unlink(missing_ok=True)


def lcurve_header(train: dict, valid: dict, single: bool) -> str:
    """DeePMD-kit's lcurve header: ``step``, metric columns (``_val``/``_trn``; per task in multi-task), ``lr``."""
    s = "# {:5s}".format("step")
    for name, metrics in train.items():
        suffix = "" if single else f"_{name}"
        for k in sorted(metrics):
            s += ("   %11s %11s" % (f"{k}_val{suffix}", f"{k}_trn{suffix}")) if name in valid else (
                "   %11s" % f"{k}_trn{suffix}")
    return s + "   {:8s}\n".format("lr") + "# If there is no available reference data, rmse_*_{val,trn} will print nan\n"


def lcurve_line(step: int, lr: float, train: dict, valid: dict, single: bool) -> str:
    s = f"{step:7d}"
    for name, metrics in train.items():
        for k in sorted(metrics):
            s += ("   %11.2e %11.2e" % (valid[name].get(k, math.nan), metrics[k])) if name in valid else (
                "   %11.2e" % metrics[k])
    return s + f"   {lr:8.1e}\n"
