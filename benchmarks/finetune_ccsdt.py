"""Fine-tuning a CCSD(T) head on 25, 50 and 100 frames: scratch vs freeze vs full vs multitask.

The central claim of multi-task pre-training, on the project's own molecules
(``examples/data/molecules``: water, methylamine, ethanol, acetamide; see its PROVENANCE.md):
a head for a new, expensive level of theory (CCSD(T)/cc-pVDZ, energies only) learns more from a
few frames when it starts from a model pre-trained on cheaper levels (GFN2-xTB and PBE energies
and forces, PBE dipoles and polarizabilities: the zoo model ``hcno-mf-se-v1``) than from scratch.

For each seed the CCSD(T) training frames of all four molecules are shuffled once and the first
``n`` taken (so the 25-frame set is inside the 50-frame set, inside the 100-frame set).  Every
strategy then trains the same number of optimizer steps (``--steps``; learning rate 1e-3 decaying
exponentially to 1e-5, as :func:`mtzoo.zoo.finetune.finetune` does):

``scratch``
    a new single-task model (the base model's descriptor and ``pbe`` fitting architecture, random
    weights, energy bias fitted on the ``n`` frames) trained on the ``n`` frames only;
``freeze``
    ``finetune(strategy="freeze", init_from="pbe")``: frozen descriptor, new head trains;
``full``
    ``finetune(strategy="full", init_from="pbe")``: descriptor and new head on the new data;
``multitask``
    ``finetune(strategy="multitask", init_from="pbe")`` with replay weights
    ``--replay`` (default ``pbe=1,xtb=0.5``; the new head has 1, so it gets 40 % of the steps).
``default``
    ``finetune(init_from="pbe")`` with every other setting at its default (``--steps`` is not
    used): strategy ``freeze``, a ``correction`` head, steps / learning rate / batch size chosen
    from the data, 20 % of the ``n`` frames held out to keep the best-validation weights;
``default-multitask``
    the same with ``strategy="multitask"`` and the ``--replay`` weights.

``scratch``, ``freeze``, ``full`` and ``multitask`` are run as before 2026-12-04 (``head_mode="copy"``,
learning rate 1e-3, batch size 1, the template head's loss, no held-out frames, last weights).

Test: every CCSD(T) validation frame (the last 20 % of each MD trajectory, never trained on
at any level).  Reported: MAE of the total energy (meV per molecule) and of the energy per atom
(meV/atom); medians over seeds.  Writes ``benchmarks/results/YYYY-MM-DD-finetune-ccsdt.json``.

    OMP_NUM_THREADS=1 python benchmarks/finetune_ccsdt.py --n 25 50 100 --seeds 1 2 3 --steps 1500
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MOLS = REPO / "examples" / "data" / "molecules"
STRATEGIES = ("scratch", "freeze", "full", "multitask", "default", "default-multitask")


def frame_pool(level: str = "ccsdt", part: str = "train") -> list[tuple[Path, int]]:
    """Every (system folder, frame index) of ``level``/``part``, in a fixed order."""
    pool = []
    for sysdir in sorted((MOLS / level).glob(f"*/{part}")):
        nf = len(np.load(sysdir / "set.000" / "energy.npy"))
        pool += [(sysdir, i) for i in range(nf)]
    return pool


def write_subset(frames: list[tuple[Path, int]], dst: Path) -> list[str]:
    """DeePMD systems (one per source system) holding only ``frames``; returns their folders."""
    by_sys: dict[Path, list[int]] = {}
    for sysdir, i in frames:
        by_sys.setdefault(sysdir, []).append(i)
    out = []
    for sysdir, idx in sorted(by_sys.items()):
        target = dst / sysdir.parent.name
        (target / "set.000").mkdir(parents=True, exist_ok=True)
        for f in ("type.raw", "type_map.raw", "nopbc"):
            if (sysdir / f).exists():
                (target / f).write_bytes((sysdir / f).read_bytes())
        for arr in (sysdir / "set.000").glob("*.npy"):
            np.save(target / "set.000" / arr.name, np.load(arr)[sorted(idx)])
        out.append(str(target))
    return out


def scratch_model(base_path: Path, train: list[str], steps: int, seed: int, workdir: Path):
    """A single-task model with the base's descriptor and ``pbe`` fitting architecture, trained from scratch."""
    from mtzoo.training.tasks import load_frozen_state
    from mtzoo.training.trainer import Trainer

    recorded = load_frozen_state(base_path)["metadata"]["input"]
    desc = dict(recorded["model"]["descriptor"], seed=seed)
    fit = dict(recorded["model"]["fitting_net_dict"]["pbe"], seed=seed)
    fit.pop("layer_name", None)
    cfg = {"model": {"type_map": recorded["model"]["type_map"], "descriptor": desc, "fitting_net": fit},
           "learning_rate": {"type": "exp", "start_lr": 1e-3, "stop_lr": 1e-5, "decay_steps": max(1, steps // 10)},
           "loss": recorded["loss_dict"]["pbe"],
           "training": {"training_data": {"systems": train, "batch_size": 1}, "numb_steps": steps, "seed": seed,
                        "disp_file": "lcurve.out", "disp_freq": max(1, steps // 10), "save_freq": steps}}
    trainer = Trainer(cfg, workdir, progress=False, log=lambda *a: None)
    trainer.run()
    return trainer.model.eval(), None


def test_errors(model, head: str | None, test_systems) -> dict:
    """MAE/RMSE of the total energy (meV) and of the energy per atom (meV/atom) over the test frames."""
    from mtzoo.evaluation import predict_system

    err, err_pa = [], []
    for s in test_systems:
        pred = predict_system(model, s, head=head)["energy"]
        d = (pred - s.labels["energy"]) * 1000.0
        err.append(d)
        err_pa.append(d / s.natoms)
    err, err_pa = np.concatenate(err), np.concatenate(err_pa)
    return {"mae_meV": float(np.abs(err).mean()), "rmse_meV": float(np.sqrt((err ** 2).mean())),
            "mae_meV_per_atom": float(np.abs(err_pa).mean()), "n_test": int(err.size)}


def run_one(strategy: str, base: Path, train: list[str], steps: int, seed: int, replay: dict, workdir: Path):
    from mtzoo.zoo.finetune import finetune
    from mtzoo.zoo.frozen import load_model

    t0 = time.perf_counter()
    if strategy == "scratch":
        model, head = scratch_model(base, train, steps, seed, workdir)
    else:
        kw = {"replay_weight": replay} if strategy.endswith("multitask") else {}
        if strategy.startswith("default"):  # every setting at its default
            kw["strategy"] = "multitask" if strategy == "default-multitask" else "freeze"
        else:  # the settings of the study before 2026-12-04
            kw.update(strategy=strategy, steps=steps, lr=1e-3, batch_size=1, head_mode="copy", keep_best=False,
                      loss="template")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = finetune(base, train, None, head_name="ccsdt", init_from="pbe", seed=seed, workdir=workdir,
                            replay_root=REPO, log=lambda *a: None, **kw)
        model, head = load_model(path), "ccsdt"
    return model, head, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=str(REPO / "mtzoo" / "zoo" / "models" / "hcno-mf-se-v1.pth"))
    ap.add_argument("--n", type=int, nargs="+", default=[25, 50, 100])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    ap.add_argument("--replay", default="pbe=1,xtb=0.5", help="multitask replay weights HEAD=W,...")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import torch

    from mtzoo.data.readers import load_systems

    torch.set_num_threads(1)
    replay = {h: float(w) for h, w in (kv.split("=") for kv in args.replay.split(","))}
    base = Path(args.base)
    pool = frame_pool("ccsdt", "train")
    test_systems = load_systems(sorted(str(p) for p in (MOLS / "ccsdt").glob("*/valid")))
    if max(args.n) > len(pool):
        raise SystemExit(f"only {len(pool)} CCSD(T) training frames; --n {max(args.n)} is too many")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mtzoo-ft-ccsdt-"))
    runs = []
    for seed in args.seeds:
        order = np.random.default_rng(1000 + seed).permutation(len(pool))
        for n in args.n:
            train = write_subset([pool[i] for i in order[:n]], work / "data" / f"seed{seed}_n{n}")
            for strategy in args.strategies:
                wd = work / f"seed{seed}_n{n}_{strategy}"
                model, head, wall = run_one(strategy, base, train, args.steps, seed, replay, wd)
                res = test_errors(model, head, test_systems)
                runs.append({"seed": seed, "n": n, "strategy": strategy, "wall_s": wall, **res})
                print(f"seed {seed} n {n:3d} {strategy:9s}: MAE {res['mae_meV']:8.2f} meV "
                      f"({res['mae_meV_per_atom']:6.2f} meV/atom) in {wall:.0f} s", flush=True)
    table = {}
    for n in args.n:
        for strategy in args.strategies:
            vals = [r for r in runs if r["n"] == n and r["strategy"] == strategy]
            table[f"{n}/{strategy}"] = {
                "median_mae_meV": float(np.median([r["mae_meV"] for r in vals])),
                "median_mae_meV_per_atom": float(np.median([r["mae_meV_per_atom"] for r in vals])),
                "per_seed_mae_meV": [r["mae_meV"] for r in vals]}
    print("\nmedian test MAE of the CCSD(T) energy over seeds, meV per molecule (meV/atom)")
    print("n     " + "".join(f"{s:>22s}" for s in args.strategies))
    for n in args.n:
        print(f"{n:<6d}" + "".join(f"{table[f'{n}/{s}']['median_mae_meV']:12.1f} ({table[f'{n}/{s}']['median_mae_meV_per_atom']:5.2f})"
                                   .rjust(22) for s in args.strategies))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    payload = {"benchmark": "finetune-ccsdt", "date": datetime.date.today().isoformat(), "commit": commit,
               "command": "OMP_NUM_THREADS=1 python benchmarks/finetune_ccsdt.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "base": str(base.relative_to(REPO)) if base.is_relative_to(REPO) else str(base),
               "steps": args.steps, "seeds": args.seeds, "replay_weights": replay, "train_pool_frames": len(pool),
               "test_frames": int(sum(s.nframes for s in test_systems)), "torch": torch.__version__, "threads": 1,
               "table": table, "runs": runs}
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"{payload['date']}-finetune-ccsdt.json"
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
