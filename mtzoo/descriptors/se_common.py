"""Shared pieces of the se_* descriptor family: environment statistics, DeePMD statistics import,
the excluded-pair table and its warning, and model compression (tabulated embedding nets)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from mtzoo import keys as K
from mtzoo.nn.common import keep_freed_memory, to_dtype
from mtzoo.nn.env import env_matrix
from mtzoo.nn.scatter import scatter_sum
from mtzoo.nn.tabulate import TabulatedNets, check_compress, tabulate_net


def set_common(desc, ntypes: int, sel: Sequence[int], rcut: float, rcut_smth: float, neuron: Sequence[int],
               resnet_dt: bool, exclude_types: Sequence[Sequence[int]], env_protection: float, set_davg_zero: bool,
               activation_function: str, precision: str, trainable: bool, seed) -> None:
    """Check ``sel`` and store the settings every se_* descriptor has (DeePMD-kit's keys) on ``desc``,
    with the precision's dtype and ``nnei`` :math:`= \\sum` sel."""
    if len(sel) != ntypes:
        raise ValueError(f"sel has {len(sel)} entries, expected one per type ({ntypes})")
    desc.ntypes, desc.rcut, desc.rcut_smth = ntypes, float(rcut), float(rcut_smth)
    desc.sel, desc.neuron = [int(s) for s in sel], [int(n) for n in neuron]
    desc.resnet_dt = bool(resnet_dt)
    desc.exclude_types = [[int(a), int(b)] for a, b in exclude_types]
    desc.env_protection, desc.set_davg_zero = float(env_protection), bool(set_davg_zero)
    desc.activation_function, desc.precision = activation_function, precision
    desc.trainable, desc.seed = bool(trainable), seed
    desc.dtype = to_dtype(precision)
    desc.nnei = sum(desc.sel)


def register_env_buffers(desc, stat_shape: tuple[int, ...], warn_excluded: bool = True) -> None:
    """The statistics buffers ``davg`` (zeros) and ``dstd`` (ones), ``[ntypes, ntypes, *stat_shape]``,
    ``sel_t`` ``[ntypes]`` and the kept type pairs ``pair_keep`` ``[ntypes, ntypes]``, in ``desc.dtype``;
    with ``warn_excluded``, :func:`warn_excluded_pairs` when ``exclude_types`` is set without
    ``set_davg_zero``."""
    nt = desc.ntypes
    if warn_excluded and desc.exclude_types and not desc.set_davg_zero:
        warn_excluded_pairs(desc.type_name, stacklevel=4)
    desc.register_buffer("davg", torch.zeros(nt, nt, *stat_shape, dtype=desc.dtype))
    desc.register_buffer("dstd", torch.ones(nt, nt, *stat_shape, dtype=desc.dtype))
    desc.register_buffer("sel_t", torch.tensor(desc.sel, dtype=desc.dtype))
    desc.register_buffer("pair_keep", pair_keep_table(nt, desc.exclude_types, desc.dtype))


def common_config(desc, name: str) -> dict:
    """The shared part of an se_* descriptor's :meth:`get_config` (``type`` = ``name``)."""
    return {"type": name, "sel": desc.sel, "rcut": desc.rcut, "rcut_smth": desc.rcut_smth, "neuron": desc.neuron,
            "resnet_dt": desc.resnet_dt, "exclude_types": desc.exclude_types, "env_protection": desc.env_protection,
            "set_davg_zero": desc.set_davg_zero, "activation_function": desc.activation_function,
            "precision": desc.precision, "trainable": desc.trainable, "seed": desc.seed}


class EnvMatStats:
    """Mixin of the se_* descriptors (se_e2_a, se_e2_r, se_e3): :meth:`compute_stats` by
    :func:`env_mat_stats`, over the radial column only when ``radial_only`` (se_e2_r)."""

    radial_only: bool = False

    @torch.no_grad()
    def compute_stats(self, graphs: Sequence, protection: float = 1e-2) -> None:
        """Environment-matrix statistics per centre type (DeePMD ``EnvMatStatSe``; see
        :func:`env_mat_stats`), warning when an atom has more neighbours of a type than ``sel``."""
        env_mat_stats(self, graphs, protection, radial_only=self.radial_only, name=self.type_name)


def load_deepmd_env_stats(desc, data: dict) -> None:
    """Copy ``davg``/``dstd`` from a DeePMD-kit serialized se_* dict (``@variables``)."""
    with torch.no_grad():
        load_deepmd_stats(data["@variables"]["davg"], desc.sel, desc.davg, "davg")
        load_deepmd_stats(data["@variables"]["dstd"], desc.sel, desc.dstd, "dstd")


def pair_keep_table(ntypes: int, exclude_types: Sequence[Sequence[int]], dtype: torch.dtype) -> torch.Tensor:
    """``[nt, nt]`` table: 0 for excluded type pairs (both orders), 1 otherwise."""
    keep = torch.ones(ntypes, ntypes, dtype=dtype)
    for a, b in exclude_types:
        keep[a, b] = keep[b, a] = 0.0
    return keep


def warn_excluded_pairs(name: str, stacklevel: int = 3) -> None:
    """The DeePMD-kit behaviour mtzoo keeps for parity: excluded neighbours still take a ``sel`` slot."""
    warnings.warn(
        f"{name}: with exclude_types, an excluded neighbour still takes one of the sel slots, so the energy jumps "
        "when it crosses rcut unless the mean of the environment matrix is zero (DeePMD-kit behaves the same; "
        "mtzoo keeps parity). Set set_davg_zero: true to avoid the jump.",
        stacklevel=stacklevel,
    )


@torch.no_grad()
def env_mat_stats(desc, graphs: Sequence, protection: float, radial_only: bool, name: str) -> None:
    """Set ``desc.davg``/``desc.dstd`` (``[nt, nt, 4 or 1]``) like DeePMD ``EnvMatStatSe``.

    Per centre type, over all ``sel`` slots of every atom (edges give their raw rows, empty slots
    zeros, excluded pairs zeros): :math:`\\mu = (\\bar s, 0, 0, 0)`,
    :math:`\\sigma = (\\sigma_s, \\sigma_a, \\sigma_a, \\sigma_a)`, floored at ``protection``;
    :math:`\\mu_s = 0` with ``set_davg_zero``.  ``desc`` provides ``ntypes, rcut, rcut_smth,
    env_protection, exclude_types, pair_keep, nnei, sel, set_davg_zero, dtype``.
    """
    nt = desc.ntypes
    cnt_all = np.zeros(nt)
    sum_r, sumsq_r, sum_a, sumsq_a = (np.zeros(nt) for _ in range(4))
    overflow = np.zeros(nt, dtype=np.int64)
    for g in graphs:
        ei, at = g[K.EDGE_INDEX], g[K.ATOM_TYPE]
        vec = (g[K.POSITIONS][ei[0]] - g[K.POSITIONS][ei[1]] + g[K.CELL_SHIFT] @ g[K.CELL][0]).to(torch.float64)
        rr = env_matrix(vec, desc.rcut_smth, desc.rcut, desc.env_protection)
        ti, tj = at[ei[1]], at[ei[0]]
        if desc.exclude_types:
            rr = rr * desc.pair_keep.to(torch.float64)[ti, tj].unsqueeze(-1)
        cnt_all += torch.bincount(at, minlength=nt).to(torch.float64).numpy() * desc.nnei
        sum_r += scatter_sum(rr[:, 0], ti, nt).numpy()
        sumsq_r += scatter_sum(rr[:, 0] ** 2, ti, nt).numpy()
        sum_a += scatter_sum(rr[:, 1:].sum(-1), ti, nt).numpy()
        sumsq_a += scatter_sum((rr[:, 1:] ** 2).sum(-1), ti, nt).numpy()
        if g.num_nodes:
            n_it = torch.bincount(ei[1] * nt + tj, minlength=g.num_nodes * nt).view(-1, nt)
            overflow = np.maximum(overflow, n_it.max(dim=0).values.numpy())
    ncomp = 1 if radial_only else 4
    davg = np.zeros((nt, ncomp))
    dstd = np.full((nt, ncomp), 0.1)
    for t in range(nt):
        n = cnt_all[t]
        if n == 0:
            continue
        mean_r = sum_r[t] / n
        std_r = np.sqrt(max(sumsq_r[t] / n - mean_r**2, 0.0))
        davg[t, 0] = 0.0 if desc.set_davg_zero else mean_r
        dstd[t, 0] = max(std_r, protection)
        if not radial_only:
            mean_a = sum_a[t] / (3 * n)
            std_a = np.sqrt(max(sumsq_a[t] / (3 * n) - mean_a**2, 0.0))
            dstd[t, 1:] = max(std_a, protection)
    shape = desc.davg.shape
    desc.davg.copy_(torch.as_tensor(davg, dtype=desc.dtype)[:, None, :].expand(nt, nt, ncomp).reshape(shape))
    desc.dstd.copy_(torch.as_tensor(dstd, dtype=desc.dtype)[:, None, :].expand(nt, nt, ncomp).reshape(shape))
    desc.max_neighbors = overflow.tolist()
    over = [t for t in range(nt) if overflow[t] > desc.sel[t]]
    if over:
        warnings.warn(
            f"{name}: up to " + ", ".join(f"{overflow[t]} neighbours of type {t}" for t in over)
            + f" fall inside rcut={desc.rcut} but sel={desc.sel}: DeePMD-kit would drop the farthest; "
            "mtzoo keeps them all, so this model differs from DeePMD-kit for those atoms. Raise sel.",
            stacklevel=3,
        )


def load_deepmd_stats(arr, sel: Sequence[int], buf: torch.Tensor, name: str) -> None:
    """Copy DeePMD's per-slot statistics ``[nt, sum(sel), C]`` into ``buf`` ``[nt, nt, C]`` (one row per type pair)."""
    nt = len(sel)
    arr = np.asarray(arr).reshape(nt, int(sum(sel)), -1)
    bounds = np.cumsum([0, *sel])
    for tj in range(nt):
        seg = arr[:, bounds[tj]: bounds[tj + 1]]
        if seg.shape[1] and not np.allclose(seg, seg[:, :1], rtol=0, atol=0):
            raise ValueError(f"DeePMD {name} varies within the sel slots of type {tj}; mtzoo stores one row per type pair")
        if seg.shape[1]:
            buf[:, tj] = torch.as_tensor(seg[:, 0]).view(buf[:, tj].shape)


class TabulatedSe:
    """Model compression for two-body se_* descriptors (se_e2_a, se_e2_r): their embedding nets
    become tables (:mod:`mtzoo.nn.tabulate`) for inference.

    The class using it provides ``ntypes``, ``type_one_side``, ``embeddings``, ``davg``/``dstd``
    (radial statistics in ``[..., 0]`` or as ``[nt, nt]``), ``env_protection``, ``_net_index``
    and ``_padding_table``, and sets ``compress`` (settings or None) and ``_tables`` (None).
    """

    def enable_compression(self, rmin: float = 0.5, tol: float = 1e-10, max_bins: int = 20000) -> dict:
        """Replace the embedding nets by tables (:mod:`mtzoo.nn.tabulate`) for inference.

        Parameters
        ----------
        rmin : float
            Shortest distance (Angstrom) the tables cover; closer neighbours are evaluated by the
            net itself, so ``rmin`` only trades table size for speed, never accuracy.
        tol : float
            Largest deviation of a table from its net, in embedding units, at interior test points.
        max_bins : int
            Limit on bins per net.

        Returns
        -------
        dict
            ``bins`` (per net) and ``max_deviation`` of the built tables.
        """
        self.compress = check_compress({"rmin": rmin, "tol": tol, "max_bins": max_bins})
        self._tables = None
        groups = self._tabulated_groups()
        return {"bins": [int(n) for g in groups for n in g.sizes], "max_deviation": max(g.max_dev for g in groups)}

    def disable_compression(self) -> None:
        """Go back to evaluating the embedding nets (exact)."""
        self.compress, self._tables = None, None

    def _radial_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        avg, std = self.davg, self.dstd
        return (avg[..., 0], std[..., 0]) if avg.dim() == 3 else (avg, std)

    def _tabulated_groups(self) -> list[TabulatedNets]:
        """The tables, one group per centre type (pair nets) or one for all atoms (one-sided nets);
        built from the current weights on first use and after weights are loaded or cast.

        Net input :math:`x = (s - \\mu)/\\sigma`: from :math:`x(s = 0)` (a neighbour at or beyond
        ``rcut``; also a knot, so the padding rows equal the table exactly) up to
        :math:`x(s = 1/(r_{\\min} + p))`, over the centre types that use the net.
        """
        avg, std = self._radial_stats()
        if self._tables is not None and self._tables[0].coef.dtype == avg.dtype and self._tables[0].coef.device == avg.device:
            return self._tables
        keep_freed_memory()  # compressed models are for inference: calls ~5 % faster (nn/common.py)
        nt, c = self.ntypes, self.compress
        x0 = (-avg / std).double()
        x1 = ((1.0 / (c["rmin"] + self.env_protection) - avg) / std).double()
        centre_sets = [list(range(nt))] if self.type_one_side else [[ci] for ci in range(nt)]
        groups = []
        for cs in centre_sets:
            nets = list(range(nt)) if self.type_one_side else [cs[0] * nt + tj for tj in range(nt)]
            tables, devs = [], []
            for k in nets:
                tj = k % nt
                lo, hi = float(x0[cs, tj].min()), float(x1[cs, tj].max())
                knots, coef, dev = tabulate_net(self.embeddings[k], lo, hi, c["tol"], c["max_bins"],
                                                extra_knots=tuple(float(v) for v in x0[cs, tj]))
                tables.append((knots, coef))
                devs.append(dev)
            g = TabulatedNets(tables, nets, avg.dtype, avg.device)
            g.max_dev = max(devs)
            groups.append(g)
        self._tables = groups
        with torch.no_grad():
            self._tables_pad = self._padding_table()
        return groups

    def _padding_rows(self) -> torch.Tensor:
        """``_padding_table()``; while compressed (inference only) the one computed with the tables."""
        if self.compress is not None and self._tables is not None:
            return self._tables_pad
        return self._padding_table()

    def _check_inference(self) -> None:
        if self.training and torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()):
            raise RuntimeError(f"{self.type_name}: this descriptor is compressed (tabulated) for inference; train the "
                               "uncompressed model (disable_compression()) and compress it again afterwards")

    def _contract_tabulated(self, x, weights, dst, ti, tj, atom_type) -> torch.Tensor:
        """:math:`\\sum_{e \\to i} w_e^\\top \\tilde{\\mathcal G}(x_e)` per atom with the tables:
        ``[N, C, M]`` for weights ``[E, C]`` (se_e2_a: the environment rows; se_e2_r: ones)."""
        self._check_inference()
        net = self._net_index(ti, tj)
        out = None
        for g, edges, centre, centres, n_c in self._group_parts(dst, ti, atom_type):
            sub = (lambda v: v) if edges is None else (lambda v: v.index_select(0, edges))
            part = g.contract(sub(x), sub(weights), sub(net), centre, n_c, self.embeddings)
            if centres is None:
                return part
            if out is None:
                out = weights.new_zeros(atom_type.shape[0], weights.shape[1], part.shape[-1])
            out = out.index_add(0, centres, part)
        return out

    def _group_parts(self, dst, ti, atom_type) -> list[tuple]:
        """Per table group: ``(group, edges, centre, centres, n_centres)``.  One-sided nets: one
        group over all edges (``edges``/``centres`` None, ``centre`` = dst); pair nets: one per
        centre type present, its edges, their centres' index among that type's atoms, and those atoms."""
        groups = self._tabulated_groups()
        if self.type_one_side:
            return [(groups[0], None, dst, None, atom_type.shape[0])]
        parts = []
        for c, g in enumerate(groups):
            centres = (atom_type == c).nonzero().squeeze(1)
            if centres.numel() == 0:
                continue
            local = torch.full_like(atom_type, -1)
            local[centres] = torch.arange(centres.numel(), device=centres.device)
            edges = (ti == c).nonzero().squeeze(1)
            parts.append((g, edges, local.index_select(0, dst.index_select(0, edges)), centres, centres.numel()))
        return parts

    def _load_from_state_dict(self, *args, **kwargs):
        self._tables = None  # new weights or statistics: rebuild the tables on next use
        super()._load_from_state_dict(*args, **kwargs)
