"""DeePMD-kit's ``hybrid`` descriptor: the concatenation of a list of descriptors.

.. math::

    \\mathcal D_i = [\\mathcal D^{(1)}_i, \\mathcal D^{(2)}_i, \\dots, \\mathcal D^{(n)}_i],
    \\qquad \\dim \\mathcal D = \\sum_k \\dim \\mathcal D^{(k)}.

Each member keeps its own ``rcut``, ``sel``, statistics and precision.  The model builds one
neighbour graph at the largest cutoff (``hybrid.rcut = max_k rcut_k``); a member with a smaller
cutoff sees only the edges with :math:`|\\mathbf r_e| < r_{c,k}` (a mask on the edge vectors,
outside autograd).  This equals DeePMD-kit, which hands each member the first ``sel_k`` slots per
type of the distance-sorted neighbour list built at the largest cutoff: the slots it keeps beyond
:math:`r_{c,k}` have a zero environment row, exactly like its empty slots, which mtzoo adds in
closed form; a neighbour at :math:`r_{c,k}` contributes the padded value, so each member stays
smooth across its own cutoff.

Axis vectors: DeePMD-kit concatenates the members' rotation matrices along the embedding axis
(members without axis vectors, e.g. se_e2_r or se_e3, return none and contribute nothing), so
``rot_mat`` is ``[N, sum_k dim_rot_k, 3]`` and ``dim_rot = sum_k dim_rot_k`` (0: no ``rot_mat``).
``mixed_types`` is true when any member's is (DeePMD-kit's rule).  Statistics are computed per
member, each on the edges inside its own cutoff.

Known difference: with ``exclude_types`` in a member whose cutoff is smaller than the largest,
DeePMD-kit may hand that member excluded neighbours lying between its cutoff and the largest one;
their normalised rows are zeroed (not the padded row), so when that member's ``davg`` is non-zero
DeePMD-kit's result depends on atoms beyond the member's cutoff.  mtzoo never sees them.

Reference: DeePMD-kit ``dpmodel/descriptor/hybrid.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mtzoo import keys as K
from mtzoo.descriptors.base import Descriptor, build_descriptor, register


def _within(edge_vec: torch.Tensor, rcut: float) -> torch.Tensor:
    """Indices of the edges shorter than ``rcut`` (no gradient: a selection, not a function)."""
    v = edge_vec.detach()
    return ((v * v).sum(-1) < rcut * rcut).nonzero().squeeze(1)


def _filtered_graph(g, rcut: float):
    """Copy of graph ``g`` keeping only the edges shorter than ``rcut``."""
    ei = g[K.EDGE_INDEX]
    vec = (g[K.POSITIONS][ei[0]] - g[K.POSITIONS][ei[1]] + g[K.CELL_SHIFT] @ g[K.CELL][0]).to(torch.float64)
    keep = _within(vec, rcut)
    if keep.numel() == ei.shape[1]:
        return g
    out = g.clone()
    out[K.EDGE_INDEX] = ei[:, keep]
    out[K.CELL_SHIFT] = g[K.CELL_SHIFT][keep]
    return out


def neighbor_counts(graphs: Sequence, ntypes: int, rcut: float, mixed: bool = False):
    """Largest number of neighbours of each type inside ``rcut`` around any atom, ``[ntypes]``
    (``mixed``: of any type, ``[1]``).

    For resolving a member's ``sel: "auto"`` on graphs built at the hybrid's (larger) cutoff.
    """
    from mtzoo.data.graph import count_neighbors

    return count_neighbors((_filtered_graph(g, rcut) for g in graphs), ntypes, mixed)


@register("hybrid")
class DescrptHybrid(Descriptor):
    """Concatenation of descriptors (DeePMD-kit's ``hybrid``; see the module docstring).

    Parameters
    ----------
    ntypes : int
        Number of atom types (passed to every member).
    list : list of dict or Descriptor
        The members: configs (``{"type": ..., **keys}``) or built descriptors.  DeePMD-kit's key
        name (it shadows the builtin only inside this constructor).
    trainable : bool, optional
        When given, overrides ``trainable`` of every member given as a config.

    Shapes
    ------
    edge_vec ``[E, 3]``, edge_index ``[2, E]``, atom_type ``[N]`` -> ``descriptor``
    ``[N, sum_k dim_out_k]`` and, when some member has axis vectors, ``rot_mat``
    ``[N, sum_k dim_rot_k, 3]``.
    """

    def __init__(self, ntypes: int, list: Sequence[Mapping | Descriptor],  # noqa: A002 - DeePMD's key
                 trainable: bool | None = None) -> None:
        super().__init__()
        members = [*list]
        if not members:
            raise ValueError("hybrid: cannot build a descriptor from an empty list of descriptors")
        built = []
        for m in members:
            if isinstance(m, Descriptor):
                built.append(m)
                continue
            cfg = dict(m)
            if trainable is not None:
                cfg["trainable"] = bool(trainable)
            built.append(build_descriptor(cfg, ntypes))
        for k, d in enumerate(built):
            if d.ntypes != ntypes:
                raise ValueError(f"hybrid: member {k} has {d.ntypes} types, expected {ntypes}")
        self.descrpt_list = nn.ModuleList(built)
        self.ntypes = ntypes
        self.rcut = max(float(d.rcut) for d in built)
        self.dim_out = sum(int(d.dim_out) for d in built)
        self.dim_rot = sum(int(d.dim_rot) for d in built)
        self.mixed_types = any(bool(d.mixed_types) for d in built)
        dtype = built[0].dtype
        for d in built[1:]:
            dtype = torch.promote_types(dtype, d.dtype)
        self.dtype = dtype

    def get_config(self) -> dict:
        return {"type": "hybrid", "list": [d.get_config() for d in self.descrpt_list]}

    def forward(self, edge_vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor) -> dict[str, torch.Tensor]:
        desc, rot = [], []
        kept: dict[float, torch.Tensor] = {}
        for d in self.descrpt_list:
            if d.rcut < self.rcut:
                if d.rcut not in kept:
                    kept[d.rcut] = _within(edge_vec, d.rcut)
                idx = kept[d.rcut]
                out = d(edge_vec.index_select(0, idx), edge_index.index_select(1, idx), atom_type)
            else:
                out = d(edge_vec, edge_index, atom_type)
            desc.append(out[K.DESCRIPTOR].to(self.dtype))
            if d.dim_rot:
                rot.append(out[K.ROT_MAT].to(self.dtype))
        res = {K.DESCRIPTOR: torch.cat(desc, dim=-1)}
        if rot:
            res[K.ROT_MAT] = torch.cat(rot, dim=1)
        return res

    @torch.no_grad()
    def compute_stats(self, graphs: Sequence, protection: float = 1e-2) -> None:
        """Each member's statistics, from the edges inside its own cutoff."""
        graphs = [*graphs]
        for d in self.descrpt_list:
            sub = graphs if d.rcut >= self.rcut else [_filtered_graph(g, d.rcut) for g in graphs]
            d.compute_stats(sub, protection=protection)

    def load_deepmd(self, data: dict) -> None:
        """Copy every member's weights and statistics from DeePMD-kit's serialized hybrid dict."""
        items = data["list"]
        if len(items) != len(self.descrpt_list):
            raise ValueError(f"DeePMD hybrid has {len(items)} members, this descriptor {len(self.descrpt_list)}")
        for d, item in zip(self.descrpt_list, items):
            d.load_deepmd(item)
