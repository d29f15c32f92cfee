"""Task scheduler for multi-task training: which task(s) the next optimizer step trains.

``stochastic`` (default, DeePMD-kit's scheme): each step draws one task :math:`k` with
probability :math:`p_k = w_k / \\sum_j w_j` from a seeded generator.  ``round_robin`` cycles
through the tasks with non-zero weight, in order.  ``joint`` trains every task with non-zero
weight at each step on :math:`\\sum_k p_k L_k`.  Tasks with weight 0 are never trained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MODES = ("stochastic", "round_robin", "joint")


class TaskScheduler:
    """Seeded, checkpointable choice of tasks per step.

    Parameters
    ----------
    names : list of str
        Task (head) names.
    weights : list of float
        Non-negative weights, not all zero.
    mode : str
        ``stochastic``, ``round_robin`` or ``joint``.
    seed : int or None
        Seed of the generator (stochastic mode).
    """

    def __init__(self, names: Sequence[str], weights: Sequence[float], mode: str = "stochastic",
                 seed: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"task_schedule '{mode}' unknown (expected one of {MODES})")
        if len(names) != len(weights) or not names:
            raise ValueError(f"{len(names)} task names but {len(weights)} weights")
        w = []
        for n, x in zip(names, weights):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
                raise ValueError(f"fitting_weight of task '{n}' must be a finite number >= 0, got {x!r}")
            w.append(float(x))
        if sum(w) <= 0:
            raise ValueError(f"all fitting weights are zero ({dict(zip(names, w))}): no task would be trained")
        self.names, self.mode, self.weights = list(names), mode, w
        total = sum(w)
        self.probs = np.array([x / total for x in w])
        self.active = [n for n, x in zip(self.names, w) if x > 0]
        self.rng = np.random.default_rng(seed)
        self.position = 0

    def next(self) -> list[tuple[str, float]]:
        """Tasks of the next step with their loss weights (``[(name, 1.0)]`` unless joint)."""
        if self.mode == "stochastic":
            return [(self.names[int(self.rng.choice(len(self.names), p=self.probs))], 1.0)]
        if self.mode == "round_robin":
            name = self.active[self.position % len(self.active)]
            self.position += 1
            return [(name, 1.0)]
        return [(n, float(p)) for n, p in zip(self.names, self.probs) if p > 0]

    def steps_per_task_step(self) -> dict[str, float]:
        r""":math:`1/q_k` for every trained task :math:`k`, :math:`q_k` the expected fraction of steps that train it.

        Stochastic :math:`\sum_j w_j / w_k`, round robin the number of trained tasks, joint 1.
        """
        if self.mode == "stochastic":
            total = sum(self.weights)
            return {n: total / w for n, w in zip(self.names, self.weights) if w > 0}
        return {n: float(len(self.active)) if self.mode == "round_robin" else 1.0 for n in self.active}

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.position = int(state["position"])
