"""Fine-tuning a pretrained (united) model on new data: add a head, train, save a new united model.

Three strategies, all run by the ordinary :class:`~mtzoo.training.trainer.Trainer` started from the
base model (``init_frz_model``), with the completed input written to the work folder:

``"multitask"`` (default; hard parameter sharing)
    The new head is added and trained together with the old heads, which keep training on
    their *replay* data (the base model's recorded ``data_dict``), each with ``fitting_weight``
    ``replay_weight`` (the new head has weight 1).  The descriptor is shared and trained, so
    the old heads stay consistent with it.  The result has every head.
``"freeze"``
    The descriptor is frozen (``trainable: false``) and only the new head trains on the new
    data (optionally only some of its layers: ``trainable_layers``); no replay.  The old heads
    are copied unchanged into the result (the descriptor is bit-identical, so they stay valid).
``"full"``
    Descriptor and new head train on the new data only.  The old heads would no longer match
    the changed descriptor, so the result has the new head only.

``init_from=HEAD`` starts the new head from the weights of an existing head (copied after the
model is built, before training) and from that head's per-type energy bias shifted by a
least-squares fit to the residuals of its predictions on the new data (DeePMD-kit's
"change-by-statistic"; compositions the new data do not span keep the old bias).  Without
``init_from`` the new head's bias is fitted on the new data alone (``compute_output_stats``).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

STRATEGIES = ("multitask", "freeze", "full")

__all__ = ["STRATEGIES", "finetune"]


def resolve_model_path(base, what: str = "base model") -> Path:
    """Model file of ``base`` (zoo name, checksum verified, or a path); ``what`` names it in the error."""
    from mtzoo.zoo.registry import _index, get_entry, verify

    if isinstance(base, str) and base in [e["name"] for e in _index()]:
        return verify(get_entry(base))
    p = Path(base)
    if not p.exists():
        raise FileNotFoundError(f"{what} '{base}' is neither a pretrained model of the zoo "
                                f"(available: {[e['name'] for e in _index()]}) nor an existing file")
    return p


def _resolve_replay(paths: list[str], head: str, roots: list[Path]) -> list[str]:
    out = []
    for p in paths:
        q = Path(p).expanduser()
        cands = [q] if q.is_absolute() else [r / q for r in roots]
        found = next((c for c in cands if c.exists()), None)
        if found is None:
            raise FileNotFoundError(
                f"replay data of head '{head}' not found: {p} (looked in {[str(c) for c in cands]}); "
                "give replay_root= (the folder the base model's data paths are relative to), "
                "or use strategy 'freeze' or 'full' (no replay)")
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


def finetune(base, data_train, data_valid=None, head_name: str = "new", strategy: str = "multitask",
             init_from: str | None = None, steps: int = 1000, replay_weight: float = 1.0, lr: float = 1e-3,
             seed: int = 1, workdir: str | Path = "finetune", output: str | Path | None = None,
             trainable_layers: list[bool] | None = None, replay_root: str | Path | None = None,
             progress: bool | None = False, log=None) -> Path:
    """Fine-tune ``base`` on new data with a new head; return the path of the new united model.

    Parameters
    ----------
    base : str or Path
        A zoo name (:func:`mtzoo.list_pretrained`) or a model file; it must record its training
        input (models written by ``mtzoo freeze`` and the zoo do).
    data_train, data_valid : path or list of paths
        DeePMD systems (or parent folders / ASE files) of the new level of theory.
    head_name : str
        Name of the new head (must not be a head of ``base``).
    strategy : {"multitask", "freeze", "full"}
        See the module docstring.
    init_from : str or None
        Start the new head from this head's weights and energy bias (the bias shifted to the new
        data, see the module docstring); None: fresh weights, bias fitted on the new data.
    steps, lr, seed : int, float, int
        Training steps, start learning rate (exponential decay to ``lr / 100``), seed.
    replay_weight : float or dict of str to float
        ``"multitask"`` only: ``fitting_weight`` of the old heads (the new head has 1): one number
        for every old head, or ``{head: weight}``; heads a dict leaves out get weight 0 (kept
        in the result but not trained, with a warning: the descriptor moves under them).
    workdir : str or Path
        Training run folder (``finetune_input.json``, ``out.json``, ``lcurve.out``, checkpoints).
    output : str or Path or None
        Model file to write (default ``workdir/model.pth``).
    trainable_layers : list of bool or None
        ``"freeze"`` only: per-layer ``trainable`` flags of the new head (default: all).
    replay_root : str or Path or None
        Folder the base model's relative replay-data paths are resolved against (default: the
        working directory, then the mtzoo source checkout).

    Returns
    -------
    Path
        The new model file; :func:`mtzoo.load_pretrained` reads it.
    """
    import torch

    from mtzoo.config import parse_input
    from mtzoo.model import build_model, model_config
    from mtzoo.training.tasks import load_frozen_state
    from mtzoo.training.trainer import Trainer
    from mtzoo.zoo.frozen import load_model, save_model

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy '{strategy}' (available: {list(STRATEGIES)})")
    if trainable_layers is not None and strategy != "freeze":
        raise ValueError("trainable_layers applies to strategy 'freeze' only")
    path = resolve_model_path(base)
    state = load_frozen_state(path)
    old = parse_input(state["metadata"]["input"], source=f"{path} (recorded input)")
    old_tasks = {t.name: t for t in old.tasks()}
    heads = list(state["model_config"]["heads"])
    if head_name in heads:
        raise ValueError(f"new head '{head_name}' is already a head of {path} (its heads: {heads}); choose another name")
    if init_from is not None and init_from not in heads:
        raise KeyError(f"init_from: head '{init_from}' not in {path} (available: {heads})")
    template = old_tasks[init_from if init_from is not None else heads[0]]
    fitting = template.fitting.to_dict()
    fitting.pop("layer_name", None)
    fitting["seed"] = int(seed)
    if trainable_layers is not None:
        fitting["trainable"] = [bool(t) for t in trainable_layers]
    new_data = {"training_data": _data_section(data_train)}
    if data_valid is not None:
        new_data["validation_data"] = _data_section(data_valid, valid=True)

    fittings, losses = {head_name: fitting}, {head_name: template.loss.to_dict()}
    data_dict, weights = {head_name: new_data}, {head_name: 1.0}
    if strategy == "multitask":
        roots = [Path(replay_root)] if replay_root is not None else [Path.cwd(), Path(__file__).resolve().parents[2]]
        for h in heads:
            t = old_tasks[h]
            fittings[h] = {}
            data_dict[h] = {"training_data": {**t.training_data.to_dict(),
                                              "systems": _resolve_replay(list(t.training_data.systems), h, roots)}}
            weights[h] = _replay_weights(replay_weight, heads)[h]
        fittings = {**{h: fittings[h] for h in heads}, head_name: fitting}
    raw = {
        "_comment": f"mtzoo finetune: strategy {strategy}, base {path}, new head {head_name}"
                    + (f" initialised from {init_from}" if init_from else ""),
        "model": {"descriptor": {"trainable": strategy != "freeze"}, "fitting_net_dict": fittings},
        "learning_rate": {"type": "exp", "start_lr": lr, "stop_lr": lr / 100, "decay_steps": max(1, steps // 10)},
        "loss_dict": losses,
        "training": {"data_dict": data_dict, "fitting_weight": weights, "numb_steps": int(steps), "seed": int(seed),
                     "disp_file": "lcurve.out", "disp_freq": max(1, steps // 10), "save_freq": int(steps)},
    }
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "finetune_input.json").write_text(json.dumps(raw, indent=2) + "\n")
    kwargs = {} if log is None else {"log": log}
    trainer = Trainer(copy.deepcopy(raw), workdir, init_frz_model=path, progress=progress, **kwargs)
    if init_from is not None:  # fitting weights from the old head, then its energy bias shifted to the new data
        src = f"heads.{init_from}."
        own = trainer.model.heads[head_name].state_dict()
        weights_in = {k[len(src):]: v for k, v in state["state_dict"].items()
                      if k.startswith(src) and not k.endswith("bias_atom_e")}
        missing = sorted(set(own) - set(weights_in) - {k for k in own if k.endswith("bias_atom_e")})
        if missing:
            raise ValueError(f"init_from '{init_from}': its fitting net does not fit head '{head_name}' "
                             f"(missing {missing[:3]})")
        with torch.no_grad():
            for k, v in weights_in.items():
                own[k].copy_(v)
            if "bias_atom_e" in own:
                own["bias_atom_e"].copy_(torch.as_tensor(
                    _shifted_bias(path, init_from, data_train, state["state_dict"][src + "bias_atom_e"])))
    trainer.run()
    trained = trainer.model.eval()
    meta = {"base": str(path), "strategy": strategy, "new_head": head_name, "init_from": init_from,
            "steps": int(steps), "replay_weight": replay_weight if strategy == "multitask" else None}
    output = Path(output) if output is not None else workdir / "model.pth"
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
            warnings.warn(f"strategy 'full' changes the descriptor: the old heads {heads} are not kept", stacklevel=2)
        record = trainer.cfg.to_dict()
    return save_model(model, output, {"step": trainer.step, "input": record, "source_heads": model.head_names(),
                                      "finetune": meta})


def _shifted_bias(path: Path, init_from: str, data_train, old_bias):
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

    from mtzoo.data.readers import load_systems
    from mtzoo.evaluation import predict_system
    from mtzoo.heads.energy import energy_bias_from_systems
    from mtzoo.zoo.frozen import load_model

    base = load_model(path, uncompress=True)
    systems = load_systems([data_train] if isinstance(data_train, (str, Path)) else list(data_train))
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
