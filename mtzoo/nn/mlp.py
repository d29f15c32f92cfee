"""DeePMD-kit style dense networks: residual layers with an optional timestep.

One layer computes

.. math::

    \\mathbf y = \\mathbf r(\\mathbf x) + \\mathbf d \\odot \\phi(\\mathbf x W + \\mathbf b)

where the residual :math:`\\mathbf r(\\mathbf x)` is :math:`\\mathbf x` when the widths are
equal, :math:`[\\mathbf x, \\mathbf x]` when the output is twice the input, and absent
otherwise (or when ``resnet`` is off); :math:`\\mathbf d` is the trainable timestep
(``resnet_dt``), used only where a residual exists.  The embedding net stacks such layers;
the fitting net adds a final linear layer.  Initialisation follows DeePMD-kit:
:math:`W \\sim \\mathcal N(0, 1/(n_\\text{in}+n_\\text{out}))`, :math:`b \\sim \\mathcal N(0,1)`,
:math:`d \\sim \\mathcal N(0.1, 10^{-6})`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mtzoo.nn.common import ACTIVATION_GRADS, activation, fast_tanh
from mtzoo.nn.extension import gemm_packed


def _seeded(seed: int | Sequence[int] | None) -> np.random.Generator:
    return np.random.default_rng(seed)


class DenseLayer(nn.Module):
    """One DeePMD layer.

    Parameters
    ----------
    n_in, n_out : int
        Widths.
    activation_function : str or None
        DeePMD activation name; None for a linear layer.
    resnet : bool
        Add the identity (or doubled identity) skip where shapes allow.
    use_timestep : bool
        Multiply the activated branch by a trainable vector ``idt`` (only where a skip exists).
    bias : bool
        Whether the layer has a bias.
    dtype : torch.dtype
        Parameter precision.
    seed : int, list of int or None
        Seed of the numpy generator used for the initial weights.
    trainable : bool
        False freezes the layer (no gradient, no optimizer state).

    Shapes
    ------
    input ``[..., n_in]`` -> output ``[..., n_out]``.
    """

    def __init__(self, n_in: int, n_out: int, activation_function: str | None = None, resnet: bool = False,
                 use_timestep: bool = False, bias: bool = True, dtype: torch.dtype = torch.float64,
                 seed: int | Sequence[int] | None = None, trainable: bool = True) -> None:
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.activation_name = activation_function or "none"
        self.act = activation(activation_function)
        self.resnet = resnet
        self.skip = 0
        if resnet and n_out == n_in:
            self.skip = 1
        elif resnet and n_out == 2 * n_in:
            self.skip = 2
        rng = _seeded(seed)
        self.weight = nn.Parameter(torch.tensor(rng.normal(size=(n_in, n_out), scale=1.0 / math.sqrt(n_in + n_out)), dtype=dtype))
        self.bias = nn.Parameter(torch.tensor(rng.normal(size=(n_out,)), dtype=dtype)) if bias else None
        use_timestep = use_timestep and self.skip > 0
        self.idt = nn.Parameter(torch.tensor(rng.normal(size=(n_out,), scale=0.001) + 0.1, dtype=dtype)) if use_timestep else None
        self.requires_grad_(trainable)

    @property
    def trainable(self) -> bool:
        return self.weight.requires_grad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.addmm(self.bias, x, self.weight) if (self.bias is not None and x.dim() == 2) else (
            x @ self.weight + self.bias if self.bias is not None else x @ self.weight)
        y = self.act(y)
        if self.idt is not None:
            y = y * self.idt
        if self.skip == 1:
            y = y + x
        elif self.skip == 2:  # [x, x] + y, added in place into the fresh concatenation (measured
            # faster than a broadcast add: one allocation less and a cheaper backward)
            y = torch.cat([x, x], dim=-1).add_(y)
        return y

    # --- DeePMD-kit serialisation ("@class": "Layer") -----------------------------------
    def load_deepmd(self, data: dict) -> None:
        """Copy weights from a DeePMD-kit serialized layer dict (``NativeLayer.serialize()``)."""
        var = data["@variables"]
        with torch.no_grad():
            self.weight.copy_(torch.as_tensor(np.asarray(var["w"])))
            if self.bias is not None:
                self.bias.copy_(torch.as_tensor(np.asarray(var["b"]).ravel()))
            if self.idt is not None:
                self.idt.copy_(torch.as_tensor(np.asarray(var["idt"]).ravel()))


def _layer_flags(trainable: bool | Sequence[bool], n: int, what: str) -> list[bool]:
    if isinstance(trainable, bool):
        return [trainable] * n
    flags = [bool(t) for t in trainable]
    if len(flags) != n:
        raise ValueError(f"{what}: trainable has {len(flags)} flags, expected {n} (one per layer)")
    return flags


def _child_seed(seed: int | Sequence[int] | None, idx: int) -> list[int] | None:
    if seed is None:
        return None
    base = list(seed) if isinstance(seed, (list, tuple)) else [int(seed)]
    return base + [idx]


class EmbeddingNet(nn.Module):
    """Stack of residual layers ``in_dim -> neuron[0] -> ... -> neuron[-1]`` (DeePMD ``EmbeddingNet``).

    Shapes
    ------
    input ``[..., in_dim]`` -> output ``[..., neuron[-1]]``.
    """

    def __init__(self, in_dim: int, neuron: Sequence[int], activation_function: str = "tanh",
                 resnet_dt: bool = False, dtype: torch.dtype = torch.float64,
                 seed: int | Sequence[int] | None = None, trainable: bool | Sequence[bool] = True) -> None:
        super().__init__()
        flags = _layer_flags(trainable, len(neuron), "embedding net")
        layers, n_in = [], in_dim
        for i, n_out in enumerate(neuron):
            layers.append(DenseLayer(n_in, n_out, activation_function, resnet=True, use_timestep=resnet_dt,
                                     dtype=dtype, seed=_child_seed(seed, i), trainable=flags[i]))
            n_in = n_out
        self.layers = nn.ModuleList(layers)
        self.in_dim, self.out_dim = in_dim, n_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def load_deepmd(self, data: dict) -> None:
        """Copy weights from DeePMD's serialized ``EmbeddingNetwork``/``FittingNetwork`` dict."""
        if len(data["layers"]) != len(self.layers):
            raise ValueError(f"DeePMD network has {len(data['layers'])} layers, mtzoo built {len(self.layers)}")
        for layer, ld in zip(self.layers, data["layers"]):
            layer.load_deepmd(ld)


class FittingNet(EmbeddingNet):
    """Residual hidden layers followed by a linear output layer (DeePMD ``FittingNet``).

    ``trainable`` is a bool or one flag per layer (hidden layers plus the output layer).

    Shapes
    ------
    input ``[..., in_dim]`` -> output ``[..., out_dim]``.
    """

    def __init__(self, in_dim: int, out_dim: int, neuron: Sequence[int], activation_function: str = "tanh",
                 resnet_dt: bool = True, dtype: torch.dtype = torch.float64, bias_out: bool = True,
                 seed: int | Sequence[int] | None = None, trainable: bool | Sequence[bool] = True) -> None:
        flags = _layer_flags(trainable, len(neuron) + 1, "fitting net")
        super().__init__(in_dim, neuron, activation_function, resnet_dt, dtype, seed, flags[:-1])
        self.layers.append(DenseLayer(self.out_dim, out_dim, None, resnet=False, bias=bias_out, dtype=dtype,
                                      seed=_child_seed(seed, len(neuron)), trainable=flags[-1]))
        self.out_dim = out_dim

    def folded_weight(self, fold: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        r"""First layer's weight for a folded input, :math:`W'_j = W_{\mathrm{keep}_j} +
        [\mathrm{mirror}_j \ge 0]\, W_{\mathrm{mirror}_j}` (``[F, n_out]``), kept until the weight
        changes (its storage or version).  No gradient reaches the weights through it."""
        w = self.layers[0].weight
        keep, mirror = fold
        key = (w.data_ptr(), w._version, w.dtype, w.device, keep.data_ptr(), keep.numel())
        cached = getattr(self, "_folded", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.no_grad():
            keep, mirror = keep.to(w.device), mirror.to(w.device)
            wf = w.index_select(0, keep)
            rows = (mirror >= 0).nonzero().squeeze(1)
            wf.index_add_(0, rows, w.index_select(0, mirror.index_select(0, rows)))
        self._folded = (key, wf)
        return wf

    def packed_weights(self, weights: list[torch.Tensor], ext: object) -> list[torch.Tensor]:
        r"""The hidden layers' weights packed for the compiled AVX-512 matrix product
        (``gemm_ext.cpp``): ``[pack(W_0), pack(W_0^\top), pack(W_1), ...]``, each ``[ceil(n/24), k, 24]``
        (column panels of :math:`B = W` or :math:`W^\top`, ``[k, n]``), kept until a weight changes
        its storage, shape or version; the compiled pass also compares 64 sampled weights with
        their packed copies at every call and repacks on a difference (updates that leave the
        version counter alone: fused optimizers, writes through ``.data``)."""
        key = tuple((w.data_ptr(), w._version, tuple(w.shape)) for w in weights[:-1])
        cached = getattr(self, "_packed", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.no_grad():
            packed = [p for w in weights[:-1] for p in (ext.gemm_pack(w.detach(), False), ext.gemm_pack(w.detach(), True))]
        self._packed = (key, packed)
        return packed

    def value_and_input_grad(self, x: torch.Tensor, out: tuple[torch.Tensor, torch.Tensor] | None = None,
                             fold: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Output and :math:`\\partial(\\sum_r y_r)/\\partial\\mathbf x` by a hand-written backward
        pass, without autograd (inference: forces of an energy head).

        Per hidden layer, from :math:`\\bar{\\mathbf y} = \\partial E/\\partial \\mathbf y`:
        :math:`\\bar{\\mathbf z} = (\\mathbf d \\odot \\bar{\\mathbf y}) \\odot \\phi'(\\mathbf z)`,
        :math:`\\bar{\\mathbf x} = \\bar{\\mathbf z} W^\\top + \\bar{\\mathbf r}` (the residual's
        share: :math:`\\bar{\\mathbf y}`, or its two halves summed for a doubled skip).  Nothing is
        recorded for autograd and the weights get no gradient.

        ``fold`` (keep ``[F]``, mirror ``[F]``): ``x`` is a folded input ``[n, F]`` (input ``j``
        is the net's input ``keep[j]``, and input ``mirror[j]`` equals it where ``>= 0``;
        :func:`mtzoo.descriptors.se_e2_a.folded_index`): the first layer runs with
        :meth:`folded_weight`, and ``dE/dx`` is ``[n, F]``.

        Shapes
        ------
        x ``[n, in_dim]`` -> ``y [n, out_dim]``, ``dE/dx [n, in_dim]`` with :math:`E = \\sum y`
        (written into ``out``, two contiguous tensors of these shapes, when given).
        """
        layers = tuple(self.layers)  # slicing an nn.ModuleList builds a new one (tens of microseconds)
        hidden = layers[:-1]
        if fold is not None and layers[0].skip:
            raise ValueError("a folded input needs a first layer without a residual skip")
        weights = [layers[0].weight if fold is None else self.folded_weight(fold)] + [la.weight for la in layers[1:]]
        ext = _fitting_ext(x, layers)
        if ext is not None:  # tanh net, float64 on the CPU: the whole pass in one compiled call
            y_out, g_out = out if out is not None else (x.new_empty(x.shape[0], self.out_dim), torch.empty_like(x))
            # AVX-512 here: the hidden layers' products by the packed kernel (MKL runs AVX2 code on AMD)
            packed = self.packed_weights(weights, ext) if gemm_packed() else []
            with torch.no_grad():
                torch.ops.mtzoo.mlp_value_and_grad(x.detach(), weights, [la.bias for la in layers], [la.idt for la in hidden],
                                       [la.skip for la in hidden], y_out, g_out, packed)
            return y_out, g_out
        with torch.no_grad():
            saved = []
            for layer, w in zip(hidden, weights):
                z = torch.addmm(layer.bias, x, w) if layer.bias is not None else x @ w
                tanh = layer.activation_name.lower() == "tanh"
                y = fast_tanh(z, out=z) if tanh else layer.act(z)  # tanh: phi' from y alone, z not kept
                saved.append((None if tanh else z, y))
                if layer.skip == 1:  # x + d * y in one pass
                    h = torch.addcmul(x, y, layer.idt) if layer.idt is not None else y + x
                elif layer.skip == 2:
                    h = torch.cat([x, x], dim=-1)
                    h = h.addcmul_(y, layer.idt) if layer.idt is not None else h.add_(y)
                else:
                    h = y
                x = h
            last, w_last = layers[-1], weights[-1]  # (folded too when the output layer is the only one)
            y_out, g_out = out if out is not None else (None, None)
            if last.bias is not None:
                y = torch.addmm(last.bias, x, w_last, out=y_out)
            else:
                y = torch.mm(x, w_last, out=y_out)
            g = w_last.sum(1).expand(x.shape[0], -1)  # d(sum y)/dx of the linear output layer
            for k, (layer, w, (z, act)) in enumerate(zip(reversed(hidden), reversed(weights[:-1]), reversed(saved))):
                gz = g * layer.idt if layer.idt is not None else g
                name = layer.activation_name.lower()
                if name == "tanh":  # gz (1 - y^2)
                    gz = torch.addcmul(gz, gz * act, act, value=-1.0)
                elif name not in ("none", "linear"):
                    gz = gz * ACTIVATION_GRADS[name](z, act)
                # the residual's share enters as the product's added term
                if layer.skip == 1:
                    g = torch.addmm(g, gz, w.t())
                elif layer.skip == 2:
                    g = torch.addmm(g[:, : layer.n_in] + g[:, layer.n_in:], gz, w.t())
                else:
                    g = torch.mm(gz, w.t(), out=g_out if k == len(saved) - 1 else None)
            if g_out is not None and g.data_ptr() != g_out.data_ptr():  # the first layer had a residual
                g_out.copy_(g)
                g = g_out
            return y, g


def _fitting_ext(x: torch.Tensor, layers: tuple) -> object | None:
    """The compiled extension when :meth:`FittingNet.value_and_input_grad` can run as one call
    (``fitting_ext.cpp``): float64 contiguous CPU input, tanh hidden layers, float64 weights; else None."""
    if x.dtype != torch.float64 or x.device.type != "cpu" or x.dim() != 2 or not x.is_contiguous():
        return None
    if any(la.activation_name.lower() != "tanh" for la in layers[:-1]) or layers[-1].activation_name.lower() not in (
            "none", "linear") or layers[-1].skip != 0 or layers[-1].idt is not None:
        return None
    if any(la.weight.dtype != torch.float64 or not la.weight.is_contiguous() for la in layers):
        return None
    from mtzoo.nn.extension import compiled

    ext = compiled()
    return ext if ext is not None and hasattr(ext, "mlp_value_and_grad") else None
