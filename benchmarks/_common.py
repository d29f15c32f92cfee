"""Helpers shared by the benchmark scripts: where a result was measured (commit, CPU)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """Short hash of HEAD, with ``-dirty`` when tracked files differ from it."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip())
    return commit + ("-dirty" if dirty else "")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def first_frame_atoms(sysdir: Path, type_map: list[str], repeat: int = 1):
    """Frame 0 of a DeePMD npy system (periodic) as ``ase.Atoms``, replicated ``repeat``^3 times."""
    import os

    import numpy as np
    from ase import Atoms

    sysdir = Path(sysdir)
    sets = sorted(d for d in os.listdir(sysdir) if d.startswith("set."))
    coord = np.load(sysdir / sets[0] / "coord.npy")[0].reshape(-1, 3)
    box = np.load(sysdir / sets[0] / "box.npy")[0].reshape(3, 3)
    types = np.loadtxt(sysdir / "type.raw", dtype=int).reshape(-1)
    atoms = Atoms(symbols=[type_map[t] for t in types], positions=coord, cell=box, pbc=True)
    return atoms.repeat((repeat,) * 3) if repeat > 1 else atoms
