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
training differentiates the forces (a first backward) once more.  The kernels
(``contract_ext.cpp``) loop over edges with ``4 M`` multiply-adds each; they replace the dense
``[atoms, neighbours]`` grids and batched matrix products of the torch-ops path, whose inner
dimension of 4 runs far below the matrix units' speed.  :func:`edge_contract` picks them when the
extension is built and falls back to ``index_add`` (same arithmetic) otherwise.
"""

from __future__ import annotations

import torch

from mtzoo.nn.extension import compiled


class EdgeContract(torch.autograd.Function):
    """:math:`\\mathcal T = \\partial\\Phi/\\partial\\mathcal T`: ``rr [E, 4], g [R, M] -> [N, 4, M]``."""

    @staticmethod
    def forward(ctx, rr, g, row, dst, n_atoms):
        ctx.save_for_backward(rr, g, row, dst)
        ctx.n_atoms = n_atoms
        return compiled().edge_contract(rr, g, row, dst, n_atoms)

    @staticmethod
    def backward(ctx, gt):
        rr, g, row, dst = ctx.saved_tensors
        gt = gt.contiguous()
        grr = EdgeContractDR.apply(gt, g, row, dst) if ctx.needs_input_grad[0] else None
        gg = EdgeContractDG.apply(gt, rr, row, dst, g.shape[0]) if ctx.needs_input_grad[1] else None
        return grr, gg, None, None, None


class EdgeContractDR(torch.autograd.Function):
    """:math:`\\partial\\Phi/\\partial\\hat{\\mathcal R}`: ``t [N, 4, M], g [R, M] -> [E, 4]``."""

    @staticmethod
    def forward(ctx, t, g, row, dst):
        ctx.save_for_backward(t, g, row, dst)
        return compiled().edge_contract_dr(t, g, row, dst)

    @staticmethod
    def backward(ctx, c):
        t, g, row, dst = ctx.saved_tensors
        c = c.contiguous()
        gt = EdgeContract.apply(c, g, row, dst, t.shape[0]) if ctx.needs_input_grad[0] else None
        gg = EdgeContractDG.apply(t, c, row, dst, g.shape[0]) if ctx.needs_input_grad[1] else None
        return gt, gg, None, None


class EdgeContractDG(torch.autograd.Function):
    """:math:`\\partial\\Phi/\\partial\\mathcal G`: ``t [N, 4, M], rr [E, 4] -> [R, M]``."""

    @staticmethod
    def forward(ctx, t, rr, row, dst, n_rows):
        ctx.save_for_backward(t, rr, row, dst)
        return compiled().edge_contract_dg(t, rr, row, dst, n_rows)

    @staticmethod
    def backward(ctx, c):
        t, rr, row, dst = ctx.saved_tensors
        c = c.contiguous()
        gt = EdgeContract.apply(rr, c, row, dst, t.shape[0]) if ctx.needs_input_grad[0] else None
        grr = EdgeContractDR.apply(t, c, row, dst) if ctx.needs_input_grad[1] else None
        return gt, grr, None, None, None


def edge_contract(rr: torch.Tensor, g: torch.Tensor, row: torch.Tensor, dst: torch.Tensor, n_atoms: int,
                  use_compiled: bool | None = None) -> torch.Tensor:
    """:math:`\\mathcal T_n = \\sum_{e: d_e = n} \\hat{\\mathcal R}_e^\\top \\mathcal G_{r_e}`.

    Parameters
    ----------
    rr : Tensor ``[E, 4]``
        Environment rows.
    g : Tensor ``[R, M]``
        Embedding rows, same dtype.
    row, dst : Tensor ``[E]`` (int64)
        Row of each edge in ``g`` and its centre.
    n_atoms : int
        Number of centres ``N``.
    use_compiled : bool or None
        Force the compiled kernels (True) or the ``index_add`` path (False); default: compiled
        when the extension is available, on the CPU, in float64 or float32.

    Returns
    -------
    Tensor ``[N, 4, M]``
    """
    if use_compiled is None:
        use_compiled = (rr.device.type == "cpu" and g.dtype in (torch.float64, torch.float32)
                        and compiled() is not None)
    if use_compiled:
        return EdgeContract.apply(rr.contiguous(), g.contiguous(), row.contiguous(), dst.contiguous(), n_atoms)
    part = rr.unsqueeze(-1) * g.index_select(0, row).unsqueeze(1)  # [E, 4, M]
    return part.new_zeros(n_atoms, 4, g.shape[1]).index_add_(0, dst, part)
