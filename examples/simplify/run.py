"""DP-GEN's simplify loop on the bundled Ag-Au data: EMT model -> EMT + DFT-D3(BJ) by selective relabelling.

1. trains the old model, ``examples/agau_emt/input.json`` (se_e2_a on the 120 EMT frames of
   ``examples/data/agau_emt/train``), for ``--old-steps`` steps, and freezes it;
2. runs ``mtzoo simplify`` with ``examples/simplify/simplify.json`` (the pool is the same 120 EMT
   frames; labels at the new level come from EMT + D3(BJ), the ``dftd3`` package), printing the
   picks of every iteration;
3. evaluates the final committee on the 20 held-out EMT + D3(BJ) frames of
   ``examples/data/agau_d3bj/valid`` beside the old model.

``OMP_NUM_THREADS=1 python examples/simplify/run.py [--out runs/simplify]``; the options below
shrink the run (the test suite runs it with tiny settings).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "simplify", help="run folder (default runs/simplify)")
    ap.add_argument("--old-steps", type=int, default=2000, help="training steps of the old model (default 2000)")
    ap.add_argument("--steps", type=int, default=None, help="training steps of each member (default: simplify.json's)")
    ap.add_argument("--numb-models", type=int, default=None, help="committee size (default: simplify.json's)")
    ap.add_argument("--pick", type=int, default=None,
                    help="init_pick_number and iter_pick_number (default: simplify.json's)")
    ap.add_argument("--max-iter", type=int, default=None, help="most iterations (default: simplify.json's)")
    args = ap.parse_args(argv)
    import mtzoo
    from mtzoo.simplify import format_summary, simplify

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    old = out / "old_model.pth"
    if not old.exists():
        src = REPO / "examples" / "agau_emt" / "input.json"
        cfg = json.loads(src.read_text())
        for key in ("training_data", "validation_data"):
            cfg["training"][key]["systems"] = [str((src.parent / p).resolve()) for p in cfg["training"][key]["systems"]]
        cfg["training"].update(numb_steps=args.old_steps, save_freq=args.old_steps, disp_freq=max(1, args.old_steps // 5))
        result = mtzoo.train(cfg, workdir=out / "old")
        mtzoo.freeze(out / "old", old)
        print(f"old model: {args.old_steps} steps on EMT, validation force rmse {result['valid']['rmse_f']:.3f} eV/A")
    raw = json.loads((HERE / "simplify.json").read_text())
    raw["pick_data"] = str((HERE / raw["pick_data"]).resolve())
    raw["training_iter0_model_path"] = str(old)
    tp = raw["default_training_param"]
    if args.steps is not None:
        tp["training"]["numb_steps"] = args.steps
    if args.numb_models is not None:
        raw["numb_models"] = args.numb_models
    if args.pick is not None:
        raw.update(init_pick_number=args.pick, iter_pick_number=args.pick, fp_task_max=args.pick)
    if args.max_iter is not None:
        raw["max_iter"] = args.max_iter
    (out / "simplify.json").write_text(json.dumps(raw, indent=1))
    summary = simplify(out / "simplify.json", out / "loop", log=print)
    print(format_summary(summary))
    test = mtzoo.load_systems([str(REPO / "examples" / "data" / "agau_d3bj" / "valid")])
    rows = [("old model (EMT)", mtzoo.load_model(old), None)]
    rows += [(f"member {k} ({m['head']})", mtzoo.load_model(m["model"]), m["head"])
             for k, m in enumerate(summary["committee"])]
    print("held-out EMT + D3(BJ) frames: energy rmse (meV/atom), force rmse (meV/A)")
    for name, model, head in rows:
        t = mtzoo.evaluate(model, test, head=head)["total"]
        print(f"  {name}: {1000 * t['energy_per_atom']['rmse']:.1f} meV/atom, {1000 * t['force']['rmse']:.1f} meV/A")


if __name__ == "__main__":
    main()
