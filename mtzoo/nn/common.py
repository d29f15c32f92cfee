"""Precision names and activation functions with DeePMD-kit's names and semantics."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch

PRECISIONS: dict[str, torch.dtype] = {
    "default": torch.float64,
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def to_dtype(precision: str) -> torch.dtype:
    """Map a DeePMD precision name (``default`` = float64) to a torch dtype."""
    try:
        return PRECISIONS[precision.lower()]
    except KeyError:
        raise ValueError(f"precision '{precision}' unknown (expected one of {sorted(PRECISIONS)})") from None


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Temporarily set torch's default dtype (e3nn computes its Wigner-3j / change-of-basis
    constants in the default dtype at construction: build them in float64, then cast)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _tanh_fast() -> bool:
    """Whether the compiled vectorised tanh runs here; asked at every call (``compiled`` keeps the
    module), so ``MTZOO_EXTENSIONS=0`` / ``MTZOO_NO_MVEC=1`` set later in the process take effect
    (a cached answer kept the first one for good)."""
    from mtzoo.nn.extension import tanh_vectorised

    return tanh_vectorised()


_functorch_active = getattr(torch._C, "_are_functorch_transforms_active", lambda: False)


class _FastTanh(torch.autograd.Function):
    """:math:`y = \\tanh x` by the compiled kernel; backward :math:`\\bar x = \\bar y (1 - y^2)`
    with torch's ``tanh_backward`` on the saved output, itself differentiable (force training)."""

    @staticmethod
    def forward(ctx, x):
        y = torch.ops.mtzoo.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(gy, y)


def fast_tanh(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """:math:`\\tanh x`, vectorised in the compiled extension for contiguous CPU float64/float32
    tensors (``activation_ext.cpp``: about 3x torch 2.13's CPU tanh in float64, within 3 ulp),
    ``torch.tanh`` otherwise.  Differentiable to any order.  ``out`` (no autograd): write there,
    which may be ``x`` itself.

    Shapes
    ------
    any -> same.
    """
    fast = x.device.type == "cpu" and x.dtype in (torch.float64, torch.float32) and _tanh_fast()
    if not fast or not x.is_contiguous() or _functorch_active():  # torch.func wrappers have no storage
        return torch.tanh(x, out=out) if out is not None else torch.tanh(x)
    if out is x:
        torch.ops.mtzoo.tanh_(x)
        return x
    if out is not None:
        return out.copy_(torch.ops.mtzoo.tanh(x))
    if torch.is_grad_enabled() and x.requires_grad:
        return _FastTanh.apply(x)
    return torch.ops.mtzoo.tanh(x)


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    # DeePMD's "gelu" is the tanh approximation
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": fast_tanh,
    "relu": torch.relu,
    "relu6": lambda x: torch.clamp(x, 0.0, 6.0),
    "softplus": torch.nn.functional.softplus,
    "sigmoid": torch.sigmoid,
    "gelu": _gelu_tanh,
    "gelu_tf": _gelu_tanh,
    "silu": torch.nn.functional.silu,
    "linear": lambda x: x,
    "none": lambda x: x,
}


def _gelu_tanh_grad(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    c = math.sqrt(2.0 / math.pi)
    t = torch.tanh(c * (z + 0.044715 * z**3))
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * z * z)


def _silu_grad(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


#: :math:`\phi'(z)` from the pre-activation ``z`` and the output ``y = phi(z)`` (for the
#: hand-written input gradient of :meth:`mtzoo.nn.mlp.FittingNet.value_and_input_grad`).
ACTIVATION_GRADS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "tanh": lambda z, y: 1.0 - y * y,
    "relu": lambda z, y: (z > 0).to(z.dtype),
    "relu6": lambda z, y: ((z > 0) & (z < 6.0)).to(z.dtype),
    "softplus": lambda z, y: torch.sigmoid(z),
    "sigmoid": lambda z, y: y * (1.0 - y),
    "gelu": _gelu_tanh_grad,
    "gelu_tf": _gelu_tanh_grad,
    "silu": _silu_grad,
}


def activation(name: str | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Activation function by DeePMD name (case-insensitive; ``None`` = identity)."""
    key = "none" if name is None else name.lower()
    try:
        return ACTIVATIONS[key]
    except KeyError:
        raise ValueError(f"activation_function '{name}' unknown (expected one of {sorted(ACTIVATIONS)})") from None


_MALLOC_TUNED = False


def keep_freed_memory() -> bool:
    """Let glibc's allocator keep freed memory for reuse instead of returning it to the system.

    A training step allocates and frees the same large buffers (tens of MB) every step; with
    glibc's defaults many of them are fresh ``mmap`` regions whose pages the kernel zero-fills on
    first touch.  Raising ``M_MMAP_THRESHOLD`` (to its 32 MB maximum), ``M_TRIM_THRESHOLD`` and
    ``M_TOP_PAD`` keeps them in the heap.  Measured on DeePMD's water example
    (``benchmarks/bench_deepmd.py`` model, batch 1): 178-218 ms per training step against
    228-244 ms without, in four A/B pairs.  Inference of the compressed model (192 atoms):
    16.2-20.0 ms against 17.1-21.1 ms without, 1.0-1.5 ms faster in each of three interleaved
    process pairs.  The settings are process-wide and stay (glibc's dynamic default cannot be
    restored: setting the "defaults" back explicitly made steps 1.6x slower), so they are
    **opt-in**: applied only when ``MTZOO_MALLOC_TUNING=1``.  The ``mtzoo`` command owns its process
    and sets it (``MTZOO_MALLOC_TUNING=0 mtzoo ...`` opts out), as do the benchmark scripts; a
    script that imports mtzoo (an MD run with the ASE calculator, say) keeps glibc's defaults
    unless it sets the variable.  Called by :class:`~mtzoo.training.trainer.Trainer`,
    :class:`~mtzoo.calculator.MTZooCalculator` and a compressed descriptor building its tables;
    a no-op off Linux/glibc.  Returns whether the settings are applied.
    """
    global _MALLOC_TUNED
    import ctypes
    import os
    import sys

    if _MALLOC_TUNED:
        return True
    if os.environ.get("MTZOO_MALLOC_TUNING", "0") != "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim, m_top_pad, m_mmap = -1, -2, -3  # mallopt parameter numbers (malloc.h)
        ok = all(libc.mallopt(p, v) == 1 for p, v in ((m_mmap, 32 << 20), (m_trim, 1 << 30), (m_top_pad, 256 << 20)))
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = ok
    return ok
