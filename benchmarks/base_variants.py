"""Variants of the e3nn_mace base recipe on the fine-tuning protocol's data, one change at a time.

The protocol of ``finetune_peers.py --routes mtzoo-mace`` for one molecule and seed: split the 300
B3LYP base frames (``examples/data/peers/finetune/b3lyp/<mol>/base``) with
``accuracy_mace.split`` (90 % training, the seeded 10 % validation), train the ``mtzoo`` recipe of
``accuracy_mace.mtzoo_input`` (e3nn_mace at MACE's sizes, 50 epochs of batch 5) with the
``--overrides`` merged into the input (``accuracy_mace._merge``: dicts key by key), freeze the
best checkpoint, fine-tune a CCSD(T) head on CCSD(T) frames 0-49 with ``mtzoo.finetune``'s
defaults, and measure

* ``baseE``, ``baseF``: the base's B3LYP energy MAE (meV/molecule) and force MAE (meV/A, every
  component) on B3LYP frames 50-149 (the CCSD(T) test geometries);
* ``ft``: the fine-tuned head's CCSD(T) energy MAE (meV/molecule) on frames 50-149;
* ``loop_s``: the base training loop's seconds (``trained to step N in X s`` of its log, also when
  the base is reused; None without the log).

One JSON line per run is appended to ``--out`` (a ``.jsonl`` file; re-running a (tag, molecule,
seed) whose ``base.pth`` exists reuses the base).  ``--table`` prints median (min-max) per tag.

    OMP_NUM_THREADS=1 python benchmarks/base_variants.py ethanol --seeds 1 2 3 --tag initP
    OMP_NUM_THREADS=1 python benchmarks/base_variants.py ethanol --seeds 1 2 3 --tag res1 \\
        --overrides '{"model": {"descriptor": {"first_layer_residual": true}}}'
    python benchmarks/base_variants.py --table benchmarks/results/2026-12-05-base-variants-ethanol.jsonl
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy_mace as am  # noqa: E402
from _common import mae_mev  # noqa: E402
from finetune_peers import DATA, system  # noqa: E402


def run_one(mol: str, seed: int, tag: str, overrides: dict, workdir: Path) -> dict:
    """Train (or reuse) the base of (``mol``, ``seed``, ``tag``), fine-tune, and measure."""
    from mtzoo.evaluation import predict_system
    from mtzoo.zoo.finetune import finetune
    from mtzoo.zoo.frozen import load_model

    work = workdir / f"{mol}-seed{seed}-{tag}"
    work.mkdir(parents=True, exist_ok=True)
    over = json.loads(json.dumps(overrides))
    data = am.split([DATA / "b3lyp" / mol / "base"], seed, None, work / "split")
    inp = am.mtzoo_input(data["train_dirs"], data["valid_dirs"], int(over.pop("epochs", 50)), seed, "mtzoo")
    inp = am._merge(inp, over)
    (work / "input.json").write_text(json.dumps(inp, indent=1))
    if not (work / "base.pth").exists():
        mt = [sys.executable, "-m", "mtzoo"]
        with open(work / "train.log", "w") as log:
            subprocess.run(mt + ["train", "input.json", "-o", "run", "--no-progress"], cwd=work, check=True,
                           stdout=log, stderr=subprocess.STDOUT)
        best = sorted((work / "run").glob("*.best.pt"))
        subprocess.run(mt + ["freeze", "-c", str(best[0] if best else "run"), "-o", "base.pth"], cwd=work,
                       check=True, capture_output=True)
    out = finetune(str(work / "base.pth"), [str(DATA / "ccsdt" / mol / "train")], head_name="ccsdt",
                   init_from="default", seed=seed, workdir=str(work / "ft"), output=str(work / "ft.pth"))
    test, b3 = system("ccsdt", mol, "test"), system("b3lyp", mol, "cc")
    pb = predict_system(load_model(work / "base.pth"), b3)
    pt = predict_system(load_model(out), test, head="ccsdt")
    return {"tag": tag, "mol": mol, "seed": seed, "overrides": overrides,
            "ft": mae_mev(pt["energy"], test.labels["energy"]),
            "baseE": mae_mev(pb["energy"][50:150], b3.labels["energy"][50:150]),
            "baseF": mae_mev(pb["force"][50:150].reshape(-1), b3.labels["force"][50:150].reshape(-1)),
            "loop_s": am.loop_seconds("mtzoo", work / "train.log") if (work / "train.log").exists() else None}


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["mol"], r["tag"]), []).append(r)
    lines = ["| molecule | variant | base energy MAE (meV/molecule) | base force MAE (meV/A) "
             "| CCSD(T) fine-tune MAE (meV/molecule) | seeds |", "|---|---|---|---|---|---|"]
    for (mol, tag), rs in sorted(cells.items()):
        def fmt(k):
            v = [r[k] for r in rs]
            return f"{np.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"
        lines.append(f"| {mol} | {tag} | {fmt('baseE')} | {fmt('baseF')} | {fmt('ft')} | "
                     f"{','.join(str(r['seed']) for r in sorted(rs, key=lambda r: r['seed']))} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("molecule", nargs="?", choices=["ethanol", "acetaldehyde"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--tag", help="name of the variant (runs of one tag are one row of the table)")
    ap.add_argument("--overrides", default="{}", help="JSON merged into the input (\"epochs\": N sets the budget)")
    ap.add_argument("--workdir", default=str(am.REPO / "runs" / "basexp"))
    ap.add_argument("--out", default=None, help="JSON-lines file to append to "
                    "(default benchmarks/results/<date>-base-variants-<molecule>.jsonl)")
    ap.add_argument("--table", type=Path, help="only print the table of this JSON-lines file")
    a = ap.parse_args(argv)
    if a.table:
        print(table(a.table))
        return 0
    if not (a.molecule and a.tag):
        ap.error("a molecule and --tag are required (or --table FILE)")
    import datetime

    import torch

    torch.set_num_threads(1)
    out = Path(a.out) if a.out else (am.REPO / "benchmarks" / "results"
                                     / f"{datetime.date.today().isoformat()}-base-variants-{a.molecule}.jsonl")
    for seed in a.seeds:
        res = run_one(a.molecule, seed, a.tag, json.loads(a.overrides), Path(a.workdir))
        print(json.dumps(res), flush=True)
        with open(out, "a") as fh:
            fh.write(json.dumps(res) + "\n")
    print(table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
