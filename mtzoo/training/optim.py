r"""The optimizer of an ``optimizer`` section, and gradient clipping.

``Adam`` is ``torch.optim.Adam`` (``weight_decay`` :math:`\lambda` an L2 term,
:math:`g \leftarrow g + \lambda\theta`); ``AdamW`` is ``torch.optim.AdamW`` (decoupled,
:math:`\theta \leftarrow \theta(1 - \eta\lambda)` before the Adam step).  Both take
``betas = (adam_beta1, adam_beta2)``, ``amsgrad`` and torch's fused kernel on the devices
that have one, as DeePMD-kit 3.2 builds them (``deepmd/pt/train/training.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: torch optimizer class of each ``optimizer.type``.
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
#: Device types with torch's fused Adam/AdamW kernel (cpu since torch 2.4).
FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu")


def make_optimizer(cfg, params: Sequence[torch.nn.Parameter], lr: float, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` (an ``Adam``/``AdamW`` config) over ``params`` at rate ``lr``."""
    cls = OPTIMIZERS[cfg.type]
    return cls(params, lr=lr, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay,
               amsgrad=cfg.amsgrad, fused=True if device.type in FUSED_DEVICES else None)


def clip_gradients(params: Sequence[torch.nn.Parameter], max_norm: float | None) -> None:
    r"""``training.gradient_max_norm``: scale the gradients of ``params`` so that their joint 2-norm is at most ``max_norm``.

    .. math:: g_i \leftarrow g_i \min\!\left(1, \frac{c}{\|g\|_2 + 10^{-6}}\right),
        \qquad \|g\|_2 = \Big(\sum_i \|g_i\|_2^2\Big)^{1/2}

    (``torch.nn.utils.clip_grad_norm_``).  ``params`` are the trainable parameters only;
    ``max_norm`` None or 0 means no clipping (DeePMD-kit clips when it is > 0).
    """
    if max_norm:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
