"""Accuracy of mtzoo's MACE-class descriptor (``e3nn_mace``) beside MACE, same data, same script.

Issue 18's benchmark, on ``examples/data/peers/accuracy`` (``make_peer_sets.py --sets accuracy``:
ethanol and malonaldehyde, GFN2-xTB MD at 500 K, B3LYP/6-31G* energies and forces).  The split is
fixed by the data: ``b3lyp/<mol>/train`` (frames 0-249) and ``b3lyp/<mol>/test`` (frames 250-499).

Protocol, per seed (``--seeds``) and budget (``--epochs``, each budget a separate training):

* one model per tool and seed, trained on the ``train`` frames of every molecule together;
* 10% of each molecule's training frames held out for validation (``mtzoo.data.writers.
  split_frames``, seeded by the seed), the same frames for both tools: written as DeePMD npy
  systems for mtzoo's ``validation_data`` and as ``valid.xyz`` for MACE's ``--valid_file``; the
  other 90% are the training frames of both (``train/<mol>`` systems, ``train.xyz``);
* one epoch = ``n_train // 5`` steps of batch 5 (MACE drops the last partial batch; mtzoo gets
  ``numb_steps = epochs * (n_train // 5)``);
* tested on each molecule's ``test`` frames, each tool's frozen model evaluated in its own
  environment: energy MAE (meV per molecule) and force MAE (meV/A, over all components).

``mace`` (mace-torch 0.3.16 in its own venv, ``--mace-python``), in the run folder::

    mace_run_train --model MACE --num_channels 32 --max_L 1 --num_interactions 2 --correlation 3 \\
        --r_max 5.0 --E0s average --default_dtype float64 --batch_size 5 --valid_batch_size 10 \\
        --energy_weight 1 --forces_weight 100 --ema --ema_decay 0.99 --amsgrad --device cpu \\
        --restart_latest --seed S --max_num_epochs E --name mace --train_file train.xyz \\
        --valid_file valid.xyz --energy_key energy --forces_key forces [--swa]

(``_common.MACE_BASE``; MACE's defaults otherwise: lr 0.01, ReduceLROnPlateau factor 0.8 and
patience 50 epochs, gradient clipping at 10, weight decay 5e-7; MACE keeps the checkpoint of the
lowest validation loss and writes it as ``mace.model``.  ``--mace-swa`` adds MACE's recommended
stage two, ``--swa``: from epoch ``E // 4 * 3`` energy weight 1000, lr 1e-3, and
``mace_stagetwo.model`` is the one evaluated.)  Evaluated by ``MACECalculator`` (cpu, float64).

``mtzoo`` (this checkout, ``python -m mtzoo``), in the run folder::

    python -m mtzoo train input.json -o run --no-progress
    python -m mtzoo freeze -c run[/model.ckpt.best.pt] -o model.pth

with ``input.json`` from :func:`mtzoo_input`: descriptor ``e3nn_mace`` (rcut 5, lmax 3, two layers,
``32x0e + 32x1o``, correlation 3), fitting ``[64]`` silu (``--descriptor se_e2_a``: DeePMD-kit's
water-example se_e2_a, rcut 6, fitting ``[240, 240, 240]``, to compare recipes), loss ``ener`` with constant prefactors
energy 1 / force 100, batch 5, validation batch 10 (``numb_btch`` covering the held-out frames
once in expectation), one lcurve line per epoch, and the optimizer and schedule of ``--recipe``
(:data:`RECIPES`):

``deepmd``
    DeePMD-kit's schedule of its example inputs: Adam, ``exp`` decay 1e-3 -> 3.51e-8 (every epoch),
    energy prefactor 0.02 -> 1 and force prefactor 1000 -> 1 following the learning rate; the
    last checkpoint is frozen.
``deepmd-exp``
    Adam, ``exp`` decay 5e-3 -> 5e-5 (decaying every epoch), no EMA; the last checkpoint is frozen.
``mace-like``
    MACE's recipe in mtzoo's keys: Adam with ``amsgrad``, ``plateau`` from 0.01 (factor 0.8,
    patience 50 lcurve lines = epochs), ``enable_ema`` with ``ema_decay`` 0.99,
    ``gradient_max_norm`` 10, and the checkpoint of the lowest validation ``rmse``
    (``best_metric``) frozen, as MACE does; batches mix the molecules (``mixed_batch``) as MACE's.
``mtzoo`` (the default)
    Adam with ``amsgrad``, ``cosine`` 0.01 -> 5e-5, EMA 0.99, ``gradient_max_norm`` 10,
    ``change_bias_after_training``, and batches that mix the molecules (``mixed_batch``, since
    2026-12-05; the runs recorded before drew each batch from one molecule, DeePMD-kit's way).

An input mtzoo rejects (a key this checkout does not know) stops the script before any training,
with mtzoo's message.  Evaluated by ``mtzoo.evaluation.predict_system``.

Reported per molecule, tool, seed and budget: energy and force MAE on the test frames; the wall
time of the training command (start-up, statistics and the tool's validation included; MACE's
also its model compilation and final evaluation on the training and validation sets) and that
wall per epoch; and the training loop alone per epoch (``loop_s``, from the tools' logs: mtzoo's
``trained to step N in X s``, MACE's time stamps from ``Started training`` to the last epoch line;
per-epoch validation included on both sides), the figure to compare speed by at small budgets,
where start-up dominates the wall.  Printed: a markdown table with the median and min-max over
seeds.  Written (after every run, so a killed run
keeps what finished): ``benchmarks/results/<date>-accuracy-mace[-tag].json`` with the command,
settings, data present, versions of both tools, machine, commit and every run; ``--smoke`` writes
into ``--workdir`` instead.

Missing data is reported and skipped: a molecule without ``test`` frames is trained on but not
tested; a partial system is used as it is (counts in the JSON's ``data``).

    OMP_NUM_THREADS=1 python benchmarks/accuracy_mace.py                       # 3 seeds x 50, 200 epochs
    OMP_NUM_THREADS=1 python benchmarks/accuracy_mace.py --recipe mace-like --tag mace-like
    OMP_NUM_THREADS=1 python benchmarks/accuracy_mace.py --smoke               # pipeline check, minutes
    # the recipes on se_e2_a (DeePMD-kit's sizes), mtzoo only
    OMP_NUM_THREADS=1 python benchmarks/accuracy_mace.py --tools mtzoo --descriptor se_e2_a --recipe deepmd --tag se_e2_a-deepmd
    ... --train DIR [DIR ...] --test DIR [DIR ...]   # any DeePMD npy systems instead of --data-root
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from _common import MACE_BASE, cpu_model, git_commit, mace_predict, mae_mev, run, write_xyz

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data" / "peers" / "accuracy" / "b3lyp"
MOLECULES = ["ethanol", "malonaldehyde"]
PLANNED_FRAMES = 250  # per molecule and part (make_peer_sets.SPLITS["accuracy"])
TYPE_MAP = ["H", "C", "N", "O"]
BATCH = 5
VALID_BATCH = 10
VALID_FRACTION = 0.1

#: ``--recipe``: overrides merged into the input of :func:`mtzoo_input` (dicts merged key by key).
RECIPES: dict[str, dict] = {
    # DeePMD-kit's schedule as in its example inputs, compressed to the run: exp decay 1e-3 -> 3.51e-8
    # (decaying every epoch), energy prefactor 0.02 -> 1 and force 1000 -> 1 with the learning rate
    "deepmd": {
        "optimizer": {"type": "Adam"},
        "learning_rate": {"type": "exp", "start_lr": 1e-3, "stop_lr": 3.51e-8},
        "loss": {"start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1},
    },
    "deepmd-exp": {
        "optimizer": {"type": "Adam"},
        "learning_rate": {"type": "exp", "start_lr": 5e-3, "stop_lr": 5e-5},
    },
    # mtzoo's recipe for e3nn_mace (docs/descriptors.md): on the ethanol base set, one seed, 50 epochs,
    # cosine gave force MAE 33.0 meV/A against 45.9 for the plateau of "mace-like" and 43.9 for an
    # energy prefactor rising 1 -> 1000 with the learning rate; batches mixing the molecules (as MACE's)
    # lowered the accuracy set's force MAE from 38.1 / 64.6 to 34.9 / 54.3 meV/A (seed 1)
    "mtzoo": {
        "optimizer": {"type": "Adam", "amsgrad": True},
        "learning_rate": {"type": "cosine", "start_lr": 0.01, "stop_lr": 5e-5},
        "training": {"enable_ema": True, "ema_decay": 0.99, "gradient_max_norm": 10.0,
                     "change_bias_after_training": True, "training_data": {"mixed_batch": True}},
    },
    "mace-like": {
        "optimizer": {"type": "Adam", "amsgrad": True},
        "learning_rate": {"type": "plateau", "start_lr": 0.01, "factor": 0.8, "patience": 50},
        "training": {"enable_ema": True, "ema_decay": 0.99, "gradient_max_norm": 10.0, "best_metric": "rmse",
                     "training_data": {"mixed_batch": True}},
    },
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def nframes(sysdir: str | Path) -> int:
    """Frames of a DeePMD npy system (all its ``set.*``)."""
    return sum(np.load(s / "coord.npy", mmap_mode="r").shape[0] for s in sorted(Path(sysdir).glob("set.*")))


#: ``--descriptor``: the model of mtzoo's runs (``e3nn_mace``: MACE's sizes; ``se_e2_a``: DeePMD-kit's
#: water-example sizes, as ``finetune_peers.deepmd_input``), seed filled in by :func:`mtzoo_input`
MODELS: dict[str, dict] = {
    "e3nn_mace": {"descriptor": {"type": "e3nn_mace", "rcut": 5.0, "lmax": 3, "num_layers": 2,
                                 "hidden_irreps": "32x0e + 32x1o", "correlation": 3},
                  # [64]: one hidden layer of 16 (MACE's readout MLP width) held the force MAE at 34.3 / 55.1
                  # meV/A against 27.9 / 44.7 with 64 (seed 1, 50 epochs, docs/descriptors.md): MACE reads
                  # every layer's scalars out linearly, a 16-wide MLP on both layers' scalars is a bottleneck
                  "fitting_net": {"neuron": [64], "activation_function": "silu", "resnet_dt": False}},
    "se_e2_a": {"descriptor": {"type": "se_e2_a", "sel": [12, 6, 1, 4], "rcut": 6.0, "rcut_smth": 0.5,
                               "neuron": [25, 50, 100], "axis_neuron": 16, "resnet_dt": False},
                "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True}},
}


def mtzoo_input(train_dirs: list[str], valid_dirs: list[str], epochs: int, seed: int, recipe: str,
                descriptor: str = "e3nn_mace", overrides: dict | None = None) -> dict:
    """mtzoo's input for one run: the model of ``MODELS[descriptor]``, the benchmark's loss,
    ``epochs * (n_train // 5)`` steps of batch 5, one lcurve line per epoch, and the overrides of
    ``RECIPES[recipe]``, then ``overrides`` (``--overrides``)."""
    per_epoch = max(1, sum(nframes(d) for d in train_dirs) // BATCH)
    steps = epochs * per_epoch
    n_valid = sum(nframes(d) for d in valid_dirs)
    inp = {
        "model": {"type_map": TYPE_MAP,
                  "descriptor": {**MODELS[descriptor]["descriptor"], "seed": seed},
                  "fitting_net": {**MODELS[descriptor]["fitting_net"], "seed": seed}},
        "loss": {"type": "ener", "start_pref_e": 1, "limit_pref_e": 1, "start_pref_f": 100, "limit_pref_f": 100},
        "training": {"training_data": {"systems": list(map(str, train_dirs)), "batch_size": BATCH},
                     "validation_data": {"systems": list(map(str, valid_dirs)), "batch_size": VALID_BATCH,
                                         "numb_btch": max(1, math.ceil(n_valid / VALID_BATCH))},
                     "numb_steps": steps, "seed": seed, "disp_freq": per_epoch, "save_freq": steps},
    }
    inp = _merge(_merge(inp, RECIPES[recipe]), overrides or {})
    if inp["learning_rate"].get("type", "exp") == "exp":
        inp["learning_rate"].setdefault("decay_steps", per_epoch)
    return inp


def check_recipe(inp: dict, recipe: str) -> None:
    """Stop with mtzoo's message when it rejects the input (a recipe key this checkout lacks)."""
    from mtzoo.config import parse_input
    from mtzoo.config.base import ConfigError

    try:
        parse_input(inp, f"recipe {recipe!r}")
    except ConfigError as err:
        raise SystemExit(f"mtzoo rejects the input of --recipe {recipe}: {err}\n(the recipe uses a key or "
                         "value this checkout of mtzoo does not have; choose another --recipe, "
                         f"one of {sorted(RECIPES)})") from None


# ---------------------------------------------------------------------------------------------- data
def label(path: Path) -> str:
    """``ethanol`` for ``.../ethanol/test`` or ``.../ethanol/train``, ``ethanol/cc`` otherwise."""
    return path.parent.name if path.name in ("train", "test") else f"{path.parent.name}/{path.name}"


def find_data(a) -> tuple[list[Path], list[Path], dict]:
    """Training and test systems (``--train``/``--test`` or ``--data-root``/``--molecules``), and
    what is present: {system: [frames present, planned or None]}; absent and partial ones said."""
    if a.train or a.test:
        if not (a.train and a.test):
            raise SystemExit("--train and --test go together")
        train, test = [Path(p) for p in a.train], [Path(p) for p in a.test]
        for p in train + test:
            if not nframes(p):
                raise SystemExit(f"{p}: no frames (not a DeePMD npy system?)")
        return train, test, {str(p): [nframes(p), None] for p in train + test}
    train, test, present = [], [], {}
    for mol in a.molecules:
        for part, dest in (("train", train), ("test", test)):
            p = Path(a.data_root) / mol / part
            n = nframes(p) if p.is_dir() else 0
            present[f"{mol}/{part}"] = [n, PLANNED_FRAMES]
            if n == 0:
                print(f"note: {p} absent: {mol} is {'not trained on' if part == 'train' else 'not tested'}")
                continue
            if n < PLANNED_FRAMES:
                print(f"note: {p} partial: {n} of {PLANNED_FRAMES} frames, used as it is")
            dest.append(p)
    if not train or not test:
        raise SystemExit(f"no {'training' if not train else 'test'} systems under {a.data_root} "
                         "(examples/data/make_peer_sets.py --sets accuracy)")
    return train, test, present


def load(path: Path, limit: int | None):
    """The system at ``path``, its first ``limit`` frames when given."""
    from mtzoo.data.readers import load_systems
    from mtzoo.data.writers import subset

    s = load_systems([str(path)])[0]
    return subset(s, range(limit), s.name) if limit and limit < s.nframes else s


def split(train: list[Path], seed: int, limit: int | None, work: Path) -> dict:
    """The seed's training/validation split of every training system, written for both tools."""
    from mtzoo.data.writers import split_frames, write_deepmd

    if work.exists():
        shutil.rmtree(work)
    systems = [load(p, limit) for p in train]
    tr, va = split_frames(systems, VALID_FRACTION, seed)
    names = [label(p) for p in train]
    out = {"train_dirs": [str(write_deepmd(s, work / "train" / n)) for s, n in zip(tr, names)],
           "valid_dirs": [str(write_deepmd(s, work / "valid" / n)) for s, n in zip(va, names)],
           "train_xyz": work / "train.xyz", "valid_xyz": work / "valid.xyz",
           "n_train": sum(s.nframes for s in tr), "n_valid": sum(s.nframes for s in va)}
    write_xyz(tr, out["train_xyz"], True)
    write_xyz(va, out["valid_xyz"], True)
    return out


def errors(pred_e, pred_f, ref) -> dict:
    """Energy MAE (meV/molecule) and force MAE (meV/A, every component) against a System's labels."""
    from mtzoo import keys as K

    return {"energy_mae_meV": mae_mev(pred_e, ref.labels[K.ENERGY]),
            "force_mae_meV_A": mae_mev(np.asarray(pred_f).reshape(-1), ref.labels[K.FORCES].reshape(-1))}


# --------------------------------------------------------------------------------------------- tools
def loop_seconds(tool: str, log: Path) -> float | None:
    """Seconds of the training loop alone, from the tool's log (None if the line is not found):
    mtzoo's ``trained to step N in X s``; MACE's time stamps from ``Started training`` to the
    last ``Epoch N:`` line (validation after every epoch included on both sides)."""
    text = log.read_text()
    if tool == "mtzoo":
        m = re.search(r"trained to step \d+ in ([0-9.]+) s", text)
        return float(m.group(1)) if m else None
    stamp = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) INFO: "
    start = re.search(stamp + "Started training", text, re.M)
    ends = re.findall(stamp + r"Epoch \d+:", text, re.M)
    if not (start and ends):
        return None
    t = [datetime.datetime.strptime(x, "%Y-%m-%d %H:%M:%S.%f") for x in (start.group(1), ends[-1])]
    return (t[1] - t[0]).total_seconds()


def mtzoo_route(data: dict, tests: dict, epochs: int, seed: int, work: Path, a) -> dict:
    from mtzoo import keys as K
    from mtzoo.evaluation import predict_system
    from mtzoo.zoo.frozen import load_model

    inp = mtzoo_input(data["train_dirs"], data["valid_dirs"], epochs, seed, a.recipe, a.descriptor,
                      json.loads(a.overrides))
    (work / "input.json").write_text(json.dumps(inp, indent=1))
    mt = [sys.executable, "-m", "mtzoo"]
    wall = run(mt + ["train", "input.json", "-o", "run", "--no-progress"], work, work / "train.log")
    best = sorted((work / "run").glob("*.best.pt"))
    run(mt + ["freeze", "-c", str(best[0] if best else work / "run"), "-o", "model.pth"], work, work / "freeze.log")
    model = load_model(work / "model.pth")
    out = {}
    for name, s in tests.items():
        pred = predict_system(model, s)
        out[name] = errors(pred[K.ENERGY], pred[K.FORCES], s)
    return {"wall_s": wall, "loop_s": loop_seconds("mtzoo", work / "train.log"), "frozen": "best" if best else "last",
            "test": out}


def mace_route(data: dict, tests: dict, epochs: int, seed: int, work: Path, a) -> dict:
    train = [str(Path(a.mace_python).parent / "mace_run_train")]
    args = MACE_BASE + ["--seed", str(seed), "--max_num_epochs", str(epochs), "--name", "mace",
                        "--train_file", str(data["train_xyz"]), "--valid_file", str(data["valid_xyz"]),
                        "--energy_key", "energy", "--forces_key", "forces"] + (["--swa"] if a.mace_swa else [])
    (work / "command.txt").write_text(" ".join(train + args) + "\n")
    wall = run(train + args, work, work / "train.log")
    model = work / ("mace_stagetwo.model" if a.mace_swa else "mace.model")
    out = {}
    for name, s in tests.items():
        xyz = work / f"test-{name.replace('/', '-')}.xyz"
        write_xyz(s, xyz, False)
        pred = mace_predict(a.mace_python, model, xyz, work)
        out[name] = errors(pred["energy"], pred["forces"], s)
    return {"wall_s": wall, "loop_s": loop_seconds("mace", work / "train.log"), "test": out}


ROUTES = {"mtzoo": mtzoo_route, "mace": mace_route}


def versions(a) -> dict:
    import e3nn
    import torch

    import mtzoo

    out = {"mtzoo": {"mtzoo": mtzoo.__version__, "torch": torch.__version__, "e3nn": e3nn.__version__,
                     "numpy": np.__version__, "python": platform.python_version()}}
    if "mace" in a.tools:
        code = ("import json, platform, mace, torch, e3nn, numpy; print(json.dumps({'mace': mace.__version__, "
                "'torch': torch.__version__, 'e3nn': e3nn.__version__, 'numpy': numpy.__version__, "
                "'python': platform.python_version()}))")
        r = subprocess.run([a.mace_python, "-c", code], capture_output=True, text=True)
        out["mace"] = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"error": r.stderr[-500:]}
    return out


def table(runs: list[dict]) -> str:
    """Markdown: median and min-max over seeds per budget, molecule and tool."""
    cells: dict = {}
    for r in runs:
        if "error" in r:
            continue
        for mol, e in r["test"].items():
            c = cells.setdefault((r["epochs"], mol, r["tool"]), {"e": [], "f": [], "w": [], "we": [], "le": []})
            c["e"].append(e["energy_mae_meV"])
            c["f"].append(e["force_mae_meV_A"])
            c["w"].append(r["wall_s"])
            c["we"].append(r["wall_per_epoch_s"])
            if r["loop_per_epoch_s"] is not None:
                c["le"].append(r["loop_per_epoch_s"])

    def fmt(v, d=1):
        return f"{np.median(v):.{d}f} ({min(v):.{d}f}-{max(v):.{d}f})" if v else "-"

    lines = ["| epochs | molecule | tool | energy MAE (meV/molecule) | force MAE (meV/A) | train wall (s) "
             "| wall/epoch (s) | loop/epoch (s) | seeds |", "|---|---|---|---|---|---|---|---|---|"]
    for (ep, mol, tool), c in sorted(cells.items()):
        lines.append(f"| {ep} | {mol} | {tool} | {fmt(c['e'])} | {fmt(c['f'])} | {fmt(c['w'], 0)} | "
                     f"{fmt(c['we'], 2)} | {fmt(c['le'], 2)} | {len(c['e'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--epochs", type=int, nargs="+", default=[50, 200], help="budgets, each a separate training")
    ap.add_argument("--tools", nargs="+", default=["mtzoo", "mace"], choices=sorted(ROUTES))
    ap.add_argument("--recipe", default="mtzoo", choices=sorted(RECIPES), help="mtzoo's optimizer and schedule")
    ap.add_argument("--overrides", default="{}", help="JSON merged into mtzoo's input after the recipe "
                    "(e.g. '{\"loss\": {\"start_pref_e\": 0.111, \"limit_pref_e\": 0.111}}')")
    ap.add_argument("--descriptor", default="e3nn_mace", choices=sorted(MODELS),
                    help="mtzoo's model (se_e2_a: DeePMD-kit's sizes, to compare recipes; MACE runs are unaffected)")
    ap.add_argument("--mace-swa", action="store_true", help="add MACE's stage two (--swa)")
    ap.add_argument("--mace-python", default="/tmp/mtzoo-peers/mace/bin/python")
    ap.add_argument("--data-root", default=str(DATA), help="folder of <molecule>/{train,test} systems")
    ap.add_argument("--molecules", nargs="+", default=MOLECULES)
    ap.add_argument("--train", nargs="+", help="training systems (instead of --data-root)")
    ap.add_argument("--test", nargs="+", help="test systems (with --train)")
    ap.add_argument("--max-train", type=int, default=None, help="first N frames of each training system")
    ap.add_argument("--max-test", type=int, default=None, help="first N frames of each test system")
    ap.add_argument("--workdir", default="/tmp/mtzoo-accuracy-mace")
    ap.add_argument("--smoke", action="store_true", help="1 seed, 2 epochs, 20 train / 20 test frames per system")
    ap.add_argument("--tag", default=None, help="suffix of the result file's name")
    ap.add_argument("--out", default=None,
                    help="result file (default: benchmarks/results/<date>-accuracy-mace[-tag].json)")
    a = ap.parse_args(argv)
    if a.smoke:
        a.seeds, a.epochs = a.seeds[:1], [2]
        a.max_train, a.max_test = a.max_train or 20, a.max_test or 20
    if "mace" in a.tools and not Path(a.mace_python).is_file():
        raise SystemExit(f"MACE's python {a.mace_python} not found (--mace-python; see benchmarks/README.md)")
    import torch

    torch.set_num_threads(1)
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    train, test, present = find_data(a)
    tests = {label(p): load(p, a.max_test) for p in test}
    splits = {seed: split(train, seed, a.max_train, work / f"data-seed{seed}") for seed in a.seeds}
    if "mtzoo" in a.tools:
        for ep in a.epochs:
            s = splits[a.seeds[0]]
            check_recipe(mtzoo_input(s["train_dirs"], s["valid_dirs"], ep, a.seeds[0], a.recipe, a.descriptor,
                                     json.loads(a.overrides)), a.recipe)
    date = datetime.date.today().isoformat()
    name = f"{date}-accuracy-mace{'-' + a.tag if a.tag else ''}{'-smoke' if a.smoke else ''}.json"
    out = Path(a.out) if a.out else (work if a.smoke else REPO / "benchmarks" / "results") / name
    payload = {"benchmark": "accuracy-mace", "date": date, "smoke": a.smoke,
               "command": "python benchmarks/accuracy_mace.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "settings": {"seeds": a.seeds, "epochs": a.epochs, "tools": a.tools, "recipe": a.recipe,
                            "descriptor": a.descriptor, "model": MODELS[a.descriptor],
                            "overrides": json.loads(a.overrides),
                            "recipe_overrides": RECIPES[a.recipe], "mace_swa": a.mace_swa, "mace_args": MACE_BASE,
                            "batch_size": BATCH, "valid_fraction": VALID_FRACTION, "max_train": a.max_train,
                            "max_test": a.max_test, "threads": os.environ.get("OMP_NUM_THREADS")},
               "data": {"train": [str(p) for p in train], "test": [str(p) for p in test], "frames": present,
                        "split": {s: {"n_train": d["n_train"], "n_valid": d["n_valid"]} for s, d in splits.items()}},
               "versions": versions(a), "machine": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
                                                    "loadavg": os.getloadavg()},
               "commit": git_commit(), "runs": []}
    print(f"training frames per seed: {({s: d['n_train'] for s, d in splits.items()})}, validation: "
          f"{({s: d['n_valid'] for s, d in splits.items()})}; test: {({k: v.nframes for k, v in tests.items()})}")
    failed = 0
    for ep in a.epochs:
        for seed in a.seeds:
            for tool in a.tools:
                rdir = work / f"e{ep}-seed{seed}-{tool}"
                if rdir.exists():
                    shutil.rmtree(rdir)
                rdir.mkdir(parents=True)
                row = {"tool": tool, "epochs": ep, "seed": seed, "workdir": str(rdir)}
                if tool == "mtzoo":
                    row["recipe"], row["descriptor"] = a.recipe, a.descriptor
                try:
                    row.update(ROUTES[tool](splits[seed], tests, ep, seed, rdir, a))
                    row["wall_per_epoch_s"] = row["wall_s"] / ep
                    row["loop_per_epoch_s"] = row["loop_s"] / ep if row["loop_s"] is not None else None
                except RuntimeError as err:  # one failed run does not stop the others
                    failed += 1
                    row["error"] = str(err)
                payload["runs"].append(row)
                print(json.dumps(row), flush=True)
                out.write_text(json.dumps(payload, indent=1) + "\n")
    print("\n" + table(payload["runs"]))
    print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
