"""DeePMD-kit's se_e3 (``se_at``, ``se_t``) three-body descriptor on an edge graph, without padding.

Edge :math:`e = (j \\to i)` carries the vector part of its normalised environment row,
:math:`\\mathbf x_e = (\\mathcal R_e - \\mu_{t_i t_j})_{1:4} / \\sigma_{t_i t_j}` (``[3]``; zero for
an excluded type pair).  For each pair of neighbour types :math:`a \\le b`, DeePMD-kit takes all
ordered pairs of slots :math:`(j, k)` of its padded neighbour list (``sel_a`` slots of type
:math:`a`, ``sel_b`` of type :math:`b`; the empty ones hold the constant vector
:math:`\\mathbf p_{t_i t} = -\\mu_{1:4}/\\sigma_{1:4}`), the angle-like entry
:math:`u_{jk} = \\mathbf x_j \\cdot \\mathbf x_k` and the embedding net :math:`\\mathcal N_{ab}`:

.. math::

    \\mathcal D_i = \\sum_{a \\le b} \\frac{1}{\\mathrm{sel}_a\\,\\mathrm{sel}_b}
      \\sum_{j \\in a,\\ k \\in b} f_{ab}(u_{jk}),\\qquad f_{ab}(u) = u\\,\\mathcal N_{ab}(u) \\in \\mathbb R^M.

mtzoo splits the slot sums into real neighbours and the :math:`m_{i,t} = \\mathrm{sel}_t - n_{i,t}`
empty slots (:math:`n_{i,t}` real type-:math:`t` neighbours; excluded neighbours are real, with
:math:`\\mathbf x = 0`), all in closed form:

.. math::

    \\sum_{j \\in a, k \\in b} f(u_{jk}) = \\sum_{\\text{real } j, k} f(\\mathbf x_j\\cdot\\mathbf x_k)
      + m_{i,b} \\sum_{\\text{real } j \\in a} f(\\mathbf x_j\\cdot\\mathbf p_{t_i b})
      + m_{i,a} \\sum_{\\text{real } k \\in b} f(\\mathbf p_{t_i a}\\cdot\\mathbf x_k)
      + m_{i,a} m_{i,b} f(\\mathbf p_{t_i a}\\cdot\\mathbf p_{t_i b}).

The real-real sum runs on a dense ``[atoms, most type-a neighbours, most type-b neighbours]`` grid
per type pair (one ``bmm`` for the dot products; empty grid cells hold :math:`\\mathbf x = 0`
and :math:`f(0) = 0` exactly).  A neighbour at :math:`r_c` has :math:`\\mathcal R = 0`, i.e. the
padded vector, so the descriptor is smooth across the cutoff.  With statistics from
:meth:`compute_stats` the vector mean is zero, so :math:`\\mathbf p = 0` and the padding terms
vanish; imported DeePMD-kit models may carry any mean.

Outputs ``descriptor`` ``[N, M]``; no axis vectors (``dim_rot = 0``).

Reference: DeePMD-kit ``dpmodel/descriptor/se_t.py``; W. Jiang et al. (se_e3), DeePMD-kit v2 paper.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtzoo import keys as K
from mtzoo.descriptors.base import Descriptor, register
from mtzoo.descriptors.se_e2_a import neighbor_slots
from mtzoo.descriptors.se_common import (EnvMatStats, common_config, load_deepmd_env_stats,
                                         register_env_buffers, set_common)
from mtzoo.nn.env import env_matrix
from mtzoo.nn.mlp import EmbeddingNet


@register("se_e3")
class DescrptSeT(EnvMatStats, Descriptor):
    """se_e3 descriptor (DeePMD-kit semantics; see module docstring for the equations).

    Parameters
    ----------
    ntypes : int
        Number of atom types.
    sel : list of int
        Expected maximum neighbours per type (the normalisation :math:`1/(\\mathrm{sel}_a \\mathrm{sel}_b)`).
    rcut, rcut_smth : float
        Cutoff and start of the smooth switch (Angstrom).
    neuron : list of int
        Embedding-net widths; ``dim_out = neuron[-1]``.  One net per neighbour-type pair
        :math:`a \\le b`.
    resnet_dt, exclude_types, env_protection, set_davg_zero, activation_function, precision, trainable, seed
        As in DeePMD-kit.

    Shapes
    ------
    edge_vec ``[E, 3]``, edge_index ``[2, E]``, atom_type ``[N]`` -> ``descriptor`` ``[N, M]``.
    """

    def __init__(self, ntypes: int, sel: Sequence[int], rcut: float = 6.0, rcut_smth: float = 0.5,
                 neuron: Sequence[int] = (10, 20, 40), resnet_dt: bool = False, set_davg_zero: bool = False,
                 activation_function: str = "tanh", env_protection: float = 0.0,
                 exclude_types: Sequence[Sequence[int]] = (), precision: str = "default", trainable: bool = True,
                 seed: int | Sequence[int] | None = None) -> None:
        super().__init__()
        set_common(self, ntypes, sel, rcut, rcut_smth, neuron, resnet_dt, exclude_types, env_protection,
                   set_davg_zero, activation_function, precision, trainable, seed)
        self.dim_out = self.neuron[-1]
        self.dim_rot = 0
        #: neighbour-type pairs a <= b, in order; net p serves pair self.pairs[p]
        self.pairs = [(a, b) for a in range(ntypes) for b in range(a, ntypes)]
        self.embeddings = nn.ModuleList(
            EmbeddingNet(1, self.neuron, activation_function, resnet_dt, self.dtype,
                         seed=None if seed is None else [int(seed), a * ntypes + b], trainable=trainable)
            for a, b in self.pairs
        )
        register_env_buffers(self, (4,), warn_excluded=False)

    def get_config(self) -> dict:
        return common_config(self, "se_e3")

    def _net(self, a: int, b: int) -> nn.Module:
        a, b = min(a, b), max(a, b)
        return self.embeddings[self.pairs.index((a, b))]

    def _f(self, a: int, b: int, u: torch.Tensor) -> torch.Tensor:
        """:math:`f_{ab}(u) = u\\,\\mathcal N_{ab}(u)`; ``u`` ``[...]`` -> ``[..., M]``."""
        shape = u.shape
        flat = u.reshape(-1, 1)
        return (flat * self._net(a, b)(flat)).view(*shape, self.dim_out)

    def forward(self, edge_vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor) -> dict[str, torch.Tensor]:
        nt, n_atoms, m = self.ntypes, atom_type.shape[0], self.dim_out
        src, dst = edge_index[0], edge_index[1]
        ti, tj = atom_type[dst], atom_type[src]
        pair = ti * nt + tj
        rr = env_matrix(edge_vec.to(self.dtype), self.rcut_smth, self.rcut, self.env_protection)
        x = (rr[:, 1:] - self.davg.view(-1, 4)[pair, 1:]) / self.dstd.view(-1, 4)[pair, 1:]  # [E, 3]
        if self.exclude_types:
            x = x * self.pair_keep.view(-1)[pair].unsqueeze(-1)
        pad = -self.davg[..., 1:] / self.dstd[..., 1:]  # [nt(centre), nt(neighbour), 3]
        n_it = torch.bincount(dst * nt + tj, minlength=n_atoms * nt).view(n_atoms, nt).to(self.dtype)
        m_pad = self.sel_t.unsqueeze(0) - n_it  # empty slots [N, nt]
        inv_sel = 1.0 / self.sel_t
        out = x.new_zeros(n_atoms, m)
        # dense per-atom grids of the real neighbours of each type (empty cells: x = 0)
        grids = []
        for t in range(nt):
            edges = (tj == t).nonzero().squeeze(1)
            if edges.numel() == 0:
                grids.append(None)
                continue
            d = dst.index_select(0, edges)
            slot, counts = neighbor_slots(d, n_atoms)
            width = int(counts.max())
            grid = x.new_zeros(n_atoms * width, 3).index_put((d * width + slot,), x.index_select(0, edges))
            grids.append(grid.view(n_atoms, width, 3))
        for a, b in self.pairs:
            scale = inv_sel[a] * inv_sel[b]
            # real-real pairs
            if grids[a] is not None and grids[b] is not None:
                u = torch.bmm(grids[a], grids[b].transpose(1, 2))  # [N, Wa, Wb]
                out = out + self._f(a, b, u).sum((1, 2)) * scale
            # pad-pad pairs: m_a m_b f(p_a . p_b), per centre type
            upp = (pad[:, a] * pad[:, b]).sum(-1)  # [nt]
            out = out + (m_pad[:, a] * m_pad[:, b]).unsqueeze(-1) * self._f(a, b, upp)[atom_type] * scale
        # real-pad pairs: edge of type a with the empty slots of every type b (twice when a == b)
        for a in range(nt):
            edges = (tj == a).nonzero().squeeze(1)
            if edges.numel() == 0:
                continue
            d, c = dst.index_select(0, edges), ti.index_select(0, edges)
            xe = x.index_select(0, edges)
            for b in range(nt):
                u = (xe * pad[c, b]).sum(-1)  # [E_a]
                w = m_pad[d, b] * inv_sel[a] * inv_sel[b] * (2.0 if a == b else 1.0)
                out = out.index_add(0, d, self._f(a, b, u) * w.unsqueeze(-1))
        return {K.DESCRIPTOR: out}

    def load_deepmd(self, data: dict) -> None:
        """Copy weights and statistics from DeePMD-kit's serialized se_e3 dict (nets of pairs a <= b)."""
        nt = self.ntypes
        nets = data["embeddings"]["networks"]
        for p, (a, b) in enumerate(self.pairs):
            self.embeddings[p].load_deepmd(nets[a + b * nt])  # DeePMD key (a, b) -> a + b * nt
        load_deepmd_env_stats(self, data)
