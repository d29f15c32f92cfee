"""Tabulated embedding nets ("model compression", DeePMD-kit's ``dp compress``).

An se_* embedding net :math:`\\mathcal G(x)` maps one scalar per edge to :math:`M_1` channels.
Compression replaces it by a piecewise quintic Hermite polynomial on knots
:math:`x_0 < x_1 < \\dots < x_B`: on bin :math:`b`, with :math:`t = x - x_b` and
:math:`h = x_{b+1} - x_b`,

.. math::

    \\tilde{\\mathcal G}(x) = \\sum_{k=0}^{5} \\mathbf c_{b,k}\\, t^k ,

where :math:`\\mathbf c_{b,k}` match the net's value, first and second derivative at both knots
(so :math:`\\tilde{\\mathcal G}` is :math:`C^2`: forces stay continuous).  Knots are placed
adaptively: a bin is halved until the largest deviation from the net at interior test points
is below ``tol``.  Inputs above the last knot are evaluated by the net itself (exact; close
contacts are rare), so the table never extrapolates.

The se_e2_a contraction :math:`\\mathcal T_i = \\sum_{e \\to i} \\hat{\\mathcal R}_e^\\top
\\mathcal G(x_e)` then needs no per-edge :math:`M_1`-wide rows: with the sparse basis
:math:`\\phi_{b,k}(x) = [x \\in \\text{bin } b]\\, t^k`,

.. math::

    \\mathcal T_i = \\mathbf M_i \\mathbf C,\\qquad
    (\\mathbf M_i)_{a,(b,k)} = \\sum_{e \\to i,\\ b_e = b} \\hat{\\mathcal R}_{e,a}\\, t_e^k,

one scatter of :math:`4 \\times 6` numbers per edge into :math:`\\mathbf M` ``[N, 4, 6B]``
and one matrix product with the stacked coefficients :math:`\\mathbf C` ``[6B, M1]``.
That is the torch-ops path (:class:`_BasisContract`, hand-written backward).  For float64
se_e2_a the compiled extension (:class:`FusedSeA`, ``tabulate_ext.cpp``) instead evaluates the
table edge by edge (Horner's rule, about :math:`10 M_1` multiply-adds per edge against the
:math:`8 \\cdot 6B M_1` per centre of the dense product) and accumulates :math:`\\mathcal T_i`
directly; both give the same numbers to rounding.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from mtzoo.nn.extension import ops

#: Size of the block of M (the scattered basis) handled at once: small enough to stay in cache.
CHUNK_BYTES = 8 << 20

#: Interior points (fractions of a bin) where the table is checked against the net.
_CHECK = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875)


def net_derivatives(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Value, first and second derivative of a scalar-input net, by forward-mode AD.

    Shapes
    ------
    x ``[n]`` -> three tensors ``[n, M]``.
    """
    from torch.func import jvp

    x = x.detach().unsqueeze(-1)
    one = torch.ones_like(x)

    def slope(z):
        return jvp(net, (z,), (one,))[1]

    f, df = jvp(net, (x,), (one,))
    _, d2f = jvp(slope, (x,), (one,))
    return f.detach(), df.detach(), d2f.detach()


def hermite_coefficients(knots: torch.Tensor, f: torch.Tensor, df: torch.Tensor, d2f: torch.Tensor) -> torch.Tensor:
    """Quintic Hermite coefficients on each bin from value and derivatives at the knots.

    With :math:`\\Delta = f_1 - f_0`: :math:`c_0 = f_0`, :math:`c_1 = f'_0`, :math:`c_2 = f''_0/2`,

    .. math::

        c_3 = \\frac{20\\Delta - (8f'_1 + 12f'_0)h - (3f''_0 - f''_1)h^2}{2h^3},\\quad
        c_4 = \\frac{-30\\Delta + (14f'_1 + 16f'_0)h + (3f''_0 - 2f''_1)h^2}{2h^4},\\quad
        c_5 = \\frac{12\\Delta - 6(f'_1 + f'_0)h - (f''_0 - f''_1)h^2}{2h^5}.

    Shapes
    ------
    knots ``[B+1]``, f/df/d2f ``[B+1, M]`` -> ``[B, 6, M]``.
    """
    h = (knots[1:] - knots[:-1]).unsqueeze(-1)
    f0, f1, d0, d1, s0, s1 = f[:-1], f[1:], df[:-1], df[1:], d2f[:-1], d2f[1:]
    delta = f1 - f0
    c3 = (20 * delta - (8 * d1 + 12 * d0) * h - (3 * s0 - s1) * h**2) / (2 * h**3)
    c4 = (-30 * delta + (14 * d1 + 16 * d0) * h + (3 * s0 - 2 * s1) * h**2) / (2 * h**4)
    c5 = (12 * delta - 6 * (d1 + d0) * h - (s0 - s1) * h**2) / (2 * h**5)
    return torch.stack([f0, d0, 0.5 * s0, c3, c4, c5], dim=1)


def eval_table(knots: torch.Tensor, coef: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Evaluate a table at ``x`` (inside ``[knots[0], knots[-1]]``; outside, the end polynomials extend).

    Shapes
    ------
    knots ``[B+1]``, coef ``[B, 6, M]``, x ``[n]`` -> ``[n, M]``.
    """
    b = (torch.bucketize(x, knots, right=True) - 1).clamp(0, coef.shape[0] - 1)
    t = (x - knots[b]).unsqueeze(-1)
    c = coef[b]
    out = c[:, 5]
    for k in (4, 3, 2, 1, 0):
        out = out * t + c[:, k]
    return out


@torch.no_grad()
def tabulate_net(net: nn.Module, lo: float, hi: float, tol: float, max_bins: int = 20000,
                 init_bins: int = 16, extra_knots: tuple[float, ...] = ()) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Adaptive quintic Hermite table of ``net`` on ``[lo, hi]``, in float64.

    Bins are halved until :math:`\\max |\\tilde{\\mathcal G} - \\mathcal G|` at seven interior
    points per bin is at most ``tol`` (absolute, in the net's output units).  ``extra_knots``
    inside ``[lo, hi]`` are knots from the start, so the table equals the net there (the
    se_e2_a padding input :math:`x(s = 0)` of each centre type: the energy stays exactly
    continuous as a neighbour crosses the cutoff).

    Returns
    -------
    knots ``[B+1]``, coef ``[B, 6, M]`` (float64) and the largest deviation found.

    Raises
    ------
    ValueError
        When ``max_bins`` bins do not reach ``tol`` (a non-smooth activation, or ``tol`` below
        what float64 allows for this net).
    """
    if not hi > lo:
        raise ValueError(f"table range must have hi > lo, got [{lo}, {hi}]")
    net64 = _float64_copy(net)
    knots = torch.linspace(lo, hi, init_bins + 1, dtype=torch.float64)
    extra = torch.tensor([x for x in extra_knots if lo < x < hi], dtype=torch.float64)
    if extra.numel():  # a uniform knot very close to an extra one would make a needle bin: drop it
        near = (knots[:, None] - extra[None, :]).abs().amin(1) < 1e-3 * (hi - lo) / init_bins
        near[0] = near[-1] = False
        knots = torch.unique(torch.cat([knots[~near], extra]))  # sorted
    frac = torch.tensor(_CHECK, dtype=torch.float64)
    while True:
        f, df, d2f = net_derivatives(net64, knots)
        coef = hermite_coefficients(knots, f, df, d2f)
        h = knots[1:] - knots[:-1]
        xs = (knots[:-1, None] + h[:, None] * frac).reshape(-1)
        err = (eval_table(knots, coef, xs) - net64(xs.unsqueeze(-1))).abs().amax(-1).view(-1, len(_CHECK)).amax(-1)
        bad = err > tol
        if not bool(bad.any()):
            return knots, coef, float(err.max())
        if knots.numel() - 1 + int(bad.sum()) > max_bins:
            raise ValueError(f"tabulating the embedding net needs more than {max_bins} bins to reach tol={tol:g} "
                             f"(largest deviation {float(err.max()):.3g}); raise tol or max_bins")
        mids = knots[:-1][bad] + 0.5 * h[bad]
        knots = torch.sort(torch.cat([knots, mids])).values


#: Settings of a compressed descriptor (its config's ``compress``) and their defaults.
COMPRESS_DEFAULTS = {"rmin": 0.5, "tol": 1e-10, "max_bins": 20000}


def check_compress(cfg: dict) -> dict:
    """Validated ``compress`` settings (defaults filled in); a clear error names a bad key or value."""
    if not isinstance(cfg, dict):
        raise ValueError(f"compress: expected a dict with keys {sorted(COMPRESS_DEFAULTS)}, got {cfg!r}")
    unknown = sorted(set(cfg) - set(COMPRESS_DEFAULTS))
    if unknown:
        raise ValueError(f"compress: unknown key(s) {unknown} (expected {sorted(COMPRESS_DEFAULTS)})")
    out = {**COMPRESS_DEFAULTS, **cfg}
    if not float(out["rmin"]) > 0:
        raise ValueError(f"compress.rmin must be > 0 (Angstrom), got {out['rmin']}")
    if not float(out["tol"]) > 0:
        raise ValueError(f"compress.tol must be > 0, got {out['tol']}")
    if int(out["max_bins"]) < 1:
        raise ValueError(f"compress.max_bins must be >= 1, got {out['max_bins']}")
    return {"rmin": float(out["rmin"]), "tol": float(out["tol"]), "max_bins": int(out["max_bins"])}


def _float64_copy(net: nn.Module) -> nn.Module:
    import copy

    net64 = copy.deepcopy(net).to(device="cpu", dtype=torch.float64)  # tables are built on the CPU, then moved
    for p in net64.parameters():
        p.requires_grad_(False)
    return net64


class TabulatedNets:
    """Tables of several embedding nets that feed one centre group, stacked for one matrix product.

    Parameters
    ----------
    tables : list of (knots ``[B_k+1]``, coef ``[B_k, 6, M]``)
        One table per net of the group, in the order of ``net_ids``.
    net_ids : list of int
        Descriptor net index of each table.
    dtype : torch.dtype
        Working precision of the stacked coefficients.

    Attributes
    ----------
    coef ``[6 * sum_k B_k, M]``: stacked coefficients; ``offset[k]``: first bin of net k.
    """

    def __init__(self, tables: list[tuple[torch.Tensor, torch.Tensor]], net_ids: list[int], dtype: torch.dtype,
                 device: torch.device | str = "cpu") -> None:
        self.net_ids = list(net_ids)
        self.sizes = [c.shape[0] for _, c in tables]
        self.n_bins = sum(self.sizes)
        self.coef = torch.cat([c for _, c in tables]).reshape(-1, tables[0][1].shape[-1]).to(dtype=dtype, device=device)
        self.max_dev = 0.0
        # one sorted knot array for all nets: net slot k's knots shifted to start at k * span, so
        # one bucketize finds every edge's bin; bucket j of slot k is stacked bin j - k
        lo = [float(kn[0]) for kn, _ in tables]
        span = max(float(kn[-1] - kn[0]) for kn, _ in tables) + 1.0
        self.span = span
        shifted = [kn.double() - lo[k] + k * span for k, (kn, _) in enumerate(tables)]
        self.knots_shifted = torch.cat(shifted).to(dtype=dtype, device=device)
        self.knots_all = torch.cat([kn.double() for kn, _ in tables]).to(dtype=dtype, device=device)
        starts = [sum(n + 1 for n in self.sizes[:k]) for k in range(len(tables))]
        opts = {"dtype": dtype, "device": device}
        self.lo_slot = torch.tensor(lo, **opts)
        self.hi_slot = torch.tensor([float(kn[-1]) for kn, _ in tables], **opts)
        self.last_bucket = torch.tensor([starts[k] + self.sizes[k] - 1 for k in range(len(tables))], device=device)
        self.knot_start = torch.tensor([0] + list(itertools.accumulate(n + 1 for n in self.sizes)), device=device)
        self.bin_offset = torch.tensor([0] + list(itertools.accumulate(self.sizes))[:-1], device=device)
        self.slot_of_net = torch.full((max(net_ids) + 1,), -1, dtype=torch.long, device=device)
        self.slot_of_net[torch.tensor(net_ids, device=device)] = torch.arange(len(net_ids), device=device)

    def _chunks(self, centre: torch.Tensor, n_centres: int, n_comp: int) -> list[tuple[int, int, int, int]]:
        """Blocks ``(c0, c1, e0, e1)`` of about :data:`CHUNK_BYTES` of M: centres ``c0..c1`` own edges
        ``e0..e1`` (edges grouped by centre, as neighbour lists and batches give them; otherwise one block)."""
        n_e = centre.numel()
        per_centre = max(1, CHUNK_BYTES // (n_comp * 6 * self.n_bins * self.coef.element_size()))
        if n_centres <= per_centre or n_e < 2 or not bool((centre[1:] >= centre[:-1]).all()):
            return [(0, n_centres, 0, n_e)]
        ends = torch.cumsum(torch.bincount(centre, minlength=n_centres), 0)
        bounds = list(range(0, n_centres, per_centre)) + [n_centres]
        e_at = [0] + ends[torch.tensor(bounds[1:], device=centre.device) - 1].tolist()
        return [(bounds[j], bounds[j + 1], e_at[j], e_at[j + 1]) for j in range(len(bounds) - 1)]

    def contract(self, x: torch.Tensor, weights: torch.Tensor, net: torch.Tensor, centre: torch.Tensor,
                 n_centres: int, exact: list[nn.Module]) -> torch.Tensor:
        """:math:`\\sum_{e \\to i} \\mathbf w_e^\\top \\tilde{\\mathcal G}_{k_e}(x_e)` per centre.

        Edges whose input lies above a net's table (closer than ``rmin``) are evaluated by that
        net (``exact[k]``); the first knot is the input at :math:`s = 0`, which no edge goes below
        (rounding aside: such inputs use the first bin).

        Shapes
        ------
        x ``[E]`` (net input), weights ``[E, C]`` (se_e2_a: the normalised environment rows,
        whose column 0 is x; se_e2_r: ones), net ``[E]`` (descriptor net index, one of this
        group's), centre ``[E]`` (centre index in ``0..n_centres-1``) -> ``[n_centres, C, M]``.
        """
        xd = x.detach()
        slot = self.slot_of_net.index_select(0, net)
        xs = (xd - self.lo_slot.index_select(0, slot)).clamp_min_(0.0) + slot.to(xd.dtype) * self.span
        bucket = torch.minimum(torch.bucketize(xs, self.knots_shifted, right=True) - 1,
                               self.last_bucket.index_select(0, slot))
        col = bucket - slot
        t = self.knots_all.index_select(0, bucket)
        above = xd > self.hi_slot.index_select(0, slot)
        outside = []
        x_in, w_in, centre_in = x, weights, centre
        if bool(above.any()):
            out_edges = above.nonzero().squeeze(1)
            for k, nid in enumerate(self.net_ids):
                e_k = out_edges[slot.index_select(0, out_edges) == k]
                if e_k.numel():
                    outside.append((nid, e_k))
            keep = (~above).nonzero().squeeze(1)
            x_in, w_in, centre_in = x.index_select(0, keep), weights.index_select(0, keep), centre.index_select(0, keep)
            col, t = col.index_select(0, keep), t.index_select(0, keep)
        tt = x_in - t  # position inside the bin (differentiable through x)
        n_comp = weights.shape[1]
        row = (centre_in.unsqueeze(-1) * n_comp + torch.arange(n_comp, device=x.device)) * self.n_bins + col.unsqueeze(-1)
        out = _BasisContract.apply(w_in, tt, row.reshape(-1), self.coef, n_centres,
                                   self._chunks(centre_in, n_centres, n_comp))
        for nid, edges in outside:  # exact net beyond the table (close contacts)
            g = exact[nid](x.index_select(0, edges).unsqueeze(-1))
            part = weights.index_select(0, edges).unsqueeze(-1) * g.unsqueeze(1)  # [e, C, M]
            out = out.index_add(0, centre.index_select(0, edges), part)
        return out


class _BasisContract(torch.autograd.Function):
    """:math:`\\mathcal T = \\mathbf M \\mathbf C` with :math:`\\mathbf M` scattered from
    :math:`m_{e,a,k} = w_{e,a} t_e^k`; the backward gives the gradients with respect to the
    weights :math:`w_e` and :math:`t_e` (forces and virial), in a few passes over ``[E, C, 6]``
    instead of autograd's generic broadcasting graph.

    Shapes
    ------
    w ``[E, C]``, t ``[E]``, row ``[C E]`` (row of M per edge and component), coef ``[6B, M1]``
    -> ``[n_centres, C, M1]``.
    """

    @staticmethod
    def forward(ctx, w, t, row, coef, n_centres, chunks):
        n_comp = w.shape[1]
        powers = torch.linalg.vander(t, N=6)  # [E, 6]: 1, t, ..., t^5
        m_e = (w.unsqueeze(-1) * powers.unsqueeze(1)).view(-1, 6)  # [C E, 6]
        rows_per_centre = coef.shape[0] // 6 * n_comp
        out = w.new_empty(n_centres, n_comp, coef.shape[1])
        for c0, c1, e0, e1 in chunks:  # centres c0..c1 own edges e0..e1: M of a chunk stays in cache
            m = m_e.new_zeros((c1 - c0) * rows_per_centre, 6)
            m.index_add_(0, row[n_comp * e0: n_comp * e1] - c0 * rows_per_centre, m_e[n_comp * e0: n_comp * e1])
            torch.mm(m.view((c1 - c0) * n_comp, -1), coef, out=out[c0:c1].view(-1, coef.shape[1]))
        ctx.save_for_backward(w, t, powers, row, coef)
        ctx.chunks = chunks
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        w, t, powers, row, coef = ctx.saved_tensors
        if ctx.needs_input_grad[3]:
            raise RuntimeError("tabulated embedding coefficients are not trainable (compressed models are for inference)")
        n_comp = w.shape[1]
        rows_per_centre = coef.shape[0] // 6 * n_comp
        ge = w.new_empty(row.shape[0], 6)  # dE/dm per edge and component
        for c0, c1, e0, e1 in ctx.chunks:
            gm = (grad[c0:c1].reshape(-1, coef.shape[1]) @ coef.t()).view(-1, 6)
            torch.index_select(gm, 0, row[n_comp * e0: n_comp * e1] - c0 * rows_per_centre,
                               out=ge[n_comp * e0: n_comp * e1])
        ge = ge.view(-1, n_comp, 6)
        grad_w = torch.einsum("eak,ek->ea", ge, powers) if ctx.needs_input_grad[0] else None
        q = torch.einsum("eak,ea->ek", ge[:, :, 1:], w)  # [E, 5]: sum over a of dE/dm_{a,k} w_a, k = 1..5
        k = torch.arange(1, 6, dtype=t.dtype, device=t.device)
        grad_t = (q * k * powers[:, :5]).sum(-1)
        return grad_w, grad_t, None, None, None, None


# ----------------------------------------------------------------------------------------------
# Optional compiled per-edge passes for se_e2_a (tabulate_ext.cpp)
# ----------------------------------------------------------------------------------------------
def fused_extension():
    """The registered kernels (``torch.ops.mtzoo``, :func:`mtzoo.nn.extension.ops`) or None: then
    the same arithmetic runs as torch ops."""
    return ops()


class FusedSeA(torch.autograd.Function):
    """se_e2_a with tables, from edge vectors to :math:`\\mathcal T` in compiled per-edge passes.

    Forward: environment rows :math:`\\hat{\\mathcal R}_e = a_p \\odot \\mathcal R(\\mathbf r_e) + b_p`
    (per type pair :math:`p` of the edge, gathered in the kernel: ``tables.scale``/``tables.shift``
    hold :math:`1/\\sigma` and :math:`-\\mu/\\sigma`, times the exclusion mask), bin search, the
    table's value :math:`\\tilde{\\mathcal G}(x_e) = \\sum_k \\mathbf c_{b_e,k} t_e^k` (Horner) and
    :math:`\\mathcal T_{i} \\mathrel{+}= \\hat{\\mathcal R}_e^\\top \\tilde{\\mathcal G}(x_e)`
    edge by edge (no M: about :math:`10 M_1` multiply-adds per edge instead of the dense
    :math:`8 \\cdot 6B M_1` per centre of M C), and the count of neighbours of each type per centre;
    backward, per edge, from :math:`\\bar{\\mathcal T} = \\partial E/\\partial \\mathcal T`:
    :math:`\\partial E/\\partial \\hat{\\mathcal R}_{e,a} = \\tilde{\\mathcal G}(x_e) \\cdot \\bar{\\mathcal T}_{i,a}`
    and :math:`\\partial E/\\partial t_e = \\tilde{\\mathcal G}'(x_e) \\cdot \\sum_a \\hat{\\mathcal R}_{e,a}
    \\bar{\\mathcal T}_{i,a}` in one pass over the channels, then the chain rule to the edge vector.

    Shapes
    ------
    vec ``[E, 3]``, edge_index ``[2, E]`` (neighbour, centre), atom_type ``[N]`` ->
    ``[N, 4, M1]``, ``inside`` ``[E]`` (False: above the table, to be added by the caller with the
    net) and ``counts`` ``[N, nt]``.
    """

    @staticmethod
    def forward(ctx, vec, edge_index, atom_type, tables, env):
        rs, rc, prot = env
        tb = tables
        out, rr, t, col, inside, counts = torch.ops.mtzoo.tabulate_forward(
            vec, edge_index, atom_type, tb.scale, tb.shift, tb.slot, tb.knots_all, tb.knot_start, tb.bin_offset,
            tb.coef, rs, rc, prot)
        ctx.save_for_backward(vec, edge_index, atom_type, rr, t, col, inside)
        ctx.tables, ctx.env = tables, env
        ctx.mark_non_differentiable(inside, counts)
        return out, inside, counts

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad, _inside, _counts):
        vec, edge_index, atom_type, rr, t, col, inside = ctx.saved_tensors
        tb = ctx.tables
        gvec = torch.ops.mtzoo.tabulate_backward(grad, vec, edge_index, atom_type, tb.scale, tb.shift, tb.slot, rr, t,
                                                   col, inside, tb.knots_all, tb.knot_start, tb.bin_offset, tb.coef,
                                                   *ctx.env)
        return gvec, None, None, None, None


class SeATail(torch.autograd.Function):
    """se_e2_a's per-atom tail, compiled (``se_tail_ext.cpp``): used after :class:`FusedSeA`.

    .. math::
        \\mathcal X_n = \\Big(\\mathcal T_n + \\sum_t p_{nt} \\mathcal P_{c_n t}\\Big) / N_c, \\qquad
        \\mathcal D_n = \\mathcal X_n^\\top \\mathcal X_n^<

    with :math:`p_{nt}` the empty neighbour slots of type :math:`t` and :math:`\\mathcal P_{ct}`
    their closed-form rows (``pad``/``rows``; both None when no slot is empty).  The backward
    takes :math:`\\partial E/\\partial \\mathcal D` and, when the rotation matrix was used,
    :math:`\\partial E/\\partial \\mathcal X`.

    Shapes
    ------
    T ``[N, 4, M1]``, pad ``[N, nt]``, rows ``[nt, nt, 4, M1]``, atom_type ``[N]`` ->
    X ``[N, 4, M1]``, D ``[N, M1 * M2]``.
    """

    @staticmethod
    def forward(ctx, T, pad, rows, atom_type, inv_nnei, m2):
        X, D = torch.ops.mtzoo.se_a_tail_forward(T.contiguous(), pad, rows, atom_type, inv_nnei, m2)
        ctx.set_materialize_grads(False)  # an unused rotation matrix gets no zero-filled gradient
        ctx.save_for_backward(X)
        ctx.inv_nnei, ctx.m2 = inv_nnei, m2
        return X, D

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_x, grad_d):
        (X,) = ctx.saved_tensors
        if grad_d is None:
            grad_d = X.new_zeros(X.shape[0], X.shape[2] * ctx.m2)
        g = torch.ops.mtzoo.se_a_tail_backward(X, grad_d, grad_x, ctx.inv_nnei, ctx.m2)
        return g, None, None, None, None, None
