"""Smooth switch and DeePMD-kit's environment matrix, per edge.

For an edge with vector :math:`\\mathbf r` and length :math:`r`, the switch is

.. math::

    w(r) = 1 - 10u^3 + 15u^4 - 6u^5,\\qquad u = \\mathrm{clip}\\!\\left(\\frac{r - r_s}{r_c - r_s}, 0, 1\\right)

(:math:`C^2` at both ends), and the environment-matrix row is

.. math::

    \\mathcal R = w(r)\\left(\\frac{1}{r + p},\\ \\frac{\\mathbf r}{(r + p)^2}\\right)

with ``protection`` :math:`p` (DeePMD ``env_protection``, default 0).
"""

from __future__ import annotations

import torch


def smooth_switch(r: torch.Tensor, rcut_smth: float, rcut: float) -> torch.Tensor:
    """Quintic switch :math:`w(r)`; shape as ``r``."""
    u = ((r - rcut_smth) / (rcut - rcut_smth)).clamp(0.0, 1.0)
    u2 = u * u
    return u2 * u * (-6.0 * u2 + 15.0 * u - 10.0) + 1.0


def env_matrix(edge_vec: torch.Tensor, rcut_smth: float, rcut: float, protection: float = 0.0,
               radial_only: bool = False) -> torch.Tensor:
    """Environment-matrix rows of edges.

    Shapes
    ------
    edge_vec ``[E, 3]`` -> ``[E, 4]`` (``[E, 1]`` when ``radial_only``).
    """
    r = torch.linalg.vector_norm(edge_vec, dim=-1, keepdim=True)
    w = smooth_switch(r, rcut_smth, rcut)
    inv = 1.0 / (r + protection)
    s = w * inv
    if radial_only:
        return s
    return torch.cat([s, edge_vec * (s * inv)], dim=-1)
