"""The multitask paper's three claims, measured with mtzoo on the bundled data (issue 23).

Allen et al., "Leveraging Multitask Learning to Improve the Transferability of Machine Learned
Force Fields" (2023), with hard parameter sharing:

1. training two levels of theory simultaneously is an alternative to freezing layers and
   retraining;
2. training several levels together can improve the predictions of all of them;
3. knowledge of a chemical domain present in only one data set transfers to every predicted level.

Data (``examples/data/peers/finetune``, ``make_peer_sets.py --sets finetune``; split fixed by the
data before any result of this study): ethanol and acetaldehyde from GFN2-xTB MD at 600 K.

* low level L: B3LYP/6-31G* energies and forces, ``b3lyp/<mol>/base`` (300 frames per molecule);
  tested on ``b3lyp/<mol>/cc`` frames 50-149 (the geometries of the high level's test frames);
* high level H: CCSD(T)/cc-pVDZ energies only, the first ``k`` frames of ``ccsdt/<mol>/train``
  (``--k``, up to 50 per molecule); tested on ``ccsdt/<mol>/test`` (100 frames per molecule).

Model: ``accuracy_mace.MODELS["e3nn_mace"]`` (MACE's sizes, fitting ``[64]``) with one energy head
per level, and the ``mtzoo`` recipe of ``accuracy_mace.RECIPES`` (AMSGrad, cosine learning rate
0.01 -> 5e-5, EMA 0.99, clipping 10, bias refit, mixed batches); loss energy 1 / forces 100 for L,
energy 1 for H; batch 5.  Every run has the same number of optimizer steps ``S`` = ``--epochs``
epochs of L's 600 frames (``S = epochs * 120``) unless its row says otherwise; a joint run draws
each step's task with the stochastic scheduler (``fitting_weight`` 1:1), so each head gets about
``S/2`` steps.

Runs per seed and ``k`` (``--runs`` picks some; each is cached in the result file by its key, so a
rerun with the same ``--out`` resumes):

``L-alone``         L head alone, both molecules, S steps (claim 2's baseline for L; the base of
                    the fine-tuning routes)
``L-alone-eth``     L head alone on ethanol only, S steps (claim 3: its L error on acetaldehyde;
                    the base of ``t3-ft-eth``)
``H-alone``         H head alone on its 2k frames, S steps (claim 2's baseline for H)
``joint``           L and H heads together from scratch, S steps in all (claims 1 and 2, equal
                    total steps)
``joint-2S``        the same with 2S steps (about S per head: claim 2 at equal steps per head)
``ft-default``      ``mtzoo finetune`` of ``L-alone`` on the 2k H frames with its defaults (descriptor
                    and L head frozen, a correction fitted in closed form; no steps): claim 1's
                    freeze route as mtzoo ships it
``ft-freeze``       DP-GEN's recipe: a new H head on the frozen descriptor of ``L-alone``, trained
                    by SGD for S/4 steps (``strategy freeze``, ``head_mode copy``, no init)
``ft-multitask``    ``L-alone`` fine-tuned with both heads training on their data (``strategy
                    multitask``, H from the L head as a correction), S/4 steps
``t3-joint-both``   claim 3: H data of ethanol only, L data of both molecules, joint, S steps
``t3-joint-eth``    claim 3: the same with L data of ethanol only
``t3-ft-both``      claim 3: ``ft-default`` of ``L-alone`` on ethanol's k H frames only
``t3-ft-eth``       claim 3: the same from an L head trained on ethanol only (``L-alone-eth``, S steps)

Reported per run and molecule: H test energy MAE (meV/molecule) and the same after removing the
mean signed error of that molecule (``offset-free``: acetaldehyde's composition, C2H4O, is not
spanned by ethanol's alone, so a model that never saw acetaldehyde at the high level cannot know
its per-element offsets; its relative energies can still be right); L test energy and force MAE
where the run has an L head; optimizer steps and wall time.  Printed: tables of medians and
min-max over seeds.  Written after every run: ``benchmarks/results/<date>-claims[-TAG].json``.

    OMP_NUM_THREADS=1 python benchmarks/claims.py                       # 3 seeds, k 50, 20 epochs: hours
    OMP_NUM_THREADS=1 python benchmarks/claims.py --seeds 1 --runs L-alone joint --out FILE   # a part
    OMP_NUM_THREADS=1 python benchmarks/claims.py --smoke               # pipeline check, minutes
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from _common import cpu_model, git_commit
from accuracy_mace import BATCH, MODELS, RECIPES, TYPE_MAP, _merge

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data" / "peers" / "finetune"
MOLECULES = ["ethanol", "acetaldehyde"]
LOW_TEST_FRAMES = range(50, 150)  # b3lyp/<mol>/cc frames at the geometries of ccsdt/<mol>/test
LOSS_L = {"type": "ener", "start_pref_e": 1, "limit_pref_e": 1, "start_pref_f": 100, "limit_pref_f": 100}
LOSS_H = {"type": "ener", "start_pref_e": 1, "limit_pref_e": 1, "start_pref_f": 0, "limit_pref_f": 0}
RUNS = ["L-alone", "L-alone-eth", "H-alone", "joint", "joint-2S", "ft-default", "ft-freeze", "ft-multitask",
        "t3-joint-both", "t3-joint-eth", "t3-ft-both", "t3-ft-eth"]


def write_subset(src: Path, frames, dst: Path) -> str:
    """DeePMD system ``dst`` with ``frames`` of ``src``."""
    from mtzoo.data.readers import load_systems
    from mtzoo.data.writers import subset, write_deepmd

    (system,) = load_systems([str(src)])
    return str(write_deepmd(subset(system, [f for f in frames if f < system.nframes]), dst))


def prepare(work: Path, k: int, max_low: int | None) -> dict:
    """The study's systems under ``work/data``: L train per molecule, L test, H train (first k), H test."""
    d = work / "data"
    out = {"low": {}, "low_test": {}, "high": {}, "high_test": {}}
    for mol in MOLECULES:
        base = DATA / "b3lyp" / mol / "base"
        out["low"][mol] = (write_subset(base, range(max_low), d / "low" / mol) if max_low else str(base))
        out["low_test"][mol] = write_subset(DATA / "b3lyp" / mol / "cc", LOW_TEST_FRAMES, d / "low_test" / mol)
        out["high"][mol] = write_subset(DATA / "ccsdt" / mol / "train", range(k), d / f"high_k{k}" / mol)
        out["high_test"][mol] = str(DATA / "ccsdt" / mol / "test")
    return out


def model_section(seed: int, heads: list[str]) -> dict:
    """The e3nn_mace model with one energy head per name in ``heads`` (``fitting_net`` for one)."""
    m = MODELS["e3nn_mace"]
    fit = {**m["fitting_net"], "seed": seed}
    sec = {"type_map": TYPE_MAP, "descriptor": {**m["descriptor"], "seed": seed}}
    if heads == ["default"]:
        return {**sec, "fitting_net": fit}
    return {**sec, "fitting_net_dict": {h: {**fit, "seed": seed + i} for i, h in enumerate(heads)}}


def train_input(tasks: dict[str, tuple[list[str], dict]], steps: int, seed: int) -> dict:
    """Input of a training from scratch: ``tasks`` = {head: (systems, loss)}; one head -> single-task."""
    training = {"numb_steps": steps, "seed": seed, "disp_freq": max(1, steps // 20), "save_freq": steps}
    if list(tasks) == ["default"]:
        systems, loss = tasks["default"]
        inp = {"model": model_section(seed, ["default"]), "loss": loss,
               "training": {**training, "training_data": {"systems": systems, "batch_size": BATCH}}}
    else:
        inp = {"model": model_section(seed, list(tasks)),
               "loss_dict": {h: loss for h, (_, loss) in tasks.items()},
               "training": {**training, "fitting_weight": {h: 1.0 for h in tasks},
                            "data_dict": {h: {"training_data": {"systems": s, "batch_size": BATCH}}
                                          for h, (s, _) in tasks.items()}}}
    recipe = copy.deepcopy(RECIPES["mtzoo"])
    if "data_dict" in inp["training"]:  # mixed_batch is a per-data-set key: set it on each task's data
        mixed = recipe["training"].pop("training_data")
        for h in inp["training"]["data_dict"]:
            inp["training"]["data_dict"][h]["training_data"].update(mixed)
    return _merge(inp, recipe)


def train(inp: dict, workdir: Path):
    """Train from scratch; returns the model (the weights a checkpoint holds: the moving average)."""
    from mtzoo.training.trainer import Trainer

    tr = Trainer(inp, workdir, progress=False, log=lambda *a: None)
    tr.run()
    tr.model.load_state_dict(tr.model_state())
    return tr.model.eval(), tr.step


def errors(model, head: str, sys_by_mol: dict[str, str], forces: bool) -> dict:
    """Per molecule: energy MAE (meV/molecule), offset-free energy MAE, force MAE (meV/A)."""
    from mtzoo import keys as K
    from mtzoo.data.readers import load_systems
    from mtzoo.evaluation import predict_system

    out = {}
    for mol, path in sys_by_mol.items():
        (s,) = load_systems([path])
        pred = predict_system(model, s, head)
        err = (pred[K.ENERGY] - s.labels[K.ENERGY][: len(pred[K.ENERGY])]) * 1000.0
        row = {"energy_mae_meV": float(np.mean(np.abs(err))),
               "energy_mae_offset_free_meV": float(np.mean(np.abs(err - err.mean()))),
               "energy_mean_error_meV": float(err.mean()), "frames": int(err.size)}
        if forces and K.FORCES in s.labels:
            row["force_mae_meV_A"] = float(np.mean(np.abs(pred[K.FORCES] - s.labels[K.FORCES][: len(pred[K.FORCES])])) * 1000)
        out[mol] = row
    return out


def frozen_base(workdir: Path) -> Path:
    """The run's last checkpoint as a model file that records its input (what ``finetune`` starts from)."""
    from mtzoo.zoo.frozen import freeze

    return freeze(workdir, workdir / "model.pth")


def run_one(name: str, data: dict, seed: int, steps: int, work: Path, bases: dict) -> dict:
    """One run of the study (see the module docstring); returns its row (without the key fields)."""
    from mtzoo.zoo.finetune import finetune
    from mtzoo.zoo.frozen import load_model

    low_all, high_all = list(data["low"].values()), list(data["high"].values())
    low_eth, high_eth = [data["low"]["ethanol"]], [data["high"]["ethanol"]]
    rdir = work / name
    t0 = time.perf_counter()
    heads = {"H": "default", "L": None}
    if name in ("L-alone", "L-alone-eth"):
        model, n = train(train_input({"default": (low_all if name == "L-alone" else low_eth, LOSS_L)}, steps, seed), rdir)
        heads = {"H": None, "L": "default"}
        bases[name] = frozen_base(rdir)
    elif name == "H-alone":
        model, n = train(train_input({"default": (high_all, LOSS_H)}, steps, seed), rdir)
    elif name in ("joint", "joint-2S", "t3-joint-both", "t3-joint-eth"):
        low = low_eth if name == "t3-joint-eth" else low_all
        high = high_eth if name.startswith("t3") else high_all
        total = 2 * steps if name == "joint-2S" else steps
        model, n = train(train_input({"low": (low, LOSS_L), "high": (high, LOSS_H)}, total, seed), rdir)
        heads = {"H": "high", "L": "low"}
    else:  # fine-tuning routes from an L-alone base
        base = bases["L-alone-eth" if name == "t3-ft-eth" else "L-alone"]
        high = high_eth if name.startswith("t3") else high_all
        kw = {"strategy": "freeze", "init_from": "default"}  # ft-default, t3-ft-*: finetune's defaults
        if name == "ft-freeze":
            kw = {"strategy": "freeze", "init_from": None, "head_mode": "copy", "steps": max(1, steps // 4),
                  "loss": LOSS_H}
        elif name == "ft-multitask":
            kw = {"strategy": "multitask", "init_from": "default", "steps": max(1, steps // 4), "loss": LOSS_H}
        path = finetune(base, high, head_name="high", seed=seed, workdir=rdir, output=rdir / "model.pth", **kw)
        model = load_model(path)
        n = kw.get("steps", 0)
        heads = {"H": "high", "L": "default"}
    row = {"steps": int(n), "wall_s": time.perf_counter() - t0}
    if heads["H"] is not None:
        row["high"] = errors(model, heads["H"], data["high_test"], forces=False)
    if heads["L"] is not None:
        row["low"] = errors(model, heads["L"], data["low_test"], forces=True)
    return row


def table(runs: list[dict]) -> str:
    """Markdown: per run kind and molecule, medians (min-max) over seeds."""
    def cell(vals):
        v = [x for x in vals if x is not None]
        return f"{np.median(v):.1f} ({min(v):.1f}-{max(v):.1f})" if v else "-"

    lines = ["| run | k | molecule | H energy MAE | H offset-free MAE | L energy MAE | L force MAE | steps | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key in sorted({(r["run"], r["k"]) for r in runs if "error" not in r}, key=lambda t: (RUNS.index(t[0])
                                                                                         if t[0] in RUNS else -1, t[1])):
        sel = [r for r in runs if (r["run"], r["k"]) == key and "error" not in r]
        for mol in MOLECULES:
            def get(level, metric):
                return [r.get(level, {}).get(mol, {}).get(metric) for r in sel]
            lines.append(f"| {key[0]} | {key[1]} | {mol} | {cell(get('high', 'energy_mae_meV'))} | "
                         f"{cell(get('high', 'energy_mae_offset_free_meV'))} | {cell(get('low', 'energy_mae_meV'))} | "
                         f"{cell(get('low', 'force_mae_meV_A'))} | {sel[0]['steps']} | {len(sel)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--k", type=int, nargs="+", default=[50], help="high-level training frames per molecule (<= 50)")
    ap.add_argument("--epochs", type=int, default=20, help="S = epochs x (low-level frames // batch) steps")
    ap.add_argument("--runs", nargs="+", default=RUNS, choices=RUNS)
    ap.add_argument("--workdir", default="/tmp/mtzoo-claims")
    ap.add_argument("--out", default=None, help="result file (default: benchmarks/results/<date>-claims[-TAG].json)")
    ap.add_argument("--tag", default=None)
    ap.add_argument("--smoke", action="store_true", help="1 seed, k 5, 20 low-level frames per molecule, 1 epoch")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    max_low = None
    if a.smoke:
        a.seeds, a.k, a.epochs, max_low = a.seeds[:1], [5], 1, 20
    work = Path(a.workdir)
    date = datetime.date.today().isoformat()
    name = f"{date}-claims{'-' + a.tag if a.tag else ''}{'-smoke' if a.smoke else ''}.json"
    out = Path(a.out) if a.out else (work if a.smoke else REPO / "benchmarks" / "results") / name
    payload = json.loads(out.read_text()) if out.exists() else {
        "benchmark": "claims", "date": date, "command": "python benchmarks/claims.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {"epochs": a.epochs, "model": MODELS["e3nn_mace"], "recipe": RECIPES["mtzoo"], "loss_low": LOSS_L,
                     "loss_high": LOSS_H, "batch_size": BATCH, "max_low": max_low, "low_test_frames": [50, 149],
                     "threads": os.environ.get("OMP_NUM_THREADS")},
        "machine": {"cpu": cpu_model(), "logical_cpus": os.cpu_count()}, "commit": git_commit(), "runs": []}
    done = {(r["run"], r["k"], r["seed"]) for r in payload["runs"] if "error" not in r}
    order = [r for r in RUNS if r in a.runs]
    need_base = {"ft-default", "ft-freeze", "ft-multitask", "t3-ft-both"} & set(order)
    if need_base and "L-alone" not in order:
        order.insert(0, "L-alone")
    if "t3-ft-eth" in order and "L-alone-eth" not in order:
        order.insert(order.index("t3-ft-eth"), "L-alone-eth")
    for k in a.k:
        data = prepare(work / f"k{k}", k, max_low)
        per_epoch = sum(np.load(Path(p) / "set.000" / "energy.npy").shape[0] for p in data["low"].values()) // BATCH
        steps = max(1, a.epochs * per_epoch)
        for seed in a.seeds:
            bases: dict = {}
            for run in order:
                key = (run, k, seed)
                base_run = run in ("L-alone", "L-alone-eth")
                if key in done and not base_run:
                    continue
                if base_run and key in done:  # the base is needed again: its model file is kept in the workdir
                    f = work / f"k{k}" / f"seed{seed}" / run / "model.pth"
                    if f.exists():
                        bases[run] = f
                        continue
                try:
                    row = run_one(run, data, seed, steps, work / f"k{k}" / f"seed{seed}", bases)
                except Exception as err:  # noqa: BLE001 - one failed run does not stop the study
                    row = {"error": f"{type(err).__name__}: {err}"}
                payload["runs"] = [r for r in payload["runs"] if (r["run"], r["k"], r["seed"]) != key]
                payload["runs"].append({"run": run, "k": k, "seed": seed, **row})
                print(json.dumps(payload["runs"][-1]), flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(payload, indent=1) + "\n")
    print("\n" + table(payload["runs"]))
    print(f"wrote {out}")
    return 1 if any("error" in r for r in payload["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
