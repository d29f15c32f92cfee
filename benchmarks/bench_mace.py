"""Speed: mtzoo's ``e3nn_mp`` energy model beside MACE at a similar size, in one run.

Both models: cutoff 5 A, spherical harmonics up to ``l = 2``, 2 interaction layers, node features
``32x0e + 32x1o``, 8 Bessel functions, radial MLP ``[64, 64, 64]``, a 16-wide hidden layer in the
energy readout; similar parameter counts (both reported).

* mtzoo: :func:`mtzoo.model.build_model` with an ``e3nn_mp`` descriptor and an ``ener`` head
  (e3nn 0.6 in mtzoo's environment);
* MACE: ``mace.modules.ScaleShiftMACE`` as ``mace_run_train --model MACE`` builds it (first
  layer ``RealAgnosticInteractionBlock``, then ``RealAgnosticResidualInteractionBlock``,
  correlation 3, SiLU gate), with mace-torch and its pinned e3nn 0.4.4 in their own virtual
  environment, driven by ``benchmarks/_mace_peer.py`` in a long-lived subprocess.

Frames: DeePMD-kit's ``examples/water/data/data_3`` (periodic water, 192 atoms; read with
:func:`mtzoo.data.readers.read_deepmd`, handed to the peer in a temporary ``.npz``), or, when the
shared examples are missing, a generated water-like box of 64 molecules (said so in the JSON).
Neighbour lists are built before every timer on both sides.  One thread on both sides.

Timed, per precision (float64, float32), in ``--rounds`` interleaved rounds (mtzoo then MACE,
MACE then mtzoo, ...), each round ``--calls`` calls per side:

* energy + forces (no virial) on the first frame, eval mode, forces by autograd without
  ``create_graph``;
* a training step, batch of one frame, the first ``--train-frames`` frames in turn: zero_grad,
  forward with forces (``create_graph``), loss
  :math:`((E - E_{\\rm ref})/N)^2 + \\tfrac{1}{3N}\\sum_i |\\Delta \\mathbf F_i|^2` written the same
  way on both sides, backward, Adam step (lr 1e-3).

Reported: the median over rounds of each round's median, every raw time, and MACE / mtzoo.
Writes ``benchmarks/results/YYYY-MM-DD-e3nn-vs-mace.json``.  See ``benchmarks/README.md``.

    OMP_NUM_THREADS=1 python benchmarks/bench_mace.py [--peer-python /tmp/mtzoo-peers/mace/bin/python]
        [--shared ../shared] [--rounds 3] [--calls 5] [--precisions float64 float32]

Without the peer environment the script prints ``skipped: ...`` and exits 0.  Setting it up:
``python3 -m venv /tmp/mtzoo-peers/mace``, then in it ``pip install torch==2.13.0`` and
``pip install mace-torch`` (0.3.16 here).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"  # before torch is imported, here and in the MACE subprocess

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import PeerProcess, cpu_model, git_commit  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

REPO = Path(__file__).resolve().parents[1]
PEER_SCRIPT = Path(__file__).resolve().parent / "_mace_peer.py"
FRAMES = "data/deepmd-examples/examples/water/data/data_3"
TYPE_MAP = ["O", "H"]
NUMBERS = {"O": 8, "H": 1}

#: Sizes shared by both models.
RCUT, LMAX, LAYERS, N_RADIAL, RADIAL_MLP, READOUT_HIDDEN = 5.0, 2, 2, 8, [64, 64, 64], 16
HIDDEN_IRREPS = "32x0e + 32x1o"


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def mtzoo_config(precision: str) -> dict:
    """``build_model`` input of the mtzoo side."""
    return {"type_map": TYPE_MAP,
            "descriptor": {"type": "e3nn_mp", "rcut": RCUT, "lmax": LMAX, "num_layers": LAYERS,
                           "hidden_irreps": HIDDEN_IRREPS, "n_radial": N_RADIAL, "radial_neurons": RADIAL_MLP,
                           "precision": precision, "seed": 1},
            "heads": {"energy": {"type": "ener", "neuron": [READOUT_HIDDEN], "precision": precision, "seed": 2}}}


def mace_config(avg_num_neighbors: float, force_rms: float) -> dict:
    """``_mace_peer.build`` input: ``mace_run_train --model MACE`` defaults but for the shared sizes."""
    return {"r_max": RCUT, "max_ell": LMAX, "num_interactions": LAYERS, "hidden_irreps": HIDDEN_IRREPS.replace(" ", ""),
            "num_bessel": N_RADIAL, "radial_MLP": RADIAL_MLP, "MLP_irreps": f"{READOUT_HIDDEN}x0e",
            "num_polynomial_cutoff": 5, "correlation": 3, "gate": "silu",
            "interaction_first": "RealAgnosticInteractionBlock", "interaction": "RealAgnosticResidualInteractionBlock",
            "avg_num_neighbors": avg_num_neighbors, "atomic_inter_scale": force_rms, "atomic_inter_shift": [0.0]}


# ----------------------------------------------------------------------------------------------
# frames
# ----------------------------------------------------------------------------------------------
def load_frames(shared: Path, nframes: int):
    """First ``nframes`` frames of data_3 as a :class:`mtzoo.data.system.System`, and where they came from."""
    from mtzoo.data.readers import read_deepmd

    path = shared / FRAMES
    if path.is_dir():
        s = read_deepmd(path)[0]
        return _head(s, nframes), f"DeePMD-kit examples/water/data/data_3, frames 0-{nframes - 1} of set.000"
    log(f"{path} not found: using a generated water-like box (random labels)")
    return generated_water(nframes), "generated: 64 water molecules on a jittered 4x4x4 grid, 12.42 A box, random labels"


def _head(s, n: int):
    from dataclasses import replace

    return replace(s, coord=s.coord[:n], box=s.box[:n], labels={k: v[:n] for k, v in s.labels.items()},
                   masks={k: v[:n] for k, v in s.masks.items()})


def generated_water(nframes: int, seed: int = 0):
    """64 rigid-geometry water molecules (O-H 0.96 A, 104.5 deg) in a 12.42 A box (~1 g/cm^3)."""
    from mtzoo import keys as K
    from mtzoo.data.system import System

    rng = np.random.default_rng(seed)
    a, n_side = 12.42, 4
    grid = np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) * (a / n_side)
    coords = []
    for _ in range(nframes):
        o = grid + rng.normal(scale=0.15, size=grid.shape)
        u = rng.normal(size=(len(o), 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        w = np.cross(u, rng.normal(size=(len(o), 3)))
        w /= np.linalg.norm(w, axis=1, keepdims=True)
        half = np.deg2rad(104.5) / 2
        h1 = o + 0.96 * (np.cos(half) * u + np.sin(half) * w)
        h2 = o + 0.96 * (np.cos(half) * u - np.sin(half) * w)
        coords.append(np.concatenate([o, h1, h2]) % a)
    n = 3 * len(grid)
    elements = ["O"] * len(grid) + ["H"] * (2 * len(grid))
    labels = {K.ENERGY: rng.normal(-470.0 * len(grid), 1.0, size=nframes),
              K.FORCES: rng.normal(scale=0.5, size=(nframes, n, 3))}
    return System(name="generated water", elements=elements, types=np.array([TYPE_MAP.index(e) for e in elements]),
                  coord=np.array(coords), box=np.tile(np.eye(3) * a, (nframes, 1, 1)), labels=labels,
                  masks={k: np.ones(nframes, bool) for k in labels})


# ----------------------------------------------------------------------------------------------
# mtzoo side
# ----------------------------------------------------------------------------------------------
class MtzooSide:
    """The mtzoo model, its prebuilt graphs and optimizer; ``infer(n)`` / ``train(n)`` give seconds per call."""

    def __init__(self, system, precision: str, e0: np.ndarray, lr: float = 1e-3, warmup: int = 2) -> None:
        import torch

        from mtzoo.data.graph import collate, system_graphs
        from mtzoo.model import build_model

        self.torch = torch
        torch.manual_seed(0)
        self.model = build_model(mtzoo_config(precision))
        graphs = system_graphs(system, TYPE_MAP, RCUT)
        self.model.descriptor.compute_stats(graphs)
        with torch.no_grad():
            self.model.heads["energy"].bias_atom_e.copy_(torch.as_tensor(e0))
        self.batches = [collate([g]) for g in graphs]
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.params = int(sum(p.numel() for p in self.model.parameters()))
        self.step = 0
        for _ in range(warmup):
            self.infer(1)
            self.train(1)

    def _infer_once(self) -> None:
        from mtzoo import keys as K

        out = self.model(self.batches[0], forces=True, virial=False)
        out[K.FORCES].sum().item()

    def _train_once(self) -> float:
        from mtzoo import keys as K

        batch = self.batches[self.step % len(self.batches)]
        self.step += 1
        self.opt.zero_grad(set_to_none=True)
        out = self.model(batch, forces=True, virial=False, create_graph=True)
        n = batch[K.NUM_ATOMS].to(out[K.ENERGY].dtype)
        loss = (((out[K.ENERGY] - batch[K.ENERGY]) / n) ** 2).mean() + ((out[K.FORCES] - batch[K.FORCES]) ** 2).mean()
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def infer(self, n: int) -> list[float]:
        self.model.eval()
        return _time(self._infer_once, n)

    def train(self, n: int) -> list[float]:
        self.model.train()
        return _time(self._train_once, n)


def _time(fn, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


# ----------------------------------------------------------------------------------------------
# MACE side (a long-lived subprocess of the peer's python)
# ----------------------------------------------------------------------------------------------
class MaceSide(PeerProcess):
    """``_mace_peer.py`` in the peer environment, fed commands on stdin; same interface as :class:`MtzooSide`."""

    def __init__(self, peer_python: str, frames_npz: Path, precision: str, config: dict, errlog: Path) -> None:
        super().__init__("MACE", [peer_python, str(PEER_SCRIPT), "--frames", str(frames_npz), "--dtype", precision,
                                  "--config", json.dumps(config)], errlog)
        self.params = int(self.ready["params"])

    def infer(self, n: int) -> list[float]:
        return self.ask(f"infer {n}")["times"]

    def train(self, n: int) -> list[float]:
        return self.ask(f"train {n}")["times"]


# ----------------------------------------------------------------------------------------------
def run_precision(precision: str, system, peer_python: str, npz: Path, force_rms: float, e0: np.ndarray,
                  rounds: int, calls: int, tmp: Path) -> dict:
    """Interleaved rounds for one precision; medians, raw times and ratios."""
    log(f"[{precision}] building mtzoo model")
    mt = MtzooSide(system, precision, e0)
    log(f"[{precision}] starting MACE peer")
    # the same neighbour-sum normalisation on both sides: mtzoo's statistic of these frames
    cfg = mace_config(float(mt.model.descriptor.avg_num_neighbors), force_rms)
    mc = MaceSide(peer_python, npz, precision, cfg, tmp / f"mace-{precision}.log")
    sides = {"mtzoo": mt, "mace": mc}
    raw = {task: {s: [] for s in sides} for task in ("energy_forces", "train_step")}
    try:
        for r in range(rounds):
            order = ["mtzoo", "mace"] if r % 2 == 0 else ["mace", "mtzoo"]
            for s in order:
                log(f"[{precision}] round {r + 1}/{rounds}: {s}")
                raw["energy_forces"][s].append(sides[s].infer(calls))
                raw["train_step"][s].append(sides[s].train(calls))
    finally:
        mc.close()
    res = {"mtzoo_params": mt.params, "mace_params": mc.params, "mace_peer": mc.ready,
           "mtzoo_n_edges": int(mt.batches[0]["edge_index"].shape[1]),
           "mtzoo_config": mtzoo_config(precision), "mace_config": cfg}
    for task, per_side in raw.items():
        med = {s: float(np.median([np.median(x) for x in rounds_])) for s, rounds_ in per_side.items()}
        res[task] = {"s_median": med, "ratio_mace_over_mtzoo": med["mace"] / med["mtzoo"],
                     "round_medians": {s: [float(np.median(x)) for x in v] for s, v in per_side.items()},
                     "raw_s": per_side}
    return res






def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--peer-python", default="/tmp/mtzoo-peers/mace/bin/python")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per precision")
    p.add_argument("--calls", type=int, default=5, help="timed calls per round, side and task")
    p.add_argument("--train-frames", type=int, default=8, help="frames cycled through by the training steps")
    p.add_argument("--precisions", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args()
    if not Path(args.peer_python).exists():
        print(f"skipped: MACE peer python not found ({args.peer_python}); see the module docstring to set it up")
        return

    import e3nn
    import torch

    from mtzoo import keys as K
    from mtzoo.heads.energy import fit_energy_bias

    torch.set_num_threads(1)
    t_start, load_start = time.perf_counter(), os.getloadavg()
    system, source = load_frames(args.shared.resolve(), args.train_frames)
    types = system.model_types(TYPE_MAP)
    counts = np.tile(np.bincount(types, minlength=len(TYPE_MAP)), (system.nframes, 1))
    e0 = fit_energy_bias(counts, system.labels[K.ENERGY])
    force_rms = float(np.sqrt(np.mean(system.labels[K.FORCES] ** 2)))

    results = {}
    with tempfile.TemporaryDirectory(prefix="mtzoo-bench-mace-") as tmpdir:
        tmp = Path(tmpdir)
        npz = tmp / "frames.npz"
        np.savez(npz, numbers=np.array([NUMBERS[TYPE_MAP[t]] for t in types]), coord=system.coord, box=system.box,
                 energy=system.labels[K.ENERGY], force=system.labels[K.FORCES],
                 e0_numbers=np.array([NUMBERS[e] for e in TYPE_MAP]), e0=e0)
        for precision in args.precisions:
            results[precision] = run_precision(precision, system, args.peer_python, npz, force_rms, e0, args.rounds,
                                               args.calls, tmp)

    peer_versions = next(iter(results.values()))["mace_peer"]["versions"]
    result = {
        "benchmark": "e3nn_mp (mtzoo) beside MACE at a similar size: energy+forces call and training step",
        "date": datetime.date.today().isoformat(), "commit": git_commit(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "frames": {"source": source, "natoms": system.natoms, "train_frames": system.nframes,
                   "energy_forces_frame": 0},
        "protocol": {"rounds": args.rounds, "calls_per_round": args.calls,
                     "interleaving": "per precision: round r runs mtzoo then MACE (r even) or MACE then mtzoo (r odd); "
                                     "each side: --calls energy+forces calls, then --calls training steps",
                     "median": "median over rounds of each round's median",
                     "energy_forces": "eval mode, forces by autograd without create_graph, no virial; graph prebuilt",
                     "train_step": "batch of 1 frame; zero_grad + forward (forces, create_graph) + "
                                   "loss ((E-E_ref)/N)^2 + mean((F-F_ref)^2) + backward + Adam(lr 1e-3) step; "
                                   "graphs prebuilt",
                     "warmup": "2 energy+forces calls and 2 training steps per side before timing"},
        "machine": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "threads": 1,
                    "load_average_at_start": load_start, "python": platform.python_version()},
        "versions": {"mtzoo_side": {"torch": torch.__version__, "e3nn": e3nn.__version__},
                     "mace_side": peer_versions},
        "results": results,
        "load_average_at_end": os.getloadavg(),
        "wall_s": time.perf_counter() - t_start,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{result['date']}-e3nn-vs-mace.json"
    path.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{'precision':9s} {'task':15s} {'mtzoo e3nn_mp':>14s} {'MACE':>10s} {'MACE/mtzoo':>11s}")
    for precision, res in results.items():
        for task in ("energy_forces", "train_step"):
            m = res[task]["s_median"]
            print(f"{precision:9s} {task:15s} {1e3 * m['mtzoo']:12.1f}ms {1e3 * m['mace']:8.1f}ms "
                  f"{res[task]['ratio_mace_over_mtzoo']:10.2f}x")
        print(f"{precision:9s} {'parameters':15s} {res['mtzoo_params']:14d} {res['mace_params']:10d}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
