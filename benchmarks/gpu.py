"""mtzoo on one CUDA device beside DeePMD-kit in the same run: training steps and the calculator.

DeePMD-kit's water se_e2_a model (float64; built as ``bench_deepmd.py`` builds it), the first
water frame replicated r^3 times (192 atoms at r = 1):

* mtzoo's **trainer** on the device (``training.device``), DeePMD's unmodified water input with
  ``numb_steps`` = ``--train-steps``: the median wall time per step between lcurve lines after
  step 20 (as ``deepmd_time.py`` times DeePMD-kit), and a bare ``train_step``;
* the inference path (``Predictor``; ``Model.forward`` before 2026-12-06) on a prebuilt graph and the ASE calculator (``skin=0``: neighbour list every
  call) per size, float64 and float32; the compressed model through the calculator;
* agreement of the device with the CPU (energy and forces, float64, 192 atoms);
* DeePMD-kit 3.2.0 (pt) ``dp --pt train`` (100 steps) and ``DeepPot.eval`` per size, when its
  ``dp`` is on the PATH (``--skip deepmd`` leaves it out).

Run on a GPU machine (``../shared`` copied beside, DeePMD-kit installed in the same Python)::

    python benchmarks/gpu.py --shared ../shared --out results/ [--repeats 1,2,4,8]

Prints one JSON line per figure; writes ``OUT/gpu.json``.  The device machine of this project
has torch with CUDA, e3nn and PyG but no package registry: see ``../shared/peers/gpu/README.md``
for the wheels it needs (ase, vesin, deepmd-kit and its dependencies).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
RESULTS: dict = {"mtzoo": {}, "deepmd": {}, "errors": []}


def say(**kw) -> None:
    print(json.dumps(kw), flush=True)


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, calls: int) -> float:
    for _ in range(3):
        fn()
    sync()
    ts = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def guarded(name: str):
    def wrap(fn):
        def run(*a, **k):
            try:
                return fn(*a, **k)
            except Exception as e:  # noqa: BLE001  (report and go on: one failure must not lose the rest)
                RESULTS["errors"].append(f"{name}: {type(e).__name__}: {e}")
                say(part=name, error=traceback.format_exc()[-1200:])
                return None
        return run
    return wrap


@guarded("train")
def train(shared: Path, dev: str, steps: int, work: Path) -> None:
    import bench_deepmd as B

    from mtzoo.config import load_input
    from mtzoo.training.trainer import Trainer

    cfg = load_input(shared / B.INPUT)
    t = cfg.training
    t.numb_steps, t.disp_freq, t.save_freq, t.device = steps, 10, steps, dev
    cwd = os.getcwd()
    os.chdir((shared / B.INPUT).parent)
    try:
        stamps: list[tuple[float, str]] = []
        tr = Trainer(cfg, work, progress=False, log=lambda msg, *a: stamps.append((time.perf_counter(), str(msg))))
        res = tr.run()
        pts = [(int(m.split()[1].rstrip(":")), ts) for ts, m in stamps if m.startswith("step ")]
        per = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(pts, pts[1:]) if a[0] >= 20 and b[0] > a[0]]
        task = next(iter(tr.tasks.values()))
        lr = tr.lr(tr.step)
        bare = timed(lambda: tr.train_step(task.sampler.next(), lr, task.name), 20)
        out = {"device": str(tr.device), "s_per_step_median": float(np.median(per)) if per else None,
               "s_per_step_bare_median": bare, "trainer_s_per_step_median": res.get("s_per_step_median"),
               "final_valid": res.get("valid")}
        RESULTS["mtzoo"]["train"] = out
        say(part="train", **{k: v for k, v in out.items() if k != "final_valid"})
    finally:
        os.chdir(cwd)


@guarded("infer")
def infer(shared: Path, dev: str, repeats: list[int], calls: int):
    import torch
    from ase.calculators.calculator import all_changes

    import bench_deepmd as B
    from mtzoo.calculator import MTZooCalculator
    from mtzoo.data.graph import atoms_to_graph, collate
    from mtzoo.model import Predictor
    from mtzoo.zoo.frozen import cast_model

    model, type_map = B.mtzoo_model(shared)
    for dtype in ("float64", "float32"):
        m = (model if dtype == "float64" else cast_model(model, torch.float32)).to(dev)
        for r in repeats:
            atoms = B.water_atoms(shared, type_map, r)
            key = f"{dtype}_{len(atoms)}"
            try:
                batch = collate([atoms_to_graph(atoms, type_map, model.rcut)]).to(dev)
                if torch.cuda.is_available():
                    torch.cuda.reset_peak_memory_stats()
                t_graph = timed(lambda: Predictor(m)(batch), calls)  # the inference path
                mem = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
                calc = MTZooCalculator(m, skin=0.0, device=dev)
                moved = atoms.copy()
                moved.positions[0, 0] += 1e-7
                frames, i = [atoms, moved], [0]

                def call():
                    i[0] ^= 1
                    calc.calculate(frames[i[0]], ["energy", "forces", "stress"], all_changes)
                t_calc = timed(call, calls)
                RESULTS["mtzoo"][key] = {"graph_prebuilt_s": t_graph, "ase_calculator_s": t_calc, "peak_gib": mem}
                say(part="infer", dtype=dtype, natoms=len(atoms), graph_prebuilt_s=t_graph, ase_calculator_s=t_calc,
                    peak_gib=round(mem, 2))
            except Exception as e:  # noqa: BLE001
                RESULTS["errors"].append(f"infer {key}: {type(e).__name__}: {e}")
                say(part="infer", dtype=dtype, natoms=len(atoms), error=f"{type(e).__name__}: {str(e)[:300]}")
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
    return model, type_map


@guarded("agreement")
def agreement(shared: Path, dev: str, model, type_map) -> None:
    import bench_deepmd as B
    from mtzoo.data.graph import atoms_to_graph, collate

    atoms = B.water_atoms(shared, type_map, 1)
    g = collate([atoms_to_graph(atoms, type_map, model.rcut)])
    ref = model.cpu()(g, forces=True, virial=True)
    got = model.to(dev)(g.to(dev), forces=True, virial=True)
    out = {k: float((got[k].detach().cpu() - ref[k].detach()).abs().max()) for k in ("energy", "force", "virial")}
    RESULTS["mtzoo"]["device_vs_cpu_max_abs"] = out
    say(part="agreement", **out)


@guarded("compressed")
def compressed(shared: Path, dev: str, model, type_map, calls: int) -> None:
    from ase.calculators.calculator import all_changes

    import bench_deepmd as B
    from mtzoo.calculator import MTZooCalculator

    for r in (1, 4):
        atoms = B.water_atoms(shared, type_map, r)
        calc = MTZooCalculator(model.cpu(), skin=0.0, device=dev, compress=True)
        moved = atoms.copy()
        moved.positions[0, 0] += 1e-7
        frames, i = [atoms, moved], [0]

        def call():
            i[0] ^= 1
            calc.calculate(frames[i[0]], ["energy", "forces"], all_changes)
        t = timed(call, calls)
        RESULTS["mtzoo"][f"compressed_{len(atoms)}"] = {"ase_calculator_s": t}
        say(part="compressed", natoms=len(atoms), ase_calculator_s=t)


@guarded("deepmd")
def deepmd(shared: Path, repeats: list[int], calls: int, work: Path) -> None:
    import bench_deepmd as B

    inp = shared / B.INPUT
    cfg = json.loads(inp.read_text())

    def fix(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "systems":
                    node[k] = [str((inp.parent / p).resolve()) for p in (v if isinstance(v, list) else [v])]
                else:
                    fix(v)
    fix(cfg)
    cfg["training"].update(numb_steps=100, disp_freq=10, save_freq=100)
    cfg["training"].pop("stat_file", None)
    work.mkdir(parents=True, exist_ok=True)
    (work / "input.json").write_text(json.dumps(cfg))
    dp = str(Path(sys.executable).parent / "dp")
    out = subprocess.run([dp, "--pt", "train", "input.json"], cwd=work, capture_output=True, text=True)
    log = out.stdout + out.stderr
    if out.returncode:
        raise RuntimeError("dp --pt train failed: " + log[-1200:])
    stamps = [(int(line.split("Batch")[1].split(":")[0]), float(line.split("total wall time =")[1].split("s")[0]))
              for line in log.splitlines() if "total wall time" in line and "Batch" in line]
    per = [w / 10.0 for st, w in stamps if st > 20]
    RESULTS["deepmd"]["train"] = {"s_per_step_median": float(np.median(per)) if per else None}
    say(part="deepmd_train", s_per_step_median=RESULTS["deepmd"]["train"]["s_per_step_median"])
    fr = subprocess.run([sys.executable, "-m", "deepmd", "--pt", "freeze", "-o", "frozen.pth"], cwd=work,
                        capture_output=True, text=True)
    if fr.returncode:
        raise RuntimeError("dp freeze failed: " + fr.stderr[-800:])
    for r in repeats:
        o = subprocess.run([sys.executable, str(shared / "peers" / "deepmd_time.py"), "infer", str(work / "frozen.pth"),
                            str(shared / B.WATER / "data" / "data_0"), "--repeat", str(r), "--calls", str(calls)],
                           capture_output=True, text=True)
        if o.returncode:
            RESULTS["errors"].append(f"deepmd infer {r}: " + o.stderr[-800:])
            say(part="deepmd_infer", repeat=r, error=o.stderr[-400:])
            continue
        res = json.loads(o.stdout.strip().splitlines()[-1])
        RESULTS["deepmd"][f"float64_{res['natoms']}"] = {"deeppot_eval_s": res["s_per_call_median"]}
        say(part="deepmd_infer", natoms=res["natoms"], deeppot_eval_s=res["s_per_call_median"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", required=True, help="folder holding data/deepmd-examples and peers/")
    ap.add_argument("--repeats", default="1,2,4,8")
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--train-steps", type=int, default=100)
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp"))
    ap.add_argument("--skip", default="", help="comma-separated: train, infer, compressed, deepmd")
    a = ap.parse_args()
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    RESULTS.update(device=torch.cuda.get_device_name() if dev == "cuda" else "cpu", torch=torch.__version__,
                   command="python benchmarks/gpu.py " + " ".join(sys.argv[1:]))
    shared, reps, skip = Path(a.shared).resolve(), [int(x) for x in a.repeats.split(",")], set(a.skip.split(","))
    try:
        if "train" not in skip:
            train(shared, dev, a.train_steps, Path("/tmp/mtzoo-gpu-train"))
        got = infer(shared, dev, reps, a.calls) if "infer" not in skip else None
        if got is not None:
            agreement(shared, dev, *got)
            if "compressed" not in skip:
                compressed(shared, dev, *got, a.calls)
        if "deepmd" not in skip:
            deepmd(shared, reps, a.calls, Path("/tmp/mtzoo-gpu-dp"))
    finally:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "gpu.json").write_text(json.dumps(RESULTS, indent=1))
        say(done=True, errors=len(RESULTS["errors"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
