r"""Pair correction of an energy head: a smooth two-body term fitted to the difference between two
levels of theory (an mtzoo extension for fine-tuning).

The difference between two levels of theory (CCSD(T) - B3LYP, say) is far smoother than either
level and dominated by how each level treats bond lengths, which a sum over atom pairs expresses
directly.  For atoms :math:`i, j` of types :math:`a, b` at distance :math:`r`:

.. math::

    \phi_{ab}(r) = \sum_{k=1}^{K} w_{ab,k}\, \exp\!\Big(-\frac{(r - \mu_k)^2}{2\sigma^2}\Big)\, f_c(r),
    \qquad f_c(r) = \big(1 - (r / r_c)^2\big)^3\ (r < r_c),\ 0\ \text{otherwise},

    E_i^{\mathrm{pair}} = \tfrac12 \sum_{j \ne i,\ r_{ij} < r_c} \phi_{t_i t_j}(r_{ij})

(half of each pair to each atom, so :math:`\sum_i E_i^{\mathrm{pair}} = \sum_{i<j} \phi`), with
centres :math:`\mu_k` evenly spaced on :math:`[r_{\min}, r_{\max}]`, width :math:`\sigma` (default:
the spacing) and :math:`w_{ab} = w_{ba}` (the stored ``[ntypes, ntypes, K]`` weights are
symmetrised in :meth:`PairCorrection.edge_energy`).  :math:`f_c` and its first two derivatives vanish
at :math:`r_c`, so energies and forces are continuous (and forces smooth) when a pair leaves the
cut-off.  The weights start
at zero (the term adds nothing until fitted); :func:`mtzoo.zoo.ridge.fit_correction_ridge` fits them
in closed form, and they are ordinary parameters for gradient training.
"""

from __future__ import annotations

import torch
from torch import nn



class PairCorrection(nn.Module):
    """Two-body energy term :math:`\\tfrac12\\sum_{j} \\phi_{t_i t_j}(r_{ij})` per atom (module docstring).

    Parameters
    ----------
    ntypes : int
        Number of atom types.
    rcut : float
        Cut-off radius :math:`r_c` (at most the model's cut-off: only its edges are seen).
    n_basis : int
        Number :math:`K` of Gaussians.
    r_min, r_max : float
        First and last Gaussian centre (Angstrom).
    width : float or None
        :math:`\\sigma`; None: the centre spacing.

    Shapes
    ------
    edge vectors ``[E, 3]``, edge_index ``[2, E]`` (row 1 the centre), atom_type ``[N]`` ->
    per-edge energies ``[E]`` (float64).
    """

    def __init__(self, ntypes: int, rcut: float, n_basis: int = 8, r_min: float = 0.9, r_max: float = 3.0,
                 width: float | None = None) -> None:
        super().__init__()
        if not 0 < r_min < r_max:
            raise ValueError(f"pair_correction: need 0 < r_min < r_max, got r_min {r_min}, r_max {r_max}")
        if int(n_basis) < 2:
            raise ValueError(f"pair_correction: n_basis must be >= 2, got {n_basis}")
        self.ntypes, self.rcut, self.n_basis = int(ntypes), float(rcut), int(n_basis)
        self.r_min, self.r_max = float(r_min), float(r_max)
        self.width = None if width is None else float(width)
        self.register_buffer("centres", torch.linspace(self.r_min, self.r_max, self.n_basis, dtype=torch.float64))
        self.sigma = self.width if self.width is not None else (self.r_max - self.r_min) / (self.n_basis - 1)
        self.weight = nn.Parameter(torch.zeros(self.ntypes, self.ntypes, self.n_basis, dtype=torch.float64))

    def get_config(self) -> dict:
        return {"rcut": self.rcut, "n_basis": self.n_basis, "r_min": self.r_min, "r_max": self.r_max,
                "width": self.width}

    def basis(self, r: torch.Tensor) -> torch.Tensor:
        """:math:`\\exp(-(r-\\mu_k)^2/2\\sigma^2) f_c(r)`, ``[E] -> [E, K]`` (float64)."""
        r = r.to(torch.float64)
        fc = torch.clamp(1.0 - (r / self.rcut) ** 2, min=0.0) ** 3
        return torch.exp(-((r[:, None] - self.centres) ** 2) / (2.0 * self.sigma**2)) * fc[:, None]

    def edge_energy(self, vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor) -> torch.Tensor:
        """:math:`\\tfrac12 \\phi_{t_i t_j}(|\\mathbf r_e|)` of every directed edge, ``[E]``."""
        w = 0.5 * (self.weight + self.weight.transpose(0, 1))
        r = torch.linalg.vector_norm(vec.to(torch.float64), dim=-1)
        we = w[atom_type[edge_index[1]], atom_type[edge_index[0]]]  # [E, K]
        return 0.5 * (self.basis(r) * we).sum(-1)

    def pair_index(self) -> torch.Tensor:
        """``[ntypes, ntypes]`` index of the unordered type pair :math:`\\{a, b\\}` (row-major upper triangle)."""
        idx = torch.empty(self.ntypes, self.ntypes, dtype=torch.long)
        k = 0
        for a in range(self.ntypes):
            for b in range(a, self.ntypes):
                idx[a, b] = idx[b, a] = k
                k += 1
        return idx

    @torch.no_grad()
    def frame_features(self, vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor,
                       frame_of_atom: torch.Tensor, n_frames: int) -> torch.Tensor:
        """:math:`\\Phi_{f,(ab,k)} = \\sum_{i<j \\in f,\\ \\{t_i,t_j\\}=\\{a,b\\}} B_k(r_{ij})`: the frame
        energy is :math:`\\sum_{ab,k} \\Phi_{f,(ab,k)} w_{ab,k}`.  ``[n_frames, n_pairs * K]``."""
        r = torch.linalg.vector_norm(vec.to(torch.float64), dim=-1)
        p = self.pair_index().to(edge_index.device)[atom_type[edge_index[1]], atom_type[edge_index[0]]]
        npairs = self.ntypes * (self.ntypes + 1) // 2
        col = p[:, None] * self.n_basis + torch.arange(self.n_basis, device=p.device)
        row = frame_of_atom[edge_index[1]][:, None].expand_as(col)
        out = torch.zeros(n_frames * npairs * self.n_basis, dtype=torch.float64, device=vec.device)
        out.index_add_(0, (row * npairs * self.n_basis + col).reshape(-1), (0.5 * self.basis(r)).reshape(-1))
        return out.view(n_frames, npairs * self.n_basis)

    @torch.no_grad()
    def set_pair_weights(self, w: torch.Tensor) -> None:
        """Set :math:`w_{ab}` from ``[n_pairs, K]`` (the columns of :meth:`frame_features`)."""
        idx = self.pair_index().to(self.weight.device)
        self.weight.copy_(torch.as_tensor(w, dtype=torch.float64, device=self.weight.device)[idx])
