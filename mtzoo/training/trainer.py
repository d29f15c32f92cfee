r"""Trainer for DeePMD-kit input files, single-task and multi-task.

One step: the task scheduler picks the task(s) (stochastic by default: one task drawn with
probability proportional to its ``fitting_weight``), each draws a batch of its own data
(:class:`~mtzoo.training.data.BatchSampler`), the model evaluates that task's head with
``create_graph=True`` (forces enter the loss), the loss has prefactors scheduled by the
learning rate, the gradients of the trainable parameters are clipped
(``training.gradient_max_norm``), and one optimizer step updates the shared descriptor and
that head (other heads get no gradient, so neither they nor their optimizer state change).
Every ``disp_freq`` steps (and at step 1) a line of DeePMD's ``lcurve.out`` layout is
written with validation metrics on ``numb_btch`` batches; every ``save_freq`` steps a
checkpoint is written atomically.  ``restart`` resumes from a checkpoint with the
optimizer, sampler, schedule, moving-average and RNG states, so the continued run equals
an uninterrupted one.

The training recipe (keys in :mod:`mtzoo.config.optim` and
:class:`~mtzoo.config.train.TrainingConfig`; docs/training.md):

* optimizer ``Adam`` (L2 ``weight_decay``) or ``AdamW`` (decoupled, default
  :math:`\lambda = 10^{-3}`), optional ``amsgrad`` (:mod:`mtzoo.training.optim`);
* learning rate ``exp``, ``cosine`` or ``plateau`` after an optional linear warmup
  (:mod:`mtzoo.training.lr`); ``plateau`` reads the lcurve validation value of its
  ``metric`` at every line.  The loss prefactors follow :math:`\eta(t)/\eta_0` whatever
  the schedule;
* ``training.enable_ema``: :math:`\bar\theta \leftarrow d\bar\theta + (1-d)\theta` after
  every step (:mod:`mtzoo.training.ema`); validation, ``best_metric``, ``plateau`` and the
  checkpoints' ``model`` (hence ``mtzoo freeze``) use :math:`\bar\theta`, the checkpoints
  keep :math:`\theta` as ``raw_model`` for ``--restart``;
* ``training.numb_epoch`` instead of ``numb_steps``:
  :math:`\lceil e \max_k N_k / q_k\rceil` steps (:func:`~mtzoo.training.tasks.epoch_steps`).
"""

from __future__ import annotations

import io
import json
import math
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from mtzoo import keys as K
from mtzoo.config import ConfigError, complete_input, load_input, parse_input
from mtzoo.data.graph import collate
from mtzoo.model import Predictor, build_model, model_config
from mtzoo.nn.common import keep_freed_memory
from mtzoo.progress import Progress
from mtzoo.training import distributed
from mtzoo.training.checkpoint import atomic_save, atomic_write_text, load_checkpoint, save_checkpoint, versions
from mtzoo.training.ema import ParameterEMA
from mtzoo.training.lcurve import lcurve_header, lcurve_line, remove_stale_temporaries, truncate_lcurve
from mtzoo.training.lr import make_schedule
from mtzoo.training.optim import clip_gradients, make_optimizer
from mtzoo.training.scheduler import TaskScheduler
from mtzoo.training.tasks import (Task, attach_losses, build_tasks, compute_statistics, epoch_steps, load_frozen_state,
                               model_from_frozen, model_from_input, warn_untrained)


class StepLoss(torch.nn.Module):
    """The loss of one optimizer step, :math:`\\sum_k w_k L_k`, over the step's (task, batch, weight)
    items, as one module call: what :class:`~torch.nn.parallel.DistributedDataParallel` wraps
    (one forward per backward, whatever the task schedule).  Returns ``(total, metrics by task)``."""

    def __init__(self, model: torch.nn.Module, forward_loss) -> None:
        super().__init__()
        self.model, self._forward_loss = model, forward_loss

    def forward(self, items, lr: float):
        metrics, total = {}, 0.0
        for task, batch, weight in items:
            loss, metrics[task.name] = self._forward_loss(task, batch, lr, create_graph=True)
            total = total + weight * loss
        return total, metrics


class Trainer:
    """Train a model from a DeePMD-kit input (single-task, or multi-task with one head per task).

    Parameters
    ----------
    cfg : InputConfig, dict, str or Path
        The input (a path is read with :func:`mtzoo.config.load_input`).
    workdir : str or Path
        Where lcurve.out, checkpoints and out.json go (default: the working directory).
    restart : str or Path or None
        Checkpoint to resume from (optimizer, samplers, scheduler and RNG states included).
    init_frz_model : str or Path or None
        Frozen model to start from: the input may give ``descriptor: {}`` and old heads as
        ``{}`` (completed from the model); new heads train from scratch.
    progress : bool or None
        Show a progress bar (default: when stderr is a terminal).
    """

    def __init__(self, cfg, workdir: str | Path = ".", restart: str | Path | None = None,
                 init_frz_model: str | Path | None = None, progress: bool | None = None, log=print,
                 allow_input_change: bool = False, device: str | None = None) -> None:
        cfg, base, source, frozen = self._read_input(cfg, init_frz_model)
        self.state0 = load_checkpoint(restart) if restart is not None else None
        if self.state0 is not None:
            cfg = checked_restart_input(cfg, self.state0, str(restart), source, allow_input_change)
        self.cfg, self.workdir = cfg, Path(workdir)
        tcfg = cfg.training
        self.dist, self.device = distributed.setup(training_device(device if device is not None else tcfg.device))
        self.log = log if self.dist.main else (lambda *a, **k: None)
        seed = distributed.shared_seed(tcfg.seed, self.dist)
        keep_freed_memory()  # large per-step buffers stay in the heap (10-15 % faster steps; see its docstring)
        self.workdir.mkdir(parents=True, exist_ok=True)
        type_map = list(cfg.model.type_map) if frozen is None else frozen["model_config"]["type_map"]
        rcut = float(cfg.model.descriptor.rcut)
        self.tasks: dict[str, Task] = {t.name: t for t in build_tasks(cfg, type_map, rcut, base, seed, self.dist.rank,
                                                                         self.dist.world_size)}
        # where each task's data was, for replay from the frozen model (mtzoo finetune)
        self.data_paths = {"input_dir": None if base is None else str(base),
                           "training": {n: [str(Path(s.name).resolve()) for s in t.train.systems]
                                        for n, t in self.tasks.items()}}
        warn_untrained(list(self.tasks.values()))
        checked_validation_options(cfg, self.tasks, source)
        if self.state0 is not None:  # the raw weights (a run with EMA saves the averaged ones as "model")
            self.model = build_model(self.state0["model_config"])
            self.model.load_state_dict(self.state0.get("raw_model", self.state0["model"]))
        elif frozen is not None:  # statistics on rank 0 only, then broadcast
            self.model = model_from_frozen(frozen, cfg, self.new_heads)
            if self.dist.main:
                compute_statistics(self.model, cfg, list(self.tasks.values()), heads=self.new_heads, descriptor=False)
        else:
            self.model = model_from_input(cfg, list(self.tasks.values()))
            if self.dist.main:
                compute_statistics(self.model, cfg, list(self.tasks.values()))
        self.model.to(self.device)
        distributed.broadcast_module(self.model, self.dist)
        attach_losses(list(self.tasks.values()), cfg, self.model)
        names = list(self.tasks)
        self.scheduler = TaskScheduler(names, [self.tasks[n].weight for n in names],
                                       getattr(tcfg, "task_schedule", "stochastic"), seed)
        self._epoch_steps = None  # numb_steps resolved from training.numb_epoch
        if tcfg.numb_steps is None:
            self._epoch_steps = epoch_steps(list(self.tasks.values()), tcfg.numb_epoch,
                                           self.scheduler.steps_per_task_step())
            checked_warmup(cfg.learning_rate, self._epoch_steps, source)
            self.log(f"training.numb_epoch {tcfg.numb_epoch:g}: {self._epoch_steps} steps")
        self.lr = make_schedule(cfg.learning_rate, self.numb_steps)
        self._trainable = [p for p in self.model.parameters() if p.requires_grad]
        self._step_loss = distributed.wrap(StepLoss(self.model, self._forward_loss), self.dist, self.device)
        self.optimizer = make_optimizer(cfg.optimizer, self._trainable, self.lr(0), self.device)
        self.ema = ParameterEMA(self.model, tcfg.ema_decay) if tcfg.enable_ema else None
        self.step = 0
        self.best: dict = {}  # best validation score so far (training.best_metric)
        self.bias_changed = False  # training.change_bias_after_training done (kept in checkpoints)
        if seed is not None:
            torch.manual_seed(seed)
        if self.state0 is not None:
            self._resume(self.state0)
        self.progress = progress

    def _read_input(self, cfg, init_frz_model):
        """The parsed input (completed from the frozen model's recorded input with ``init_frz_model``,
        setting ``self.new_heads``), the input file's folder (relative data paths), its name for
        messages, and the frozen model's state (or None)."""
        base, source = None, "<dict>"
        frozen = load_frozen_state(init_frz_model) if init_frz_model is not None else None
        if isinstance(cfg, (str, Path)):
            base, source = Path(cfg).resolve().parent, str(cfg)
            cfg = load_input(cfg) if frozen is None else json.loads(Path(cfg).read_text())
        if frozen is not None:
            if not isinstance(cfg, dict):
                raise TypeError("with init_frz_model the input must be a path or a dict")
            cfg, self.new_heads = complete_input(cfg, frozen["metadata"]["input"], source)
            cfg = parse_input(cfg, source=source)
        elif isinstance(cfg, dict):
            cfg = parse_input(cfg, source=source)
        return cfg, base, source, frozen

    def _resume(self, state: dict) -> None:
        """Optimizer, schedule, moving average, samplers, task scheduler, RNG, best score and step
        from a checkpoint (``--restart``); the weights are loaded when the model is built."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr.load_state_dict(state.get("lr_schedule") or {})
        if self.ema is not None and "raw_model" in state:
            self.ema.load_averaged_state_dict(state["model"])
        for n, st in state["tasks"].items():
            self.tasks[n].load_state_dict(st)
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.best = dict(state.get("best") or {})
        self.bias_changed = bool(state.get("bias_changed", False))
        self.step = int(state["step"])

    @property
    def numb_steps(self) -> int:
        """Steps of the run: ``training.numb_steps``, or the count resolved from ``training.numb_epoch``."""
        steps = self.cfg.training.numb_steps
        return int(steps) if steps is not None else int(self._epoch_steps)

    def model_state(self) -> dict:
        """The weights a checkpoint's ``model`` holds (and ``mtzoo freeze`` writes): the moving
        average with ``training.enable_ema``, else the raw weights."""
        return self.ema.averaged_state_dict() if self.ema is not None else self.model.state_dict()

    def _averaged(self):
        """Context in which the model holds the weights that are validated (the averaged ones with EMA)."""
        return self.ema.applied() if self.ema is not None else nullcontext()

    # ------------------------------------------------------------------------------------------
    def _forward_loss(self, task: Task, batch, lr: float, create_graph: bool):
        batch = batch.to(self.device, non_blocking=True) if self.device.type != "cpu" else batch
        # validation (no graph of the derivatives) by the fast inference path, training by the reference one
        run = self.model if create_graph else Predictor(self.model)
        kw = {"create_graph": True} if create_graph else {}
        pred = run(batch, head=task.name, forces=task.loss.needs_forces(), virial=task.loss.needs_virial(), **kw)
        return task.loss(pred, batch, lr)

    def train_step(self, batch, lr: float, task: str | None = None) -> dict[str, float]:
        """One optimizer step of ``task`` (default: the only task) on ``batch``; returns its metrics."""
        name = task if task is not None else self.model.resolve_head(None)
        return self._step([(self.tasks[name], batch, 1.0)], lr)[name]

    def _step(self, items, lr: float) -> dict[str, dict[str, float]]:
        self.model.train()
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        total, metrics = self._step_loss(items, lr)  # through DDP (gradients averaged) on several processes
        # only the trainable parameters' gradients: autograd skips the branches that lead
        # nowhere else (the edge vectors' second derivatives), 2-5 % of a force-training step
        torch.autograd.backward(total, inputs=self._trainable)
        clip_gradients(self._trainable, self.cfg.training.gradient_max_norm)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update()
        return metrics

    def _evaluate(self, task: Task, sampler, nbatch: int, lr: float) -> dict[str, float]:
        r"""Metrics of ``task`` over ``nbatch`` batches of ``sampler``, each batch weighted by its atoms per frame.

        As DeePMD-kit's validation: :math:`\bar m = \sum_k n_k m_k / \sum_k n_k` with :math:`n_k` the
        atoms per frame of batch :math:`k` (its frames share the count; a mixed batch takes the mean).
        """
        self.model.eval()
        rows, weights = [], []
        for _ in range(nbatch):
            batch = sampler.next()
            rows.append(self._forward_loss(task, batch, lr, create_graph=False)[1])
            weights.append(float(batch[K.NUM_ATOMS].to(torch.float64).mean()))
        w = np.asarray(weights) / np.sum(weights)
        return {k: float(np.sum(w * np.asarray([r[k] for r in rows]))) for k in rows[0]}

    def validate(self, lr: float) -> dict[str, dict[str, float]]:
        """Mean metrics of each task over ``numb_btch`` of its validation batches."""
        return {n: self._evaluate(t, t.valid_sampler, t.numb_btch, lr) for n, t in self.tasks.items()
                if t.valid_sampler is not None}

    def _checkpoint_state(self) -> dict:
        """``model``: :meth:`model_state`; with EMA also ``raw_model`` (the trained weights) and ``ema``."""
        state = {"input": self.cfg.to_dict(), "model_config": model_config(self.model),
                 "model": self.model_state(), "optimizer": self.optimizer.state_dict(),
                 "lr_schedule": self.lr.state_dict(),
                 "tasks": {n: t.state_dict() for n, t in self.tasks.items()},
                 "scheduler": self.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                 "best": dict(self.best), "data_paths": self.data_paths, "bias_changed": self.bias_changed}
        if self.ema is not None:
            state.update(raw_model=self.model.state_dict(), ema={"decay": self.ema.decay})
        return state

    @staticmethod
    def _valid_mean(valid: dict, key: str, task: str | None = None) -> float | None:
        """Mean of validation metric ``key`` over the tasks that report it finite (or ``task``'s only)."""
        rows = [valid[task]] if task is not None else list(valid.values())
        vals = [r[key] for r in rows if key in r and math.isfinite(r[key])]
        return float(np.mean(vals)) if vals else None

    def _best_score(self, valid: dict) -> float | None:
        """``training.best_metric`` of the validation metrics (mean over tasks, or ``best_task``'s)."""
        t = self.cfg.training
        return self._valid_mean(valid, t.best_metric, t.best_task)

    def _observe_schedule(self, valid: dict) -> None:
        """Give the schedule the validation value of the metric it follows (``plateau``)."""
        key = self.lr.metric
        if key is None:
            return
        value = self._valid_mean(valid, key)
        if value is None:
            columns = sorted({k for r in valid.values() for k in r})
            raise ConfigError(f"no task reports a finite validation value of '{key}' (lcurve metrics: "
                              f"{', '.join(columns)})", "learning_rate.metric")
        self.lr.observe(value, self.step)

    def _evaluate_all(self, task: Task, lr: float) -> dict[str, float]:
        """Metrics of ``task`` over every validation frame once, in order (deterministic).

        Batches of ``batch_size`` frames per system; each batch weighted by its frames times its
        atoms per frame.  Used for ``training.best_metric``.
        """
        self.model.eval()
        rows, weights = [], []
        data = task.valid
        for k, s in enumerate(data.systems):
            graphs, bs = data.graphs(k), data.batch_size[k]
            for i in range(0, len(graphs), bs):
                chunk = graphs[i: i + bs]
                batch = collate(chunk)
                rows.append(self._forward_loss(task, batch, lr, create_graph=False)[1])
                weights.append(float(batch[K.NUM_ATOMS].to(torch.float64).sum()))
        w = np.asarray(weights) / np.sum(weights)
        return {k: float(np.sum(w * np.asarray([r[k] for r in rows]))) for k in rows[0]}

    def _keep_if_best(self, valid: dict) -> None:
        """Write ``SAVE_CKPT.best.pt`` (atomically) when the validation score improved."""
        score = self._best_score(valid)
        if score is None or score >= self.best.get("value", math.inf):
            return
        self.best = {"value": score, "step": self.step, "metric": self.cfg.training.best_metric}
        if not self.dist.main:
            return
        t = self.cfg.training
        stem = Path(t.save_ckpt).name.removesuffix(".pt")
        path = self.workdir / Path(t.save_ckpt).parent / f"{stem}.best.pt"
        atomic_save({"format_version": 1, "kind": "checkpoint", "step": self.step, "versions": versions(),
                     **self._checkpoint_state()}, path)

    def best_checkpoint(self) -> Path | None:
        """Path of the best-validation checkpoint (``training.best_metric``), if one was written."""
        t = self.cfg.training
        stem = Path(t.save_ckpt).name.removesuffix(".pt")
        path = self.workdir / Path(t.save_ckpt).parent / f"{stem}.best.pt"
        return path if path.exists() else None

    def _change_bias_after_training(self) -> None:
        """``training.change_bias_after_training``: shift the energy heads' biases (the model's and
        the best checkpoint's) by the least-squares fit of their residuals on the training data."""
        with self._averaged():
            shifts = refit_energy_bias(self.model, self.tasks)
        self.bias_changed = True
        for name, shift in shifts.items():
            self.log(f"change_bias_after_training: head '{name}' bias shifted by "
                     + ", ".join(f"{self.model.type_map[k]} {v * 1000:+.2f} meV" for k, v in enumerate(shift) if v))
        best = self.best_checkpoint()
        if best is not None and shifts and self.dist.main:
            state = load_checkpoint(best)
            model = build_model(state["model_config"])
            model.load_state_dict(state["model"])
            model.to(self.device)
            refit_energy_bias(model, self.tasks)
            state["model"] = model.state_dict()
            atomic_save(state, best)

    def save(self) -> Path | None:
        """Write a checkpoint (rank 0 only: other processes return None)."""
        if not self.dist.main:
            return None
        t = self.cfg.training
        return save_checkpoint(self._checkpoint_state(), self.workdir, t.save_ckpt, self.step, t.max_ckpt_keep)

    def _display(self, lr: float, step_metrics: dict) -> tuple[dict, dict]:
        """Train and validation metrics per task for an lcurve line.

        Single-task: the metrics of the step just taken.  Multi-task: tasks not trained at this step
        are evaluated on one batch of their training data (no update), as DeePMD-kit does.  The
        validation uses the averaged weights with EMA, the training metrics the raw ones.
        """
        with self._averaged():
            valid = self.validate(lr)
        train = {}
        for n, t in self.tasks.items():
            train[n] = step_metrics[n] if n in step_metrics else self._evaluate(t, t.sampler, 1, lr)
        return train, valid

    def run(self) -> dict:
        """Train to ``numb_steps``.

        Returns
        -------
        dict
            ``step`` (final step), ``lr``, ``train``/``valid`` (per-task metrics of the last lcurve
            line; for single-task runs the task's metrics directly), ``wall_s``, ``s_per_step_median``.
        """
        t = self.cfg.training
        main = self.dist.main
        lcurve_path = self.workdir / t.disp_file
        resumed = self.state0 is not None and lcurve_path.exists()
        if main:
            atomic_write_text(json.dumps(self.cfg.to_dict(), indent=2) + "\n", self.workdir / "out.json")
            remove_stale_temporaries(self.workdir)
            if resumed:  # rows written after the checkpoint are trained again: drop them
                truncate_lcurve(lcurve_path, self.step)
        distributed.barrier(self.dist)
        fout = open(lcurve_path, "a" if resumed else "w") if main else io.StringIO()
        header_written = resumed
        bar = Progress(self.numb_steps, self.step, self.progress if main else False)
        t0, last, step_times = time.perf_counter(), {}, []
        single = not self.cfg.multi_task
        try:
            while self.step < self.numb_steps:
                lr = self.lr(self.step)
                items = [(self.tasks[n], self.tasks[n].sampler.next(), w) for n, w in self.scheduler.next()]
                ts = time.perf_counter()
                step_metrics = self._step(items, lr)
                step_times.append(time.perf_counter() - ts)
                self.step += 1
                bad = [n for n, m in step_metrics.items() if not math.isfinite(m["rmse"])]
                if distributed.any_rank(bool(bad), self.dist, self.device):
                    n = bad[0] if bad else next(iter(step_metrics))
                    where = "" if bad else " on another process"
                    raise FloatingPointError(f"step {self.step}: loss of task '{n}' is not finite{where} (labels and "
                                             "geometries are checked at load, so training diverged: lower "
                                             "learning_rate.start_lr, or the force prefactor)")
                if self.step % t.disp_freq == 0 or self.step == 1:
                    train, valid = self._display(lr, step_metrics)
                    if not header_written:
                        fout.write(lcurve_header(train, valid, single))
                        header_written = True
                    fout.write(lcurve_line(self.step, lr, train, valid, single))
                    fout.flush()
                    last = {"step": self.step, "lr": lr, "train": train, "valid": valid}
                    self._observe_schedule(valid)
                    if t.best_metric is not None:
                        with self._averaged():
                            full = {n: self._evaluate_all(tk, lr) for n, tk in self.tasks.items() if tk.valid is not None}
                        self._keep_if_best(full)
                    if t.disp_training and not bar.enabled:
                        self.log(f"step {self.step}: " + "; ".join(
                            (f"{n}: " if not single else "") + ", ".join(
                                f"{k} {valid.get(n, m).get(k, v):.3e}" for k, v in sorted(m.items()))
                            for n, m in train.items()))
                first = next(iter(step_metrics.values()))
                bar.update(self.step, f"rmse {first['rmse']:.2e}")
                if self.step % t.save_freq == 0:
                    self.save()
            changed = t.change_bias_after_training and not self.bias_changed and self.step >= t.numb_steps
            if changed:
                self._change_bias_after_training()
            if changed or not (self.workdir / f"{Path(t.save_ckpt).name.removesuffix('.pt')}-{self.step}.pt").exists():
                self.save()
        finally:
            bar.close()
            fout.close()
        if single and last:
            name = next(iter(self.tasks))
            last["train"], last["valid"] = last["train"][name], last["valid"].get(name, {})
        last.update(step=self.step, wall_s=time.perf_counter() - t0,
                    s_per_step_median=float(np.median(step_times)) if step_times else None)
        if self.best:
            last["best"] = dict(self.best)
        return last


def checked_warmup(lr_cfg, numb_steps: int, source: str | None = None) -> None:
    """The warmup must be shorter than the run (checked here for a step count resolved from ``numb_epoch``)."""
    warmup = lr_cfg.warmup_steps_for(numb_steps)
    if warmup >= numb_steps:
        key = "warmup_ratio" if lr_cfg.warmup_ratio is not None else "warmup_steps"
        raise ConfigError(f"warmup ({warmup} steps) must be shorter than training.numb_steps ({numb_steps}, "
                          "from training.numb_epoch)", f"learning_rate.{key}", source)


def checked_validation_options(cfg, tasks: dict, source: str) -> None:
    """``training.best_task`` names a task; ``training.best_metric`` and a ``plateau`` learning rate
    have validation data to follow (ConfigError naming the key otherwise)."""
    tcfg = cfg.training
    if tcfg.best_task is not None and tcfg.best_task not in tasks:
        raise ConfigError(f"names no task (tasks: {sorted(tasks)})", "training.best_task", source)
    has_valid = any(t.valid is not None for t in tasks.values())
    if tcfg.best_metric is not None and not has_valid:
        raise ConfigError("needs validation data (no task has validation_data)", "training.best_metric", source)
    if cfg.learning_rate.type == "plateau" and not has_valid:
        raise ConfigError("'plateau' follows a validation metric and needs validation data (no task has "
                          "validation_data)", "learning_rate.type", source)


def refit_energy_bias(model, tasks: dict) -> dict[str, np.ndarray]:
    """Add to each energy head's ``bias_atom_e`` the least-squares shift of its training residuals.

    Returns the shifts (``[ntypes]``, eV) by head; heads whose data has no energy are left alone.
    """
    from mtzoo.evaluation import predict_system
    from mtzoo.heads.energy import EnergyHead, energy_bias_from_systems

    shifts = {}
    for name, task in tasks.items():
        head = model.heads[name]
        if not isinstance(head, EnergyHead):
            continue
        shift = energy_bias_from_systems(task.train.systems, model.type_map,
                                         predict=lambda s, n=name: predict_system(model, s, head=n)[K.ENERGY])
        if shift is None:
            continue
        with torch.no_grad():
            head.bias_atom_e.add_(torch.as_tensor(shift, dtype=head.bias_atom_e.dtype, device=head.bias_atom_e.device))
        shifts[name] = np.asarray(shift)
    return shifts


def training_device(name: str | None) -> torch.device:
    """``training.device``: the named device, or ``cuda`` when torch sees a GPU, else ``cpu``."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"'{name}' asked for, but torch sees no CUDA device (torch {torch.__version__})",
                          "training.device")
    return dev


def _differences(old, new, path: str) -> list[str]:
    """Dotted paths where two input sections differ (``_``-prefixed comment keys ignored)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            if str(k).startswith("_"):
                continue
            if k not in old or k not in new:
                out.append(f"{path}.{k}")
            else:
                out.extend(_differences(old[k], new[k], f"{path}.{k}"))
        return out
    return [] if old == new else [path]


def checked_restart_input(cfg, state: dict, restart: str, source: str, allow: bool):
    """The input to resume with: ``cfg`` when its model section (type_map included) equals the checkpoint's.

    A different model section would silently mix the two (data indexed with the new ``type_map``,
    weights from the old architecture): that is a :class:`~mtzoo.config.ConfigError` naming the keys,
    unless ``allow``, in which case the checkpoint's model section replaces the input's (with a
    warning) so that ``out.json`` records what trains.
    """
    old_input = state.get("input")
    if not old_input or "model" not in old_input:
        return cfg
    new = cfg.to_dict()
    changed = _differences(old_input["model"], new["model"], "model")
    if not changed:
        return cfg
    shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
    if not allow:
        raise ConfigError(f"--restart {restart}: the input's model section differs from the checkpoint's at {shown}; "
                          "restart with the input that trained it, or pass --allow-input-change to keep the "
                          "checkpoint's model (the change is then ignored)", source=source)
    warnings.warn(f"--restart {restart}: the input's model section differs at {shown}; the checkpoint's model "
                  "is kept and out.json records it", stacklevel=3)
    return parse_input({**new, "model": old_input["model"]}, source=source)


def train(input_file, workdir: str | Path = ".", restart=None, init_frz_model=None, progress: bool | None = None,
          allow_input_change: bool = False, device: str | None = None) -> dict:
    """Train from a DeePMD-kit input file (Python API of ``mtzoo train``); ``device`` overrides ``training.device``."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        try:
            return Trainer(input_file, workdir, restart=restart, init_frz_model=init_frz_model, progress=progress,
                           allow_input_change=allow_input_change, device=device).run()
        finally:
            distributed.cleanup()
