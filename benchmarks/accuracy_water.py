"""Accuracy at equal steps: mtzoo vs DeePMD-kit on DeePMD's water example (se_e2_a + ener).

Both train from the same unmodified input (``examples/water/se_e2_a/input_torch.json`` of the
shared DeePMD-kit data) with ``numb_steps`` set to ``--steps`` (so both use the same learning-rate
schedule), then each frozen model is evaluated by its own tool on every frame of the validation
system (``data_3``, 80 frames): ``dp --pt test`` and ``mtzoo.evaluate``.  Writes
``benchmarks/results/YYYY-MM-DD-accuracy-water-se_e2_a.json``.

    python benchmarks/accuracy_water.py --steps 1000 [--shared ../shared] [--peer-python PY]
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


def run_deepmd(peer: str, shared: Path, steps: int, workdir: Path) -> dict:
    inp = shared / "data/deepmd-examples/examples/water/se_e2_a/input_torch.json"
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


def run_mtzoo(shared: Path, steps: int, workdir: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    from mtzoo.config import load_input
    from mtzoo.data.readers import load_systems
    from mtzoo.evaluate import evaluate
    from mtzoo.train.trainer import Trainer

    inp = shared / "data/deepmd-examples/examples/water/se_e2_a/input_torch.json"
    cfg = load_input(inp)
    cfg.training.numb_steps = steps
    cfg.training.save_freq = steps
    cwd = os.getcwd()
    os.chdir(inp.parent)
    try:
        t0 = time.perf_counter()
        res = Trainer(cfg, workdir, progress=False, log=lambda *a: None).run()
        wall = time.perf_counter() - t0
    finally:
        os.chdir(cwd)
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
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--peer-python", default="/tmp/mtzoo-peers/deepmd/bin/python")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/mtzoo-accuracy"))
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args()
    if not (args.shared / "data/deepmd-examples/examples/water").is_dir():
        sys.exit(f"skipped: shared DeePMD data not found under {args.shared}")
    if not Path(args.peer_python).exists():
        sys.exit(f"skipped: DeePMD-kit peer not found ({args.peer_python}); run shared/peers/deepmd_setup.sh")
    mt = run_mtzoo(args.shared.resolve(), args.steps, (args.workdir / "mtzoo").resolve())
    dp = run_deepmd(args.peer_python, args.shared.resolve(), args.steps, (args.workdir / "deepmd").resolve())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    result = {"benchmark": "accuracy-water-se_e2_a", "date": datetime.date.today().isoformat(), "commit": commit,
              "steps": args.steps, "input": "examples/water/se_e2_a/input_torch.json (unmodified but numb_steps)",
              "test_system": "examples/water/data/data_3 (80 frames x 192 atoms)", "threads": 1,
              "mtzoo": mt, "deepmd": dp,
              "force_rmse_ratio_mtzoo_over_deepmd": mt["force_rmse"] / dp["force_rmse"],
              "energy_rmse_ratio_mtzoo_over_deepmd": mt["energy_rmse_per_atom"] / dp["energy_rmse_per_atom"]}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{result['date']}-accuracy-water-se_e2_a-{args.steps}steps.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
