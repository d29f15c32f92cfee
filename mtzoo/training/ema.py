r"""Exponential moving average of a model's trainable weights (``training.enable_ema``).

After every optimizer step :math:`t = 1, 2, \dots`, with :math:`\theta_t` the weights
after the step, :math:`d` = ``training.ema_decay`` and :math:`\bar\theta_0 = \theta_0`
(the weights before the first step):

.. math::

    \bar\theta_t = d\,\bar\theta_{t-1} + (1 - d)\,\theta_t .

This is DeePMD-kit 3.2's rule (``ModelEMA.update``): a fixed :math:`d`, no warm-up such as
:math:`\min(d, (1 + t)/(10 + t))`.  Only trainable parameters are averaged; buffers
(statistics, energy biases) and frozen parameters are taken as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class ParameterEMA:
    """The moving average :math:`\\bar\\theta` of ``model``'s trainable parameters.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model; its parameters with ``requires_grad`` are averaged (a parameter
        shared under two names is averaged once).
    decay : float
        :math:`d`, in [0, 1).

    Shapes
    ------
    One average tensor per trainable parameter, of its shape, dtype and device.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model, self.decay = model, float(decay)
        self.params = [p for p in model.parameters() if p.requires_grad]
        with torch.no_grad():
            self.averages = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """:math:`\\bar\\theta \\leftarrow d\\,\\bar\\theta + (1 - d)\\,\\theta` (after an optimizer step)."""
        torch._foreach_mul_(self.averages, self.decay)
        torch._foreach_add_(self.averages, self.params, alpha=1.0 - self.decay)

    def _by_name(self) -> dict[str, torch.Tensor]:
        """State-dict name -> average, for every name of every trainable parameter."""
        index = {id(p): a for p, a in zip(self.params, self.averages)}
        return {k: index[id(v)] for k, v in self.model.state_dict(keep_vars=True).items() if id(v) in index}

    def averaged_state_dict(self) -> dict[str, torch.Tensor]:
        """``model.state_dict()`` with the trainable parameters replaced by their averages."""
        averaged = self._by_name()
        return {k: averaged[k].detach().clone() if k in averaged else v
                for k, v in self.model.state_dict().items()}

    @torch.no_grad()
    def load_averaged_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Set the averages from an :meth:`averaged_state_dict` (a checkpoint's ``model``)."""
        for k, a in self._by_name().items():
            a.copy_(state[k])

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the model holds the averaged weights; the raw ones come back after, bit for bit."""
        with torch.no_grad():
            raw = [p.detach().clone() for p in self.params]
            torch._foreach_copy_(self.params, self.averages)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, raw)
