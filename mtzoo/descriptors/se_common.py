"""Shared pieces of the se_* descriptor family: environment statistics, DeePMD statistics import,
the excluded-pair table and its warning."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from mtzoo import keys as K
from mtzoo.nn.env import env_matrix
from mtzoo.nn.scatter import scatter_sum


def pair_keep_table(ntypes: int, exclude_types: Sequence[Sequence[int]], dtype: torch.dtype) -> torch.Tensor:
    """``[nt, nt]`` table: 0 for excluded type pairs (both orders), 1 otherwise."""
    keep = torch.ones(ntypes, ntypes, dtype=dtype)
    for a, b in exclude_types:
        keep[a, b] = keep[b, a] = 0.0
    return keep


def warn_excluded_pairs(name: str) -> None:
    """The DeePMD-kit behaviour mtzoo keeps for parity: excluded neighbours still take a ``sel`` slot."""
    warnings.warn(
        f"{name}: with exclude_types, an excluded neighbour still takes one of the sel slots, so the energy jumps "
        "when it crosses rcut unless the mean of the environment matrix is zero (DeePMD-kit behaves the same; "
        "mtzoo keeps parity). Set set_davg_zero: true to avoid the jump.",
        stacklevel=3,
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
