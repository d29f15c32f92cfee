"""DeePMD-kit's se_e2_a (``se_a``) descriptor on an edge graph, without neighbour padding.

For centre :math:`i`, edges :math:`e = (j \\to i)` carry normalised environment rows
:math:`\\hat{\\mathcal R}_e = (\\mathcal R_e - \\mu_{t_i t_j}) / \\sigma_{t_i t_j}` (``[4]``) and
embedding rows :math:`\\mathcal G_e = \\mathcal N_{t_j}(\\hat s_e)` (``[M_1]``; the net is
:math:`\\mathcal N_{t_i t_j}` when ``type_one_side`` is false).  DeePMD-kit evaluates a
padded list of :math:`\\sum_t \\mathrm{sel}_t` slots per atom in which empty slots hold the
constant row :math:`\\hat{\\mathcal R}^{\\rm pad}_{t_i t_j} = -\\mu/\\sigma`; mtzoo adds the
same contribution in closed form, with :math:`n_{i,t}` the number of type-:math:`t` neighbours:

.. math::

    \\mathcal T_i = \\frac{1}{N_c}\\Big[\\sum_{e \\to i} \\mathcal G_e^\\top \\hat{\\mathcal R}_e
      + \\sum_t (\\mathrm{sel}_t - n_{i,t})\\, \\mathcal N(\\hat s^{\\rm pad}_{t_i t})^\\top
      \\hat{\\mathcal R}^{\\rm pad}_{t_i t}\\Big],\\qquad N_c = \\sum_t \\mathrm{sel}_t,

    \\mathcal D_i = \\mathcal T_i \\, (\\mathcal T_i^{<})^\\top \\in \\mathbb R^{M_1 \\times M_2},

where :math:`\\mathcal T^{<}` is the first ``axis_neuron`` (:math:`M_2`) rows.  A neighbour at
:math:`r_c` has :math:`\\mathcal R = 0`, i.e. exactly the padded row, so the sum is smooth as
atoms cross the cutoff; it equals DeePMD-kit whenever :math:`n_{i,t} \\le \\mathrm{sel}_t`
(DeePMD drops the farthest neighbours beyond ``sel``; mtzoo keeps them and warns).

Evaluation (exact, float64 by default, forces by autograd): the embedding net runs once per
edge, except that the two edges of a same-type pair ``j -> i`` / ``i -> j`` (same distance
function of the positions, same net and statistics) share one evaluation (:func:`mirror_pairs`;
about 27 % fewer rows on liquid water); the rows are then gathered into a dense
``[atoms, most neighbours]`` grid per net and contracted with :math:`\\hat{\\mathcal R}` by one
batched matmul.  ``share_mirror_edges = False`` turns the sharing off (same results).

Outputs: ``descriptor`` ``[N, M1*M2]`` and ``rot_mat`` = :math:`\\mathcal T_{:,1:4}` ``[N, M1, 3]``
(the axis vectors that tensor heads contract with).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import SimpleNamespace

import torch
from torch import nn

from mtzoo import keys as K
from mtzoo.descriptors.se_common import (EnvMatStats, TabulatedSe, common_config, load_deepmd_env_stats,
                                         register_env_buffers, set_common)
from mtzoo.descriptors.base import Descriptor, register
from mtzoo.nn.contract import edge_contract
from mtzoo.nn.env import env_matrix
from mtzoo.nn.extension import compiled
from mtzoo.nn.mlp import EmbeddingNet
from mtzoo.nn.tabulate import FusedSeA, SeATail, check_compress, fused_extension


def neighbor_slots(key: torch.Tensor, n_keys: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank of each edge among the edges with the same key, and the number of edges per key.

    Shapes
    ------
    key ``[E]`` (long, < n_keys) -> slot ``[E]`` (long), counts ``[n_keys]``.
    """
    counts = torch.bincount(key, minlength=n_keys)
    if key.numel() == 0:
        return key.clone(), counts
    start = torch.cumsum(counts, 0) - counts
    ar = torch.arange(key.numel(), device=key.device)
    if bool((key[1:] >= key[:-1]).all()):  # already grouped (neighbour lists sorted by centre)
        return ar - start[key], counts
    order = torch.argsort(key, stable=True)
    slot = torch.empty_like(key)
    slot[order] = ar - start[key[order]]
    return slot, counts


def mirror_pairs(edge_vec: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
                 key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Pairs of mirror edges ``j -> i`` / ``i -> j``, as (rep ``[P]``, dup ``[P]``) edge indices.

    ``dup`` is paired with ``rep`` when it joins the same two atoms the other way round, has the
    same ``key`` (the caller's type-pair key: same embedding net and statistics) and its vector
    is exactly the negative of rep's (one periodic image).  Then
    :math:`|\mathbf r_{\rm dup}(\mathbf x)| = |\mathbf r_{\rm rep}(\mathbf x)|` as functions of the
    positions and cell, so any function of the distance evaluated on ``rep`` serves ``dup`` too,
    value and gradient (forces and virial included: the mirror's gradient is the negative of
    rep's on the negated vector).  Found with a hash table on the unordered atom pair; a hash
    collision or several images of one pair only leave edges unpaired (slower, never wrong).
    Every ``dup`` is distinct and never a ``rep``.
    """
    n = src.numel()
    empty = src.new_zeros(0)
    if n < 2:
        return empty, empty
    v = edge_vec.detach()
    # hash table on the unordered atom pair: each slot keeps its lowest edge index (the rep);
    # the other edges of the slot pair with it when they are its exact mirror
    size = 1 << max(int(8 * n).bit_length(), 4)
    lo, hi = torch.minimum(src, dst), torch.maximum(src, dst)
    h = (lo * 1000003 + hi * 19260817) & (size - 1)
    idx = torch.arange(n, device=src.device)
    table = torch.full((size,), n, dtype=idx.dtype, device=src.device).scatter_reduce_(0, h, idx, "amin")
    cand = table.index_select(0, h)
    e = ((cand != idx) & (src.index_select(0, cand) == dst)).nonzero().squeeze(1)  # same pair, reversed
    c = cand.index_select(0, e)
    ok = (key.index_select(0, c) == key.index_select(0, e)) & (v.index_select(0, c) == -v.index_select(0, e)).all(-1)
    return c[ok], e[ok]


@functools.lru_cache(maxsize=None)
def folded_index(m1: int, m2: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The folded layout of se_e2_a's descriptor :math:`\mathcal D = \mathcal X^\top \mathcal X^<`.

    Its :math:`M_2 \times M_2` block is symmetric (:math:`\mathcal D_{ma} = \mathcal D_{am}`
    for :math:`m, a < M_2`), so the folded descriptor :math:`\mathcal D'` keeps the lower
    triangle of that block (rows :math:`m < M_2`, :math:`a \le m`) and then rows
    :math:`m \ge M_2` whole: :math:`F = M_1 M_2 - M_2 (M_2 - 1)/2` entries (1480 of 1600 for
    :math:`M_1 = 100`, :math:`M_2 = 16`).  A linear layer on :math:`\mathcal D` equals one on
    :math:`\mathcal D'` with the mirror rows summed,

    .. math::

        \mathcal D W = \mathcal D' W',\qquad W'_j = W_{\mathrm{keep}_j} + [\mathrm{mirror}_j \ge 0]\,
        W_{\mathrm{mirror}_j},

    7.5 % fewer multiply-adds in the fitting net's largest product (forward and backward).  The
    compiled tail (``se_tail_ext.cpp``) writes this layout.

    Shapes
    ------
    -> keep ``[F]`` (index into the flat :math:`\mathcal D`, ``m * M2 + a``), mirror ``[F]``
    (index of the mirror entry ``a * M2 + m`` for :math:`a < m < M_2`, else -1).
    """
    keep, mirror = [], []
    for m in range(m1):
        for a in range(m2 if m >= m2 else m + 1):
            keep.append(m * m2 + a)
            mirror.append(a * m2 + m if a < m < m2 else -1)
    return torch.tensor(keep), torch.tensor(mirror)


@register("se_e2_a")
class DescrptSeA(EnvMatStats, TabulatedSe, Descriptor):
    """se_e2_a descriptor (DeePMD-kit semantics; see module docstring for the equations).

    Parameters
    ----------
    ntypes : int
        Number of atom types (length of the model's ``type_map``).
    rcut, rcut_smth : float
        Cutoff and start of the smooth switch (Angstrom), ``0 <= rcut_smth < rcut``.
    sel : list of int
        Expected maximum neighbours per type; :math:`N_c = \\sum` sel normalises the sum.
    neuron : list of int
        Embedding-net widths; ``M1 = neuron[-1]``.
    axis_neuron : int
        ``M2``, the number of axis rows in the descriptor.
    resnet_dt, activation_function, precision, trainable, seed
        As in DeePMD-kit.
    type_one_side : bool
        One embedding net per neighbour type (True) or per (centre, neighbour) pair.
    exclude_types : list of [int, int]
        Type pairs whose edges contribute nothing.
    env_protection : float
        Added to :math:`r` in the environment matrix.
    set_davg_zero : bool
        Keep :math:`\\mu = 0` when computing statistics.

    Shapes
    ------
    edge_vec ``[E, 3]``, edge_index ``[2, E]``, atom_type ``[N]`` ->
    ``descriptor`` ``[N, M1*M2]``, ``rot_mat`` ``[N, M1, 3]``.
    """

    def __init__(self, ntypes: int, sel: Sequence[int], rcut: float = 6.0, rcut_smth: float = 0.5,
                 neuron: Sequence[int] = (10, 20, 40), axis_neuron: int = 4, resnet_dt: bool = False,
                 type_one_side: bool = False, exclude_types: Sequence[Sequence[int]] = (),
                 env_protection: float = 0.0, set_davg_zero: bool = False, activation_function: str = "tanh",
                 precision: str = "default", trainable: bool = True, seed: int | Sequence[int] | None = None,
                 compress: dict | None = None) -> None:
        super().__init__()
        set_common(self, ntypes, sel, rcut, rcut_smth, neuron, resnet_dt, exclude_types, env_protection,
                   set_davg_zero, activation_function, precision, trainable, seed)
        self.axis_neuron, self.type_one_side = int(axis_neuron), bool(type_one_side)
        self.dim_emb = self.neuron[-1]
        self.dim_out = self.dim_emb * self.axis_neuron
        self.dim_rot = self.dim_emb
        n_nets = ntypes if self.type_one_side else ntypes * ntypes
        # net index k: neighbour type t_j (type_one_side) or t_i * ntypes + t_j
        self.embeddings = nn.ModuleList(
            EmbeddingNet(1, self.neuron, activation_function, resnet_dt, self.dtype,
                         seed=None if seed is None else [int(seed), k], trainable=trainable)
            for k in range(n_nets)
        )
        register_env_buffers(self, (4,))
        # evaluate the embedding once for each pair of mirror edges (exact; see mirror_pairs)
        self.share_mirror_edges = True
        # contract on the edges with the compiled kernels (nn/contract.py) when they are built
        self.use_edge_kernels = True
        # tabulated embedding nets (see enable_compression); tables are rebuilt from the weights
        self.compress = None if compress is None else check_compress(compress)
        self._tables = None

    # ------------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {**common_config(self, "se_e2_a"), "axis_neuron": self.axis_neuron, "type_one_side": self.type_one_side,
                **({"compress": dict(self.compress)} if self.compress is not None else {})}

    def _net_index(self, ti: torch.Tensor, tj: torch.Tensor) -> torch.Tensor:
        return tj if self.type_one_side else ti * self.ntypes + tj

    def _padding_table(self) -> torch.Tensor:
        """:math:`\\mathcal N(\\hat s^{\\rm pad})^\\top \\hat{\\mathcal R}^{\\rm pad}` for each type pair, transposed: ``[nt, nt, 4, M1]``."""
        nt = self.ntypes
        pad = -self.davg / self.dstd  # [nt, nt, 4]
        ti = torch.arange(nt, device=pad.device).repeat_interleave(nt)
        tj = torch.arange(nt, device=pad.device).repeat(nt)
        k = self._net_index(ti, tj)
        s = pad[..., 0].reshape(-1, 1)
        if self.type_one_side:  # one call per net: rows (ti, tj) of net tj
            g = torch.stack([self.embeddings[t](s.view(nt, nt)[:, t: t + 1]) for t in range(nt)], 1).reshape(nt * nt, -1)
        else:
            g = torch.cat([self.embeddings[int(k[p])](s[p: p + 1]) for p in range(nt * nt)])  # [nt*nt, M1]
        return (pad.reshape(-1, 4, 1) * g[:, None, :]).view(nt, nt, 4, self.dim_emb)

    def forward(self, edge_vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor) -> dict[str, torch.Tensor]:
        nt, n_atoms = self.ntypes, atom_type.shape[0]
        src, dst = edge_index[0], edge_index[1]
        if (self.compress is not None and src.numel() and self.dtype == torch.float64 and edge_vec.device.type == "cpu"
                and fused_extension() is not None):
            # compiled per-edge passes and per-atom tail (tabulate.FusedSeA, tabulate.SeATail)
            gr, n_it = self._contract_fused(edge_vec, edge_index, atom_type)
            x, desc = SeATail.apply(gr, (self.sel_t.unsqueeze(0) - n_it).contiguous(), self._padding_rows().contiguous(),
                                    atom_type.contiguous(), 1.0 / self.nnei, self.axis_neuron)
            return {K.DESCRIPTOR: desc, K.ROT_MAT: x[:, 1:].transpose(1, 2)}
        ti, tj = atom_type.index_select(0, dst), atom_type.index_select(0, src)
        pair = ti * nt + tj
        rr = self._env_rows(edge_vec, pair)
        if self.compress is not None and src.numel():
            gr = self._contract_tabulated(rr[:, 0], rr, dst, ti, tj, atom_type)
        else:
            gr = self._contract_exact(edge_vec, rr, src, dst, ti, tj, pair, atom_type)
        # closed-form contribution of DeePMD's empty neighbour slots
        n_it = torch.bincount(dst * nt + tj, minlength=n_atoms * nt).view(n_atoms, nt).to(self.dtype)
        n_pad = self.sel_t.unsqueeze(0) - n_it  # [N, nt]
        gr = gr + torch.einsum("nt,ntkm->nkm", n_pad, self._padding_rows().index_select(0, atom_type))
        gr = gr / self.nnei
        desc = torch.bmm(gr.transpose(1, 2), gr[:, :, : self.axis_neuron]).reshape(n_atoms, self.dim_out)
        return {K.DESCRIPTOR: desc, K.ROT_MAT: gr[:, 1:].transpose(1, 2)}

    def folded_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The folded layout of :math:`\mathcal D` (see :func:`folded_index`) for this descriptor's widths."""
        return folded_index(self.dim_emb, self.axis_neuron)

    def forward_with_pullback(self, edge_vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor,
                              folded: bool = False):
        r"""Compressed float64 se_e2_a with the compiled kernels, no autograd: the features of
        :meth:`forward` and :math:`\partial E/\partial \mathcal D \mapsto \partial E/\partial
        \mathbf r_e` (``se_a_tail_backward`` then ``tabulate_backward``, the backward passes of
        :class:`~mtzoo.nn.tabulate.SeATail` and :class:`~mtzoo.nn.tabulate.FusedSeA` called
        directly).  ``folded``: the descriptor in the folded layout of :func:`folded_index`
        (``[N, F]``; the pullback then takes :math:`\partial E/\partial \mathcal D'` in it).
        None (autograd through :meth:`forward`) when not compressed, without the extension, off
        the CPU, without edges, or when an edge is closer than the tables reach (``rmin``: the nets
        run there)."""
        ext = fused_extension()
        if (self.compress is None or ext is None or self.dtype != torch.float64 or not edge_index.shape[1]
                or edge_vec.device.type != "cpu"):  # the compiled kernels are CPU code
            return None
        self._check_inference()
        tb, env = self._fused_tables(), (self.rcut_smth, self.rcut, self.env_protection)
        vec, edge_index, atom_type = edge_vec.detach().to(self.dtype).contiguous(), edge_index.contiguous(), atom_type.contiguous()
        gr, rr, t, col, inside, counts = ext.tabulate_forward(vec, edge_index, atom_type, tb.scale, tb.shift, tb.slot,
                                                              tb.knots_all, tb.knot_start, tb.bin_offset, tb.coef, *env)
        if not bool(inside.all()):
            return None
        inv = 1.0 / self.nnei
        x, desc = ext.se_a_tail_forward(gr, (self.sel_t.unsqueeze(0) - counts).contiguous(),
                                        self._padding_rows().contiguous(), atom_type, inv, self.axis_neuron, folded)

        def pullback(g_desc: torch.Tensor) -> torch.Tensor:
            g_t = ext.se_a_tail_backward(x, g_desc.to(self.dtype).contiguous(), None, inv, self.axis_neuron, folded)
            return ext.tabulate_backward(g_t, vec, edge_index, atom_type, tb.scale, tb.shift, tb.slot, rr, t, col, inside,
                                         tb.knots_all, tb.knot_start, tb.bin_offset, tb.coef, *env)

        return {K.DESCRIPTOR: desc, K.ROT_MAT: x[:, 1:].transpose(1, 2)}, pullback

    def _env_rows(self, edge_vec: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        """Normalised environment rows :math:`\\hat{\\mathcal R}_e` (excluded pairs zeroed): ``[E, 4]``."""
        rr = env_matrix(edge_vec.to(self.dtype), self.rcut_smth, self.rcut, self.env_protection)
        rr = (rr - self.davg.view(-1, 4).index_select(0, pair)) / self.dstd.view(-1, 4).index_select(0, pair)
        if self.exclude_types:
            rr = rr * self.pair_keep.view(-1).index_select(0, pair).unsqueeze(-1)
        return rr

    def _fused_tables(self) -> SimpleNamespace:
        """The tables of all groups stacked for the compiled kernels, with per type pair
        ``p = t_i * nt + t_j`` the table slot ``slot [P]`` and the normalisation
        ``scale = keep / sigma``, ``shift = -keep mu / sigma`` (``[P, 4]``); cached with the tables."""
        groups = self._tabulated_groups()
        versions = (self.davg._version, self.dstd._version, self.pair_keep._version)
        cached = getattr(self, "_fused", None)  # held with its groups: identity, not a reusable id()
        if cached is not None and cached.groups is groups and cached.versions == versions:
            return cached
        nt = self.ntypes
        ti, tj = torch.arange(nt).repeat_interleave(nt), torch.arange(nt).repeat(nt)
        net = self._net_index(ti, tj)
        slot = torch.empty(nt * nt, dtype=torch.long)
        starts, offsets, n_knots, n_bins, n_slots = [], [], 0, 0, 0
        for c, g in enumerate(groups):  # one group (one-sided nets) or one per centre type
            rows = slice(None) if self.type_one_side else slice(c * nt, (c + 1) * nt)
            slot[rows] = g.slot_of_net.cpu()[net[rows]] + n_slots
            starts.append(g.knot_start[:-1] + n_knots)
            offsets.append(g.bin_offset + n_bins)
            n_knots, n_bins, n_slots = n_knots + g.knots_all.numel(), n_bins + g.n_bins, n_slots + len(g.net_ids)
        dev = self.davg.device
        istd = 1.0 / self.dstd.view(-1, 4)
        keep = self.pair_keep.view(-1, 1) if self.exclude_types else 1.0
        self._fused = SimpleNamespace(
            groups=groups, versions=versions, slot=slot.to(dev), scale=(istd * keep).contiguous(), shift=(-self.davg.view(-1, 4) * istd * keep).contiguous(),
            knots_all=torch.cat([g.knots_all for g in groups]), knot_start=torch.cat([*starts, torch.tensor([n_knots], device=dev)]),
            bin_offset=torch.cat(offsets), coef=torch.cat([g.coef for g in groups]))
        return self._fused

    def _contract_fused(self, edge_vec, edge_index, atom_type) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`_contract_tabulated`, from the edge vectors with the compiled kernels
        (:class:`~mtzoo.nn.tabulate.FusedSeA`), which also count the neighbours of each type;
        edges above a table run the net: ``[N, 4, M1]`` and ``[N, nt]``."""
        self._check_inference()
        tables = self._fused_tables()
        env = (self.rcut_smth, self.rcut, self.env_protection)
        gr, inside, counts = FusedSeA.apply(edge_vec.to(self.dtype).contiguous(), edge_index.contiguous(),
                                            atom_type.contiguous(), tables, env)
        if not bool(inside.all()):  # closer than rmin: the nets, through autograd
            far = (~inside).nonzero().squeeze(1)
            src, dst = edge_index[0].index_select(0, far), edge_index[1].index_select(0, far)
            ti, tj = atom_type.index_select(0, dst), atom_type.index_select(0, src)
            rr = self._env_rows(edge_vec.index_select(0, far), ti * self.ntypes + tj)
            net = self._net_index(ti, tj)
            for nid in net.unique().tolist():
                m = (net == nid).nonzero().squeeze(1)
                rr_k = rr.index_select(0, m)
                part = rr_k.unsqueeze(-1) * self.embeddings[nid](rr_k[:, :1]).unsqueeze(1)
                gr = gr.index_add(0, dst.index_select(0, m), part)
        return gr, counts

    def _contract_exact(self, edge_vec, rr, src, dst, ti, tj, pair, atom_type) -> torch.Tensor:
        """:math:`\\sum_{e \\to i} \\hat{\\mathcal R}_e^\\top \\mathcal G_e` with the embedding nets: ``[N, 4, M1]``."""
        nt, n_atoms, m1 = self.ntypes, atom_type.shape[0], self.dim_emb
        # embedding rows: one per edge, except that an edge whose mirror (same two atoms, opposite
        # vector, same net and statistics) was found reuses the mirror's row (same input, same net)
        net = self._net_index(ti, tj)
        n_edges = src.numel()
        dev = src.device
        own = torch.ones(n_edges, dtype=torch.bool, device=dev)
        rep = dup = None
        if self.share_mirror_edges and n_edges:
            rep, dup = mirror_pairs(edge_vec, src, dst, pair)
            own.index_fill_(0, dup, False)
        row_of_edge = torch.empty_like(src)
        jobs = []
        for k in range(len(self.embeddings)):
            in_k = net == k
            rows = (in_k & own).nonzero().squeeze(1)  # edges evaluated by net k
            if rows.numel() == 0:
                continue
            row_of_edge[rows] = torch.arange(rows.numel(), device=dev)
            g_k = self.embeddings[k](rr.index_select(0, rows)[:, :1])
            jobs.append((k, in_k.nonzero().squeeze(1), g_k))
        if dup is not None:
            row_of_edge[dup] = row_of_edge[rep]
        if jobs and self.use_edge_kernels and rr.device.type == "cpu" and compiled() is not None:
            # compiled per-edge contraction over all nets' rows at once (nn/contract.py), no grids
            offset, starts = 0, torch.empty(len(self.embeddings), dtype=torch.long, device=dev)
            for k, _, g_k in jobs:
                starts[k] = offset
                offset += g_k.shape[0]
            return edge_contract(rr, [g_k for _, _, g_k in jobs], row_of_edge + starts.index_select(0, net), dst, n_atoms,
                                 use_compiled=True)
        # each net gets dense per-centre slots [n, W] (W = most of its edges around one atom here;
        # one-sided nets: all atoms, pair nets: the atoms of their centre type); empty slots hold a
        # zero environment row and so contribute nothing whatever embedding row they point at
        gr = rr.new_zeros(n_atoms, 4, m1)
        if not self.type_one_side:
            local = torch.empty_like(atom_type)
            for c in range(nt):
                idx_c = (atom_type == c).nonzero().squeeze(1)
                local[idx_c] = torch.arange(idx_c.numel(), device=dev)
        for k, edges, g_k in jobs:
            if self.type_one_side:
                centres, n_c = None, n_atoms
                d = dst.index_select(0, edges)
            else:
                centres = (atom_type == k // nt).nonzero().squeeze(1)
                n_c = centres.numel()
                d = local[dst.index_select(0, edges)]
            slot, counts = neighbor_slots(d, n_c)
            width = int(counts.max())
            pos = d * width + slot
            r_grid = rr.new_zeros(n_c * width, 4).index_put_((pos,), rr.index_select(0, edges)).view(n_c, width, 4)
            g_map = torch.zeros(n_c * width, dtype=torch.long, device=dev).index_put_((pos,), row_of_edge.index_select(0, edges))
            part = torch.bmm(r_grid.transpose(1, 2), g_k.index_select(0, g_map).view(n_c, width, m1))  # [n, 4, M1]
            gr = gr + part if centres is None else gr.index_add(0, centres, part)
        return gr


    # ------------------------------------------------------------------------------------------
    def load_deepmd(self, data: dict) -> None:
        """Copy weights and statistics from DeePMD-kit's serialized se_e2_a dict."""
        nt = self.ntypes
        nets = data["embeddings"]["networks"]
        for key, net in enumerate(nets):
            if self.type_one_side:
                self.embeddings[key].load_deepmd(net)
            else:  # DeePMD key (ti, tj) -> index ti + tj * nt
                ti, tj = key % nt, key // nt
                self.embeddings[ti * nt + tj].load_deepmd(net)
        load_deepmd_env_stats(self, data)
