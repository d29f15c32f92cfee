"""DeePMD-kit's se_e2_r (``se_r``) descriptor on an edge graph, without neighbour padding.

Radial information only.  Edge :math:`e = (j \\to i)` carries the normalised radial entry
:math:`\\hat s_e = (s(r_e) - \\mu_{t_i t_j}) / \\sigma_{t_i t_j}` with :math:`s = w(r)/r`
(:mod:`mtzoo.nn.env`), and the embedding row :math:`\\mathcal G_e = \\mathcal N_{t_j}(\\hat s_e)`
(``[M]``; :math:`\\mathcal N_{t_i t_j}` when ``type_one_side`` is false).  DeePMD-kit sums the
embedding over a padded list of :math:`N_c = \\sum_t \\mathrm{sel}_t` slots, the empty slots
holding :math:`\\hat s^{\\rm pad}_{t_i t} = -\\mu/\\sigma`, and rescales by 1/5; mtzoo adds the
empty slots in closed form (:math:`n_{i,t}` = number of type-:math:`t` neighbours of :math:`i`):

.. math::

    \\mathcal D_i = \\frac{1}{5 N_c}\\Big[\\sum_{e \\to i} \\mathcal G_e
      + \\sum_t (\\mathrm{sel}_t - n_{i,t})\\, \\mathcal N(\\hat s^{\\rm pad}_{t_i t})\\Big] \\in \\mathbb R^{M}.

A neighbour at :math:`r_c` has :math:`s = 0`, i.e. exactly the padded entry, so the sum is smooth
across the cutoff.  Edges of an excluded type pair (``exclude_types``) enter with
:math:`\\hat s = 0` (DeePMD multiplies the normalised entry by the exclusion mask), i.e. they
contribute :math:`\\mathcal N(0)` and still take a slot; this jumps at :math:`r_c` unless
:math:`\\mu = 0` (``set_davg_zero``), as in DeePMD-kit.

No axis vectors: ``dim_rot = 0`` (a dipole or polar head on se_e2_r fails when the model is built).

Reference: L. Zhang et al., NeurIPS 2018 (DeepPot-SE); DeePMD-kit ``dpmodel/descriptor/se_r.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtzoo import keys as K
from mtzoo.descriptors.base import Descriptor, register
from mtzoo.descriptors.se_e2_a import mirror_pairs
from mtzoo.nn.env import env_matrix
from mtzoo.nn.mlp import EmbeddingNet
from mtzoo.nn.scatter import scatter_sum
from mtzoo.descriptors.se_common import (EnvMatStats, TabulatedSe, common_config, load_deepmd_env_stats,
                                         register_env_buffers, set_common)
from mtzoo.nn.tabulate import check_compress

#: DeePMD-kit's constant rescaling of the se_e2_r output (``res_rescale``).
RES_RESCALE = 1.0 / 5.0


@register("se_e2_r")
class DescrptSeR(EnvMatStats, TabulatedSe, Descriptor):
    """se_e2_r descriptor (DeePMD-kit semantics; see module docstring for the equation).

    Parameters
    ----------
    ntypes : int
        Number of atom types.
    sel : list of int
        Expected maximum neighbours per type; :math:`N_c = \\sum` sel normalises the sum.
    rcut, rcut_smth : float
        Cutoff and start of the smooth switch (Angstrom).
    neuron : list of int
        Embedding-net widths; ``dim_out = neuron[-1]``.
    type_one_side : bool
        One embedding net per neighbour type (True; the only choice DeePMD-kit's pt/dpmodel
        backends implement) or per (centre, neighbour) type pair (False).
    resnet_dt, exclude_types, env_protection, set_davg_zero, activation_function, precision, trainable, seed
        As in DeePMD-kit (see :class:`~mtzoo.descriptors.se_e2_a.DescrptSeA`).

    Shapes
    ------
    edge_vec ``[E, 3]``, edge_index ``[2, E]``, atom_type ``[N]`` -> ``descriptor`` ``[N, M]``.
    """

    radial_only = True  # statistics of s only (EnvMatStats)

    def __init__(self, ntypes: int, sel: Sequence[int], rcut: float = 6.0, rcut_smth: float = 0.5,
                 neuron: Sequence[int] = (10, 20, 40), resnet_dt: bool = False, type_one_side: bool = False,
                 exclude_types: Sequence[Sequence[int]] = (), env_protection: float = 0.0,
                 set_davg_zero: bool = False, activation_function: str = "tanh", precision: str = "default",
                 trainable: bool = True, seed: int | Sequence[int] | None = None, compress: dict | None = None) -> None:
        super().__init__()
        set_common(self, ntypes, sel, rcut, rcut_smth, neuron, resnet_dt, exclude_types, env_protection,
                   set_davg_zero, activation_function, precision, trainable, seed)
        self.type_one_side = bool(type_one_side)
        self.dim_out = self.neuron[-1]
        self.dim_rot = 0
        n_nets = ntypes if self.type_one_side else ntypes * ntypes
        self.embeddings = nn.ModuleList(
            EmbeddingNet(1, self.neuron, activation_function, resnet_dt, self.dtype,
                         seed=None if seed is None else [int(seed), k], trainable=trainable)
            for k in range(n_nets)
        )
        register_env_buffers(self, ())
        self.share_mirror_edges = True
        # tabulated embedding nets (TabulatedSe.enable_compression); rebuilt from the weights
        self.compress = None if compress is None else check_compress(compress)
        self._tables = None

    def get_config(self) -> dict:
        return {**common_config(self, "se_e2_r"), "type_one_side": self.type_one_side,
                **({"compress": dict(self.compress)} if self.compress is not None else {})}

    def _net_index(self, ti: torch.Tensor, tj: torch.Tensor) -> torch.Tensor:
        return tj if self.type_one_side else ti * self.ntypes + tj

    def _padding_table(self) -> torch.Tensor:
        """:math:`\\mathcal N_{k(c, t)}(\\hat s^{\\rm pad}_{ct})` for centre type c, neighbour type t: ``[nt, nt, M]``."""
        nt = self.ntypes
        pad = -self.davg / self.dstd  # [nt, nt]
        rows = []
        for c in range(nt):
            rows.append(torch.cat([self.embeddings[int(self._net_index(torch.tensor(c), torch.tensor(t)))](
                pad[c, t].view(1, 1)) for t in range(nt)]))
        return torch.stack(rows)

    def forward(self, edge_vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor) -> dict[str, torch.Tensor]:
        nt, n_atoms = self.ntypes, atom_type.shape[0]
        src, dst = edge_index[0], edge_index[1]
        ti, tj = atom_type[dst], atom_type[src]
        pair = ti * nt + tj
        s = env_matrix(edge_vec.to(self.dtype), self.rcut_smth, self.rcut, self.env_protection, radial_only=True)
        s = (s - self.davg.view(-1)[pair].unsqueeze(-1)) / self.dstd.view(-1)[pair].unsqueeze(-1)
        if self.exclude_types:
            s = s * self.pair_keep.view(-1)[pair].unsqueeze(-1)
        n_edges = src.numel()
        if self.compress is not None and n_edges:
            out = self._contract_tabulated(s[:, 0], s.new_ones(n_edges, 1), dst, ti, tj, atom_type).squeeze(1)
        else:
            out = self._sum_exact(edge_vec, s, src, dst, ti, tj, pair, n_atoms)
        # closed-form contribution of DeePMD's empty neighbour slots
        n_it = torch.bincount(dst * nt + tj, minlength=n_atoms * nt).view(n_atoms, nt).to(self.dtype)
        n_pad = self.sel_t.unsqueeze(0) - n_it  # [N, nt]
        out = out + torch.einsum("nt,ntm->nm", n_pad, self._padding_rows().index_select(0, atom_type))
        return {K.DESCRIPTOR: out * (RES_RESCALE / self.nnei)}

    def _sum_exact(self, edge_vec, s, src, dst, ti, tj, pair, n_atoms) -> torch.Tensor:
        """:math:`\\sum_{e \\to i} \\mathcal G_e` with the embedding nets: ``[N, M]``."""
        n_edges = src.numel()
        net = self._net_index(ti, tj)
        own = torch.ones(n_edges, dtype=torch.bool, device=src.device)
        rep = dup = None
        if self.share_mirror_edges and n_edges:
            rep, dup = mirror_pairs(edge_vec, src, dst, pair)
            own.index_fill_(0, dup, False)
        g = s.new_zeros(n_edges, self.dim_out)
        for k in range(len(self.embeddings)):
            rows = ((net == k) & own).nonzero().squeeze(1)
            if rows.numel():
                g = g.index_put((rows,), self.embeddings[k](s.index_select(0, rows)))
        if dup is not None:
            g = g.index_put((dup,), g.index_select(0, rep))
        return scatter_sum(g, dst, n_atoms)

    def load_deepmd(self, data: dict) -> None:
        """Copy weights and statistics from DeePMD-kit's serialized se_e2_r dict."""
        nt = self.ntypes
        nets = data["embeddings"]["networks"]
        if bool(data.get("type_one_side", True)) != self.type_one_side:
            raise ValueError("DeePMD se_e2_r type_one_side differs from this descriptor's")
        for key, net in enumerate(nets):
            if self.type_one_side:
                self.embeddings[key].load_deepmd(net)
            else:  # DeePMD key (ti, tj) -> index ti + tj * nt
                self.embeddings[(key % nt) * nt + key // nt].load_deepmd(net)
        load_deepmd_env_stats(self, data)
