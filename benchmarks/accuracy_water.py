"""Accuracy at equal steps: mtzoo vs DeePMD-kit on DeePMD's water example (se_e2_a + ener).

Both train from the same input (``examples/water/se_e2_a/input_torch.json`` of the
shared DeePMD-kit data) with ``numb_steps`` set to ``--steps`` (so both use the same learning-rate
schedule), then each frozen model is evaluated by its own tool on every frame of the validation
system (``data_3``, 80 frames): ``dp --pt test`` and ``mtzoo.evaluate``.  Writes
``benchmarks/results/YYYY-MM-DD-accuracy-water-se_e2_a.json``.

    python benchmarks/accuracy_water.py --steps 500 --seeds 1 2 3 [--shared ../shared] [--peer-python PY]

Training is noisy from seed to seed (measured here: mtzoo's validation force RMSE at step 300
was 0.459 with seed 1 and 0.361 with seed 2), so compare medians over several seeds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def seeded_input(shared: Path, seed: int, workdir: Path) -> Path:
    """The example input with descriptor/fitting seeds = ``seed`` and training seed 9 + seed (seed 1 = as shipped),
    data paths made absolute."""
    src = shared / "data/deepmd-examples/examples/water/se_e2_a/input_torch.json"
    cfg = json.loads(src.read_text())
    cfg["model"]["descriptor"]["seed"] = seed
    cfg["model"]["fitting_net"]["seed"] = seed
    cfg["training"]["seed"] = 9 + seed
    for part in ("training_data", "validation_data"):
        cfg["training"][part]["systems"] = [str((src.parent / p).resolve()) for p in cfg["training"][part]["systems"]]
    cfg["training"].pop("stat_file", None)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"input_seed{seed}.json"
    path.write_text(json.dumps(cfg, indent=1))
    return path


def run_deepmd(peer: str, shared: Path, steps: int, workdir: Path, seed: int = 1) -> dict:
    inp = seeded_input(shared, seed, workdir)
    timer = shared / "peers/deepmd_time.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DP_INTRA_OP_PARALLELISM_THREADS": "1",
           "DP_INTER_OP_PARALLELISM_THREADS": "1"}
    t0 = time.perf_counter()
    out = subprocess.run([peer, str(timer), "train", str(inp), "--steps", str(steps), "--workdir", str(workdir)],
                         capture_output=True, text=True, env=env, check=True).stdout
    wall = time.perf_counter() - t0
    timing = json.loads(out.strip().splitlines()[-1])
    dp = str(Path(peer).parent / "dp")
    subprocess.run([dp, "--pt", "freeze", "-o", "frozen.pth"], cwd=workdir, capture_output=True, env=env, check=True)
    test = subprocess.run([dp, "--pt", "test", "-m", "frozen.pth", "-s",
                           str(shared / "data/deepmd-examples/examples/water/data/data_3"), "-n", "1000"],
                          cwd=workdir, capture_output=True, text=True, env=env, check=True)
    text = test.stdout + test.stderr

    def grab(pattern):
        m = re.search(pattern + r"\s*:\s*([0-9.eE+-]+)", text)
        return float(m.group(1)) if m else None

    return {"wall_s": wall, "s_per_step_median": timing["s_per_step_median"],
            "energy_rmse_per_atom": grab(r"Energy RMSE/Natoms"), "energy_mae_per_atom": grab(r"Energy MAE/Natoms"),
            "force_rmse": grab(r"Force  RMSE"), "force_mae": grab(r"Force  MAE")}


def run_mtzoo(shared: Path, steps: int, workdir: Path, seed: int = 1) -> dict:
    import torch

    torch.set_num_threads(1)
    from mtzoo.config import load_input
    from mtzoo.data.readers import load_systems
    from mtzoo.evaluation import evaluate
    from mtzoo.training.trainer import Trainer

    cfg = load_input(seeded_input(shared, seed, workdir))
    cfg.training.numb_steps = steps
    cfg.training.save_freq = steps
    t0 = time.perf_counter()
    res = Trainer(cfg, workdir, progress=False, log=lambda *a: None).run()
    wall = time.perf_counter() - t0
    ev = evaluate(_load(workdir),
                  load_systems(shared / "data/deepmd-examples/examples/water/data/data_3"))["total"]
    return {"wall_s": wall, "s_per_step_median": res["s_per_step_median"],
            "energy_rmse_per_atom": ev["energy_per_atom"]["rmse"], "energy_mae_per_atom": ev["energy_per_atom"]["mae"],
            "force_rmse": ev["force"]["rmse"], "force_mae": ev["force"]["mae"]}


def _load(workdir: Path):
    from mtzoo.zoo.frozen import freeze, load_model

    return load_model(freeze(workdir, workdir / "frozen_model.pth"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--peer-python", default="/tmp/mtzoo-peers/deepmd/bin/python")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/mtzoo-accuracy"))
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args()
    if not (args.shared / "data/deepmd-examples/examples/water").is_dir():
        sys.exit(f"skipped: shared DeePMD data not found under {args.shared}")
    if not Path(args.peer_python).exists():
        sys.exit(f"skipped: DeePMD-kit peer not found ({args.peer_python}); run shared/peers/deepmd_setup.sh")
    import numpy as np

    runs = {"mtzoo": [], "deepmd": []}
    for seed in args.seeds:
        runs["mtzoo"].append({"seed": seed, **run_mtzoo(args.shared.resolve(), args.steps,
                                                        (args.workdir / f"mtzoo-{seed}").resolve(), seed)})
        runs["deepmd"].append({"seed": seed, **run_deepmd(args.peer_python, args.shared.resolve(), args.steps,
                                                          (args.workdir / f"deepmd-{seed}").resolve(), seed)})
        print(json.dumps({k: v[-1] for k, v in runs.items()}), flush=True)
    med = {k: {m: float(np.median([r[m] for r in v])) for m in ("force_rmse", "energy_rmse_per_atom", "s_per_step_median")}
           for k, v in runs.items()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    result = {"benchmark": "accuracy-water-se_e2_a", "date": datetime.date.today().isoformat(), "commit": commit,
              "steps": args.steps, "seeds": args.seeds,
              "input": "examples/water/se_e2_a/input_torch.json (numb_steps set; seeds varied: descriptor/fitting = "
                       "seed, training = 9 + seed; seed 1 is the input as shipped)",
              "test_system": "examples/water/data/data_3 (80 frames x 192 atoms), every frame", "threads": 1,
              "runs": runs, "median": med,
              "force_rmse_ratio_mtzoo_over_deepmd": med["mtzoo"]["force_rmse"] / med["deepmd"]["force_rmse"],
              "energy_rmse_ratio_mtzoo_over_deepmd": med["mtzoo"]["energy_rmse_per_atom"] / med["deepmd"]["energy_rmse_per_atom"]}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{result['date']}-accuracy-water-se_e2_a-{args.steps}steps-{len(args.seeds)}seeds.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
