"""Build the pretrained models of the zoo from their recipes.

For every recipe ``model_cards/recipes/<name>.json`` (or those named on the command line):
train the DeePMD-kit input it holds (data paths relative to the repository root), freeze the
united model into ``mtzoo/zoo/models/<name>.pth``, record its SHA-256, heads, elements, cutoff
and check energies (every head on :func:`mtzoo.zoo.registry.check_frame`) in
``mtzoo/zoo/models/index.json``, run ``mtzoo test`` per head on the recipe's validation data
and paste the command and its output into the model card (between the
``<!-- build_zoo:... -->`` markers).

Run from anywhere::

    OMP_NUM_THREADS=1 python model_cards/recipes/build_zoo.py [NAME ...] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

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
    import numpy as np
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
    # mtzoo test per head on its own validation data
    cmd = [sys.executable, "-m", "mtzoo", "test", "-m", str(out.relative_to(REPO)), "-s"]
    cmd += [f"{h}={p}" for h in model.head_names() for p in recipe["heads"][h]["valid"]]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    shown = "mtzoo test " + " ".join(cmd[4:])
    json_out = subprocess.run(cmd + ["--json"], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    entry["test"] = {"command": shown, "result": _summary(json.loads(json_out.stdout))}
    card = REPO / recipe["model_card"]
    text = card.read_text()
    text = _replace_block(text, "test", f"```console\n$ OMP_NUM_THREADS=1 {shown}\n{proc.stdout.rstrip()}\n```")
    text = _replace_block(text, "file", "| | |\n|---|---|\n"
                                        f"| file | `mtzoo/zoo/models/{out.name}` ({entry['size_bytes']} bytes) |\n"
                                        f"| sha256 | `{entry['sha256']}` |\n"
                                        f"| training steps | {entry['training_steps']} |")
    rows = [f"| `{h}` | energy | {e:.8f} eV |" for h, e in energies.items()]
    rows += [f"| `{h}` | {k} | {np.array2string(np.asarray(v), precision=6, separator=', ')} |".replace("\n", " ")
             for h, t in tensors.items() for k, v in t.items()]
    text = _replace_block(text, "check", f"Frame: `check_frame('{kind}')`, float64.\n\n"
                                         "| head | output | value |\n|---|---|---|\n" + "\n".join(rows))
    card.write_text(text)
    print(proc.stdout, flush=True)
    return entry


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
    args = p.parse_args(argv)
    os.chdir(REPO)  # recipe data paths are relative to the repository root
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    recipes = sorted(RECIPES.glob("*.json"))
    if args.names:
        recipes = [RECIPES / f"{n}.json" for n in args.names]
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
