"""Build the pretrained models of the zoo from their recipes.

For every recipe ``model_cards/recipes/<name>.json`` (or those named on the command line):
train the DeePMD-kit input it holds (data paths relative to the repository root), freeze the
united model into ``mtzoo/zoo/models/<name>.pth``, record its SHA-256, heads, elements, cutoff
and check energies (every head on :func:`mtzoo.zoo.registry.check_frame`) in
``mtzoo/zoo/models/index.json``, run ``mtzoo test`` per head on the recipe's validation data
(``heads.<head>.valid``: held-out frames) and, where the recipe names them, on held-out molecules
(``heads.<head>.test``), and paste the commands and their output into the model card (between the
``<!-- build_zoo:... -->`` markers), with every error beside two trivial baselines on the same
frames (:func:`trivial_baselines`: a per-element composition fit of each per-frame label, and
zero force); with ``compare_with`` (zoo names), also those models' errors on the same systems
(:func:`compare_markdown`).

Run from anywhere::

    OMP_NUM_THREADS=1 python model_cards/recipes/build_zoo.py [NAME ...] [--steps N]
    OMP_NUM_THREADS=1 python model_cards/recipes/build_zoo.py --cards-only [NAME ...]   # no training

``--cards-only`` rebuilds only the cards' ``baselines`` block from the shipped model files
(their sha256 checked against ``index.json``) and the recipes' data, in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

from mtzoo import keys as K

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "model_cards" / "recipes"
MODELS = REPO / "mtzoo" / "zoo" / "models"


def _replace_block(text: str, tag: str, body: str) -> str:
    begin, end = f"<!-- build_zoo:{tag}:begin -->", f"<!-- build_zoo:{tag}:end -->"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"model card has no {begin} ... {end} block")
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text)


def build(recipe_path: Path, steps: int | None, workdir: Path, reuse: bool = False) -> dict:
    import torch

    from mtzoo.model import build_model
    from mtzoo.training.checkpoint import load_checkpoint
    from mtzoo.training.trainer import Trainer
    from mtzoo.zoo.frozen import file_sha256, load_model, save_model
    from mtzoo.zoo.registry import check_frame

    recipe = json.loads(recipe_path.read_text())
    name, cfg = recipe["name"], recipe["input"]
    if steps is not None:
        cfg["training"]["numb_steps"] = cfg["training"]["save_freq"] = steps
    run = workdir / name
    state = load_checkpoint(run) if reuse and run.exists() else None
    if state is not None and state["step"] == cfg["training"]["numb_steps"]:
        print(f"[{name}] reusing the finished run in {run} (step {state['step']})", flush=True)
    else:
        print(f"[{name}] training {cfg['training']['numb_steps']} steps in {run}", flush=True)
        result = Trainer(cfg, run, progress=False, log=lambda *a: None).run()
        print(f"[{name}] trained in {result['wall_s']:.1f} s; validation {json.dumps(result['valid'])}", flush=True)
        state = load_checkpoint(run)
    model = build_model(state["model_config"])
    model.load_state_dict(state["model"])
    out = MODELS / f"{name}.pth"
    save_model(model, out, {"step": state["step"], "input": state.get("input"),
                            "source_heads": list(state["model_config"]["heads"]),
                            "zoo": {"name": name, "version": recipe["version"]}})
    out.chmod(0o644)
    model = load_model(out)
    kind = recipe.get("check_frame", "agau")
    atoms = check_frame(kind)
    energies, tensors = {}, {}
    for h in model.head_names():
        pred = model.predict(atoms, head=h)
        if "energy" in pred:
            energies[h] = pred["energy"]
        else:
            tensors[h] = {k: v.tolist() for k, v in pred.items() if k in ("dipole", "polarizability")}
    desc = state["model_config"]["descriptor"]
    entry = {
        "name": name, "version": recipe["version"], "file": out.name, "sha256": file_sha256(out),
        "size_bytes": out.stat().st_size,
        "heads": [{"name": h, "level_of_theory": recipe["heads"][h]["level_of_theory"], "units": recipe["units"]}
                  for h in model.head_names()],
        "elements": list(model.type_map), "type_map": list(model.type_map),
        "cutoff": float(desc["rcut"]), "cutoff_smooth": float(desc["rcut_smth"]) if "rcut_smth" in desc else None,
        "descriptor": {k: desc[k] for k in ("type", "neuron", "axis_neuron", "sel", "lmax", "num_layers",
                                            "hidden_irreps") if k in desc},
        "description": recipe["description"], "model_card": recipe["model_card"], "license": recipe["license"],
        "recipe": str(recipe_path.relative_to(REPO)), "training_steps": int(state["step"]),
        "torch_version": torch.__version__,
        "check": {"frame": f"mtzoo.zoo.registry.check_frame('{kind}')", "kind": kind, "dtype": "float64",
                  "energy": energies, "tensor": tensors, "units": recipe["units"]},
    }
    # mtzoo test per head on its own validation data (held-out frames), and on the recipe's
    # held-out molecules where it names them ("test")
    pasted, env = {}, dict(os.environ, OMP_NUM_THREADS="1")
    for split, block in SPLITS.items():
        cmd = test_command(recipe, out, model.head_names(), split)
        if cmd is None:
            continue
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
        json_out = subprocess.run(cmd + ["--json"], cwd=REPO, env=env, capture_output=True, text=True, check=True)
        shown = "mtzoo test " + " ".join(cmd[4:])
        entry[block] = {"command": shown, "result": _summary(json.loads(json_out.stdout))}
        pasted[block] = f"```console\n$ OMP_NUM_THREADS=1 {shown}\n{proc.stdout.rstrip()}\n```"
    card = REPO / recipe["model_card"]
    text = card.read_text()
    for block, body in pasted.items():
        text = _replace_block(text, block, body)
    text = _replace_block(text, "file", "| | |\n|---|---|\n"
                                        f"| file | `mtzoo/zoo/models/{out.name}` ({entry['size_bytes']} bytes) |\n"
                                        f"| sha256 | `{entry['sha256']}` |\n"
                                        f"| training steps | {entry['training_steps']} |")
    rows = [f"| `{h}` | energy | {e:.8f} eV |" for h, e in energies.items()]
    rows += [f"| `{h}` | {k} | {np.array2string(np.asarray(v), precision=6, separator=', ')} |".replace("\n", " ")
             for h, t in tensors.items() for k, v in t.items()]
    text = _replace_block(text, "check", f"Frame: `check_frame('{kind}')`, float64.\n\n"
                                         "| head | output | value |\n|---|---|---|\n" + "\n".join(rows))
    if recipe.get("compare_with"):
        text = _replace_block(text, "compare", compare_markdown(recipe, entry, model.head_names(), env))
    card.write_text(text)
    write_card_baselines(recipe, model)
    print("\n\n".join(pasted.values()), flush=True)
    return entry


def compare_markdown(recipe: dict, entry: dict, heads: list[str], env: dict) -> str:
    """The card's ``compare`` block: ``mtzoo test`` of each model of ``recipe["compare_with"]`` (zoo
    names) on this model's held-out systems, for the heads both have, beside this model's totals."""
    from mtzoo.zoo.frozen import load_model

    rows, commands = [], []
    for other in recipe["compare_with"]:
        other_file = MODELS / f"{other}.pth"
        common = [h for h in heads if h in load_model(other_file).head_names()]
        for split, block in SPLITS.items():
            cmd = test_command(recipe, other_file, common, split)
            if cmd is None or block not in entry:
                continue
            res = _summary(json.loads(subprocess.run(cmd + ["--json"], cwd=REPO, env=env, capture_output=True,
                                                     text=True, check=True).stdout))
            commands.append(f"`{other}` ({', '.join(f'`{h}`' for h in common)})")
            what = "held-out frames" if split == "valid" else "held-out molecules"
            for h in common:
                for metric, r in res[h].items():
                    mine = entry[block]["result"].get(h, {}).get(metric)
                    if not isinstance(r, dict) or not isinstance(mine, dict):
                        continue
                    scale, unit = (1e3, "meV/atom") if metric == "energy_per_atom" else (1.0, recipe["units"].get(
                        metric, "eV/A" if metric == "force" else "label units"))
                    rows.append(f"| `{h}` | {what} | {metric} ({unit}) | {_fmt(scale * mine['rmse'])} / "
                                f"{_fmt(scale * mine['mae'])} | {_fmt(scale * r['rmse'])} / {_fmt(scale * r['mae'])} |")
    others = ", ".join(f"`{o}`" for o in recipe["compare_with"])
    return "\n".join([f"RMSE / MAE of this model and of {others} on this model's held-out systems (all frames of "
                      "each split together), by `mtzoo test`:", "",
                      f"| head | split | error | {recipe['name']} | {others} |", "|---|---|---|---|---|", *rows,
                      "", textwrap.fill("The other models' figures: the `mtzoo test` commands pasted above with "
                                        "`-m mtzoo/zoo/models/<name>.pth`, for the heads both models have: "
                                        + "; ".join(dict.fromkeys(commands)) + ".", 100)])


#: recipe key of each head's held-out systems -> card block of its pasted ``mtzoo test`` (and key of
#: ``index.json``): ``valid`` held-out frames of the training molecules, ``test`` held-out molecules
#: (optional)
SPLITS = {"valid": "test", "test": "test_molecules"}


def test_command(recipe: dict, model_file: Path, heads: list[str], split: str) -> list[str] | None:
    """``mtzoo test`` over every head's ``split`` systems of the recipe, or None when no head has them."""
    pairs = [f"{h}={p}" for h in heads for p in recipe["heads"][h].get(split, [])]
    if not pairs:
        return None
    path = model_file.relative_to(REPO) if model_file.is_absolute() else model_file
    return [sys.executable, "-m", "mtzoo", "test", "-m", str(path), "-s", *pairs]


# ----------------------------------------------------------------------------------------------
# Trivial baselines: what the errors of a head should be read against
# ----------------------------------------------------------------------------------------------
#: per-frame labels predicted from the composition alone: label key -> (metric name, per atom)
COMPOSITION_LABELS = {K.ENERGY: ("energy_per_atom", True), K.VIRIAL: ("virial_per_atom", True),
                      K.DIPOLE: ("dipole", False), K.POLARIZABILITY: ("polarizability", False)}


def _stats(err: np.ndarray) -> dict:
    err = np.asarray(err, dtype=np.float64).ravel()
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))), "n": int(err.size)}


def _type_counts(system, type_map: list[str]) -> np.ndarray:
    return np.bincount(system.model_types(list(type_map)), minlength=len(type_map)).astype(np.float64)


def composition_fit(train_counts: np.ndarray, train_values: np.ndarray) -> np.ndarray:
    """Per-element values :math:`b = \\arg\\min_b \\|C b - Y\\|^2` (minimum-norm least squares).

    Parameters
    ----------
    train_counts : np.ndarray
        ``[nframes, ntypes]`` atoms of each element per training frame.
    train_values : np.ndarray
        ``[nframes, ...]`` a per-frame label (total energy, virial, dipole, polarizability); each
        component is fitted on its own.

    Returns
    -------
    np.ndarray
        ``[ntypes, ...]``: the prediction for a frame with counts ``c`` is ``c @ b``.  Elements
        absent from the training frames get 0 (the minimum-norm solution).
    """
    c = np.asarray(train_counts, dtype=np.float64)
    y = np.asarray(train_values, dtype=np.float64)
    sol, *_ = np.linalg.lstsq(c, y.reshape(len(y), -1), rcond=None)
    return sol.reshape((c.shape[1],) + y.shape[1:])


def trivial_baselines(train_systems, test_systems, type_map: list[str]) -> dict:
    """Errors of two predictors that ignore the geometry, on the test frames (as ``mtzoo test`` reports).

    * **composition fit**: every per-frame label (energy, virial, dipole, polarizability) is a
      sum over the atoms of one value per element, fitted by least squares on the training
      frames (:func:`composition_fit`; the energy fit is the per-element energy bias a model
      starts from).  When the training molecules' compositions are linearly independent, as
      for the four molecules of the ``hcno`` models, this is each molecule's mean training label.
    * **zero force**: every force component predicted as 0 (its RMSE is the RMS force).

    Metrics and units follow :func:`mtzoo.evaluation.evaluate`: energy and virial per atom,
    forces and tensors per component, frames of all systems pooled in ``total``.

    Returns
    -------
    dict
        ``{"systems": [{"name", "nframes", "<metric>": {"rmse", "mae", "n"}}], "total": {...},
        "train_compositions", "train_composition_rank"}`` with metrics ``energy_per_atom``,
        ``virial_per_atom``, ``dipole``, ``polarizability`` (composition fit) and ``force`` (zero
        force), each present where the labels are; the number of distinct training compositions
        and their rank (equal: the fit is each composition's mean training label).
    """
    fits, compositions = {}, set()
    for key in COMPOSITION_LABELS:
        counts, values = [], []
        for s in train_systems:
            if key in s.labels and s.masks[key].any():
                m = s.masks[key]
                counts.append(np.repeat(_type_counts(s, type_map)[None], int(m.sum()), 0))
                values.append(s.labels[key][m])
                compositions.add(tuple(_type_counts(s, type_map)))
        if counts:
            fits[key] = composition_fit(np.concatenate(counts), np.concatenate(values))
    rows, pooled = [], {}
    for s in test_systems:
        row = {"name": s.name, "nframes": s.nframes}
        c = _type_counts(s, type_map)
        for key, (metric, per_atom) in COMPOSITION_LABELS.items():
            if key in fits and key in s.labels and s.masks[key].any():
                ref = s.labels[key][s.masks[key]]
                pred = np.tensordot(c, fits[key], axes=1)
                err = (pred[None] - ref) / (s.natoms if per_atom else 1.0)
                row[metric] = _stats(err)
                pooled.setdefault(metric, []).append(err.ravel())
        if K.FORCES in s.labels and s.masks[K.FORCES].any():
            err = -s.labels[K.FORCES][s.masks[K.FORCES]]
            row["force"] = _stats(err)
            pooled.setdefault("force", []).append(err.ravel())
        rows.append(row)
    rank = int(np.linalg.matrix_rank(np.array(sorted(compositions)))) if compositions else 0
    return {"systems": rows, "total": {m: _stats(np.concatenate(e)) for m, e in pooled.items()},
            "train_compositions": len(compositions), "train_composition_rank": rank}


def _fmt(x: float) -> str:
    """Three significant figures, trailing zeros kept (``49.0``, ``1.20``)."""
    return f"{x:#.3g}".rstrip(".")


def _short(name: str) -> str:
    """A system's path as shown in the tables: relative to ``examples/data`` when it is there."""
    path = Path(name)
    for root in (REPO / "examples" / "data", Path("examples/data")):
        try:
            return str(path.resolve().relative_to(root.resolve()) if path.is_absolute() else path.relative_to(root))
        except ValueError:
            continue
    return name


#: metric -> (column title, scale to the shown unit, shown unit, baseline name)
_ENERGY_COLUMNS = {"energy_per_atom": ("energy", 1e3, "meV/atom", "composition fit"),
                   "force": ("force", 1.0, "eV/A", "zero force"),
                   "virial_per_atom": ("virial", 1e3, "meV/atom", "composition fit")}


def head_baselines(model, recipe: dict, head: str, split: str = "valid") -> dict:
    """The head's errors (:func:`mtzoo.evaluation.evaluate`) and :func:`trivial_baselines` on the
    recipe's held-out systems ``split`` for ``head`` (``valid``: held-out frames; ``test``: held-out
    molecules), the baselines fitted on the head's training systems."""
    from mtzoo.data.readers import load_systems
    from mtzoo.evaluation import evaluate

    train = load_systems(recipe["input"]["training"]["data_dict"][head]["training_data"]["systems"])
    test = load_systems(recipe["heads"][head][split])
    return {"model": evaluate(model, test, head=head, progress=False),
            "baseline": trivial_baselines(train, test, list(model.type_map))}


def _compositions_note(results: dict[str, dict]) -> str:
    stats = {(r["baseline"]["train_compositions"], r["baseline"]["train_composition_rank"]) for r in results.values()}
    if all(n == rank for n, rank in stats):
        return (" (the training compositions are linearly independent, so this is each composition's "
                "mean training label)")
    return " (" + "; ".join(f"{n} training compositions, {rank} independent" for n, rank in sorted(stats)) + ")"


def baselines_markdown(results: dict[str, dict], units: dict) -> str:
    """The card's ``baselines`` block: every error of :func:`head_baselines` beside its baseline,
    per held-out system and over all of them, and the ratios model / baseline."""
    energy = {h: r for h, r in results.items() if "force" in r["model"]["total"] or "energy_per_atom" in r["model"]["total"]}
    tensor = {h: r for h, r in results.items() if h not in energy}
    out = [textwrap.fill(
           "Each error of the model (as `mtzoo test` gives it above) beside the same error of a predictor "
           "that ignores the geometry, on the same held-out frames, written as *model / baseline*. "
           "**Composition fit**: every per-frame label (energy, virial, dipole, polarizability; "
           "each component) is a sum of one value per element, fitted by least squares on the "
           "head's training frames" + _compositions_note(results) + ". **Zero force**: every "
           "force component 0 (its RMSE is the RMS force). "
           "Computed by `trivial_baselines` in `model_cards/recipes/build_zoo.py` "
           "(`--cards-only` rebuilds this block from the shipped model file).", 100)]
    flagged = []
    if energy:
        metrics = [m for m in _ENERGY_COLUMNS if any(m in r["model"]["total"] for r in energy.values())]
        cols = []
        for m in metrics:
            title, _, unit, base = _ENERGY_COLUMNS[m]
            cols += [f"{title} RMSE ({unit}): model / {base}", f"{title} MAE: model / {base}"]
        out += ["", "| head | held-out system | frames | " + " | ".join(cols) + " |",
                "|---|---|---|" + "---|" * len(cols)]
        for h, r in energy.items():
            rows = list(zip(r["model"]["systems"], r["baseline"]["systems"]))
            for label, mrow, brow, nf in [(_short(a["name"]), a, b, a["nframes"]) for a, b in rows] + [
                    ("**all**", r["model"]["total"], r["baseline"]["total"],
                     sum(a["nframes"] for a, _ in rows))]:
                cells = []
                for m in metrics:
                    scale = _ENERGY_COLUMNS[m][1]
                    if m in mrow and m in brow:
                        cells += [f"{_fmt(scale * mrow[m][k])} / {_fmt(scale * brow[m][k])}" for k in ("rmse", "mae")]
                        if label != "**all**" and mrow[m]["rmse"] >= brow[m]["rmse"]:
                            flagged.append(f"`{h}` {_ENERGY_COLUMNS[m][0]} on `{label}` "
                                           f"({_fmt(scale * mrow[m]['rmse'])} vs {_fmt(scale * brow[m]['rmse'])} "
                                           f"{_ENERGY_COLUMNS[m][2]} RMSE)")
                    else:
                        cells += ["", ""]
                out.append(f"| `{h}` | {label if label.startswith('**') else f'`{label}`'} | {nf} | " + " | ".join(cells) + " |")
    if tensor:
        out += ["", "| head | held-out system | frames | RMSE: model / composition fit | MAE: model / composition fit |",
                "|---|---|---|---|---|"]
        for h, r in tensor.items():
            key = next(k for k in ("dipole", "polarizability") if k in r["model"]["total"])
            unit = units.get(key, "label units")
            rows = list(zip(r["model"]["systems"], r["baseline"]["systems"]))
            for label, mrow, brow, nf in [(_short(a["name"]), a, b, a["nframes"]) for a, b in rows] + [
                    ("**all**", r["model"]["total"], r["baseline"]["total"], sum(a["nframes"] for a, _ in rows))]:
                if key not in mrow or key not in brow:
                    continue
                cells = [f"{_fmt(mrow[key][k])} / {_fmt(brow[key][k])} {unit}" for k in ("rmse", "mae")]
                if label != "**all**" and mrow[key]["rmse"] >= brow[key]["rmse"]:
                    flagged.append(f"`{h}` on `{label}` ({_fmt(mrow[key]['rmse'])} vs {_fmt(brow[key]['rmse'])} {unit} RMSE)")
                out.append(f"| `{h}` | {label if label.startswith('**') else f'`{label}`'} | {nf} | " + " | ".join(cells) + " |")
    ratios = []
    for h, r in results.items():
        parts = [f"{_ENERGY_COLUMNS.get(m, (m,))[0]} {r['model']['total'][m]['rmse'] / r['baseline']['total'][m]['rmse']:.2f}"
                 for m in r["model"]["total"] if m in r["baseline"]["total"]
                 and r["baseline"]["total"][m]["rmse"] > 0]
        if parts:
            ratios.append(f"`{h}` " + ", ".join(parts))
    out += ["", textwrap.fill("RMSE of the model over the baseline's, all held-out frames: " + "; ".join(ratios) + ".", 100)]
    out += ["", textwrap.fill("No better than the baseline (model RMSE >= baseline RMSE) on: "
                              + ("; ".join(flagged) if flagged else "no held-out system") + ".", 100)]
    return "\n".join(out)


def write_card_baselines(recipe: dict, model) -> dict:
    """Evaluate every head against its baselines and write the card's ``baselines`` block (held-out
    frames), and its ``baselines_molecules`` block when the recipe names held-out molecules."""
    card = REPO / recipe["model_card"]
    out = {}
    for split, block in (("valid", "baselines"), ("test", "baselines_molecules")):
        heads = [h for h in model.head_names() if recipe["heads"][h].get(split)]
        if not heads:
            continue
        out[split] = {h: head_baselines(model, recipe, h, split) for h in heads}
        card.write_text(_replace_block(card.read_text(), block, baselines_markdown(out[split], recipe["units"])))
    return out["valid"]


def rebuild_card(recipe_path: Path) -> None:
    """``--cards-only``: the card's ``baselines`` block from the shipped model file, without training.

    The model file must be the one ``index.json`` records (same sha256); nothing else is written.
    """
    from mtzoo.zoo.frozen import file_sha256, load_model

    recipe = json.loads(recipe_path.read_text())
    path = MODELS / f"{recipe['name']}.pth"
    index = json.loads((MODELS / "index.json").read_text())
    (entry,) = [e for e in index["models"] if e["name"] == recipe["name"]]
    if file_sha256(path) != entry["sha256"]:
        raise SystemExit(f"{path}: sha256 differs from index.json's; rebuild the model (without --cards-only)")
    write_card_baselines(recipe, load_model(path))
    print(f"[{recipe['name']}] wrote the baselines of {recipe['model_card']}", flush=True)


def _summary(payload: dict) -> dict:
    """Per-head overall RMSEs from ``mtzoo test --json``."""
    heads = payload.get("heads", {})
    out = {}
    for h, r in heads.items():
        overall = r.get("overall", r.get("total", {}))
        out[h] = overall if isinstance(overall, dict) else r
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="recipes to build (default: all)")
    p.add_argument("--steps", type=int, default=None, help="override numb_steps (quick trial builds)")
    p.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "mtzoo-zoo-runs"),
                   help="training runs go here (not shipped)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse a finished training run in the work folder (same numb_steps) instead of training again")
    p.add_argument("--cards-only", action="store_true",
                   help="no training: rebuild the cards' baselines block from the shipped model files and data")
    args = p.parse_args(argv)
    os.chdir(REPO)  # recipe data paths are relative to the repository root
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    recipes = sorted(RECIPES.glob("*.json"))
    if args.names:
        recipes = [RECIPES / f"{n}.json" for n in args.names]
    if args.cards_only:
        for r in recipes:
            rebuild_card(r)
        return 0
    index_path = MODELS / "index.json"
    for r in recipes:
        entry = build(r, args.steps, Path(args.workdir), reuse=args.reuse)
        # re-read the index after each (long) build: other builds may have run meanwhile
        index = json.loads(index_path.read_text()) if index_path.exists() else {"format_version": 1, "models": []}
        index["models"] = [e for e in index["models"] if e["name"] != entry["name"]] + [entry]
        index["models"].sort(key=lambda e: e["name"])
        index_path.write_text(json.dumps(index, indent=2) + "\n")
    print(f"wrote {index_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
