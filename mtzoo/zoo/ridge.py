r"""Closed-form fit of a correction head's output layer (fine-tuning on a few dozen energies).

A correction head (:class:`~mtzoo.heads.energy.EnergyHead` with ``correction_neuron``) adds to
the old level's atomic energies a net :math:`c(\mathcal D_i) = h(\mathcal D_i)\cdot w_{t_i} + b_{t_i}`
whose hidden part :math:`h` (the identity for ``correction_neuron = []``) is fixed here.  With the
descriptor frozen, the frame energy is linear in the output weights:

.. math::

    E_f = \hat E_f + \sum_t \Phi_{f t}\cdot w_t + \sum_t n_{f t}\, \delta_t,\qquad
    \Phi_{f t} = \sum_{i \in f,\ t_i = t} h(\mathcal D_i)

(one :math:`t` for mixed-type heads), with :math:`\hat E_f` the head's prediction before the fit
(old level plus the shifted bias) and :math:`n_{ft}` the atom counts.  :func:`fit_correction_ridge`
solves for :math:`w` by ridge regression on the standardised, centred :math:`\Phi`,

.. math:: w(\lambda) = \arg\min_w \|y - \bar y - A w\|^2 + \lambda \|w\|^2,\qquad
          y_f = E_f - \hat E_f,

:math:`\lambda` chosen by repeated k-fold cross-validation over a logarithmic grid (one SVD per fold), then
puts the remaining constant into the per-type bias by the minimum-norm least-squares fit over the
counts (:func:`~mtzoo.heads.energy.fit_energy_bias`).  This is the exact minimiser of the
energy loss for that :math:`\lambda`: gradient descent from zero on 25-200 energies stops far from
it (measured in docs/finetuning.md), and the cross-validation uses every frame instead of
holding some out for early stopping.

A head with a pair term (:class:`~mtzoo.heads.pair.PairCorrection`) adds a second block of
columns, the per-frame sums of its basis per element pair
(:meth:`~mtzoo.heads.pair.PairCorrection.frame_features`), in which the energy is linear too.
:func:`fit_correction_ridge` scores each block alone and both together over the same folds and
keeps the set with the lowest cross-validated error; the blocks not chosen stay zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtzoo import keys as K

#: the grid of :math:`\lambda` (relative to the mean squared singular value of A)
LAMBDAS = 10.0 ** np.arange(-6.0, 2.01, 0.5)
#: column scaling before the penalty (:func:`_standardise`)
SCALING = "block"


def _features(model, head: str, systems, batch_frames: int = 32) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Feature blocks ``{"descriptor": [F, n_nets * m], "pair": [F, n_pairs * K]}`` (those the head
    has), the head's energies ``[F]``, the labels ``[F]`` and atom counts ``[F, ntypes]`` of every
    frame with an energy label."""
    from mtzoo.data.graph import collate, system_graphs
    from mtzoo.nn.geometry import edge_vectors

    hd = model.heads[head]
    nets = hd.corrections if hd.corrections is not None else []
    pair = getattr(hd, "pair", None)
    nt = len(model.type_map)
    phis, pairs, preds, labels, counts = [], [], [], [], []
    model.eval()
    for s in systems:
        if K.ENERGY not in s.labels:
            continue
        mask = np.asarray(s.masks[K.ENERGY], dtype=bool)
        graphs = system_graphs(s, model.type_map, model.rcut)
        for lo in range(0, len(graphs), batch_frames):
            batch = collate(graphs[lo: lo + batch_frames]).to(model.device)
            with torch.no_grad():
                vec = edge_vectors(batch[K.POSITIONS], batch[K.EDGE_INDEX], batch[K.CELL_SHIFT], batch[K.CELL],
                                   batch[K.BATCH])
                atype = batch[K.ATOM_TYPE]
                desc = model.descriptor(vec, batch[K.EDGE_INDEX], atype)[K.DESCRIPTOR].to(hd.dtype)
                hidden = []
                for net in nets:
                    x = desc
                    for layer in net.layers[:-1]:
                        x = layer(x)
                    hidden.append(x)
                nf = batch.num_graphs
                if pair is not None:
                    pairs.append(pair.frame_features(vec, batch[K.EDGE_INDEX], atype, batch[K.BATCH], nf).cpu().numpy())
                rows = [torch.zeros(nf, 0, dtype=torch.float64)]
                if len(nets) == 1:
                    rows.append(torch.zeros(nf, hidden[0].shape[1], dtype=hidden[0].dtype).index_add_(
                        0, batch[K.BATCH], hidden[0]))
                else:
                    for t in range(len(nets)):
                        sel = atype == t
                        rows.append(torch.zeros(nf, hidden[t].shape[1], dtype=hidden[t].dtype).index_add_(
                            0, batch[K.BATCH][sel], hidden[t][sel]))
            phis.append(torch.cat([r.to(torch.float64) for r in rows], 1).cpu().numpy())
            preds.append(model(batch, head=head, forces=False, virial=False, create_graph=False)[K.ENERGY]
                         .detach().cpu().numpy())
            idx = np.arange(lo, min(lo + batch_frames, len(graphs)))
            labels.append(np.asarray(s.labels[K.ENERGY])[idx])
            counts.append(np.repeat(np.bincount(s.model_types(list(model.type_map)), minlength=nt)[None], len(idx), 0))
            keep = mask[idx]
            phis[-1], preds[-1], labels[-1], counts[-1] = phis[-1][keep], preds[-1][keep], labels[-1][keep], counts[-1][keep]
            if pair is not None:
                pairs[-1] = pairs[-1][keep]
    blocks = {}
    if nets:
        blocks["descriptor"] = np.concatenate(phis)
    if pair is not None:
        blocks["pair"] = np.concatenate(pairs)
    return blocks, np.concatenate(preds), np.concatenate(labels), np.concatenate(counts)


def _ridge_path(a: np.ndarray, y: np.ndarray, lambdas: Sequence[float]) -> list[np.ndarray]:
    """Ridge solutions of ``min |y - a w|^2 + lam |w|^2`` for every ``lam`` (one SVD)."""
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    uty = u.T @ y
    return [vt.T @ (s / (s**2 + lam) * uty) if np.isfinite(lam) else np.zeros(a.shape[1]) for lam in lambdas]


def _standardise(phi: np.ndarray, widths: Sequence[int] | None = None,
                 scaling: str = "block") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Centred and scaled columns of ``phi`` (constant columns dropped): ``a``, ``keep``, ``mu``, ``sd``.

    ``scaling="column"``: every column to unit variance.  ``"block"``: every column of a block (the
    consecutive ``widths``) divided by the largest standard deviation in that block, so a column that
    barely varies on the training frames stays small and its weight is held down by the penalty
    instead of being amplified (a column with spread :math:`10^{-8}` scaled to unit variance turns
    a molecule outside the training set into errors of :math:`10^9` meV; docs/finetuning.md).
    """
    sd = phi.std(0)
    keep = sd > 1e-12 * max(float(np.abs(phi).max()) if phi.size else 0.0, 1.0)
    mu = phi[:, keep].mean(0)
    if scaling == "block":
        scale = sd.copy()
        lo = 0
        for width in (widths if widths is not None else [phi.shape[1]]):
            part = slice(lo, lo + width)
            kept = sd[part][keep[part]]
            if kept.size:
                scale[part] = kept.max()
            lo += width
        sd = scale
    elif scaling != "column":
        raise ValueError(f"scaling must be 'block' or 'column', got {scaling!r}")
    return (phi[:, keep] - mu) / sd[keep], keep, mu, sd


def _cv_errors(a: np.ndarray, y: np.ndarray, lams: Sequence[float], folds: list[np.ndarray]) -> np.ndarray:
    """Summed squared k-fold errors of every ``lam`` over the fold assignments ``folds``, ``/ len(folds)``."""
    sq = np.zeros(len(lams))
    for fa in folds:
        for f in np.unique(fa):
            tr, te = fa != f, fa == f
            ym = y[tr].mean()
            for k, w in enumerate(_ridge_path(a[tr], y[tr] - ym, lams)):
                sq[k] += np.sum((a[te] @ w + ym - y[te]) ** 2)
    return sq / len(folds)


def fit_correction_ridge(model, head: str, systems, n_folds: int = 5, seed: int = 0,
                         lambdas: Sequence[float] = LAMBDAS, repeats: int = 10) -> dict:
    """Set the correction of ``head`` (output layers of its correction nets, its pair term) by ridge
    regression (module docstring), the feature set and :math:`\\lambda` chosen by cross-validation.

    The candidate feature sets are the head's blocks alone (per-element descriptor sums; pair
    basis sums) and together; each is standardised and scored over the same repeated folds and
    :math:`\\lambda` grid, and the lowest cross-validated error wins.  The blocks it does not use
    stay zero.

    Parameters
    ----------
    model : Model
        Holds ``head`` with correction nets and/or a pair term; its descriptor and the nets' hidden
        layers are used as they are.
    head : str
        The correction head.
    systems : list of System
        Training frames (every frame with an energy label is used).
    n_folds : int
        Folds of the cross-validation (at most the number of frames).
    seed : int
        Seed of the fold assignments.
    repeats : int
        Repetitions of the k-fold split (new random folds each); the squared errors are averaged.
    lambdas : sequence of float
        Grid of :math:`\\lambda` relative to the mean of the squared singular values of ``A``.

    Returns
    -------
    dict
        ``features`` (the chosen blocks, e.g. ``"pair"``), ``lambda`` (``inf``: no correction was
        better in cross-validation), ``cv_rmse`` and ``train_rmse`` (eV per frame), ``frames``,
        ``n_features``, ``cv_rmse_by_features`` (the best of each candidate).
    """
    from mtzoo.heads.energy import fit_energy_bias

    hd = model.heads[head]
    if getattr(hd, "corrections", None) is None and getattr(hd, "pair", None) is None:
        raise ValueError(f"head '{head}' has no correction nets (correction_neuron) or pair term (pair_correction) to fit")
    blocks, pred, label, counts = _features(model, head, systems)
    nframes = label.shape[0]
    if nframes < 2:
        raise ValueError(f"ridge fit of head '{head}': needs at least 2 frames with energies, got {nframes}")
    y = label - pred
    rng = np.random.default_rng(seed)
    # repeated k-fold: the choice on a few dozen frames is noisy; the same folds for every candidate
    folds = [rng.permutation(nframes) % max(2, min(n_folds, nframes)) for _ in range(repeats)]
    names = list(blocks)
    candidates = [[n] for n in names] + ([names] if len(names) > 1 else [])
    # lambda = inf (no correction, only the bias) competes too: on too few or unrepresentative frames
    # the cross-validation then keeps the old level plus the shift
    grid = [*lambdas, np.inf]
    best = None
    by_features = {}
    for cand in candidates:
        phi = np.concatenate([blocks[n] for n in cand], 1)
        a, keep, mu, sd = _standardise(phi, [blocks[n].shape[1] for n in cand], SCALING)
        scale = float(np.mean(np.linalg.svd(a, compute_uv=False) ** 2)) if a.size else 1.0
        lams = [lam * scale for lam in grid]
        sq = _cv_errors(a, y, lams, folds)
        k = int(np.argmin(sq))
        by_features["+".join(cand)] = float(np.sqrt(sq[k] / nframes))
        if best is None or sq[k] < best[0] * (1 - 1e-12):
            best = (sq[k], cand, k, a, keep, sd, lams)
    sq_best, cand, k, a, keep, sd, lams = best
    w = _ridge_path(a, y - y.mean(), [lams[k]])[0]
    w_all = np.zeros(keep.shape[0])
    w_all[keep] = w / sd[keep]
    widths = {n: blocks[n].shape[1] for n in cand}
    parts, lo = {}, 0
    for n in cand:
        parts[n] = w_all[lo:lo + widths[n]]
        lo += widths[n]
    resid = y - sum(blocks[n] @ parts[n] for n in cand)
    delta = fit_energy_bias(counts, resid)
    _set_correction(hd, parts, delta, blocks["pair"].shape[1] if "pair" in blocks else 0)
    fit = resid - counts @ delta
    return {"features": "+".join(cand), "lambda": float(grid[k]), "cv_rmse": float(np.sqrt(sq_best / nframes)),
            "train_rmse": float(np.sqrt(np.mean(fit**2))), "frames": int(nframes), "n_features": int(keep.sum()),
            "cv_rmse_by_features": by_features}


@torch.no_grad()
def _set_correction(hd, parts: dict[str, np.ndarray], delta: np.ndarray, pair_width: int) -> None:
    """Write the fitted weights into head ``hd``: ``parts["descriptor"]`` ``[ntypes * m]`` into the
    output layers of its correction nets (bias zero), ``parts["pair"]`` ``[pair_width]`` into its
    pair term (a block not chosen: zeros), and add ``delta`` ``[ntypes]`` to its energy bias."""
    if hd.corrections is not None:
        m = hd.corrections[0].layers[-1].weight.shape[0]
        wd = parts.get("descriptor", np.zeros(len(hd.corrections) * m))
        for t, net in enumerate(hd.corrections):
            last = net.layers[-1]
            last.weight.copy_(torch.as_tensor(wd[t * m:(t + 1) * m, None], dtype=last.weight.dtype))
            if last.bias is not None:
                last.bias.zero_()
    if hd.pair is not None:
        wp = parts.get("pair", np.zeros(pair_width))
        hd.pair.set_pair_weights(torch.as_tensor(wp.reshape(-1, hd.pair.n_basis)))
    hd.bias_atom_e.add_(torch.as_tensor(delta, dtype=hd.bias_atom_e.dtype, device=hd.bias_atom_e.device))
