"""Helpers shared by the benchmark scripts: where a result was measured (commit, CPU), frames,
and the long-lived peer processes (DeePMD-kit, MACE) that run in their own environments."""

from __future__ import annotations

import json
import os
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
    """The CPU's model name with its family/model numbers and widest vector unit, e.g. ``AMD EPYC
    (family 25 model 17, AVX-512)`` (``/proc/cpuinfo``; ``platform.processor()`` elsewhere).  The
    project's machines have been Zen 2 (AVX2) and Zen 4 (AVX-512) under the same model name."""
    try:
        info: dict[str, str] = {}
        for line in open("/proc/cpuinfo"):
            if ":" in line:
                key, value = (part.strip() for part in line.split(":", 1))
                info.setdefault(key, value)
            elif info:
                break  # first processor only
        flags = set(info.get("flags", "").split())
        simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
        if "model name" in info:
            return f"{info['model name']} (family {info.get('cpu family', '?')} model {info.get('model', '?')}, {simd})"
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


class PeerProcess:
    """A peer script in another python, fed one command per line on stdin; it answers each with one
    ``@@ {json}`` line on stdout (``_deepmd_peer.py``, ``_mace_peer.py``).  Its first line (after
    start-up) is kept as ``ready``; stderr goes to ``errlog``."""

    def __init__(self, name: str, argv: list[str], errlog: Path) -> None:
        self.name, self.errlog = name, errlog
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(errlog, "w"),
                                     text=True, env=dict(os.environ))
        self.ready = self._read()

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                msg = json.loads(line[3:])
                if "error" in msg:
                    raise RuntimeError(f"{self.name} peer: {msg['error']}")
                return msg
        self.proc.wait()
        raise RuntimeError(f"{self.name} peer exited ({self.proc.returncode}):\n{self.errlog.read_text()[-3000:]}")

    def ask(self, cmd: str) -> dict:
        """Send one command line; the peer's answer."""
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
