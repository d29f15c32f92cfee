"""Speed of the working tree against an earlier commit, in one process, calls interleaved.

The machine this project measures on moves by tens of percent within minutes, so a change is
measured here as a ratio of two builds of mtzoo running side by side on the same weights:

* the earlier commit's ``mtzoo/`` is exported (``git archive``) and imported as the package
  ``mtzoo_base`` (imports rewritten, its compiled extension renamed ``mtzoo_ext_base`` with its
  own build folder), beside the working tree's ``mtzoo``;
* both build DeePMD-kit's water example model (``examples/water/se_e2_a/input_torch.json`` of
  the shared data) through their own ``Trainer``; the base model gets the working tree's
  weights and statistics (``load_state_dict``), and the loss and parameter gradients of one
  force-training step are compared first (they must agree to 1e-10 relative);
* then, alternating which goes first: ``Trainer.train_step`` (batch 1, forces in the loss,
  Adam), and the ASE calculator's energy + force + stress call on the 192-atom frame (neighbour
  list rebuilt every call) for the exact and the compressed (``compress_model``) model.

Reported: per-side medians and the median of the paired ratios base / working tree (> 1: the
working tree is faster), written to ``benchmarks/results/YYYY-MM-DD-ab-BASE.json``.

    python benchmarks/ab_commits.py --base 55361d2 [--shared ../shared] [--steps 20] [--calls 20]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"  # before torch is imported

import argparse
import copy
import datetime
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import cpu_model, first_frame_atoms, git_commit  # noqa: E402

INPUT = "data/deepmd-examples/examples/water/se_e2_a/input_torch.json"
FRAME = "data/deepmd-examples/examples/water/data/data_0"


def export_base(commit: str, dest: Path) -> str:
    """Write ``mtzoo/`` of ``commit`` to ``dest/mtzoo_base`` with its imports renamed; return the full hash."""
    full = subprocess.run(["git", "rev-parse", commit], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    tar = subprocess.run(["git", "archive", full, "mtzoo"], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(dest, filter="data")
    (dest / "mtzoo").rename(dest / "mtzoo_base")
    for py in (dest / "mtzoo_base").rglob("*.py"):
        text = py.read_text()
        text = re.sub(r"\bfrom mtzoo([. ])", r"from mtzoo_base\1", text)
        text = re.sub(r"\bimport mtzoo\b", "import mtzoo_base", text)
        text = text.replace('"mtzoo.', '"mtzoo_base.')
        text = text.replace('NAME = "mtzoo_ext"', 'NAME = "mtzoo_ext_base"')
        # the registered operators (commits from 2026-12-06 on): their own namespace, one library may hold it
        text = text.replace("torch.ops.mtzoo", "torch.ops.mtzoo_base").replace('"mtzoo::', '"mtzoo_base::')
        py.write_text(text)
    for cpp in (dest / "mtzoo_base").rglob("*.cpp"):
        text = cpp.read_text()
        cpp.write_text(text.replace("TORCH_LIBRARY(mtzoo,", "TORCH_LIBRARY(mtzoo_base,")
                       .replace("TORCH_LIBRARY_IMPL(mtzoo,", "TORCH_LIBRARY_IMPL(mtzoo_base,"))
    return full


def trainer(pkg: str, shared: Path, workdir: Path):
    load_input = __import__(f"{pkg}.config", fromlist=["load_input"]).load_input
    try:  # mtzoo.training since 2026-12; mtzoo.train in earlier commits
        Trainer = __import__(f"{pkg}.training.trainer", fromlist=["Trainer"]).Trainer
    except ModuleNotFoundError:
        Trainer = __import__(f"{pkg}.train.trainer", fromlist=["Trainer"]).Trainer
    cfg = load_input(shared / INPUT)
    t = cfg.training
    t.numb_steps, t.disp_freq, t.save_freq = 10, 10, 10
    return Trainer(cfg, workdir, progress=False, log=lambda *a, **k: None)


def step_grads(tr, task, batch, lr):
    import torch

    tr.model.train()
    tr.model.zero_grad(set_to_none=True)
    loss, _ = tr._forward_loss(task, batch, lr, create_graph=True)
    loss.backward()
    return float(loss.detach()), torch.cat([p.grad.flatten() for p in tr.model.parameters() if p.grad is not None])


def interleaved(fa, fb, n: int) -> tuple[list[float], list[float]]:
    ta, tb = [], []
    for i in range(n):
        order = ((fa, ta), (fb, tb)) if i % 2 == 0 else ((fb, tb), (fa, ta))
        for f, acc in order:
            t0 = time.perf_counter()
            f(i)
            acc.append(time.perf_counter() - t0)
    return ta, tb


def summary(base: list[float], new: list[float], skip: int = 2) -> dict:
    b, n = np.array(base[skip:]), np.array(new[skip:])
    return {"base_s_median": float(np.median(b)), "new_s_median": float(np.median(n)),
            "ratio_of_medians": float(np.median(b) / np.median(n)), "median_paired_ratio": float(np.median(b / n)),
            "base_s": base, "new_s": new}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="earlier commit to compare with")
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--steps", type=int, default=20, help="training steps per side")
    p.add_argument("--calls", type=int, default=20, help="calculator calls per side and model")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args()
    shared = args.shared.resolve()
    if not (shared / INPUT).is_file():
        print(f"skipped: DeePMD water example not found under {shared} (give --shared)")
        return
    tmp = Path(tempfile.mkdtemp(prefix="mtzoo-ab-"))
    base_hash = export_base(args.base, tmp)
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(tmp / "ext"))
    sys.path.insert(0, str(tmp))
    import torch
    from ase.calculators.calculator import all_changes

    torch.set_num_threads(1)
    os.chdir((shared / INPUT).parent)  # the input's system paths are relative to it
    new, base = trainer("mtzoo", shared, tmp / "new"), trainer("mtzoo_base", shared, tmp / "base")
    base.model.load_state_dict(new.model.state_dict())
    tn, tb = next(iter(new.tasks.values())), next(iter(base.tasks.values()))
    batches = [tn.sampler.next() for _ in range(5)]
    lr = new.lr(0)
    ln, gn = step_grads(new, tn, batches[0], lr)
    lb, gb = step_grads(base, tb, batches[0], lr)
    check = {"loss_rel_diff": abs(ln - lb) / abs(lb), "grad_max_rel_diff": float((gn - gb).abs().max() / gb.abs().max())}
    if check["loss_rel_diff"] > 1e-10 or check["grad_max_rel_diff"] > 1e-10:
        raise SystemExit(f"the two builds disagree: {check}")
    print(f"agreement: {check}", file=sys.stderr)
    results = {"train_step": summary(*interleaved(lambda i: base.train_step(batches[i % 5], lr, tb.name),
                                                  lambda i: new.train_step(batches[i % 5], lr, tn.name), args.steps))}
    # inference through each build's ASE calculator, same weights (the trained ones, synced again)
    base.model.load_state_dict(new.model.state_dict())
    atoms = first_frame_atoms(shared / FRAME, list(new.model.type_map), 1)
    moved = atoms.copy()
    moved.positions[0, 0] += 1e-7
    for label in ("exact", "compressed"):
        models = {}
        for pkg, tr in (("mtzoo", new), ("mtzoo_base", base)):
            m = copy.deepcopy(tr.model).eval()
            if label == "compressed":
                __import__(f"{pkg}.zoo.compress", fromlist=["compress_model"]).compress_model(m)
            calc = __import__(f"{pkg}.calculator", fromlist=["MTZooCalculator"]).MTZooCalculator(m, skin=0.0)
            calc.calculate(atoms, ["energy", "forces", "stress"], all_changes)
            models[pkg] = calc
        e = [c.results["energy"] for c in models.values()]
        assert abs(e[0] - e[1]) < 1e-8 * max(1.0, abs(e[0])), e

        def call(pkg):
            return lambda i: models[pkg].calculate(moved if i % 2 == 0 else atoms, ["energy", "forces", "stress"], all_changes)

        results[f"calculator_192_{label}"] = summary(*interleaved(call("mtzoo_base"), call("mtzoo"), args.calls))
    out = {"script": "benchmarks/ab_commits.py", "date": datetime.date.today().isoformat(),
           "base_commit": base_hash, "commit": git_commit(), "machine": {"cpu": cpu_model(), "threads": 1,
           "torch": torch.__version__}, "agreement": check, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{out['date']}-ab-{base_hash[:7]}.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"{'':24} {'base':>10} {'new':>10} {'ratio':>7} {'paired':>7}")
    for k, r in results.items():
        print(f"{k:24} {1e3 * r['base_s_median']:8.1f}ms {1e3 * r['new_s_median']:8.1f}ms "
              f"{r['ratio_of_medians']:6.3f}x {r['median_paired_ratio']:6.3f}x")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
