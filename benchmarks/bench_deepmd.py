"""Speed: mtzoo vs DeePMD-kit on DeePMD's water example (se_e2_a + ener), side by side in one run.

Same architecture on both sides (``examples/water/se_e2_a/input_torch.json``: se_e2_a sel
[46, 92], rcut 6, neuron [25, 50, 100], axis_neuron 16, type_one_side; fitting [240, 240, 240]),
float64, one thread each (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``,
``DP_INTRA/INTER_OP_PARALLELISM_THREADS=1``).  Measured, in interleaved rounds so that both see
the same machine load:

* energy + force (+ virial) call on the first frame of ``examples/water/data/data_0`` (192 atoms)
  and on that frame replicated 2x2x2 (1536 atoms).  DeePMD-kit: ``DeepPot.eval`` in a long-lived
  subprocess of the peer's python (``benchmarks/_deepmd_peer.py``; it builds its own neighbour
  list inside the call), so that each round is a short block of calls on each side; mtzoo:
  ``Model.forward`` on a graph built before the timer, the whole path from positions (neighbour
  list, graph, ``Model.forward``) and the ASE calculator.  Each round's ratio is DeePMD-kit's
  median over mtzoo's; the figure quoted is the median of these paired ratios (the ratio of the
  medians over all rounds is kept too);
* training step (batch size 1, DeePMD's ``ener`` loss with its prefactors, Adam).  DeePMD-kit:
  ``dp --pt train`` through ``peers/deepmd_time.py train`` (wall time per 10 steps, display and
  validation included, steps after the 20th); mtzoo: :class:`mtzoo.training.trainer.Trainer` on the
  same input, timed the same way, and also the bare ``train_step`` (draw a batch + one step).

Writes ``benchmarks/results/YYYY-MM-DD-water-se_e2_a.json`` (medians, paired ratios deepmd/mtzoo,
machine, git commit, the command line in ``command``) and prints a table.  See ``benchmarks/README.md``.

    python benchmarks/bench_deepmd.py [--shared ../shared] [--peer-python PY] [--repeat 9] [--calls 5]
        [--train-rounds 1] [--out benchmarks/results/]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS"):
    os.environ[_v] = "1"  # before torch is imported, here and in the DeePMD-kit subprocesses

import argparse
import datetime
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import PeerProcess, cpu_model, first_frame_atoms, git_commit  # noqa: E402  (benchmarks/ on sys.path)
WATER = "data/deepmd-examples/examples/water"
INPUT = WATER + "/se_e2_a/input_torch.json"
FRAME = WATER + "/data/data_0"
PEER_SCRIPT = REPO / "benchmarks" / "_deepmd_peer.py"


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# DeePMD-kit (subprocesses of the peer's python)
# ----------------------------------------------------------------------------------------------
def peer_run(peer: str, args: list[str], cwd: Path | None = None) -> dict:
    out = subprocess.run([peer, *args], capture_output=True, text=True, env=dict(os.environ), cwd=cwd)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def deepmd_train(peer: str, shared: Path, steps: int, workdir: Path) -> dict:
    res = peer_run(peer, [str(shared / "peers/deepmd_time.py"), "train", str(shared / INPUT),
                          "--steps", str(steps), "--workdir", str(workdir)])
    return {"s_per_step_median": res["s_per_step_median"]}


def deepmd_freeze(peer: str, workdir: Path) -> Path:
    dp = str(Path(peer).parent / "dp")
    out = subprocess.run([dp, "--pt", "freeze", "-o", "frozen.pth"], cwd=workdir, capture_output=True, text=True,
                         env=dict(os.environ))
    if out.returncode != 0:
        raise RuntimeError(f"dp --pt freeze failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return workdir / "frozen.pth"


class DeepmdSide(PeerProcess):
    """``_deepmd_peer.py`` in the peer environment (one ``DeepPot``, loaded once), fed commands on stdin."""

    def __init__(self, peer: str, shared: Path, frozen: Path, repeats: list[int], errlog: Path) -> None:
        super().__init__("DeePMD-kit", [peer, str(PEER_SCRIPT), str(frozen), str(shared / FRAME), "--repeats",
                                        *map(str, repeats)], errlog)

    def infer(self, repeat: int, calls: int) -> list[float]:
        """Seconds of each of ``calls`` ``DeepPot.eval`` calls on the ``repeat``^3 replica."""
        return self.ask(f"infer {repeat} {calls}")["times"]


# ----------------------------------------------------------------------------------------------
# mtzoo
# ----------------------------------------------------------------------------------------------
def mtzoo_model(shared: Path):
    """The input's architecture via ``build_model``; descriptor statistics and energy bias from data."""
    import torch

    from mtzoo import keys as K
    from mtzoo.config import load_input
    from mtzoo.data.graph import system_graphs
    from mtzoo.data.readers import read_deepmd
    from mtzoo.heads.energy import fit_energy_bias
    from mtzoo.model import build_model

    cfg = load_input(shared / INPUT)
    type_map = list(cfg.model.type_map)
    desc = cfg.model.descriptor.to_dict()
    fit = cfg.tasks()[0].fitting.to_dict() if hasattr(cfg, "tasks") else cfg.model.fitting_net.to_dict()
    head = {k: fit[k] for k in ("neuron", "resnet_dt", "activation_function", "precision", "seed") if k in fit}
    head["type"] = "ener"
    torch.manual_seed(0)
    model = build_model({"type_map": type_map, "descriptor": desc, "heads": {"default": head}})
    # statistics as DeePMD's data_stat_nbatch (20 batches of one frame) over the training systems
    graphs, counts, energies = [], [], []
    nstat = int(getattr(cfg.model, "data_stat_nbatch", 20) or 20)
    for name in ("data_0", "data_1", "data_2"):
        for s in read_deepmd(shared / WATER / "data" / name):
            for g in system_graphs(s, type_map, model.rcut)[: max(1, nstat // 3)]:
                graphs.append(g)
                counts.append(np.bincount(g[K.ATOM_TYPE].numpy(), minlength=len(type_map)))
                energies.append(float(g[K.ENERGY][0]))
    model.descriptor.compute_stats(graphs)
    model.heads["default"].bias_atom_e.copy_(torch.as_tensor(fit_energy_bias(np.array(counts), np.array(energies))))
    return model.eval(), type_map


def water_atoms(shared: Path, type_map: list[str], repeat: int):
    """First frame of data_0 as ``ase.Atoms`` (replicated ``repeat``^3 times, as deepmd_time.py does)."""
    return first_frame_atoms(shared / FRAME, type_map, repeat)


def mtzoo_infer(model, atoms, type_map: list[str], calls: int) -> dict[str, list[float]]:
    """Per-call seconds of the inference path (``Predictor``; ``Model.forward`` before 2026-12-06) on a
    prebuilt graph, of positions -> graph -> inference,
    and of the ASE calculator with no Verlet skin (neighbour list rebuilt every call: positions in,
    energy, forces and stress out, as ``DeepPot.eval``)."""
    from ase.calculators.calculator import all_changes

    from mtzoo.calculator import MTZooCalculator
    from mtzoo.data.graph import atoms_to_graph, collate

    from mtzoo.model import Predictor

    predict = Predictor(model)  # the inference path (Model.forward is the autograd reference)
    batch = collate([atoms_to_graph(atoms, type_map, model.rcut)])
    for _ in range(3):
        predict(batch)
    graph_t, full_t, calc_t = [], [], []
    for _ in range(calls):
        t0 = time.perf_counter()
        predict(batch)
        graph_t.append(time.perf_counter() - t0)
    for _ in range(calls):
        t0 = time.perf_counter()
        predict(collate([atoms_to_graph(atoms, type_map, model.rcut)]))
        full_t.append(time.perf_counter() - t0)
    calc = MTZooCalculator(model, skin=0.0)
    calc.calculate(atoms, ["energy", "forces", "stress"], all_changes)
    moved = atoms.copy()  # alternate between two geometries (1e-7 A apart): every call is a new one
    moved.positions[0, 0] += 1e-7
    for c in range(calls):
        frame = moved if c % 2 == 0 else atoms
        t0 = time.perf_counter()
        calc.calculate(frame, ["energy", "forces", "stress"], all_changes)
        calc_t.append(time.perf_counter() - t0)
    assert calc.nl_builds == calls + 1, "the calculator must rebuild its neighbour list at every call here"
    return {"graph_prebuilt": graph_t, "with_neighbor_list": full_t, "ase_calculator": calc_t}


def compressed_deviation(model, compressed, atoms, type_map: list[str]) -> dict[str, float]:
    """Largest |compressed - exact| of energy (eV), forces (eV/A) and virial (eV) on ``atoms``."""
    from mtzoo.data.graph import atoms_to_graph, collate

    batch = collate([atoms_to_graph(atoms, type_map, model.rcut)])
    from mtzoo.model import Predictor

    a, b = Predictor(model)(batch), Predictor(compressed)(batch)
    return {k: float((a[k] - b[k]).detach().abs().max()) for k in ("energy", "force", "virial")}


def mtzoo_train(shared: Path, steps: int, workdir: Path) -> dict:
    """Trainer on the unmodified input (but numb_steps/disp/save), timed like deepmd_time.py, plus bare steps."""
    from mtzoo.config import load_input

    cfg = load_input(shared / INPUT)
    t = cfg.training
    t.numb_steps, t.disp_freq, t.save_freq = steps, 10, steps
    cwd = os.getcwd()
    os.chdir((shared / INPUT).parent)  # the input's system paths are relative to it
    try:
        try:
            from mtzoo.training.trainer import Trainer
        except ImportError:
            Trainer = None
        if Trainer is not None:
            stamps: list[tuple[float, str]] = []
            trainer = Trainer(cfg, workdir, progress=False, log=lambda msg, *a: stamps.append((time.perf_counter(), str(msg))))
            t0 = time.perf_counter()
            res = trainer.run()
            wall = time.perf_counter() - t0
            # wall per step between display lines after step 20 (what deepmd_time.py reports)
            pts = [(int(m.split()[1].rstrip(":")), ts) for ts, m in stamps if m.startswith("step ")]
            per = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(pts, pts[1:]) if a[0] >= 20 and b[0] > a[0]]
            # bare step: draw a batch + one optimizer step
            task = next(iter(trainer.tasks.values()))
            lr = trainer.lr(trainer.step)
            bare = []
            for _ in range(min(steps, 30)):
                t1 = time.perf_counter()
                trainer.train_step(task.sampler.next(), lr, task.name)
                bare.append(time.perf_counter() - t1)
            return {"method": "mtzoo.training.trainer.Trainer (run() timed like deepmd_time.py; train_step for the bare step)",
                    "s_per_step_median": float(np.median(per)) if per else wall / steps,
                    "s_per_step_bare_median": float(np.median(bare[3:])),
                    "trainer_s_per_step_median": res.get("s_per_step_median"), "wall_s": wall}
        return _manual_train(cfg, steps)
    finally:
        os.chdir(cwd)


def _manual_train(cfg, steps: int) -> dict:
    """Fallback without the trainer: EnergyLoss + Adam + ``model(batch, create_graph=True)``."""
    import torch

    from mtzoo.data.graph import collate, system_graphs
    from mtzoo.data.readers import read_deepmd
    from mtzoo.training.loss import EnergyLoss

    model, type_map = mtzoo_model(Path(os.getcwd()).parents[2])
    graphs = [g for n in ("data_0", "data_1", "data_2") for s in read_deepmd(Path("../data") / n)
              for g in system_graphs(s, type_map, model.rcut)]
    loss = EnergyLoss(cfg.loss, cfg.learning_rate.start_lr)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate.start_lr)
    rng = np.random.default_rng(0)
    model.train()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = collate([graphs[rng.integers(len(graphs))]])
        opt.zero_grad()
        value, _ = loss(model(batch, create_graph=True), batch, cfg.learning_rate.start_lr)
        value.backward()
        opt.step()
        ts.append(time.perf_counter() - t0)
    med = float(np.median(ts[20:] if steps > 25 else ts))
    return {"method": "manual step: mtzoo.training.loss.EnergyLoss + torch.optim.Adam + model(batch, create_graph=True)",
            "s_per_step_median": med, "s_per_step_bare_median": med}


# ----------------------------------------------------------------------------------------------
def machine(torch_version: str, peer: str) -> dict:
    try:
        dp_version = subprocess.run([peer, "-c", "import deepmd; print(deepmd.__version__)"], capture_output=True,
                                    text=True).stdout.strip()
    except OSError:
        dp_version = None
    return {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "threads": 1, "torch": torch_version,
            "deepmd_kit": dp_version, "python": platform.python_version(), "load_average": os.getloadavg()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--peer-python", default="/tmp/mtzoo-peers/deepmd/bin/python")
    p.add_argument("--repeat", type=int, default=9, help="interleaved inference rounds (each: a block of calls "
                   "per side, DeePMD-kit first in even rounds and last in odd ones)")
    p.add_argument("--calls", type=int, default=5, help="timed energy+force calls per round and side")
    p.add_argument("--train-steps", type=int, default=100, help="training steps per side (timed after the 20th)")
    p.add_argument("--train-rounds", type=int, default=1,
                   help="0: no training timed; DeePMD-kit's model is then frozen from the checkpoint a "
                        "previous run left in --workdir")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/mtzoo-bench"))
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args()
    shared = args.shared.resolve()
    if not (shared / INPUT).is_file() or not (shared / FRAME).is_dir():
        print(f"skipped: DeePMD water example not found under {shared} (give --shared)")
        return
    if not Path(args.peer_python).exists() or not (shared / "peers/deepmd_time.py").is_file():
        print(f"skipped: DeePMD-kit peer not found ({args.peer_python}, {shared / 'peers/deepmd_time.py'}); "
              "run shared/peers/deepmd_setup.sh")
        return

    import torch

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    info = machine(torch.__version__, args.peer_python)
    log(f"machine: {info}")

    # training first: DeePMD's run also gives the frozen model timed below
    train = {"deepmd": [], "mtzoo": []}
    dp_dir = (args.workdir / "deepmd-train").resolve()
    for r in range(args.train_rounds):
        log(f"training round {r + 1}/{args.train_rounds}: DeePMD-kit ({args.train_steps} steps)")
        train["deepmd"].append(deepmd_train(args.peer_python, shared, args.train_steps, dp_dir))
        log(f"training round {r + 1}/{args.train_rounds}: mtzoo")
        train["mtzoo"].append(mtzoo_train(shared, args.train_steps, (args.workdir / f"mtzoo-train-{r}").resolve()))
    if not args.train_rounds and not (dp_dir / "checkpoint").is_file():
        raise SystemExit(f"--train-rounds 0 needs DeePMD-kit's checkpoint from an earlier run in {dp_dir}")
    frozen = deepmd_freeze(args.peer_python, dp_dir)

    model, type_map = mtzoo_model(shared)
    # the same model with tabulated embedding nets (mtzoo compress; DeePMD-kit's own compression
    # needs its custom-op library, which does not load on torch 2.13, so its side stays exact)
    import copy

    from mtzoo.zoo.compress import compress_model

    compressed = copy.deepcopy(model)
    compress_info = compress_model(compressed)
    cases = {}
    dp = DeepmdSide(args.peer_python, shared, frozen, [1, 2], (args.workdir / "deepmd-peer.log").resolve())
    try:
        for rep in (1, 2):
            atoms = water_atoms(shared, type_map, rep)
            rounds = []
            for r in range(args.repeat):
                log(f"{len(atoms)} atoms, round {r + 1}/{args.repeat}")
                # alternate which side goes first, so that a drift in machine speed within a round
                # does not favour one side
                if r % 2 == 0:
                    dp_t = dp.infer(rep, args.calls)
                mt = mtzoo_infer(model, atoms, type_map, args.calls)
                mc = mtzoo_infer(compressed, atoms, type_map, args.calls)
                if r % 2 == 1:
                    dp_t = dp.infer(rep, args.calls)
                rounds.append({"deepmd": float(np.median(dp_t)), **{f"mtzoo_{k}": float(np.median(v)) for k, v in mt.items()},
                               **{f"mtzoo_compressed_{k}": float(np.median(v)) for k, v in mc.items()}})
            med = {k: float(np.median([x[k] for x in rounds])) for k in rounds[0]}
            mtkeys = [k for k in med if k != "deepmd"]
            cases[f"{len(atoms)}_atoms"] = {
                "natoms": len(atoms), "s_per_call_median": med, "rounds": rounds,
                "compressed_vs_exact_max_abs": compressed_deviation(model, compressed, atoms, type_map),
                "speedup_deepmd_over_mtzoo": {k.removeprefix("mtzoo_"): med["deepmd"] / med[k] for k in mtkeys},
                # per round, DeePMD-kit's median over mtzoo's, measured minutes apart at most: robust
                # to the machine's drift; the median of these is the figure quoted
                "speedup_per_round": {k.removeprefix("mtzoo_"): [x["deepmd"] / x[k] for x in rounds] for k in mtkeys},
                "speedup_paired_median": {k.removeprefix("mtzoo_"): float(np.median([x["deepmd"] / x[k] for x in rounds]))
                                          for k in mtkeys}}
    finally:
        dp.close()

    tr = {side: float(np.median([x["s_per_step_median"] for x in train[side]])) for side in train} if args.train_rounds else None
    result = {
        "benchmark": "water-se_e2_a speed, mtzoo vs DeePMD-kit", "date": datetime.date.today().isoformat(),
        "commit": git_commit(), "machine": info, "precision": "float64",
        # the command line that wrote this file (as the other benchmarks record theirs)
        "command": " ".join(shlex.quote(a) for a in ["python", "benchmarks/bench_deepmd.py", *sys.argv[1:]]),
        "input": "examples/water/se_e2_a/input_torch.json", "frame": "examples/water/data/data_0 frame 0 (x1, x2x2x2)",
        "inference": cases, "compression": compress_info,
        "training": None if tr is None else {"s_per_step_median": tr, "speedup_deepmd_over_mtzoo": tr["deepmd"] / tr["mtzoo"],
                     "mtzoo_s_per_step_bare_median": float(np.median([x["s_per_step_bare_median"] for x in train["mtzoo"]])),
                     "mtzoo_method": train["mtzoo"][0]["method"], "rounds": train, "steps": args.train_steps,
                     "deepmd_method": "dp --pt train via peers/deepmd_time.py (wall per 10 steps incl. display, after step 20)"},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{result['date']}-water-se_e2_a.json"
    path.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{'case':40s} {'DeePMD-kit':>11s} {'mtzoo':>11s} {'ratio':>7s} {'paired':>7s}")
    for c in cases.values():
        s = c["s_per_call_median"]
        pm = c["speedup_paired_median"]
        for key, label in (("mtzoo_graph_prebuilt", "graph prebuilt"), ("mtzoo_with_neighbor_list", "incl. neighbour list"),
                           ("mtzoo_ase_calculator", "ASE calculator, skin 0"),
                           ("mtzoo_compressed_graph_prebuilt", "compressed, graph prebuilt"),
                           ("mtzoo_compressed_with_neighbor_list", "compressed, incl. nlist"),
                           ("mtzoo_compressed_ase_calculator", "compressed, ASE calc., skin 0")):
            print(f"{'E+F ' + str(c['natoms']) + ' atoms, ' + label:40s} {1e3 * s['deepmd']:9.1f}ms {1e3 * s[key]:9.1f}ms "
                  f"{s['deepmd'] / s[key]:6.2f}x {pm[key.removeprefix('mtzoo_')]:6.2f}x")
    if tr is not None:
        print(f"{'train step (batch 1)':40s} {1e3 * tr['deepmd']:9.1f}ms {1e3 * tr['mtzoo']:9.1f}ms "
              f"{tr['deepmd'] / tr['mtzoo']:6.2f}x")
        print(f"{'  mtzoo bare train_step':40s} {'':11s} {1e3 * result['training']['mtzoo_s_per_step_bare_median']:9.1f}ms")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
