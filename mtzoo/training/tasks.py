"""Tasks of a training run: one head, its loss, its data and samplers, and its weight.

A single-task input is one task named ``default``; a multi-task input (``fitting_net_dict`` /
``loss_dict`` / ``data_dict`` / ``fitting_weight``) one task per key.  This module also builds
the model of an input (shared descriptor + one head per task), its statistics, and the model
of a run that starts from a frozen model (``--init-frz-model``).
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtzoo.config import ConfigError
from mtzoo.heads import HEADS
from mtzoo.model import Model, build_model
from mtzoo.training.data import BatchSampler, GraphSet, system_probs
from mtzoo.training.checkpoint import read_model_file
from mtzoo.training.loss import EnergyLoss


@dataclass
class Task:
    """Everything the trainer needs for one head."""

    name: str
    weight: float
    loss: object
    train: GraphSet
    sampler: BatchSampler
    valid: GraphSet | None = None
    valid_sampler: BatchSampler | None = None
    numb_btch: int = 1

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict(),
                "valid_sampler": None if self.valid_sampler is None else self.valid_sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])
        if self.valid_sampler is not None and state.get("valid_sampler"):
            self.valid_sampler.load_state_dict(state["valid_sampler"])


def make_loss(loss_cfg, start_lr: float, head):
    """Loss object of ``head`` for a loss config (``ener`` or ``tensor``)."""
    kind = getattr(loss_cfg, "type", "ener")
    if kind in ("ener", "ener_hess"):
        return EnergyLoss(loss_cfg, start_lr)
    if kind == "tensor":
        from mtzoo.training.loss import TensorLoss

        return TensorLoss.for_head(head, loss_cfg.pref, loss_cfg.pref_atomic)
    raise ConfigError(f"loss type '{kind}' is not supported yet")


def attach_losses(tasks: list[Task], cfg, model: Model) -> None:
    """Give every task the loss of its head (tensor losses need the head's selected types)."""
    losses = {tc.name: tc.loss for tc in cfg.tasks()}
    for t in tasks:
        t.loss = make_loss(losses[t.name], cfg.learning_rate.start_lr, model.heads[t.name])


def build_tasks(cfg, type_map, rcut: float, base: Path | None, seed: int | None = None, rank: int = 0,
                world_size: int = 1) -> list[Task]:
    """Load the data of every task and set up its samplers (seeds derived from ``training.seed``, or
    ``seed`` when given; the training samplers of data-parallel rank ``rank`` of ``world_size``)."""
    seed = cfg.training.seed if seed is None else seed
    tasks = []
    for i, tc in enumerate(cfg.tasks()):
        where = "training.training_data" if not cfg.multi_task else f"training.data_dict.{tc.name}.training_data"
        train = GraphSet.from_config(tc.training_data, type_map, rcut, base, where)
        probs = system_probs(tc.training_data.auto_prob, tc.training_data.sys_probs, train.nbatches(), where)
        s = None if seed is None else [seed, i]
        task = Task(tc.name, float(tc.weight), None, train,
                    BatchSampler(train, probs, s, rank, world_size, bool(tc.training_data.mixed_batch)))
        if tc.validation_data is not None:
            vwhere = where.replace("training_data", "validation_data")
            task.valid = GraphSet.from_config(tc.validation_data, type_map, rcut, base, vwhere)
            vp = system_probs(tc.validation_data.auto_prob, tc.validation_data.sys_probs, task.valid.nbatches(), vwhere)
            task.valid_sampler = BatchSampler(task.valid, vp, None if seed is None else [seed, i, 1],
                                              mixed=bool(tc.validation_data.mixed_batch))
            task.numb_btch = int(tc.validation_data.numb_btch)
        tasks.append(task)
    return tasks


def epoch_batches(task: Task) -> int:
    r"""Steps of one epoch of ``task``'s training data, DeePMD-kit 3.2's ``total_numb_batch``.

    .. math:: N = \Big\lceil \max_{i:\,p_i > 0} n_i / p_i \Big\rceil

    with :math:`n_i` = ``max(1, nframes_i // batch_size_i)`` the batches of system :math:`i` per
    pass of the sampler and :math:`p_i` its probability: after :math:`N` draws every system has
    been drawn :math:`n_i` times or more in expectation.  With ``mixed_batch``: one pass over
    all frames, :math:`\max(1, \lfloor \sum_i n_i / (N B) \rfloor)` batches of :math:`B` frames
    on :math:`N` processes.
    """
    if task.sampler.mixed:
        total = sum(s.nframes for s in task.train.systems)
        return max(1, total // (task.train.batch_size[0] * task.sampler.world_size))
    n = np.asarray(task.train.nbatches(), dtype=np.float64)
    if task.sampler.world_size > 1:  # global batches of world_size x batch_size frames
        n = np.asarray([max(1, s.nframes // (b * task.sampler.world_size))
                        for s, b in zip(task.train.systems, task.train.batch_size)], dtype=np.float64)
    p = np.asarray(task.sampler.probs, dtype=np.float64)
    return int(np.ceil(np.max(n[p > 0] / p[p > 0])))


def epoch_steps(tasks: list[Task], numb_epoch: float, steps_per_task_step: dict[str, float]) -> int:
    r"""``training.numb_steps`` of ``training.numb_epoch`` :math:`e`.

    .. math:: N_\text{steps} = \Big\lceil e \max_k N_k / q_k \Big\rceil

    over the trained tasks :math:`k`, with :math:`N_k` = :func:`epoch_batches` and
    :math:`1/q_k` = ``steps_per_task_step[k]`` (:meth:`TaskScheduler.steps_per_task_step`):
    every task sees :math:`e` epochs in expectation.  Single-task (:math:`q = 1`) this is
    DeePMD-kit 3.2's ``ceil(num_epoch * total_numb_batch)``.
    """
    per_task = {t.name: epoch_batches(t) for t in tasks if t.name in steps_per_task_step}
    return int(math.ceil(numb_epoch * max(n * steps_per_task_step[k] for k, n in per_task.items())))


def constructor_params(cls) -> set[str]:
    """Keyword parameters of ``cls.__init__``, following ``**kwargs`` up the class hierarchy."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        names |= {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n != "self"}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return names


def head_config(fitting_cfg, atom_exclude_types=()) -> dict:
    """Constructor arguments of the head for a fitting config (DeePMD keys the head does not take are dropped);
    the model-level ``atom_exclude_types`` is merged into a tensor head's ``exclude_types``."""
    d = fitting_cfg.to_dict()
    if atom_exclude_types:
        d["exclude_types"] = sorted(set(d.get("exclude_types", [])) | {int(t) for t in atom_exclude_types})
    kind = d.get("type", "ener")
    if kind not in HEADS:
        raise ConfigError(f"fitting_net type '{kind}' is not supported yet (available: {sorted(HEADS)})")
    params = constructor_params(HEADS[kind])
    out = {k: v for k, v in d.items() if k in params and k not in ("ntypes", "dim_descrpt", "dim_rot", "mixed_types")}
    out["type"] = kind
    return out


def resolve_sel(desc: dict, tasks: list[Task], ntypes: int) -> dict:
    r"""Descriptor config with every ``sel: "auto[:factor]"`` resolved as DeePMD-kit's ``update_sel``
    does (hybrid members each within their own cutoff).

    .. math:: \mathrm{sel}_t = 4 \lceil \lfloor f\, n_t \rfloor / 4 \rceil

    with :math:`n_t` the most neighbours of type :math:`t` inside ``rcut`` around any atom of the
    training data (for the attention descriptors, one number: the most neighbours of any type) and
    the factor :math:`f` (default 1.1).
    """
    desc = dict(desc)
    if "list" in desc:  # hybrid
        desc["list"] = [resolve_sel(m, tasks, ntypes) for m in desc["list"]]
        return desc
    sel = desc.get("sel")
    if not isinstance(sel, str):
        return desc
    from mtzoo.descriptors.hybrid import neighbor_counts

    factor = float(sel.split(":", 1)[1]) if ":" in sel else 1.1
    mixed = isinstance(desc.get("type"), str) and desc["type"] in ("se_atten", "dpa1", "se_atten_v2")
    best = np.zeros(1 if mixed else ntypes, dtype=np.int64)
    for t in tasks:
        for k in range(len(t.train.systems)):
            best = np.maximum(best, neighbor_counts(t.train.graphs(k), ntypes, float(desc["rcut"]), mixed))
    up4 = [4 * ((int(factor * b) + 3) // 4) for b in best]  # DeePMD-kit's wrap_up_4(int(ratio * n))
    desc["sel"] = up4[0] if mixed else up4
    return desc


def model_from_input(cfg, tasks: list[Task]) -> Model:
    """Shared descriptor of ``cfg.model`` and one head per task (random weights)."""
    mcfg = cfg.model
    desc = resolve_sel(mcfg.descriptor.to_dict(), tasks, mcfg.ntypes)
    if "scalar_last_layer" in desc and desc["scalar_last_layer"] is None:
        # e3nn_mace: the last layer's equivariant outputs are read only by tensor heads
        desc["scalar_last_layer"] = all(tc.fitting.default_loss != "tensor" for tc in cfg.tasks())
    heads = {tc.name: head_config(tc.fitting, mcfg.atom_exclude_types) for tc in cfg.tasks()}
    return build_model({"type_map": list(mcfg.type_map), "descriptor": desc, "heads": heads})


def compute_statistics(model: Model, cfg, tasks: list[Task], heads: list[str] | None = None,
                       descriptor: bool = True) -> None:
    """Descriptor statistics from every task's data; each head's output statistics from its own data.

    In data-parallel runs the statistics use ``data_stat_nbatch`` *global* batches (``world_size``
    times the per-process ``batch_size``), so N processes with batch B see the frames of one
    process with batch N x B."""
    if descriptor:
        graphs = [g for t in tasks for g in t.train.stat_graphs(cfg.model.data_stat_nbatch * t.sampler.world_size)]
        model.descriptor.compute_stats(graphs, protection=cfg.model.data_stat_protect)
    for t in tasks:
        if heads is not None and t.name not in heads:
            continue
        head = model.heads[t.name]
        if hasattr(head, "compute_output_stats"):
            head.compute_output_stats(t.train.systems, model.type_map)


def warn_untrained(tasks: list[Task]) -> None:
    for t in tasks:
        if t.weight == 0:
            warnings.warn(f"head '{t.name}' has no fitting_weight (or weight 0) and will not be trained", stacklevel=2)


def model_from_frozen(frozen_state: dict, cfg, new_heads: list[str]) -> Model:
    """Model of a run that starts from a frozen model: its descriptor and old heads with their weights,
    plus the new heads of ``cfg`` (random weights).  ``descriptor.trainable`` and per-head
    ``trainable`` flags follow ``cfg``."""
    old_cfg = frozen_state["model_config"]
    desc = dict(old_cfg["descriptor"])
    desc["trainable"] = bool(cfg.model.descriptor.trainable)
    heads = {}
    for tc in cfg.tasks():
        if tc.name in new_heads:
            heads[tc.name] = head_config(tc.fitting, cfg.model.atom_exclude_types)
        else:
            heads[tc.name] = {**old_cfg["heads"][tc.name], "trainable": head_config(tc.fitting).get("trainable", True)}
    model = build_model({"type_map": old_cfg["type_map"], "descriptor": desc, "heads": heads})
    keep = {k: v for k, v in frozen_state["state_dict"].items()
            if k.startswith("descriptor.") or any(k.startswith(f"heads.{h}.") for h in heads if h not in new_heads)}
    missing, unexpected = model.load_state_dict(keep, strict=False)
    bad = [k for k in missing if not any(k.startswith(f"heads.{h}.") for h in new_heads)]
    if bad or unexpected:
        raise ValueError(f"frozen model does not fit the input: missing {bad[:5]}, unexpected {unexpected[:5]}")
    return model


def load_frozen_state(path) -> dict:
    """Read a frozen model file for ``--init-frz-model`` (weights_only)."""
    state = read_model_file(path, "--init-frz-model: model file")
    if not (state.get("metadata") or {}).get("input"):
        raise ValueError(f"{path}: the model file does not record the input it was trained from; "
                         "--init-frz-model needs it to complete the new input")
    # a compressed model (mtzoo compress) trains from its nets: same weights, tables dropped
    state["model_config"]["descriptor"].pop("compress", None)
    return state
