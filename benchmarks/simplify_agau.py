"""DP-GEN simplify on the Ag-Au pool: selective relabelling vs relabelling everything vs a bias refit.

The old level is EMT (pool: the 120 frames of ``examples/data/agau_emt/train``), the new level
EMT + DFT-D3(BJ); the test frames are the 20 held-out ``examples/data/agau_d3bj/valid`` frames
(structures of ``agau_emt/valid``, never in the pool).  Steps:

1. the old model: ``examples/agau_emt/input.json`` (se_e2_a) trained ``--old-steps`` steps on the EMT pool;
2. ``mtzoo simplify`` with ``examples/simplify/simplify.json`` (its trust window, picks and
   training settings), labelling with EMT + D3(BJ);
3. (a) one model fine-tuned from the old one with the same settings on the whole pool relabelled;
4. (b) the old model with only its energy bias refitted (least squares) on the whole pool relabelled;
5. energy-per-atom and force RMSE of each on the test frames (the committee: each member, their
   mean, and the committee-mean prediction).

``OMP_NUM_THREADS=1 python benchmarks/simplify_agau.py [--old-steps 2000] [--out runs/simplify_bench]
[--json benchmarks/results/2026-12-05-simplify-agau.json] [--f-trust-lo X]``
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def errors(model, systems, head):
    from mtzoo.evaluation import evaluate

    t = evaluate(model, systems, head=head)["total"]
    return {"energy_per_atom_rmse": t["energy_per_atom"]["rmse"], "force_rmse": t["force"]["rmse"]}


def committee_mean_errors(members, systems):
    from mtzoo import keys as K
    from mtzoo.simplify.model_devi import committee_predictions

    de, dfo = [], []
    for s in systems:
        p = committee_predictions(members, s)
        de.append((p[K.ENERGY].mean(0) - s.labels[K.ENERGY]) / s.natoms)
        dfo.append((p[K.FORCES].mean(0) - s.labels[K.FORCES]).ravel())
    return {"energy_per_atom_rmse": float(np.sqrt(np.mean(np.concatenate(de) ** 2))),
            "force_rmse": float(np.sqrt(np.mean(np.concatenate(dfo) ** 2)))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old-steps", type=int, default=2000, help="training steps of the old model (default 2000)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "simplify_bench", help="run folder")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--f-trust-lo", type=float, default=None, help="override simplify.json's f_trust_lo (eV/A)")
    args = ap.parse_args(argv)
    import mtzoo
    from mtzoo.data.readers import load_systems
    from mtzoo.data.writers import write_deepmd
    from mtzoo.heads.energy import energy_bias_from_systems
    from mtzoo.evaluation import predict_system
    from mtzoo.simplify import format_summary, simplify
    from mtzoo.simplify.config import parse_simplify
    from mtzoo.simplify.labelers import label_system, make_calculator
    from mtzoo.zoo.finetune import finetune

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    timings = {}
    # 1. the old model
    old_path = out / "old_model.pth"
    if not old_path.exists():
        src = REPO / "examples" / "agau_emt" / "input.json"
        cfg = json.loads(src.read_text())
        for key in ("training_data", "validation_data"):
            cfg["training"][key]["systems"] = [str((src.parent / p).resolve()) for p in cfg["training"][key]["systems"]]
        cfg["training"].update(numb_steps=args.old_steps, save_freq=args.old_steps, disp_freq=max(1, args.old_steps // 10))
        mtzoo.train(cfg, workdir=out / "old")
        mtzoo.freeze(out / "old", old_path)
    timings["old_model_s"] = time.time() - t0
    # 2. the loop
    sj = REPO / "examples" / "simplify" / "simplify.json"
    raw = json.loads(sj.read_text())
    raw["pick_data"] = str((sj.parent / raw["pick_data"]).resolve())
    raw["training_iter0_model_path"] = str(old_path)
    if args.f_trust_lo is not None:
        raw["f_trust_lo"] = args.f_trust_lo
    (out / "simplify.json").write_text(json.dumps(raw, indent=1))
    t = time.time()
    summary = simplify(out / "simplify.json", out / "loop", log=lambda m: print(m, flush=True))
    timings["simplify_s"] = time.time() - t
    print(format_summary(summary), flush=True)
    cfg = parse_simplify(out / "simplify.json")
    test = load_systems([str(REPO / "examples" / "data" / "agau_d3bj" / "valid")])
    old = mtzoo.load_model(old_path)
    old_head = old.resolve_head(None)
    members = [(mtzoo.load_model(m["model"]), m["head"]) for m in summary["committee"]]
    per_member = [errors(m, test, h) for m, h in members]
    selective = {"members": per_member,
                 "member_mean": {k: float(np.mean([p[k] for p in per_member])) for k in per_member[0]},
                 "committee_mean_prediction": committee_mean_errors(members, test)}
    # 3. (a) the whole pool relabelled
    t = time.time()
    pool = load_systems(cfg.pick_data)
    calc = make_calculator(cfg.fp_calculator)
    relabelled = []
    for k, s in enumerate(pool):
        d = out / "pool_relabelled" / f"{k:03d}"
        if not (d / "set.000" / "energy.npy").exists():
            write_deepmd(label_system(s, calc), d)
        relabelled.append(str(d))
    s_ = cfg.train
    full_path = out / "full" / "model.pth"
    if not full_path.exists():
        finetune(old_path, relabelled, head_name="simplify", strategy="freeze", init_from=old_head, head_mode="copy",
                 trainable_layers=s_.fitting_trainable if isinstance(s_.fitting_trainable, list) else None,
                 steps=s_.numb_steps, lr=s_.start_lr, batch_size=s_.batch_size, loss=s_.loss, seed=cfg.seed,
                 workdir=out / "full", output=full_path)
    timings["full_relabel_s"] = time.time() - t
    full = errors(mtzoo.load_model(full_path), test, "simplify")
    # 4. (b) the old model with a refitted energy bias
    pool_new = load_systems(relabelled)
    shift = energy_bias_from_systems(pool_new, old.type_map, predict=lambda s: predict_system(old, s, head=old_head)["energy"])
    biased = copy.deepcopy(old)
    import torch

    with torch.no_grad():
        biased.heads[old_head].bias_atom_e += torch.as_tensor(shift, dtype=biased.heads[old_head].bias_atom_e.dtype)
    bias_only = errors(biased, test, old_head)
    old_err = errors(old, test, old_head)
    # the size of the change of level on the test frames
    emt_test = load_systems([str(REPO / "examples" / "data" / "agau_emt" / "valid")])
    d_f = np.concatenate([(a.labels["force"] - b.labels["force"]).ravel() for a, b in zip(test, emt_test)])
    ratio = selective["member_mean"]["force_rmse"] / full["force_rmse"]
    frac = summary["labelled_fraction"]
    result = {
        "command": "OMP_NUM_THREADS=1 python " + " ".join([str(Path(sys.argv[0]).relative_to(REPO)
                                                                if Path(sys.argv[0]).is_absolute() else sys.argv[0]),
                                                           *sys.argv[1:]]),
        "commit": __import__("_common").git_commit(), "cpu": __import__("_common").cpu_model(),
        "old_steps": args.old_steps, "simplify_json": raw,
        "summary": {k: v for k, v in summary.items() if k != "committee"},
        "test_frames": sum(s.nframes for s in test),
        "d3_force_difference_rms_on_test": float(np.sqrt(np.mean(d_f ** 2))),
        "errors_on_test": {"selective": selective, "a_full_relabel": full, "b_bias_refit": bias_only,
                           "old_model_unchanged": old_err},
        "acceptance": {"converged": summary["converged"], "iterations": summary["iterations_to_converge"],
                       "labelled_fraction": frac, "force_ratio_selective_over_a": ratio,
                       "force_within_1.2x": bool(ratio <= 1.2), "at_most_half_relabelled": bool(frac <= 0.5)},
        "timings_s": {**timings, "total_s": time.time() - t0},
    }
    print(json.dumps(result["errors_on_test"], indent=1))
    print(json.dumps(result["acceptance"], indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
