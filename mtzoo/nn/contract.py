r"""Edge contraction of the exact se_e2_a descriptor, differentiable to any order, with compiled kernels.

With environment rows :math:`\hat{\mathcal R}` ``[E, 4]``, embedding rows :math:`\mathcal G`
``[R, M]`` (edge :math:`e` reads row :math:`r_e`, so mirror edges share one row) and centres
:math:`d_e`, the three operations are the partial derivatives of one trilinear form

.. math::

    \Phi(\hat{\mathcal R}, \mathcal G, \mathcal T) = \sum_e \sum_{k<4} \sum_m
        \hat{\mathcal R}_{ek}\, \mathcal G_{r_e m}\, \mathcal T_{d_e k m}:

    \mathcal T_{n k m} = \sum_{e: d_e = n} \hat{\mathcal R}_{ek} \mathcal G_{r_e m}
        = \partial\Phi/\partial\mathcal T \quad \text{(:class:`EdgeContract`, } [N, 4, M]),

    \partial\Phi/\partial\hat{\mathcal R}_{ek} = \sum_m \mathcal T_{d_e k m} \mathcal G_{r_e m}
        \quad \text{(:class:`EdgeContractDR`, } [E, 4]),

    \partial\Phi/\partial\mathcal G_{r m} = \sum_{e: r_e = r} \sum_k \hat{\mathcal R}_{ek} \mathcal T_{d_e k m}
        \quad \text{(:class:`EdgeContractDG`, } [R, M]).

Each is linear in each argument, so the backward of each is two of the others, to any order:
training differentiates the forces (a first backward) once more.  :math:`\mathcal G` comes in
parts (one per embedding net; rows numbered across the parts in order) that are never
concatenated: the concatenation's double backward zero-filled a ``[R, M]`` array per part.  The kernels
(``contract_ext.cpp``) loop over edges with ``4 M`` multiply-adds each; they replace the dense
``[atoms, neighbours]`` grids and batched matrix products of the torch-ops path, whose inner
dimension of 4 runs far below the matrix units' speed.  :func:`edge_contract` picks them when the
extension is built and falls back to ``index_add`` (same arithmetic) otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtzoo.nn.extension import compiled


class EdgeContract(torch.autograd.Function):
    """:math:`\\mathcal T = \\partial\\Phi/\\partial\\mathcal T`: ``rr [E, 4], *g [R_k, M] -> [N, 4, M]``."""

    @staticmethod
    def forward(ctx, rr, row, dst, n_atoms, *g):
        ctx.save_for_backward(rr, row, dst, *g)
        return torch.ops.mtzoo.edge_contract(rr, list(g), row, dst, n_atoms)

    @staticmethod
    def backward(ctx, gt):
        rr, row, dst, *g = ctx.saved_tensors
        gt = gt.contiguous()
        grr = EdgeContractDR.apply(gt, row, dst, *g) if ctx.needs_input_grad[0] else None
        gg = EdgeContractDG.apply(gt, rr, row, dst, *g) if any(ctx.needs_input_grad[4:]) else (None,) * len(g)
        return (grr, None, None, None, *gg)


class EdgeContractDR(torch.autograd.Function):
    """:math:`\\partial\\Phi/\\partial\\hat{\\mathcal R}`: ``t [N, 4, M], *g [R_k, M] -> [E, 4]``."""

    @staticmethod
    def forward(ctx, t, row, dst, *g):
        ctx.save_for_backward(t, row, dst, *g)
        return torch.ops.mtzoo.edge_contract_dr(t, list(g), row, dst)

    @staticmethod
    def backward(ctx, c):
        t, row, dst, *g = ctx.saved_tensors
        c = c.contiguous()
        gt = EdgeContract.apply(c, row, dst, t.shape[0], *g) if ctx.needs_input_grad[0] else None
        gg = EdgeContractDG.apply(t, c, row, dst, *g) if any(ctx.needs_input_grad[3:]) else (None,) * len(g)
        return (gt, None, None, *gg)


class EdgeContractDG(torch.autograd.Function):
    """:math:`\\partial\\Phi/\\partial\\mathcal G`: ``t [N, 4, M], rr [E, 4] -> one [R_k, M] per part``.

    The parts ``g`` are passed for their shapes only (so their row counts travel with them)."""

    @staticmethod
    def forward(ctx, t, rr, row, dst, *g):
        ctx.save_for_backward(t, rr, row, dst)
        return tuple(torch.ops.mtzoo.edge_contract_dg(t, rr, row, dst, [x.shape[0] for x in g]))

    @staticmethod
    def backward(ctx, *c):
        t, rr, row, dst = ctx.saved_tensors
        c = [x.contiguous() for x in c]  # materialised by autograd: zeros for an unused part
        gt = EdgeContract.apply(rr, row, dst, t.shape[0], *c) if ctx.needs_input_grad[0] else None
        grr = EdgeContractDR.apply(t, row, dst, *c) if ctx.needs_input_grad[1] else None
        return (gt, grr, None, None, *([None] * len(c)))


def edge_contract(rr: torch.Tensor, g: torch.Tensor | Sequence[torch.Tensor], row: torch.Tensor, dst: torch.Tensor,
                  n_atoms: int, use_compiled: bool | None = None) -> torch.Tensor:
    """:math:`\\mathcal T_n = \\sum_{e: d_e = n} \\hat{\\mathcal R}_e^\\top \\mathcal G_{r_e}`.

    Parameters
    ----------
    rr : Tensor ``[E, 4]``
        Environment rows.
    g : Tensor ``[R, M]`` or sequence of Tensors ``[R_k, M]``
        Embedding rows, same dtype; parts are numbered in order (row ``r`` of part ``k`` is row
        ``R_0 + ... + R_{k-1} + r``).
    row, dst : Tensor ``[E]`` (int64)
        Row of each edge (across the parts) and its centre.
    n_atoms : int
        Number of centres ``N``.
    use_compiled : bool or None
        Force the compiled kernels (True) or the ``index_add`` path (False); default: compiled
        when the extension is available, on the CPU, in float64 or float32.

    Returns
    -------
    Tensor ``[N, 4, M]``
    """
    parts = [g] if isinstance(g, torch.Tensor) else list(g)
    if use_compiled is None:
        use_compiled = (rr.device.type == "cpu" and parts[0].dtype in (torch.float64, torch.float32)
                        and compiled() is not None)
    if use_compiled:
        return EdgeContract.apply(rr.contiguous(), row.contiguous(), dst.contiguous(), n_atoms,
                                  *(x.contiguous() for x in parts))
    rows = parts[0] if len(parts) == 1 else torch.cat(parts)
    part = rr.unsqueeze(-1) * rows.index_select(0, row).unsqueeze(1)  # [E, 4, M]
    return part.new_zeros(n_atoms, 4, rows.shape[1]).index_add_(0, dst, part)
