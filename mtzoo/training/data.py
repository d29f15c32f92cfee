"""Training data: systems -> cached graphs -> batches drawn the way DeePMD-kit draws them.

Each step picks one system with probability :math:`p_k` (``auto_prob``: ``prob_uniform``,
``prob_sys_size`` :math:`\\propto` batches per system, or
``prob_sys_size;a:b:w;...`` blocks) and takes the next ``batch_size`` frames of that
system's shuffled order (reshuffled each pass).  All frames of a batch therefore share
their atom count, as in DeePMD-kit.  The generator state is part of the checkpoint, so a
restarted run draws the same batches.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch_geometric.data import Batch, Data

from mtzoo.config import ConfigError
from mtzoo.data.graph import collate, system_graphs
from mtzoo.data.readers import load_systems
from mtzoo.data.system import System


def resolve_systems(paths: Sequence[str], base: Path | None) -> list[str]:
    """Resolve relative ``systems`` paths: against the input file's folder, else the working directory."""
    out = []
    for p in paths:
        q = Path(p).expanduser()
        if not q.is_absolute() and base is not None and (base / q).exists():
            q = base / q
        out.append(str(q))
    return out


def batch_sizes(spec: int | str | Sequence[int], systems: Sequence[System], where: str) -> list[int]:
    """Frames per batch for each system from DeePMD's ``batch_size`` (int, list, ``auto``, ``auto:N``)."""
    if isinstance(spec, bool):
        raise ConfigError(f"{where}.batch_size: expected an int, a list or 'auto[:N]', got {spec!r}")
    if isinstance(spec, int):
        return [spec] * len(systems)
    if isinstance(spec, str):
        m = re.fullmatch(r"auto(?::(\d+))?", spec)
        if not m:
            raise ConfigError(f"{where}.batch_size: expected 'auto' or 'auto:N', got {spec!r}")
        target = int(m.group(1) or 32)
        return [max(1, math.ceil(target / s.natoms)) for s in systems]
    sizes = [int(b) for b in spec]
    if len(sizes) != len(systems):
        raise ConfigError(f"{where}.batch_size: {len(sizes)} values for {len(systems)} systems")
    return sizes


def system_probs(style: str, sys_probs: Sequence[float] | None, nbatches: Sequence[int], where: str) -> np.ndarray:
    """Probability of drawing each system (DeePMD ``auto_prob`` / ``sys_probs``)."""
    n = len(nbatches)
    if sys_probs is not None:
        p = np.asarray(sys_probs, dtype=np.float64)
        if p.shape != (n,) or (p < 0).any() or p.sum() <= 0:
            raise ConfigError(f"{where}.sys_probs: expected {n} non-negative weights (one per system), got {list(p)}")
        return p / p.sum()
    if style == "prob_uniform":
        return np.full(n, 1.0 / n)
    size = np.asarray(nbatches, dtype=np.float64)
    if style == "prob_sys_size":
        return size / size.sum()
    if style.startswith("prob_sys_size;"):
        p = np.zeros(n)
        for block in style.split(";")[1:]:
            try:
                a, b, w = block.split(":")
                a, b, w = int(a), int(b), float(w)
            except ValueError:
                raise ConfigError(f"{where}.auto_prob: block '{block}' is not 'start:end:weight'") from None
            if not (0 <= a < b <= n):
                raise ConfigError(f"{where}.auto_prob: block '{block}' outside the {n} systems")
            p[a:b] = w * size[a:b] / size[a:b].sum()
        return p / p.sum()
    raise ConfigError(f"{where}.auto_prob: unknown style '{style}' (prob_uniform, prob_sys_size, prob_sys_size;a:b:w...)")


class GraphSet:
    """Systems of one data section with their graphs (built on first use and cached).

    Parameters
    ----------
    systems : list of System
        Loaded systems.
    type_map : list of str
        The model's elements (checked for every system when the set is built).
    rcut : float
        Neighbour cutoff.
    batch_size : int, str or list
        DeePMD ``batch_size``.
    where : str
        Config path for error messages (``training.training_data``).
    """

    def __init__(self, systems: Sequence[System], type_map: Sequence[str], rcut: float,
                 batch_size, where: str) -> None:
        if not systems:
            raise ConfigError(f"{where}.systems: no data systems found")
        self.systems = list(systems)
        self.type_map, self.rcut, self.where = list(type_map), float(rcut), where
        for s in self.systems:
            s.model_types(self.type_map)  # unknown elements fail here, naming the system
        self.batch_size = batch_sizes(batch_size, self.systems, where)
        self._graphs: list[list[Data] | None] = [None] * len(self.systems)

    @classmethod
    def from_config(cls, cfg, type_map, rcut, base: Path | None, where: str) -> GraphSet:
        return cls(load_systems(resolve_systems(cfg.systems, base), bad_frames=getattr(cfg, "bad_frames", None) or "error"),
                   type_map, rcut, cfg.batch_size, where)

    def graphs(self, k: int) -> list[Data]:
        if self._graphs[k] is None:
            self._graphs[k] = system_graphs(self.systems[k], self.type_map, self.rcut)
        return self._graphs[k]

    def nbatches(self) -> list[int]:
        return [max(1, s.nframes // b) for s, b in zip(self.systems, self.batch_size)]

    @property
    def nframes(self) -> int:
        return sum(s.nframes for s in self.systems)

    def stat_graphs(self, nbatch: int) -> list[Data]:
        """The first ``nbatch`` batches' worth of frames of every system (DeePMD ``data_stat_nbatch``)."""
        out = []
        for k, s in enumerate(self.systems):
            n = min(s.nframes, nbatch * self.batch_size[k])
            out.extend(self.graphs(k)[:n])
        return out


class BatchSampler:
    r"""Seeded DeePMD-style batch sampler over a :class:`GraphSet` with a checkpointable state.

    With ``world_size`` :math:`N > 1` (data-parallel training, :mod:`mtzoo.training.distributed`)
    every rank draws the same system and the same global batch of :math:`N B` frames from the same
    generator, and returns its own frames :math:`[rB, (r+1)B)`; the state is the global one, so a
    checkpoint resumes with any :math:`N`.

    With ``mixed=True`` (``mixed_batch``, an mtzoo extension) the frames of all systems form one
    pool: one permutation of all :math:`\sum_k n_k` frames per pass, consecutive
    :math:`B` (:math:`N B`) frames per batch, so a batch mixes systems (of any sizes) and every
    frame is drawn once per pass; ``probs`` are not used.
    """

    def __init__(self, data: GraphSet, probs: np.ndarray, seed: int | None, rank: int = 0,
                 world_size: int = 1, mixed: bool = False) -> None:
        self.data, self.probs = data, probs
        self.rank, self.world_size, self.mixed = int(rank), int(world_size), bool(mixed)
        self.rng = np.random.default_rng(seed)
        npool = 1 if self.mixed else len(data.systems)
        self.order: list[np.ndarray | None] = [None] * npool
        self.cursor = [0] * npool
        if self.mixed:
            if len(set(data.batch_size)) != 1:
                raise ConfigError(f"{data.where}.mixed_batch: needs one integer batch_size for all systems, "
                                  f"got {data.batch_size} (from a list or 'auto')")
            self._offsets = np.cumsum([0] + [s.nframes for s in data.systems])
            if self._offsets[-1] < data.batch_size[0] * self.world_size:
                raise ConfigError(f"{data.where}: {self._offsets[-1]} frames in all, fewer than batch_size "
                                  f"{data.batch_size[0]} x {self.world_size} processes")
        elif self.world_size > 1:
            for s, b, p in zip(data.systems, data.batch_size, probs):
                if p > 0 and s.nframes < b * self.world_size:
                    raise ConfigError(f"{data.where}: system {s.name} has {s.nframes} frames, fewer than batch_size "
                                      f"{b} x {self.world_size} processes (each process needs its own frames)")

    def next(self) -> Batch:
        if self.mixed:
            return self._next_mixed()
        k = int(self.rng.choice(len(self.probs), p=self.probs))
        bs, n = self.data.batch_size[k], self.data.systems[k].nframes
        step = bs * self.world_size
        if self.order[k] is None or self.cursor[k] + step > n:
            self.order[k] = self.rng.permutation(n)
            self.cursor[k] = 0
        start = self.cursor[k] + self.rank * bs
        idx = self.order[k][start: start + bs]
        self.cursor[k] += step
        graphs = self.data.graphs(k)
        return collate([graphs[i] for i in idx])

    def _next_mixed(self) -> Batch:
        bs, n = self.data.batch_size[0], int(self._offsets[-1])
        step = bs * self.world_size
        if self.order[0] is None or self.cursor[0] + step > n:
            self.order[0] = self.rng.permutation(n)
            self.cursor[0] = 0
        start = self.cursor[0] + self.rank * bs
        idx = self.order[0][start: start + bs]
        self.cursor[0] += step
        k = np.searchsorted(self._offsets, idx, side="right") - 1  # system of each pooled frame
        return collate([self.data.graphs(int(s))[int(i - self._offsets[s])] for s, i in zip(k, idx)])

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "cursor": list(self.cursor),
                "order": [None if o is None else o.tolist() for o in self.order]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["order"]) != len(self.order):
            raise ConfigError(f"{self.data.where}: the checkpoint's sampler has {len(state['order'])} frame pools, "
                              f"this input {len(self.order)} (mixed_batch or the systems changed since the checkpoint)")
        self.rng.bit_generator.state = state["rng"]
        self.cursor = list(state["cursor"])
        self.order = [None if o is None else np.asarray(o, dtype=np.int64) for o in state["order"]]
