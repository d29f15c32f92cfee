"""Exact equivariance of tensor heads (dipole, polarizability) (:mod:`mtzoo.testing`)."""

from __future__ import annotations

import numpy as np

from mtzoo.testing._frames import as_frame, assert_close, equivalent_frames, evaluate


def _rotate_tensor(x: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """``R x`` for vectors ``[..., 3]``, ``R x R^T`` for rank-2 tensors ``[..., 3, 3]``."""
    if x.shape[-2:] == (3, 3):
        return np.einsum("ab,...bc,dc->...ad", rot, x, rot)
    return x @ rot.T


def _sum_and_symmetry(ref: dict, outputs, natoms: int, rtol: float) -> float:
    """Frame tensor = sum of the atomic ones; rank-2 tensors symmetric."""
    worst = 0.0
    for o in outputs:
        assert np.abs(ref[o.atom_name]).max() > 0, f"{o.atom_name} is identically zero: the check would be vacuous"
        worst = max(worst, assert_close(f"{o.name} = sum of {o.atom_name}", ref[o.name][0], ref[o.atom_name].sum(0),
                                        rtol, float(np.abs(ref[o.atom_name]).max()) * max(natoms, 1)))
        if o.shape == (3, 3):
            for key in (o.name, o.atom_name):
                worst = max(worst, assert_close(f"{key} symmetric", ref[key], np.swapaxes(ref[key], -1, -2), rtol))
    return worst


def check_tensor_equivariance(model, frame, head: str, rtol: float = 1e-12, seed: int = 0) -> float:
    r"""Frame and atomic tensors of a dipole / polarizability head transform exactly.

    For every copy of :func:`equivalent_frames` (rotation :math:`R`, with the cell when periodic;
    translation; permutation; for periodic frames wrapping, lattice shifts and cell changes):

    .. math:: \mu(x R^T + t) = R\,\mu(x), \qquad \alpha(x R^T + t) = R\,\alpha(x)\,R^T

    for the frame values and the atomic ones (permuted with the atoms).  Also: the frame tensor
    is the sum of the atomic ones, polarizabilities are symmetric, and a batch of [frame, rattled
    copy, rotated copy] gives each frame's values alone.

    Parameters
    ----------
    model : mtzoo.model.Model
    frame : ase.Atoms, System, (System, int) or Frame
    head : str
        A head with non-differentiable outputs (:class:`mtzoo.heads.OutputDef`).
    rtol : float
        Relative to the largest component of each reference output.
    seed : int
        Seeds the transformations and the rattled copy.

    Returns
    -------
    float
        The largest relative error.
    """
    fr = as_frame(frame, model.type_map)
    outputs = [o for o in model.heads[head].outputs if not o.differentiable]
    assert outputs, f"head '{head}' has no tensor output"
    ref = evaluate(model, fr, head, forces=False)
    worst = _sum_and_symmetry(ref, outputs, fr.natoms, rtol)
    rng = np.random.default_rng(seed)
    transformed = equivalent_frames(fr, rng)
    for name, f2, perm, rot in transformed:
        got = evaluate(model, f2, head, forces=False)
        for o in outputs:
            g_ref, a_ref = ref[o.name], ref[o.atom_name]
            if perm is not None:
                a_ref = a_ref[perm]
            if rot is not None:
                g_ref, a_ref = _rotate_tensor(g_ref, rot), _rotate_tensor(a_ref, rot)
            worst = max(worst, assert_close(f"{name}: {o.name}", got[o.name], g_ref, rtol),
                        assert_close(f"{name}: {o.atom_name}", got[o.atom_name], a_ref, rtol))
    rattled = fr.replace(pos=fr.pos + rng.normal(scale=0.05, size=fr.pos.shape))
    flist = [fr, rattled, transformed[0][1]]
    batched = evaluate(model, flist, head, forces=False)
    start = 0
    for k, f in enumerate(flist):
        alone = evaluate(model, f, head, forces=False)
        for o in outputs:
            worst = max(worst, assert_close(f"batch frame {k}: {o.name}", batched[o.name][k], alone[o.name][0], rtol),
                        assert_close(f"batch frame {k}: {o.atom_name}", batched[o.atom_name][start:start + f.natoms],
                                     alone[o.atom_name], rtol))
        start += f.natoms
    return worst
