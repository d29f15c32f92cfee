"""DeePMD-kit side of ``bench_deepmd.py``'s inference timing: runs in DeePMD-kit's own virtual environment.

Not imported by mtzoo and imports nothing from it.  Started by ``bench_deepmd.py`` as

    PEER_PYTHON benchmarks/_deepmd_peer.py MODEL.pth SYSTEM_DIR --repeats 1 2

It loads ``deepmd.infer.DeepPot(MODEL.pth)`` once, reads frame 0 of the DeePMD npy system
``SYSTEM_DIR`` and builds its ``r x r x r`` replicas (as ``shared/peers/deepmd_time.py infer``
does), warms up, prints one line ``@@ {json}`` and then answers commands read from stdin, one per
line, each with one ``@@ {json}`` line:

* ``infer R N``: seconds of each of N ``DeepPot.eval(coord, box, types)`` calls (energy, forces
  and virial; DeePMD-kit builds its neighbour list inside the call) on replica ``R``;
* ``quit``.

A long-lived process lets the benchmark alternate short blocks of DeePMD-kit and mtzoo calls, so
that both see the same machine load (this machine's speed drifts by up to 1.5x over minutes).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS"):
    os.environ[_v] = "1"  # before torch is imported

import argparse
import json
import sys
import time

import numpy as np


def reply(obj: dict) -> None:
    """One protocol line on stdout (other libraries' prints never start with ``@@``)."""
    sys.stdout.write("@@ " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def frame(sysdir: str, repeat: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame 0 of an npy system as DeePMD-kit's ``(coord [1, 3N], box [1, 9], types [N])``, replicated."""
    sets = sorted(d for d in os.listdir(sysdir) if d.startswith("set."))
    coord = np.load(os.path.join(sysdir, sets[0], "coord.npy"))[:1]
    box = np.load(os.path.join(sysdir, sets[0], "box.npy"))[:1]
    types = np.loadtxt(os.path.join(sysdir, "type.raw"), dtype=int).reshape(-1)
    if repeat > 1:
        from ase import Atoms

        a = Atoms(numbers=types + 1, positions=coord.reshape(-1, 3), cell=box.reshape(3, 3), pbc=True)
        a = a.repeat((repeat,) * 3)
        coord, box, types = a.positions.reshape(1, -1), a.cell.array.reshape(1, -1), a.numbers - 1
    return coord, box, types


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("system")
    p.add_argument("--repeats", type=int, nargs="+", default=[1])
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args()
    import deepmd
    import torch
    from deepmd.infer import DeepPot

    torch.set_num_threads(1)
    dp = DeepPot(args.model)
    frames = {r: frame(args.system, r) for r in args.repeats}
    for r, (coord, box, types) in frames.items():
        for _ in range(args.warmup):
            dp.eval(coord, box, types)
    reply({"ready": True, "deepmd_kit": deepmd.__version__, "torch": torch.__version__,
           "torch_threads": torch.get_num_threads(), "natoms": {str(r): int(len(f[2])) for r, f in frames.items()}})
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] != "infer" or len(words) != 3 or int(words[1]) not in frames:
            reply({"error": f"expected 'infer R N' with R in {sorted(frames)}, got {line.strip()!r}"})
            continue
        coord, box, types = frames[int(words[1])]
        times = []
        for _ in range(int(words[2])):
            t0 = time.perf_counter()
            dp.eval(coord, box, types)
            times.append(time.perf_counter() - t0)
        reply({"times": times})


if __name__ == "__main__":
    main()
