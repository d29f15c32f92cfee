"""Fine-tuning a pretrained (united) model on new data: add a head, train, save a new united model.

Three strategies, all run by the ordinary :class:`~mtzoo.training.trainer.Trainer` started from the
base model (``init_frz_model``), with the completed input written to the work folder:

``"multitask"`` (hard parameter sharing)
    The new head is added and trained together with the old heads, which keep training on
    their *replay* data (the base model's recorded ``data_dict``), each with ``fitting_weight``
    ``replay_weight`` (the new head has weight 1).  The descriptor is shared and trained, so
    the old heads stay consistent with it.  The result has every head.
``"freeze"`` (default: needs no replay data)
    The descriptor is frozen (``trainable: false``) and only the new head trains on the new
    data (optionally only some of its layers: ``trainable_layers``); no replay.  The old heads
    are copied unchanged into the result (the descriptor is bit-identical, so they stay valid).
``"full"``
    Descriptor and new head train on the new data only.  The old heads would no longer match
    the changed descriptor, so the result has the new head only.

``init_from=HEAD`` starts the new head from an existing head: by default (``head_mode
"correction"``) as a frozen copy of it plus a correction net whose output starts at zero, so the
new head first predicts exactly the old level plus the refitted bias and learns the difference
between the levels; with ``head_mode "copy"`` the copied net itself trains.  The weights are
copied after the model is built, before training, and from that head's per-type energy bias shifted by a
least-squares fit to the residuals of its predictions on the new data (DeePMD-kit's
"change-by-statistic"; compositions the new data do not span keep the old bias).  Without
``init_from`` the new head's bias is fitted on the new data alone (``compute_output_stats``).

Steps, learning rate, batch size and the loss follow from the data and the strategy when not
given (:func:`choose_defaults`, logged and recorded in the model's metadata); without validation
data a part of the training frames is held out, and the weights with the lowest validation
energy error are kept (``training.best_metric``).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

from mtzoo import keys as K

STRATEGIES = ("multitask", "freeze", "full")

__all__ = ["STRATEGIES", "finetune"]


def _resolve_replay(paths: list[str], head: str, roots: list[Path], extra: list[Path] = ()) -> list[str]:
    out = []
    for p in paths:
        q = Path(p).expanduser()
        cands = ([q] if q.is_absolute() else [r / q for r in roots]) + [c for c in extra if c != q]
        found = next((c for c in cands if c.exists()), None)
        if found is None:
            raise FileNotFoundError(
                f"replay data of head '{head}' not found: {p} (looked in {[str(c) for c in cands]}); "
                "give replay_data={head: paths} (CLI --replay-data HEAD=PATH), or replay_root= (the folder the "
                "base model's data paths are relative to), or use strategy 'freeze' or 'full' (no replay)")
        out.append(str(found.resolve()))
    return out


def _replay_weights(replay_weight, heads: list[str]) -> dict[str, float]:
    """``{old head: weight}`` from a number (every head) or a mapping (missing heads: 0)."""
    if isinstance(replay_weight, dict):
        unknown = sorted(set(replay_weight) - set(heads))
        if unknown:
            raise KeyError(f"replay_weight names heads {unknown} that the base model lacks (its heads: {heads})")
        return {h: float(replay_weight.get(h, 0.0)) for h in heads}
    return {h: float(replay_weight) for h in heads}


def _data_section(systems, batch_size=1, valid: bool = False) -> dict:
    d = {"systems": [str(Path(s).resolve()) for s in ([systems] if isinstance(systems, (str, Path)) else systems)],
         "batch_size": batch_size}
    if valid:
        d["numb_btch"] = 1
    return d


HEAD_MODES = ("correction", "copy")


def choose_defaults(n_train: int, strategy: str, head_mode: str, energy_only: bool, n_weights: float = 1.0,
                    steps: int | None = None, lr: float | None = None, batch_size: int | None = None) -> dict:
    """Training settings of a fine-tuning run from the data and the strategy, with the reasons.

    Given values are kept; the others follow from ``n_train`` (frames of the new level):

    * ``batch_size`` = clip(n_train // 10, 1, 8): about ten batches per epoch on small sets;
    * ``steps`` = clip(200 epochs of the new data, 1000, 8000), times ``n_weights`` (the sum of
      the task weights over the new head's 1) so that the new head gets its 200 epochs under
      replay too;
    * ``lr``: 1e-3 when only a new net learns from zero (``correction`` head, or ``freeze``);
      1e-4 when pretrained weights move (``copy`` with ``multitask``/``full``): a large step
      wipes out what pre-training gave;
    * the loss: energies only (constant prefactor 1, DeePMD's schedule is for force training)
      when the new data has no forces, else the template head's loss.

    Returns ``{"batch_size", "steps", "lr", "stop_lr", "loss", "why": {key: reason}}``.
    """
    import math

    why = {}
    if batch_size is None:
        batch_size = int(min(8, max(1, n_train // 10)))
        why["batch_size"] = f"{n_train} training frames -> clip(n // 10, 1, 8)"
    if steps is None:
        per_epoch = max(1, math.ceil(n_train / batch_size))
        steps = int(min(8000, max(1000, 200 * per_epoch)) * n_weights)
        why["steps"] = f"200 epochs of {per_epoch} batches, clipped to [1000, 8000], x {n_weights:g} (task weights)"
    if lr is None:
        moving = head_mode == "copy" and strategy in ("multitask", "full")
        lr = 1e-4 if moving else 1e-3
        why["lr"] = ("pretrained weights move (copy head, %s): 1e-4" % strategy if moving else
                     f"only new weights learn from zero ({head_mode} head, {strategy}): 1e-3")
    loss = None
    if energy_only:
        loss = {"type": "ener", "start_pref_e": 1.0, "limit_pref_e": 1.0, "start_pref_f": 0.0, "limit_pref_f": 0.0}
        why["loss"] = "no force labels in the new data: energy term only, constant prefactor"
    return {"batch_size": batch_size, "steps": steps, "lr": lr, "stop_lr": lr / 100, "loss": loss, "why": why}


def finetune(base, data_train, data_valid=None, head_name: str = "new", strategy: str = "freeze",
             init_from: str | None = None, steps: int | None = None, replay_weight: float | dict[str, float] = 1.0,
             lr: float | None = None, seed: int = 1, workdir: str | Path = "finetune", output: str | Path | None = None,
             trainable_layers: list[bool] | None = None, replay_root: str | Path | None = None,
             progress: bool | None = False, log=None, head_mode: str | None = None, valid_fraction: float = 0.2,
             batch_size: int | None = None, correction_neuron=None, replay_data: dict | None = None,
             keep_best: bool = True, loss: dict | str | None = None, fit: str | None = None,
             pair_correction: dict | bool | None = None) -> Path:
    """Fine-tune ``base`` on new data with a new head; return the path of the new united model.

    Parameters
    ----------
    base : str or Path
        A zoo name (:func:`mtzoo.list_pretrained`) or a model file; it must record its training
        input (models written by ``mtzoo freeze`` and the zoo do).
    data_train, data_valid : path or list of paths
        DeePMD systems (or parent folders / ASE files) of the new level of theory.  Without
        ``data_valid``, ``valid_fraction`` of every training system's frames (seeded) is held out
        for validation.
    head_name : str
        Name of the new head (must not be a head of ``base``).
    strategy : {"freeze", "multitask", "full"}
        See the module docstring.  Default ``"freeze"``: needs no replay data.
    init_from : str or None
        Start the new head from this head: its weights and its energy bias shifted to the new data
        (see :func:`_shifted_bias`).  None: fresh weights, bias fitted on the new data.
    head_mode : {"correction", "copy"} or None
        With ``init_from``: ``"correction"`` (default) keeps a frozen copy of the old head and adds
        a zero-initialised correction net (``correction_neuron``), so the new head starts as the old
        level plus the refitted bias and learns the difference; ``"copy"`` trains the copied net.
    steps, lr, batch_size : int, float, int or None
        None: chosen from the data and the strategy by :func:`choose_defaults` (logged, and
        recorded in the model's metadata).  The learning rate decays exponentially to ``lr / 100``.
    replay_weight : float or dict of str to float
        ``"multitask"`` only: ``fitting_weight`` of the old heads (the new head has 1): one number
        for every old head, or ``{head: weight}``; heads a dict leaves out get weight 0.
    replay_data : dict of str to path or list of paths, or None
        ``"multitask"`` only: replay systems per old head, instead of those the base model records.
    loss : dict, "template" or None
        The new head's loss section; ``"template"``: the ``init_from`` (or first) head's; None:
        chosen by :func:`choose_defaults` (energies only when the new data has no forces).
    fit : {"ridge", "sgd"} or None
        How the correction net learns.  ``"ridge"``: its output layer in closed form by ridge
        regression with k-fold cross-validation over every training frame
        (:func:`mtzoo.zoo.ridge.fit_correction_ridge`), no gradient steps and no held-out split;
        ``"sgd"``: the trainer (``steps``, ``lr``, held-out validation).  None: ``"ridge"`` for a
        ``correction`` head of strategy ``"freeze"`` on energies only when neither ``steps`` nor
        ``lr`` is given (logged), else ``"sgd"``.
    correction_neuron : list of int or None
        Hidden widths of the correction net; None: ``[]`` (linear in the descriptor) with
        ``fit="ridge"``, ``[32, 32]`` with ``"sgd"``.
    pair_correction : dict, bool or None
        A two-body term in the correction head (:mod:`mtzoo.heads.pair`: Gaussians of the pair
        distance per element pair, cut off at the model's ``rcut``); a dict overrides its keys.
        None: on with ``fit="ridge"``, where the cross-validation then chooses between the
        descriptor features, the pair features and both (logged); off with ``"sgd"``.
    keep_best : bool
        Keep the weights with the lowest validation energy RMSE of the new head (checked 40 times
        during training) instead of the last ones.
    workdir, output, trainable_layers, replay_root, seed
        Run folder; model file (default ``workdir/model.pth``); per-layer ``trainable`` flags of the
        new head (``"freeze"``, ``copy`` mode); folder the base model's relative replay paths are
        resolved against (tried before the recorded and the model file's folders); seed.

    Returns
    -------
    Path
        The new model file; :func:`mtzoo.load_pretrained` reads it.
    """
    from mtzoo.config import parse_input
    from mtzoo.data.readers import load_systems
    from mtzoo.training.tasks import load_frozen_state
    from mtzoo.training.trainer import Trainer
    from mtzoo.zoo.registry import resolve_model_path

    say = log if log is not None else (lambda *a: None)
    head_mode = _check_modes(strategy, head_mode, init_from, trainable_layers)
    path = resolve_model_path(base)
    state = load_frozen_state(path)
    old = parse_input(state["metadata"]["input"], source=f"{path} (recorded input)")
    old_tasks = {t.name: t for t in old.tasks()}
    heads = list(state["model_config"]["heads"])
    if head_name in heads:
        raise ValueError(f"new head '{head_name}' is already a head of {path} (its heads: {heads}); choose another name")
    if init_from is not None and init_from not in heads:
        raise KeyError(f"init_from: head '{init_from}' not in {path} (available: {heads})")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    # the new data, how the new head learns, and a validation split when none is given
    train_paths = [data_train] if isinstance(data_train, (str, Path)) else list(data_train)
    train_systems = load_systems(train_paths)
    energy_only = not any(s.has_label(K.FORCES) for s in train_systems)
    fit = _choose_fit(fit, strategy, head_mode, energy_only, steps, lr, say)
    if correction_neuron is None:
        correction_neuron = [] if fit == "ridge" else [32, 32]
    valid_paths = None if data_valid is None else ([data_valid] if isinstance(data_valid, (str, Path)) else list(data_valid))
    if valid_paths is None and keep_best and fit == "sgd":
        train_paths, valid_paths, train_systems = _hold_out(train_paths, train_systems, valid_fraction, seed,
                                                            workdir, say)

    template = old_tasks[init_from if init_from is not None else heads[0]]
    fitting = _new_fitting(template, seed, head_mode, correction_neuron, pair_correction, fit, trainable_layers,
                           state["model_config"])
    weights_all = {head_name: 1.0}
    if strategy == "multitask":
        weights_all.update(_replay_weights(replay_weight, heads))
    chosen = choose_defaults(sum(s.nframes for s in train_systems), strategy, head_mode, energy_only,
                             sum(weights_all.values()), 0 if fit == "ridge" else steps, lr, batch_size)
    steps, lr = chosen["steps"], chosen["lr"]
    if loss is None:
        loss = chosen["loss"] if chosen["loss"] is not None else template.loss.to_dict()
    elif loss == "template":
        loss = template.loss.to_dict()
        chosen["why"].pop("loss", None)
    for key, reason in chosen["why"].items():
        if fit == "ridge" and key in ("lr", "batch_size", "steps"):
            continue  # no gradient steps: these settings do not act
        say(f"finetune: {key} = {chosen[key] if key != 'loss' else 'energy only'} ({reason})")
    replay = {h: _replay_systems(h, old_tasks[h], path, replay_root, replay_data, state["metadata"])
              for h in heads} if strategy == "multitask" else {}
    raw = _finetune_input(path, head_name, strategy, head_mode, init_from, fitting, loss, chosen, seed, train_paths,
                          valid_paths, keep_best, {h: (old_tasks[h], replay[h], weights_all[h]) for h in replay})
    (workdir / "finetune_input.json").write_text(json.dumps(raw, indent=2) + "\n")
    # the trainer's per-line log only with a progress display; finetune's own choices go to ``log``
    trainer = Trainer(copy.deepcopy(raw), workdir, init_frz_model=path, progress=progress,
                      log=print if progress else (lambda *a: None))
    if init_from is not None:  # fitting weights from the old head, then its energy bias shifted to the new data
        _start_from_head(trainer.model.heads[head_name], head_name, init_from, state["state_dict"], path, train_systems)
    ridge = None
    if fit == "ridge":
        from mtzoo.zoo.ridge import fit_correction_ridge

        ridge = fit_correction_ridge(trainer.model, head_name, train_systems, seed=seed)
        by = ", ".join(f"{k} {v * 1000:.1f}" for k, v in ridge["cv_rmse_by_features"].items())
        say(f"finetune: ridge fit of the correction on {ridge['frames']} frames: features {ridge['features']} "
            f"({ridge['n_features']}; cross-validated rmse by feature set, meV/frame: {by}), "
            f"lambda {ridge['lambda']:.3g}, cv rmse {ridge['cv_rmse'] * 1000:.1f} meV/frame, "
            f"train rmse {ridge['train_rmse'] * 1000:.1f} meV/frame")
    result = trainer.run()
    meta = {"base": str(path), "strategy": strategy, "new_head": head_name, "init_from": init_from,
            "head_mode": head_mode, "steps": int(steps), "lr": lr, "batch_size": chosen["batch_size"],
            "choices": chosen["why"], "best": result.get("best"), "fit": fit, "ridge": ridge,
            "replay_weight": replay_weight if strategy == "multitask" else None}
    return _save_result(trainer, result, path, state, strategy, head_name, heads, meta,
                        Path(output) if output is not None else workdir / "model.pth", say)


def _check_modes(strategy: str, head_mode: str | None, init_from: str | None, trainable_layers) -> str:
    """Check the strategy and head mode; returns the head mode (default: ``"correction"`` with
    ``init_from``, else ``"copy"``)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy '{strategy}' (available: {list(STRATEGIES)})")
    head_mode = head_mode if head_mode is not None else ("correction" if init_from is not None else "copy")
    if head_mode not in HEAD_MODES:
        raise ValueError(f"unknown head_mode '{head_mode}' (available: {list(HEAD_MODES)})")
    if head_mode == "correction" and init_from is None:
        raise ValueError("head_mode 'correction' needs init_from (the head it corrects)")
    if trainable_layers is not None and (strategy != "freeze" or head_mode != "copy"):
        raise ValueError("trainable_layers applies to strategy 'freeze' with head_mode 'copy' only")
    return head_mode


def _choose_fit(fit: str | None, strategy: str, head_mode: str, energy_only: bool, steps, lr, say) -> str:
    """``fit`` as given (checked), or its default: ``"ridge"`` for the correction of a frozen model
    on energies only when neither ``steps`` nor ``lr`` is given, else ``"sgd"`` (logged)."""
    if fit is None:
        fit = "ridge" if (strategy == "freeze" and head_mode == "correction" and energy_only and steps is None
                          and lr is None) else "sgd"
        say(f"finetune: fit = {fit} (" + ("correction of a frozen model on energies only: the output layer in closed "
                                          "form, ridge with 5-fold cross-validation over every frame" if fit == "ridge"
                                          else "gradient steps") + ")")
    if fit not in ("ridge", "sgd"):
        raise ValueError(f"fit must be 'ridge' or 'sgd', got {fit!r}")
    if fit == "ridge" and (strategy != "freeze" or head_mode != "correction"):
        raise ValueError("fit 'ridge' needs strategy 'freeze' and head_mode 'correction' (a frozen descriptor and "
                         "old head, so that the energy is linear in the correction's output layer)")
    return fit


def _hold_out(train_paths: list, train_systems: list, valid_fraction: float, seed: int, workdir: Path, say):
    """Hold ``valid_fraction`` of every training system's frames out (seeded), written under
    ``workdir/split``; returns ``(train_paths, valid_paths, train_systems)`` (unchanged, with
    ``valid_paths`` None, when nothing is held out)."""
    from mtzoo.data.writers import split_frames, write_deepmd

    tr, va = split_frames(train_systems, valid_fraction, seed)
    if not va:
        return train_paths, None, train_systems
    split = workdir / "split"
    train_paths = [str(write_deepmd(s, split / "train" / f"{k:02d}")) for k, s in enumerate(tr)]
    valid_paths = [str(write_deepmd(s, split / "valid" / f"{k:02d}")) for k, s in enumerate(va)]
    say(f"finetune: no validation data given: {sum(s.nframes for s in va)} of "
        f"{sum(s.nframes for s in va) + sum(s.nframes for s in tr)} frames held out "
        f"(valid_fraction {valid_fraction}, seed {seed}) in {split}")
    return train_paths, valid_paths, tr


def _new_fitting(template, seed: int, head_mode: str, correction_neuron, pair_correction, fit: str, trainable_layers,
                 model_config: dict) -> dict:
    """The new head's fitting section: the template head's, seeded; for a ``correction`` head
    frozen with a correction net (and, by default with ``fit="ridge"``, a pair term)."""
    fitting = template.fitting.to_dict()
    fitting.pop("layer_name", None)
    fitting["seed"] = int(seed)
    if head_mode == "correction":
        fitting.update(trainable=False, correction_neuron=[int(n) for n in correction_neuron])
        if pair_correction is None:
            pair_correction = fit == "ridge"
        if pair_correction is not False:
            fitting["pair_correction"] = {"rcut": _model_rcut(model_config),
                                          **(pair_correction if isinstance(pair_correction, dict) else {})}
    elif pair_correction:
        raise ValueError("pair_correction needs head_mode 'correction' (it corrects an old head)")
    if trainable_layers is not None:
        fitting["trainable"] = [bool(t) for t in trainable_layers]
    return fitting


def _finetune_input(path: Path, head_name: str, strategy: str, head_mode: str, init_from, fitting: dict, loss: dict,
                    chosen: dict, seed: int, train_paths, valid_paths, keep_best: bool, replay: dict) -> dict:
    """The trainer's input: the new head (its data, loss and weight 1) and, with ``replay``
    (``{old head: (task, systems, weight)}``, strategy ``"multitask"``), the old heads on their
    replay data; the descriptor frozen for ``"freeze"``; exponential learning-rate decay."""
    steps = chosen["steps"]
    new_data = {"training_data": _data_section(train_paths, chosen["batch_size"])}
    if valid_paths is not None:
        new_data["validation_data"] = _data_section(valid_paths, chosen["batch_size"], valid=True)
    data_dict, weights, fittings = {head_name: new_data}, {head_name: 1.0}, {}
    for h, (task, systems, weight) in replay.items():
        fittings[h] = {}
        data_dict[h] = {"training_data": {**task.training_data.to_dict(), "systems": systems}}
        weights[h] = weight
    fittings[head_name] = fitting
    training = {"data_dict": data_dict, "fitting_weight": weights, "numb_steps": int(steps), "seed": int(seed),
                "disp_file": "lcurve.out", "disp_freq": max(1, steps // 40), "save_freq": max(1, int(steps))}
    if keep_best and valid_paths is not None:
        training.update(best_metric="rmse_e", best_task=head_name)
    return {
        "_comment": f"mtzoo finetune: strategy {strategy}, base {path}, new head {head_name}"
                    + (f" ({head_mode} of {init_from})" if init_from else ""),
        "_comment_finetune_choices": {k: v for k, v in chosen.items() if k != "loss"},
        "model": {"descriptor": {"trainable": strategy != "freeze"}, "fitting_net_dict": fittings},
        "learning_rate": {"type": "exp", "start_lr": chosen["lr"], "stop_lr": chosen["stop_lr"],
                          "decay_steps": max(1, steps // 10)},
        "loss_dict": {head_name: loss},
        "training": training,
    }


def _start_from_head(head, head_name: str, init_from: str, old_state: dict, path: Path, train_systems) -> None:
    """Copy ``init_from``'s fitting weights into the new ``head`` and set its energy bias to the old
    one shifted to the new data (:func:`_shifted_bias`)."""
    import torch

    src = f"heads.{init_from}."
    own = head.state_dict()
    weights_in = {k[len(src):]: v for k, v in old_state.items() if k.startswith(src) and not k.endswith("bias_atom_e")}
    missing = sorted(set(own) - set(weights_in) - {k for k in own if k.endswith("bias_atom_e")}
                     - {k for k in own if k.startswith(("corrections.", "pair."))})
    extra = sorted(set(weights_in) - set(own))
    if missing or extra:
        raise ValueError(f"init_from '{init_from}': its fitting net does not fit head '{head_name}' "
                         + (f"(missing {missing[:3]})" if missing else
                            f"(the old head has {extra[:3]}, the new one not: give the same correction_neuron / "
                            "pair_correction)"))
    with torch.no_grad():
        for k, v in weights_in.items():
            own[k].copy_(v)
        if "bias_atom_e" in own:
            own["bias_atom_e"].copy_(torch.as_tensor(
                _shifted_bias(path, init_from, train_systems, old_state[src + "bias_atom_e"])))


def _save_result(trainer, result: dict, path: Path, state: dict, strategy: str, head_name: str, heads: list[str],
                 meta: dict, output: Path, say) -> Path:
    """Write the new model: the best-validation (or last) weights; with ``"freeze"`` the base
    model's heads unchanged beside the new one, with the inputs merged."""
    from mtzoo.model import build_model, model_config
    from mtzoo.training.checkpoint import load_checkpoint
    from mtzoo.zoo.frozen import load_model, save_model

    best = trainer.best_checkpoint()
    if best is None:  # the last weights as checkpoints hold them (the moving average with training.enable_ema)
        trainer.model.load_state_dict(trainer.model_state())
    else:  # the best-validation weights, not the last ones
        trainer.model.load_state_dict(load_checkpoint(best)["model"])
        say(f"finetune: kept the weights of step {result['best']['step']} (validation rmse_e "
            f"{result['best']['value']:.4g} eV/atom, the lowest of the run)")
    trained = trainer.model.eval()
    if strategy == "freeze":  # old heads unchanged next to the new one
        base_model = load_model(path, uncompress=True)
        cfg = model_config(base_model)
        cfg["heads"][head_name] = model_config(trained)["heads"][head_name]
        model = build_model(cfg)
        sd = dict(base_model.state_dict())
        sd.update({k: v for k, v in trained.state_dict().items() if k.startswith(f"heads.{head_name}.")})
        model.load_state_dict(sd)
        record = _merged_input(state["metadata"]["input"], trainer.cfg.to_dict(), head_name)
    else:
        model = trained
        if strategy == "full":
            warnings.warn(f"strategy 'full' changes the descriptor: the old heads {heads} are not kept", stacklevel=3)
        record = trainer.cfg.to_dict()
    return save_model(model, output, {"step": trainer.step, "input": record, "source_heads": model.head_names(),
                                      "finetune": meta})


def _model_rcut(model_config: dict) -> float:
    """The model's cut-off from its config (the largest member's for a hybrid)."""
    desc = model_config["descriptor"]
    return float(max(m["rcut"] for m in desc["list"]) if "list" in desc else desc["rcut"])


def _replay_systems(head: str, task, model_path: Path, replay_root, replay_data, metadata: dict) -> list[str]:
    """Replay systems of ``head``.

    ``replay_data[head]`` when given; else each recorded path of the base model's input, looked up
    (relative ones) in ``replay_root``, the folder of the base model's input file (recorded at
    training), the working directory, the model file's folder and the mtzoo checkout, and then the
    absolute path the data had at training (recorded); the error lists every place tried.
    """
    if replay_data is not None and head in replay_data:
        given = replay_data[head]
        paths = [Path(p) for p in ([given] if isinstance(given, (str, Path)) else given)]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"replay_data of head '{head}': not found: {missing}")
        return [str(p.resolve()) for p in paths]
    recorded = metadata.get("data_paths") or {}
    roots = [Path(replay_root)] if replay_root is not None else []
    if recorded.get("input_dir"):
        roots.append(Path(recorded["input_dir"]))
    roots += [Path.cwd(), Path(model_path).resolve().parent, Path(__file__).resolve().parents[2]]
    absolute = (recorded.get("training") or {}).get(head) or []
    systems = list(task.training_data.systems)
    out = []
    for k, p in enumerate(systems):
        extra = [Path(absolute[k])] if k < len(absolute) and len(absolute) == len(systems) else []
        out.extend(_resolve_replay([p], head, roots, extra))
    return out


def _shifted_bias(path: Path, init_from: str, systems, old_bias):
    r"""Energy bias of a new head started from ``init_from``: the old bias plus a least-squares shift.

    DeePMD-kit's "change-by-statistic" bias adjustment: with :math:`C` the ``[nframes, ntypes]``
    atom counts of the new training frames, :math:`E` their energies and :math:`\hat E` the
    predictions of the base model's ``init_from`` head,

    .. math:: b_\mathrm{new} = b_\mathrm{old} + \arg\min_{\delta} \|C\delta - (E - \hat E)\|^2

    (minimum-norm solution).  Directions of composition space that the new frames do not span
    keep the old head's bias, so a few frames of a few molecules do not ruin the energies of
    other compositions (a from-scratch refit would leave those arbitrary).  Returns the
    ``[ntypes]`` bias (numpy, float64).
    """
    import numpy as np

    from mtzoo.evaluation import predict_system
    from mtzoo.heads.energy import energy_bias_from_systems, undetermined_compositions
    from mtzoo.zoo.frozen import load_model

    base = load_model(path, uncompress=True)
    counts = [np.bincount(s.model_types(list(base.type_map)), minlength=len(base.type_map))
              for s in systems if K.ENERGY in s.labels and s.masks[K.ENERGY].any()]
    msg = undetermined_compositions(np.array(counts), base.type_map) if counts else None
    if msg is not None:
        warnings.warn(f"finetune: {msg}", stacklevel=4)
    shift = energy_bias_from_systems(systems, base.type_map,
                                     predict=lambda s: predict_system(base, s, head=init_from)["energy"])
    old = np.asarray(old_bias, dtype=np.float64)
    return old if shift is None else old + shift


def _merged_input(base_input: dict, run_input: dict, head: str) -> dict:
    """The base model's input with the new head's fitting, loss and data added (the record of a 'freeze' result)."""
    from mtzoo.config import parse_input

    base = parse_input(base_input)
    run = parse_input(run_input)
    new = {t.name: t for t in run.tasks()}[head]
    out = {k: copy.deepcopy(v) for k, v in base_input.items() if k not in ("model", "loss", "loss_dict", "training")}
    model = {k: v for k, v in base_input["model"].items() if k not in ("fitting_net", "fitting_net_dict")}
    model["fitting_net_dict"] = {t.name: t.fitting.to_dict() for t in base.tasks()} | {head: new.fitting.to_dict()}
    training = {k: v for k, v in base_input["training"].items()
                if k not in ("training_data", "validation_data", "data_dict", "fitting_weight")}

    def data(t):
        d = {"training_data": t.training_data.to_dict()}
        if t.validation_data is not None:
            d["validation_data"] = t.validation_data.to_dict()
        return d

    training["data_dict"] = {t.name: data(t) for t in base.tasks()} | {head: data(new)}
    training["fitting_weight"] = {t.name: t.weight for t in base.tasks()} | {head: 1.0}
    out.update(model=model, loss_dict={t.name: t.loss.to_dict() for t in base.tasks()} | {head: new.loss.to_dict()},
               training=training)
    return parse_input(out, source="<merged input>").to_dict()
