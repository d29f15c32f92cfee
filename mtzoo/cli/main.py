"""Command line: ``mtzoo train | freeze | compress | test | finetune | export-lammps | model-devi | simplify |
zoo list | zoo show``.

Errors in user input (config, data, files) print one line ``mtzoo: error: ...`` and exit 2;
no traceback.  ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

USER_ERRORS = (ValueError, FileNotFoundError, KeyError, PermissionError, IsADirectoryError, NotADirectoryError,
               FloatingPointError, TypeError)


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got '{text}'") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def _train(args) -> None:
    from mtzoo.training.trainer import train

    result = train(args.input, workdir=args.workdir, restart=args.restart, init_frz_model=args.init_frz_model,
                   progress=False if args.no_progress else None, allow_input_change=args.allow_input_change,
                   device=args.device)
    from mtzoo.training.distributed import from_env

    if not from_env().main:  # torchrun: one report, from rank 0
        return
    valid = result.get("valid") or {}
    per_step = result.get("s_per_step_median")
    timing = f" ({per_step * 1000:.1f} ms/step median)" if per_step is not None else " (no step taken)"
    if valid and isinstance(next(iter(valid.values())), dict):  # multi-task: one line per task
        print(f"trained to step {result.get('step')} in {result['wall_s']:.1f} s{timing}")
        for name, m in valid.items():
            print(f"  {name}: " + ", ".join(f"{k} {v:.3e}" for k, v in sorted(m.items())))
        return
    print(f"trained to step {result.get('step')} in {result['wall_s']:.1f} s{timing}"
          + (f"; validation rmse_e {valid.get('rmse_e', float('nan')):.3e} eV/atom, "
             f"rmse_f {valid.get('rmse_f', float('nan')):.3e} eV/A" if valid else ""))


def _freeze(args) -> None:
    from mtzoo.zoo.frozen import freeze

    path = freeze(args.checkpoint, args.output, head=args.head)
    print(f"saved frozen model to {path}")


def _compress(args) -> None:
    from mtzoo.zoo.compress import compress

    info = compress(args.model, args.output, rmin=args.rmin, tol=args.tol)
    print(f"compressed {info['descriptor']} ({sum(info['bins'])} table bins, largest deviation "
          f"{info['max_deviation']:.2e}) -> {info['output']}")


def _labelled(head, systems) -> bool:
    keys = {k for o in head.outputs for k in (o.name, o.atom_name)}
    if any(o.differentiable for o in head.outputs):
        from mtzoo import keys as K

        keys |= {K.FORCES, K.VIRIAL}
    return any(k in s.labels and s.masks[k].any() for s in systems for k in keys)


def _is_zoo_name(name: str) -> bool:
    if Path(name).exists():
        return False
    from mtzoo.zoo.registry import list_pretrained

    return any(e["name"] == name for e in list_pretrained())


def _load_model_or_hint(name: str, load_model):
    """``load_model(name)``; a missing file's error lists the zoo's names (a mistyped zoo name lands here)."""
    try:
        return load_model(name)
    except FileNotFoundError as exc:
        from mtzoo.zoo.registry import list_pretrained

        names = [e["name"] for e in list_pretrained()]
        raise FileNotFoundError(f"{exc}; not a zoo name either (zoo: {', '.join(names) or 'none installed'})") from None


def _test(args) -> None:
    from mtzoo.data.readers import load_systems
    from mtzoo.evaluation import evaluate, format_table
    from mtzoo.zoo.frozen import load_model
    from mtzoo.zoo.registry import load_pretrained

    model = load_pretrained(args.model) if _is_zoo_name(args.model) else _load_model_or_hint(args.model, load_model)
    shared, per_head = [], {}
    for item in args.system:
        head, sep, path = item.partition("=")
        if sep and head in model.heads:
            per_head.setdefault(head, []).append(path)
        elif sep and not Path(item).exists():
            raise KeyError(f"-s {item}: head '{head}' not in this model (available: {model.head_names()})")
        else:
            shared.append(item)
    if args.head:
        names = [model.resolve_head(args.head)]
    elif per_head and not shared:
        names = list(per_head)
    else:
        names = model.head_names()
    shared_systems = load_systems(shared) if shared else []
    results = {}
    for name in names:
        systems = shared_systems + (load_systems(per_head[name]) if name in per_head else [])
        if len(names) > 1 and not _labelled(model.heads[name], systems):
            print(f"head {name}: the systems given carry none of its labels; skipped", file=sys.stderr)
            continue
        results[name] = evaluate(model, systems, head=name, nframes=args.numb_test, batch_size=args.batch_size)
        results[name]["model"] = str(args.model)
    if not results:
        raise ValueError(f"none of the heads {names} has labels in the given systems")
    if args.plot:
        from mtzoo.plot import parity_plot

        by_head = {n: shared_systems + (load_systems(per_head[n]) if n in per_head else []) for n in results}
        print(f"parity plot: {parity_plot(model, by_head, args.plot, nframes=args.numb_test)}", file=sys.stderr)
    payload = next(iter(results.values())) if len(names) == 1 else {"model": str(args.model), "heads": results}
    if args.json == "-":
        print(json.dumps(payload, indent=2))
        return
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    print("\n\n".join(format_table(r) for r in results.values()))


def _replay_arg(text: str):
    """``--replay-weight``: a number, or ``head=w,head=w``."""
    if "=" not in text:
        return float(text)
    out = {}
    for item in text.split(","):
        head, _, w = item.partition("=")
        try:
            out[head.strip()] = float(w)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected HEAD=NUMBER, got '{item}'") from None
    return out


def _finetune(args) -> None:
    from mtzoo.zoo.finetune import finetune

    replay_data = {}
    for item in args.replay_data or []:
        head, sep, p = item.partition("=")
        if not sep or not head or not p:
            raise ValueError(f"--replay-data {item}: expected HEAD=PATH")
        replay_data.setdefault(head, []).append(p)
    path = finetune(args.model, args.train, args.valid, head_name=args.head, strategy=args.strategy,
                    init_from=args.init_from, steps=args.steps, replay_weight=args.replay_weight, lr=args.lr,
                    seed=args.seed, workdir=args.workdir, output=args.output, replay_root=args.replay_root,
                    progress=None, head_mode=args.head_mode, valid_fraction=args.valid_fraction,
                    batch_size=args.batch_size, replay_data=replay_data or None,
                    pair_correction=False if args.no_pair_correction else None,
                    log=lambda msg: print(msg, file=sys.stderr))
    print(f"saved fine-tuned model to {path} (strategy {args.strategy}, new head '{args.head}')")


def _export_lammps(args) -> None:
    from mtzoo.lammps import export_lammps

    m = export_lammps(args.model, head=args.head, dtype=args.dtype, output=args.output, compress=args.compress)
    print(f"saved LAMMPS ML-IAP model (head '{m.head}', {args.dtype}, cutoff {2 * m.rcutfac:g} A) to {args.output}; "
          f"use: pair_style mliap unified {args.output} 0 / pair_coeff * * {' '.join(m.element_types)}")
    if Path(args.output).suffix in (".pt", ".pth"):
        print("note: LAMMPS reads *.pt with torch.load; with torch >= 2.6 and a LAMMPS whose loader does not pass "
              "weights_only=False, run LAMMPS with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (or use a .pkl name)",
              file=sys.stderr)


def _zoo_list(args) -> None:
    from mtzoo.zoo.registry import list_pretrained

    entries = list_pretrained()
    if not entries:
        print("no pretrained models installed")
        return
    rows = [("name", "version", "elements", "cutoff", "heads")]
    rows += [(e["name"], e["version"], ",".join(e["elements"]), f"{e['cutoff']:g}",
              ", ".join(h["name"] for h in e["heads"])) for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _zoo_show(args) -> None:
    from mtzoo.zoo.registry import get_entry

    e = get_entry(args.name)
    print(f"{e['name']} {e['version']}: {e['description']}")
    print(f"  file: {e['file']} ({e.get('size_bytes', '?')} bytes), sha256 {e['sha256']}")
    print(f"  elements: {', '.join(e['elements'])}; cutoff {e['cutoff']:g} A; descriptor {e['descriptor']['type']}")
    print("  heads:")
    for h in e["heads"]:
        units = ", ".join(f"{k} {v}" for k, v in h.get("units", {}).items())
        print(f"    {h['name']}: {h['level_of_theory']} ({units})")
    for key, what in (("test", "held-out frames"), ("test_molecules", "held-out molecules")):
        for h, r in (e.get(key) or {}).get("result", {}).items():
            print(f"  test {h} ({what}): "
                  + ", ".join(f"{k} RMSE {v['rmse']:.3e}" for k, v in r.items() if isinstance(v, dict)))
    print(f"  model card: {e['model_card']}; licence {e.get('license', '?')}")


def _model_devi(args) -> None:
    from mtzoo.data.readers import load_systems
    from mtzoo.simplify.model_devi import model_devi, write_model_devi_out
    from mtzoo.zoo.frozen import load_model

    if args.head and len(args.models) != 1:
        raise ValueError("--head takes one model (-m M) whose heads form the committee; with several models, "
                         "give each model's head as M:HEAD")
    if args.head:
        model = load_model(args.models[0])
        committee = [(model, h) for h in args.head]
    else:
        committee = []
        for item in args.models:
            path, sep, head = item.rpartition(":") if ":" in item and not Path(item).exists() else (item, "", "")
            committee.append((load_model(path), head or None))
    systems = load_systems(args.system)
    devis = model_devi(committee, systems, batch_size=args.batch_size)
    out = write_model_devi_out(devis, args.output, [s.name for s in systems])
    worst = max(float(d[:, 4].max()) for d in devis if len(d))
    print(f"model deviation of {len(committee)} members on {sum(len(d) for d in devis)} frames of {len(systems)} "
          f"systems -> {out} (largest max_devi_f {worst:.4e} eV/A)")


def _simplify(args) -> None:
    from mtzoo.simplify.loop import format_summary, simplify

    workdir = args.workdir if args.workdir is not None else "."
    summary = simplify(args.input, workdir, log=lambda msg: print(msg, file=sys.stderr))
    print(format_summary(summary))


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line ``mtzoo: error: ...`` (exit 2) for bad arguments (subcommands too)."""

    def error(self, message: str):
        print(f"mtzoo: error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    from mtzoo._version import __version__

    p = _Parser(prog="mtzoo", description="Multi-fidelity machine-learned interatomic potentials")
    p.add_argument("--version", action="version", version=f"mtzoo {__version__}",
                   help="print the version of mtzoo and exit")
    p.add_argument("--debug", action="store_true", help="show tracebacks (default: a one-line error)")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch threads (default: OMP_NUM_THREADS or torch's)")
    sub = p.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_freeze_compress(sub)
    _add_test(sub)
    _add_finetune(sub)
    _add_lammps_devi(sub)
    _add_simplify_zoo(sub)
    return p


def _add_train(sub) -> None:
    """The sub-commands ``mtzoo train``."""
    t = sub.add_parser("train", help="train from a DeePMD-kit input.json")
    t.add_argument("input", help="DeePMD-kit input file (input.json); relative system paths are resolved against "
                                 "its folder, then the working directory")
    t.add_argument("-o", "--workdir", default=".",
                   help="run folder (lcurve.out, checkpoints, out.json; default: the current folder)")
    t.add_argument("--restart", default=None,
                   help="resume from this checkpoint (default: none, start at step 0)")
    t.add_argument("--init-frz-model", default=None,
                   help="start from this frozen model: descriptor {} and old heads {} are completed from it "
                        "(default: none)")
    t.add_argument("--allow-input-change", action="store_true",
                   help="with --restart: accept an input whose model section or type_map differs from the "
                        "checkpoint's (the checkpoint's model is kept; the change is warned and out.json records it; "
                        "default: such an input is an error)")
    t.add_argument("--device", default=None,
                   help="torch device (cpu, cuda, cuda:1, ...); overrides training.device; default: cuda when "
                        "available, else cpu")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bar (default: a progress bar when stderr is a terminal)")
    t.set_defaults(func=_train)


def _add_freeze_compress(sub) -> None:
    """The sub-commands ``mtzoo freeze`` and ``mtzoo compress``."""
    f = sub.add_parser("freeze", help="freeze a checkpoint into one model file")
    f.add_argument("-c", "--checkpoint", default=".", help="checkpoint file or run folder (default: .)")
    f.add_argument("-o", "--output", default="frozen_model.pth", help="model file to write (default: frozen_model.pth)")
    g = f.add_mutually_exclusive_group()
    g.add_argument("--united-model", action="store_true", help="keep every head (the default)")
    g.add_argument("--head", default=None, help="keep only this head (default: keep every head)")
    f.set_defaults(func=_freeze)
    c = sub.add_parser("compress", help="tabulate the embedding nets of a model for faster inference")
    c.add_argument("-i", "--input", dest="model", required=True, help="model file or zoo name (required)")
    c.add_argument("-o", "--output", default="compressed_model.pth",
                   help="model file to write (default: compressed_model.pth)")
    c.add_argument("--rmin", type=_positive_float, default=0.5,
                   help="shortest distance (A) the tables cover; closer pairs use the nets (default 0.5)")
    c.add_argument("--tol", type=_positive_float, default=1e-10,
                   help="largest deviation of a table from its net per embedding channel, checked at seven points "
                        "inside every bin; a smaller value gives more bins (default 1e-10)")
    c.set_defaults(func=_compress)


def _add_test(sub) -> None:
    """The sub-commands ``mtzoo test``."""
    s = sub.add_parser("test", help="errors of a model on labelled data")
    s.add_argument("-m", "--model", required=True,
                   help="zoo name, frozen model (.pth), checkpoint, or DeePMD .dp/.yaml (required)")
    s.add_argument("-s", "--system", nargs="+", required=True,
                   help="DeePMD systems (or parent folders) or ASE files; HEAD=PATH evaluates head HEAD on PATH "
                        "(without --head, every head is evaluated on the plain paths and on its own HEAD=PATH ones; "
                        "required)")
    s.add_argument("--head", default=None,
                   help="evaluate only this head (default: every head, or only the heads named in HEAD=PATH when "
                        "every system is given so; heads whose labels the systems lack are skipped)")
    s.add_argument("-n", "--numb-test", type=_positive_int, default=None, help="frames per system (default: all)")
    s.add_argument("--batch-size", type=_positive_int, default=8, help="frames per model call (default 8)")
    s.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="also write the results as JSON to FILE; without FILE, print JSON instead of the table "
                        "(default: the table only)")
    s.add_argument("--plot", default=None, metavar="FILE.png",
                   help="parity plots (prediction vs label) per head (default: none)")
    s.set_defaults(func=_test)


def _add_finetune(sub) -> None:
    """The sub-commands ``mtzoo finetune``."""
    ft = sub.add_parser("finetune", help="fine-tune a model (zoo name or file) on new data with a new head")
    ft.add_argument("-m", "--model", required=True, help="base model: zoo name or model file (required)")
    ft.add_argument("--train", nargs="+", required=True, help="training systems of the new head (required)")
    ft.add_argument("--valid", nargs="+", default=None,
                    help="validation systems of the new head (default: --valid-fraction of the training frames is "
                         "held out, except with the closed-form ridge fit, which cross-validates on every frame)")
    ft.add_argument("--head", required=True, help="name of the new head (required)")
    ft.add_argument("--strategy", choices=["multitask", "freeze", "full"], default="freeze",
                    help="freeze: descriptor frozen, only the new head trains (default; no replay data needed); "
                         "multitask: old heads keep training on their replay data; full: everything trains on "
                         "the new data only")
    ft.add_argument("--init-from", default=None,
                    help="start the new head from this head (its weights and shifted bias; default: none, a fresh "
                         "head with its bias fitted to the new data)")
    ft.add_argument("--head-mode", choices=["correction", "copy"], default=None,
                    help="with --init-from: correction (default) = frozen copy of the old head + a zero-initialised "
                         "correction net (learns the difference between the levels); copy = train the copied net")
    ft.add_argument("--no-pair-correction", action="store_true",
                    help="leave the two-body term out of the correction head (default: off, i.e. the term is "
                         "included with the closed-form ridge fit and the cross-validation decides whether it is used)")
    ft.add_argument("--steps", type=_positive_int, default=None,
                    help="training steps (default: chosen from the data and the strategy, and logged: 200 epochs of "
                         "the new data, clipped to 1000-8000; a correction head of a frozen model on energy-only "
                         "data takes no steps: its output layer is fitted in closed form by ridge regression, and "
                         "giving --steps or --lr trains it by gradient steps instead)")
    ft.add_argument("--lr", type=_positive_float, default=None,
                    help="start learning rate, decayed exponentially to lr/100 (default: chosen from the strategy, "
                         "and logged: 1e-3 when only a new or correction net learns, 1e-4 when pretrained weights "
                         "train)")
    ft.add_argument("--batch-size", type=_positive_int, default=None,
                    help="frames per step (default: chosen from the data, and logged: clip(frames // 10, 1, 8))")
    ft.add_argument("--valid-fraction", type=float, default=0.2,
                    help="without --valid: fraction of the training frames held out to keep the best weights "
                         "(default 0.2)")
    ft.add_argument("--replay-data", nargs="+", default=None, metavar="HEAD=PATH",
                    help="multitask: replay systems of an old head (default: the paths the base model records)")
    ft.add_argument("--replay-weight", type=_replay_arg, default=1.0,
                    help="fitting_weight of the old heads (multitask): one number for all, or HEAD=W[,HEAD=W...] "
                         "(heads left out get 0: not trained; default 1 for every old head)")
    ft.add_argument("--replay-root", default=None,
                    help="folder the base model's replay data paths are relative to, tried first (default: the "
                         "folder of the base model's training input, the working directory, the model file's folder, "
                         "then the absolute paths recorded at training)")
    ft.add_argument("--seed", type=int, default=1, help="seed of the held-out split, the new head's weights and the training (default 1)")
    ft.add_argument("-w", "--workdir", default="finetune", help="run folder (default: finetune)")
    ft.add_argument("-o", "--output", default="finetuned_model.pth", help="model file to write (default: finetuned_model.pth)")
    ft.set_defaults(func=_finetune)


def _add_lammps_devi(sub) -> None:
    """The sub-commands ``mtzoo export-lammps`` and ``mtzoo model-devi``."""
    lx = sub.add_parser("export-lammps", help="write one energy head as a LAMMPS ML-IAP unified model")
    lx.add_argument("-m", "--model", required=True, help="zoo name or model file (required)")
    lx.add_argument("--head", default=None, help="energy head to export (default: the only head of a single-head model)")
    lx.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                    help="precision of the model inside LAMMPS (default: float64)")
    lx.add_argument("--compress", action="store_true",
                    help="tabulate the embedding nets (se_e2_a/se_e2_r; faster, same results to ~1e-9; default: off)")
    lx.add_argument("-o", "--output", default="model.mliap.pkl",
                    help="file for pair_style mliap unified: *.pt/*.pth are read by torch.load, other names by "
                         "pickle (default: model.mliap.pkl, which every LAMMPS version reads)")
    lx.set_defaults(func=_export_lammps)
    md = sub.add_parser("model-devi", help="model deviation of a committee of models (DeePMD-kit's model_devi.out)")
    md.add_argument("-m", "--models", nargs="+", required=True,
                    help="committee: two or more model files (MODEL:HEAD picks a head of a multi-head file), or one "
                         "file with --head (required)")
    md.add_argument("--head", nargs="+", default=None,
                    help="with one model: its heads that predict the same level form the committee (default: "
                         "none, one member per model file)")
    md.add_argument("-s", "--system", nargs="+", required=True,
                    help="DeePMD systems (or parent folders) or ASE files to evaluate (required)")
    md.add_argument("-o", "--output", default="model_devi.out",
                    help="file to write, DeePMD-kit's layout (default: model_devi.out)")
    md.add_argument("--batch-size", type=_positive_int, default=8, help="frames per model call (default 8)")
    md.set_defaults(func=_model_devi)


def _add_simplify_zoo(sub) -> None:
    """The sub-commands ``mtzoo simplify`` and ``mtzoo zoo``."""
    sp = sub.add_parser("simplify", help="DP-GEN's simplify loop: relabel only the frames a committee disagrees on")
    sp.add_argument("input", help="simplify.json (DP-GEN's simplify keys; docs/simplify.md)")
    sp.add_argument("-o", "--workdir", default=None,
                    help="run folder (iter.*, record.simplify; a run found there is resumed; default: the current "
                         "folder)")
    sp.set_defaults(func=_simplify)
    z = sub.add_parser("zoo", help="pretrained models shipped with mtzoo")
    zsub = z.add_subparsers(dest="zoo_command", required=True)
    zl = zsub.add_parser("list", help="list the pretrained models")
    zl.set_defaults(func=_zoo_list)
    zs = zsub.add_parser("show", help="details of one pretrained model")
    zs.add_argument("name", help="zoo name (see mtzoo zoo list)")
    zs.set_defaults(func=_zoo_show)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # the command owns its process: opt in to the allocator settings (nn/common.py: keep_freed_memory)
    os.environ.setdefault("MTZOO_MALLOC_TUNING", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    elif "OMP_NUM_THREADS" in os.environ:
        torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))
    try:
        args.func(args)
    except USER_ERRORS as exc:
        if args.debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"mtzoo: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
