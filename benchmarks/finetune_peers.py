"""Fine-tuning a CCSD(T) head on 50 frames: mtzoo beside DeePMD-kit and MACE, same data, same script.

The protocol of issue 17, on ``examples/data/peers/finetune`` (``make_peer_sets.py``: ethanol and
acetaldehyde, GFN2-xTB MD at 600 K; B3LYP/6-31G* energies and forces; CCSD(T)/cc-pVDZ energies),
split fixed before any result was seen:

* base model: B3LYP energies and forces of frames 150-449 (300 frames) of the molecule;
* new head: CCSD(T) energies of frames 0-49; test: CCSD(T) energies of frames 50-149;
* floor: the exact B3LYP energy plus one constant fitted on frames 0-49 (what transfer must beat).

Per molecule and seed (``--seeds``), each tool by its own command line:

``mtzoo``
    ``mtzoo train`` (the DeePMD-kit input below, ``--base-steps``), ``mtzoo freeze``, then
    ``mtzoo finetune --init-from default`` with every other setting at its default.
``zoo``
    no base training: ``mtzoo finetune -m hcno-mf-e3nn-v1`` (and ``hcno-mf-se-v1``) ``--init-from pbe``,
    every other setting at its default (the zoo saw no DFT data of these molecules).
``deepmd``
    ``dp --pt train`` (the same input), ``dp --pt train ft.json --finetune base.pt`` (energy loss,
    start_lr 1e-4, ``--ft-steps``), ``dp --pt freeze``; DeePMD-kit 3.2.0 in its own venv
    (``--deepmd-python``; ``../shared/peers/deepmd_setup.sh``).
``mace``
    ``mace_run_train`` base (32x0e+32x1o, L=1... see ``_common.MACE_BASE``, ``--mace-epochs``), then naive
    fine-tunes (``--foundation_model``) at learning rates 1e-3 and 1e-4 and a multihead fine-tune
    with replay of the base data (``--multiheads_finetuning``); mace-torch in its own venv
    (``--mace-python``).

Reported: test MAE of the CCSD(T) energy (meV per molecule), median and spread over seeds, per
molecule and route; JSON under ``benchmarks/results/``; a markdown table on stdout.

    OMP_NUM_THREADS=1 python benchmarks/finetune_peers.py --deepmd-python /tmp/mtzoo-peers/deepmd/bin/python \\
        --mace-python /tmp/mtzoo-peers/mace/bin/python --seeds 1 2 3
    ... --smoke   # tiny budgets, one seed: checks the pipeline in a few minutes
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from _common import MACE_BASE, mace_predict, mae_mev, run, write_xyz  # benchmarks/ is on sys.path as a script

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data" / "peers" / "finetune"
TYPE_MAP = ["H", "C", "N", "O"]  # the data's type_map.raw (N absent)


def deepmd_input(base: Path, valid: Path, steps: int, seed: int) -> dict:
    """The base model's DeePMD-kit input (se_e2_a, DeePMD's water-example sizes, batch 4)."""
    return {
        "model": {"type_map": TYPE_MAP,
                  "descriptor": {"type": "se_e2_a", "sel": [12, 6, 1, 4], "rcut": 6.0, "rcut_smth": 0.5,
                                 "neuron": [25, 50, 100], "axis_neuron": 16, "resnet_dt": False, "seed": seed},
                  "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True, "seed": seed}},
        "learning_rate": {"type": "exp", "start_lr": 1e-3, "stop_lr": 3.51e-8, "decay_steps": max(1, steps // 20)},
        "loss": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1},
        "training": {"training_data": {"systems": [str(base)], "batch_size": 4},
                     "validation_data": {"systems": [str(valid)], "batch_size": 4, "numb_btch": 1},
                     "numb_steps": steps, "seed": seed, "disp_freq": max(1, steps // 10), "save_freq": steps},
    }


def system(level: str, mol: str, part: str):
    from mtzoo.data.readers import load_systems

    return load_systems([str(DATA / level / mol / part)])[0]


def floor(mol: str) -> float:
    """Exact B3LYP energy + one constant fitted on the CCSD(T) training frames."""
    b = system("b3lyp", mol, "cc").labels["energy"]
    tr, te = system("ccsdt", mol, "train").labels["energy"], system("ccsdt", mol, "test").labels["energy"]
    c = float(np.mean(tr - b[: len(tr)]))
    return mae_mev(b[50: 50 + len(te)] + c, te)


# --------------------------------------------------------------------------------------------- mtzoo
def mtzoo_route(mol: str, seed: int, work: Path, a, base_kind: str = "se_e2_a") -> dict:
    """Base model, ``mtzoo freeze``, ``mtzoo finetune`` with its defaults; CCSD(T) test MAE.

    ``base_kind`` ``"se_e2_a"``: the DeePMD-kit input of :func:`deepmd_input` (``--base-steps``,
    validation on the B3LYP frames 0-149, as DeePMD-kit's route).  ``"e3nn_mace"``: the model and
    recipe of ``benchmarks/accuracy_mace.py`` (``--mtzoo-recipe``, ``--mace-epochs`` epochs like
    MACE's base, validation on a seeded 10 % of the base frames, as MACE's ``--valid_fraction``).
    """
    from mtzoo.evaluation import predict_system
    from mtzoo.zoo.frozen import load_model

    work.mkdir(parents=True, exist_ok=True)
    if base_kind == "se_e2_a":
        inp = deepmd_input(DATA / "b3lyp" / mol / "base", DATA / "b3lyp" / mol / "cc", a.base_steps, seed)
    else:
        import accuracy_mace as am

        data = am.split([DATA / "b3lyp" / mol / "base"], seed, None, work / "split")
        inp = am.mtzoo_input(data["train_dirs"], data["valid_dirs"], a.mace_epochs, seed, a.mtzoo_recipe)
    (work / "input.json").write_text(json.dumps(inp, indent=1))
    mt = [sys.executable, "-m", "mtzoo"]
    t = 0.0
    if not (a.reuse_base and (work / "base.pth").exists()):
        t = run(mt + ["train", "input.json", "-o", "run", "--no-progress"], work, work / "train.log")
        best = sorted((work / "run").glob("*.best.pt"))
        run(mt + ["freeze", "-c", str(best[0] if best else "run"), "-o", "base.pth"], work, work / "freeze.log")
    if (work / "ft").exists():
        shutil.rmtree(work / "ft")
    t += run(mt + ["finetune", "-m", "base.pth", "--train", str(DATA / "ccsdt" / mol / "train"), "--head", "ccsdt",
                   "--init-from", "default", "--seed", str(seed), "-w", "ft", "-o", "ft.pth"], work, work / "ft.log")
    test = system("ccsdt", mol, "test")
    model = load_model(work / "ft.pth")
    base = load_model(work / "base.pth")
    b3 = system("b3lyp", mol, "cc")
    tag = "" if base_kind == "se_e2_a" else f", {base_kind} base"
    pb = predict_system(base, b3)
    return {f"mtzoo finetune (defaults){tag}": mae_mev(predict_system(model, test, head="ccsdt")["energy"],
                                                      test.labels["energy"]),
            f"base B3LYP test MAE (frames 50-149){tag}": mae_mev(pb["energy"][50:150], b3.labels["energy"][50:150]),
            f"base B3LYP test force MAE meV/A (frames 50-149){tag}": mae_mev(
                pb["force"][50:150].reshape(-1), b3.labels["force"][50:150].reshape(-1)),
            "wall_s": t}


def mtzoo_mace_route(mol: str, seed: int, work: Path, a) -> dict:
    """:func:`mtzoo_route` with the ``e3nn_mace`` base."""
    return mtzoo_route(mol, seed, work, a, base_kind="e3nn_mace")


def zoo_route(mol: str, seed: int, work: Path, a) -> dict:
    """``mtzoo finetune -m <zoo model> --init-from pbe`` with its defaults: no DFT data of the molecule.

    The zoo models (``--zoo-models``) were trained on GFN2-xTB and PBE/def2-SVP frames of other
    H/C/N/O molecules; the CCSD(T) head starts from their PBE head.  No base training.
    """
    from mtzoo.evaluation import predict_system
    from mtzoo.zoo.frozen import load_model

    work.mkdir(parents=True, exist_ok=True)
    mt = [sys.executable, "-m", "mtzoo"]
    test = system("ccsdt", mol, "test")
    out, wall = {}, {}
    for name in a.zoo_models:
        ftw = work / name
        if ftw.exists():
            shutil.rmtree(ftw)
        wall[name] = run(mt + ["finetune", "-m", name, "--train", str(DATA / "ccsdt" / mol / "train"), "--head", "ccsdt",
                               "--init-from", "pbe", "--seed", str(seed), "-w", str(ftw), "-o", f"{name}-ft.pth"],
                         work, work / f"{name}.log")
        pred = predict_system(load_model(work / f"{name}-ft.pth"), test, head="ccsdt")["energy"]
        out[f"mtzoo finetune (defaults), zoo {name} --init-from pbe"] = mae_mev(pred, test.labels["energy"])
    out["wall_s"] = wall
    return out


# -------------------------------------------------------------------------------------------- deepmd
def deepmd_route(mol: str, seed: int, work: Path, a) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    dp = [a.deepmd_python, "-m", "deepmd"]
    inp = deepmd_input(DATA / "b3lyp" / mol / "base", DATA / "b3lyp" / mol / "cc", a.base_steps, seed)
    (work / "input.json").write_text(json.dumps(inp, indent=1))
    t = run(dp + ["--pt", "train", "input.json"], work, work / "train.log")
    ft = json.loads(json.dumps(inp))
    ft["training"]["training_data"] = {"systems": [str(DATA / "ccsdt" / mol / "train")], "batch_size": 1}
    ft["training"].pop("validation_data")
    ft["training"].update(numb_steps=a.ft_steps, save_freq=a.ft_steps, disp_freq=max(1, a.ft_steps // 10))
    ft["learning_rate"].update(start_lr=1e-4, decay_steps=max(1, a.ft_steps // 20))
    ft["loss"] = {"type": "ener", "start_pref_e": 1, "limit_pref_e": 1, "start_pref_f": 0, "limit_pref_f": 0}
    fw = work / "ft"
    fw.mkdir(exist_ok=True)
    (fw / "input.json").write_text(json.dumps(ft, indent=1))
    t += run(dp + ["--pt", "train", "input.json", "--finetune", str(work / "model.ckpt.pt")], fw, fw / "train.log")
    run(dp + ["--pt", "freeze", "-o", "ft.pth"], fw, fw / "freeze.log")
    code = ("import sys, json, numpy as np; from deepmd.infer import DeepPot; m = DeepPot(sys.argv[1]);"
            "c = np.load(sys.argv[2] + '/set.000/coord.npy'); t = np.loadtxt(sys.argv[2] + '/type.raw', dtype=int);"
            "tm = open(sys.argv[2] + '/type_map.raw').read().split(); mt = m.get_type_map();"
            "at = [mt.index(tm[i]) for i in t]; e = m.eval(c, None, at)[0].reshape(-1);"
            "print(json.dumps(e.tolist()))")
    test_dir = DATA / "ccsdt" / mol / "test"
    out = subprocess.run([a.deepmd_python, "-c", code, str(fw / "ft.pth"), str(test_dir)], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError("DeePMD-kit evaluation failed: " + out.stderr[-1500:])
    pred = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"deepmd dp --finetune (lr 1e-4)": mae_mev(pred, system("ccsdt", mol, "test").labels["energy"]), "wall_s": t}


# ---------------------------------------------------------------------------------------------- mace
def mace_route(mol: str, seed: int, work: Path, a) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    base_xyz, cc_xyz, test_xyz = work / "b3lyp_base.xyz", work / "ccsdt_train.xyz", work / "ccsdt_test.xyz"
    write_xyz(system("b3lyp", mol, "base"), base_xyz, True)
    write_xyz(system("ccsdt", mol, "train"), cc_xyz, False)
    test = system("ccsdt", mol, "test")
    write_xyz(test, test_xyz, False)
    train = [str(Path(a.mace_python).parent / "mace_run_train")]
    common = ["--seed", str(seed), "--valid_fraction", "0.1", "--energy_key", "energy", "--forces_key", "forces"]
    wall = {}
    if not (a.reuse_base and (work / "base.model").exists()):
        wall["base"] = run(train + MACE_BASE + common + ["--name", "base", "--train_file", str(base_xyz),
                                                         "--max_num_epochs", str(a.mace_epochs)], work, work / "base.log")
    # the base's own B3LYP errors on frames 50-149 (the CCSD(T) test geometries), as the mtzoo routes report
    from mtzoo.data.writers import subset

    b3 = system("b3lyp", mol, "cc")
    b3_xyz = work / "b3lyp_test.xyz"
    write_xyz(subset(b3, range(50, 150), "b3lyp_test"), b3_xyz, False)
    pb = mace_predict(a.mace_python, work / "base.model", b3_xyz, work)
    de = pb["energy"] - b3.labels["energy"][50:150]
    out = {"base B3LYP test MAE (frames 50-149), mace base": float(np.mean(np.abs(de)) * 1000),
           "base B3LYP test MAE after its mean offset (frames 50-149), mace base":
               float(np.mean(np.abs(de - de.mean())) * 1000),
           "base B3LYP test force MAE meV/A (frames 50-149), mace base":
               mae_mev(pb["forces"].reshape(-1), b3.labels["force"][50:150].reshape(-1))}
    ft_common = ["--foundation_model", str(work / "base.model"), "--train_file", str(cc_xyz), "--forces_weight", "0",
                 "--energy_weight", "1", "--E0s", "estimated", "--default_dtype", "float64", "--batch_size", "5",
                 "--valid_batch_size", "10", "--device", "cpu", "--max_num_epochs", str(a.mace_ft_epochs)] + common
    for lr in (1e-3, 1e-4):
        name = f"naive_lr{lr:g}"
        if name not in a.mace_variants:
            continue
        wall[name] = run(train + ft_common + ["--name", name, "--lr", str(lr), "--multiheads_finetuning", "False"],
                         work, work / f"{name}.log")
        pred = mace_predict(a.mace_python, work / f"{name}.model", test_xyz, work)
        out[f"mace naive fine-tune (lr {lr:g})"] = mae_mev(pred["energy"], test.labels["energy"])
    name = "multihead"
    if name not in a.mace_variants:
        out["wall_s"] = wall
        return out
    wall[name] = run(train + ft_common + ["--name", name, "--lr", "1e-3", "--multiheads_finetuning", "True",
                                          "--pt_train_file", str(base_xyz)], work, work / f"{name}.log")
    pred = mace_predict(a.mace_python, work / f"{name}.model", test_xyz, work, "Default")
    out["mace multihead fine-tune with replay"] = mae_mev(pred["energy"], test.labels["energy"])
    out["wall_s"] = wall
    return out


def load_runs(files: list[str]) -> list[dict]:
    """Runs of several result files, merged per (molecule, seed, route): a later file's value of a key
    replaces an earlier one's, keys it lacks are kept (a run of one MACE variant completes a partial row)."""
    keyed = {}
    for f in files:
        for row in json.loads(Path(f).read_text())["runs"]:
            k = (row["molecule"], row["seed"], row["route"])
            keyed[k] = {**keyed.get(k, {}), **row}
    return list(keyed.values())


def print_table(runs: list[dict]) -> None:
    """Median, spread and seeds of every reported MAE; the ratio of mtzoo's defaults to the best peer."""
    table = {}
    for row in runs:
        for k, v in row.items():
            if isinstance(v, float) and k != "floor_meV" and not k.startswith("wall"):
                table.setdefault((row["molecule"], k), {})[row["seed"]] = v
        table.setdefault((row["molecule"], "floor: exact B3LYP + constant"), {})[0] = row["floor_meV"]
    print("\n| molecule | route | median MAE (meV/molecule) | min-max | seeds |\n|---|---|---|---|---|")
    for (mol, k), v in sorted(table.items()):
        x = list(v.values())
        seeds = ",".join(str(s) for s in sorted(v)) if 0 not in v else "-"
        print(f"| {mol} | {k} | {np.median(x):.1f} | {min(x):.1f}-{max(x):.1f} | {seeds} |")
    for mol in sorted({m for m, _ in table}):
        peers = {k: np.median(list(v.values())) for (m, k), v in table.items()
                 if m == mol and (k.startswith("deepmd") or k.startswith("mace"))}
        ours = {k: np.median(list(v.values())) for (m, k), v in table.items()
                if m == mol and k.startswith("mtzoo finetune (defaults)")}
        if peers and ours:
            best = min(peers, key=peers.get)
            for k, v in ours.items():
                print(f"{mol}: {k} {v:.1f} = {v / peers[best]:.2f}x the best peer ({best}, {peers[best]:.1f})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--molecules", nargs="+", default=["ethanol", "acetaldehyde"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--routes", nargs="+", default=["mtzoo", "deepmd", "mace"], choices=["mtzoo", "mtzoo-mace", "zoo", "deepmd", "mace"])
    ap.add_argument("--zoo-models", nargs="+", default=["hcno-mf-e3nn-v1", "hcno-mf-se-v1"],
                    help="zoo route: the pretrained models to start from")
    ap.add_argument("--deepmd-python", default="/tmp/mtzoo-peers/deepmd/bin/python")
    ap.add_argument("--mace-python", default="/tmp/mtzoo-peers/mace/bin/python")
    ap.add_argument("--base-steps", type=int, default=4000)
    ap.add_argument("--reuse-base", action="store_true",
                    help="keep a base model already in the work folder (mtzoo routes: base.pth, mace: base.model) "
                         "and re-run the fine-tunes only")
    ap.add_argument("--mtzoo-recipe", default="mtzoo", help="accuracy_mace.RECIPES entry of the e3nn_mace base")
    ap.add_argument("--ft-steps", type=int, default=2000)
    ap.add_argument("--mace-variants", nargs="*", default=["naive_lr0.001", "naive_lr0.0001", "multihead"],
                    choices=["naive_lr0.001", "naive_lr0.0001", "multihead"],
                    help="MACE fine-tunes to run (with --reuse-base, a base.model in the work folder is kept; "
                         "none: only the base and its B3LYP errors)")
    ap.add_argument("--mace-epochs", type=int, default=50)
    ap.add_argument("--mace-ft-epochs", type=int, default=200)
    ap.add_argument("--smoke", action="store_true", help="tiny budgets and one seed (pipeline check)")
    ap.add_argument("--workdir", default="/tmp/mtzoo-finetune-peers")
    ap.add_argument("--out", default=None, help="result JSON, rewritten after every run")
    ap.add_argument("--table", nargs="+", metavar="JSON",
                    help="run nothing: print the table of these result files (a later file's run of the same "
                         "molecule, seed and route replaces an earlier one's)")
    a = ap.parse_args(argv)
    if a.smoke:
        a.seeds, a.base_steps, a.ft_steps, a.mace_epochs, a.mace_ft_epochs = a.seeds[:1], 40, 20, 1, 2
    if a.table:
        print_table(load_runs(a.table))
        return 0
    routes = {"mtzoo": mtzoo_route, "mtzoo-mace": mtzoo_mace_route, "zoo": zoo_route, "deepmd": deepmd_route, "mace": mace_route}
    payload = {"benchmark": "finetune-peers", "date": datetime.date.today().isoformat(), "smoke": a.smoke,
               "command": "python benchmarks/finetune_peers.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "settings": {k: getattr(a, k) for k in ("base_steps", "ft_steps", "mace_epochs", "mace_ft_epochs")},
               "runs": []}
    out = Path(a.out) if a.out else REPO / "benchmarks" / "results" / f"{payload['date']}-finetune-peers.json"
    for mol in a.molecules:
        fl = floor(mol)
        print(f"{mol}: floor (exact B3LYP + constant) {fl:.1f} meV/molecule", flush=True)
        for seed in a.seeds:
            for r in a.routes:
                res = routes[r](mol, seed, Path(a.workdir) / f"{mol}-seed{seed}-{r}", a)
                payload["runs"].append({"molecule": mol, "seed": seed, "route": r, "floor_meV": fl, **res})
                print(json.dumps(payload["runs"][-1]), flush=True)
                if not a.smoke:  # after every run: a long job that is stopped keeps what it finished
                    out.write_text(json.dumps(payload, indent=1) + "\n")
    print_table(payload["runs"])
    if not a.smoke:
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
