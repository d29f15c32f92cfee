"""Single-task trainer for DeePMD-kit input files.

One step: draw a batch (:class:`~mtzoo.train.data.BatchSampler`), evaluate the model with
``create_graph=True`` (forces enter the loss), compute the loss with prefactors scheduled by
the learning rate, one Adam step.  Every ``disp_freq`` steps (and at step 1) a line of
DeePMD's ``lcurve.out`` layout is written with validation metrics on ``numb_btch`` batches;
every ``save_freq`` steps a checkpoint is written atomically.  ``restart`` resumes from a
checkpoint with the optimizer, sampler and RNG states, so the continued run equals an
uninterrupted one.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from mtzoo import keys as K
from mtzoo.config import ConfigError, InputConfig, load_input, parse_input
from mtzoo.heads.energy import fit_energy_bias
from mtzoo.model import Model, build_model, model_config
from mtzoo.train.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from mtzoo.train.data import BatchSampler, GraphSet, system_probs
from mtzoo.train.loss import EnergyLoss
from mtzoo.train.lr import ExpDecayLR

_HEAD_KEYS = ("neuron", "resnet_dt", "activation_function", "precision", "trainable", "seed", "rcond", "atom_ener",
              "layer_name")
HEAD = "default"


def resolve_sel(sel, graphs: GraphSet, ntypes: int, rcut: float) -> list[int]:
    """``sel`` as a list: ``"auto[:factor]"`` = ceil(factor x most neighbours per type in the data) (factor 1.1)."""
    if not isinstance(sel, str):
        return [int(s) for s in sel]
    factor = float(sel.split(":", 1)[1]) if ":" in sel else 1.1
    from mtzoo.data.graph import count_neighbors

    best = np.zeros(ntypes, dtype=np.int64)
    for k in range(len(graphs.systems)):
        best = np.maximum(best, count_neighbors(graphs.graphs(k), ntypes))
    return [int(math.ceil(factor * b)) for b in best]


def model_from_input(cfg: InputConfig, train: GraphSet) -> Model:
    """Build the model of ``cfg.model`` (sel ``auto`` resolved on ``train``)."""
    mcfg = cfg.model
    desc = mcfg.descriptor.to_dict()
    desc["sel"] = resolve_sel(desc["sel"], train, mcfg.ntypes, desc["rcut"])
    head = {k: v for k, v in mcfg.fitting_net.to_dict().items() if k in _HEAD_KEYS}
    head["type"] = "ener"
    return build_model({"type_map": list(mcfg.type_map), "descriptor": desc, "heads": {HEAD: head}})


def energy_bias(train: GraphSet, ntypes: int, rcond=None, atom_ener=None) -> np.ndarray | None:
    """Least-squares per-type energies over every training frame with an energy label."""
    counts, energies = [], []
    for s in train.systems:
        if K.ENERGY not in s.labels:
            continue
        m = s.masks[K.ENERGY]
        c = np.bincount(s.model_types(train.type_map), minlength=ntypes)
        counts.append(np.repeat(c[None], int(m.sum()), 0))
        energies.append(s.labels[K.ENERGY][m])
    if not counts:
        return None
    return fit_energy_bias(np.concatenate(counts), np.concatenate(energies), rcond, atom_ener)


class Progress:
    """A one-line progress bar on interactive terminals; silent otherwise."""

    def __init__(self, total: int, start: int, enabled: bool | None = None) -> None:
        self.total, self.t0, self.start = total, time.perf_counter(), start
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def update(self, step: int, text: str = "") -> None:
        if not self.enabled:
            return
        frac = step / max(self.total, 1)
        rate = (step - self.start) / max(time.perf_counter() - self.t0, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r[{bar:<30}] {step}/{self.total} {rate:.1f} steps/s eta {eta:.0f}s {text}  ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


class Trainer:
    """Train one model from a DeePMD-kit single-task input.

    Parameters
    ----------
    cfg : InputConfig, dict, str or Path
        The input (a path is read with :func:`mtzoo.config.load_input`).
    workdir : str or Path
        Where lcurve.out, checkpoints and out.json go (default: the working directory).
    restart : str or Path or None
        Checkpoint to resume from (optimizer, sampler and RNG states included).
    progress : bool or None
        Show a progress bar (default: when stderr is a terminal).
    """

    def __init__(self, cfg, workdir: str | Path = ".", restart: str | Path | None = None,
                 progress: bool | None = None, log=print) -> None:
        base = None
        if isinstance(cfg, (str, Path)):
            base = Path(cfg).resolve().parent
            cfg = load_input(cfg)
        elif isinstance(cfg, dict):
            cfg = parse_input(cfg)
        if cfg.training.numb_steps is None:
            raise ConfigError("training.numb_epoch: epoch-based training is not supported yet; give numb_steps")
        self.cfg, self.workdir, self.log = cfg, Path(workdir), log
        self.workdir.mkdir(parents=True, exist_ok=True)
        tcfg = cfg.training
        type_map = list(cfg.model.type_map)
        rcut = float(cfg.model.descriptor.rcut)
        self.train_data = GraphSet.from_config(tcfg.training_data, type_map, rcut, base, "training.training_data")
        self.valid_data = (GraphSet.from_config(tcfg.validation_data, type_map, rcut, base, "training.validation_data")
                           if tcfg.validation_data is not None else None)
        self.state0 = load_checkpoint(restart) if restart is not None else None
        if self.state0 is not None:
            self.model = build_model(self.state0["model_config"])
            self.model.load_state_dict(self.state0["model"])
        else:
            self.model = model_from_input(cfg, self.train_data)
            self._statistics()
        self.lr = ExpDecayLR(cfg.learning_rate, tcfg.numb_steps)
        self.loss = EnergyLoss(cfg.loss, cfg.learning_rate.start_lr)
        params = [p for p in self.model.parameters() if p.requires_grad]
        ocfg = cfg.optimizer
        self.optimizer = torch.optim.Adam(params, lr=self.lr(0), betas=(ocfg.adam_beta1, ocfg.adam_beta2),
                                          weight_decay=ocfg.weight_decay)
        probs = system_probs(tcfg.training_data.auto_prob, tcfg.training_data.sys_probs, self.train_data.nbatches(),
                             "training.training_data")
        self.sampler = BatchSampler(self.train_data, probs, tcfg.seed)
        if self.valid_data is not None:
            vp = system_probs(tcfg.validation_data.auto_prob, tcfg.validation_data.sys_probs,
                              self.valid_data.nbatches(), "training.validation_data")
            self.valid_sampler = BatchSampler(self.valid_data, vp, None if tcfg.seed is None else tcfg.seed + 1)
        self.step = 0
        if tcfg.seed is not None:
            torch.manual_seed(tcfg.seed)
        if self.state0 is not None:
            self.optimizer.load_state_dict(self.state0["optimizer"])
            self.sampler.load_state_dict(self.state0["sampler"])
            if self.valid_data is not None and self.state0.get("valid_sampler"):
                self.valid_sampler.load_state_dict(self.state0["valid_sampler"])
            torch.set_rng_state(self.state0["torch_rng"])
            self.step = int(self.state0["step"])
        self.progress = progress

    # ------------------------------------------------------------------------------------------
    def _statistics(self) -> None:
        mcfg = self.cfg.model
        stat = self.train_data.stat_graphs(mcfg.data_stat_nbatch)
        self.model.descriptor.compute_stats(stat, protection=mcfg.data_stat_protect)
        head = self.model.heads[HEAD]
        bias = energy_bias(self.train_data, mcfg.ntypes, head.rcond, head.atom_ener)
        if bias is not None:
            head.bias_atom_e.copy_(torch.as_tensor(bias))

    def train_step(self, batch, lr: float) -> dict[str, float]:
        """One optimizer step on ``batch`` at learning rate ``lr``; returns the batch metrics."""
        self.model.train()
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        pred = self.model(batch, head=HEAD, forces=self.loss.needs_forces(), virial=self.loss.needs_virial(),
                          create_graph=True)
        loss, metrics = self.loss(pred, batch, lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gmax = self.cfg.training.gradient_max_norm
        if gmax is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), gmax)
        self.optimizer.step()
        return metrics

    def validate(self, lr: float) -> dict[str, float]:
        """Mean metrics over ``numb_btch`` validation batches (empty when there is no validation data)."""
        if self.valid_data is None:
            return {}
        self.model.eval()
        rows = []
        for _ in range(self.cfg.training.validation_data.numb_btch):
            batch = self.valid_sampler.next()
            pred = self.model(batch, head=HEAD, forces=self.loss.needs_forces(), virial=self.loss.needs_virial(),
                              create_graph=False)
            rows.append(self.loss(pred, batch, lr)[1])
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}

    def _checkpoint_state(self) -> dict:
        return {"input": self.cfg.to_dict(), "model_config": model_config(self.model),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "sampler": self.sampler.state_dict(),
                "valid_sampler": self.valid_sampler.state_dict() if self.valid_data is not None else None,
                "torch_rng": torch.get_rng_state()}

    def save(self) -> Path:
        t = self.cfg.training
        return save_checkpoint(self._checkpoint_state(), self.workdir, t.save_ckpt, self.step, t.max_ckpt_keep)

    def run(self) -> dict:
        """Train to ``numb_steps``.

        Returns
        -------
        dict
            ``step`` (final step), ``lr``, ``train``/``valid`` (metrics of the last lcurve line),
            ``last_train`` (metrics of the final step), ``wall_s``, ``s_per_step_median``.
        """
        t = self.cfg.training
        atomic_write_text(json.dumps(self.cfg.to_dict(), indent=2) + "\n", self.workdir / "out.json")
        lcurve_path = self.workdir / t.disp_file
        resumed = self.state0 is not None and lcurve_path.exists()
        fout = open(lcurve_path, "a" if resumed else "w")
        header_written = resumed
        bar = Progress(t.numb_steps, self.step, self.progress)
        t0, last, train_metrics = time.perf_counter(), {}, {}
        step_times = []
        try:
            while self.step < t.numb_steps:
                lr = self.lr(self.step)
                batch = self.sampler.next()
                ts = time.perf_counter()
                train_metrics = self.train_step(batch, lr)
                step_times.append(time.perf_counter() - ts)
                self.step += 1
                if not all(math.isfinite(v) for k, v in train_metrics.items() if k == "rmse"):
                    raise FloatingPointError(f"step {self.step}: loss is {train_metrics['rmse']}; lower start_lr or check the data")
                if self.step % t.disp_freq == 0 or self.step == 1:
                    valid_metrics = self.validate(lr)
                    if not header_written:
                        fout.write(lcurve_header(train_metrics, bool(valid_metrics)))
                        header_written = True
                    fout.write(lcurve_line(self.step, lr, train_metrics, valid_metrics))
                    fout.flush()
                    last = {"step": self.step, "lr": lr, "train": train_metrics, "valid": valid_metrics}
                    if t.disp_training and not bar.enabled:
                        self.log(f"step {self.step}: " + ", ".join(
                            f"{k} {valid_metrics.get(k, v):.3e}" for k, v in sorted(train_metrics.items())))
                bar.update(self.step, f"rmse {train_metrics['rmse']:.2e}")
                if self.step % t.save_freq == 0:
                    self.save()
            if not (self.workdir / f"{Path(t.save_ckpt).name.removesuffix('.pt')}-{self.step}.pt").exists():
                self.save()
        finally:
            bar.close()
            fout.close()
        last.update(step=self.step, last_train=train_metrics if step_times else {})
        last["wall_s"] = time.perf_counter() - t0
        last["s_per_step_median"] = float(np.median(step_times)) if step_times else None
        return last


def lcurve_header(train: dict, has_valid: bool) -> str:
    keys = sorted(train)
    s = "# {:5s}".format("step")
    for k in keys:
        s += ("   %11s %11s" % (k + "_val", k + "_trn")) if has_valid else ("   %11s" % (k + "_trn"))
    return s + "   {:8s}\n".format("lr") + "# If there is no available reference data, rmse_*_{val,trn} will print nan\n"


def lcurve_line(step: int, lr: float, train: dict, valid: dict) -> str:
    s = f"{step:7d}"
    for k in sorted(train):
        s += ("   %11.2e %11.2e" % (valid.get(k, math.nan), train[k])) if valid else ("   %11.2e" % train[k])
    return s + f"   {lr:8.1e}\n"


def train(input_file, workdir: str | Path = ".", restart=None, progress: bool | None = None) -> dict:
    """Train from a DeePMD-kit input file (Python API of ``mtzoo train``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        return Trainer(input_file, workdir, restart, progress).run()
