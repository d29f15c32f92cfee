"""Helpers shared by the benchmark scripts: where a result was measured (commit, CPU), frames,
the long-lived peer processes (DeePMD-kit, MACE) that run in their own environments, and the
pieces of the peer comparisons that drive each tool by its own command line (``finetune_peers.py``,
``accuracy_mace.py``): logged commands, extxyz files and MACE's evaluation."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# a benchmark owns its process: mtzoo at its best, with the allocator settings the `mtzoo` command
# applies (opt-in for library use; mtzoo/nn/common.py: keep_freed_memory)
os.environ.setdefault("MTZOO_MALLOC_TUNING", "1")


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


# ------------------------------------------------------------------ peer comparisons by command line
#: ``mace_run_train`` options of the small MACE of the peer comparisons (32x0e+32x1o, L=1, two
#: layers, correlation 3, 5 A; E0s by least squares; float64; batch 5; energy/forces weights 1/100;
#: EMA 0.99; AMSGrad; MACE's defaults otherwise: lr 0.01, ReduceLROnPlateau).  ``--restart_latest``
#: only resumes a killed run in the same folder.
MACE_BASE = ["--model", "MACE", "--num_channels", "32", "--max_L", "1", "--num_interactions", "2",
             "--correlation", "3", "--r_max", "5.0", "--E0s", "average", "--default_dtype", "float64",
             "--batch_size", "5", "--valid_batch_size", "10", "--energy_weight", "1", "--forces_weight", "100",
             "--ema", "--ema_decay", "0.99", "--amsgrad", "--device", "cpu", "--restart_latest"]


def run(cmd: list[str], cwd: Path, log: Path, env: dict | None = None) -> float:
    """Run ``cmd`` in ``cwd``, stdout and stderr to ``log``; its wall time in seconds.  A non-zero
    exit is a RuntimeError with the log's tail."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        r = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {r.returncode}); log: {log}\n" + log.read_text()[-1500:])
    return time.perf_counter() - t0


def mae_mev(pred, ref) -> float:
    """Mean absolute difference in milli-units (eV -> meV), over all elements."""
    import numpy as np

    return float(np.abs(np.asarray(pred) - np.asarray(ref)).mean() * 1000)


def write_xyz(systems, path: Path, forces: bool) -> None:
    """The frames of one mtzoo ``System`` or a sequence of them, in order, as one extxyz file with
    ``energy`` (and ``forces`` when asked and labelled) in each frame's calculator (MACE reads them
    with ``--energy_key energy --forces_key forces``)."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    frames = []
    for sys_ in systems if isinstance(systems, Sequence) else [systems]:
        for f in range(sys_.nframes):
            at = Atoms(sys_.elements, positions=sys_.coord[f])
            kw = {"energy": float(sys_.labels["energy"][f])}
            if forces and "force" in sys_.labels:
                kw["forces"] = sys_.labels["force"][f]
            at.calc = SinglePointCalculator(at, **kw)
            frames.append(at)
    write(path, frames, format="extxyz")


def mace_predict(python: str, model: Path, xyz: Path, work: Path, head: str | None = None) -> dict:
    """Energies ``[nf]`` (eV) and forces ``[sum of atoms over frames, 3]`` (eV/A) of a MACE model on
    the frames of ``xyz``, by ``MACECalculator`` (cpu, float64) in MACE's python ``python``."""
    import numpy as np

    code = ("import sys, json, torch; from ase.io import read; from mace.calculators import MACECalculator;"
            "kw = {'head': sys.argv[3]} if len(sys.argv) > 3 else {};"
            "c = MACECalculator(model_paths=sys.argv[1], device='cpu', default_dtype='float64', **kw);"
            "e, f = [], [];\nfor at in read(sys.argv[2], ':'):\n    at.calc = c; e.append(at.get_potential_energy());"
            " f.extend(at.get_forces().tolist())\n"
            "print(json.dumps({'energy': e, 'forces': f}))")
    args = [python, "-c", code, str(model), str(xyz)] + ([head] if head else [])
    out = subprocess.run(args, capture_output=True, text=True, cwd=work)
    if out.returncode:
        raise RuntimeError("MACE evaluation failed: " + out.stderr[-1500:])
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return {"energy": np.array(res["energy"]), "forces": np.array(res["forces"]).reshape(-1, 3)}
