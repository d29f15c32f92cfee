"""``e3nn_mp``: an E(3)-equivariant message-passing descriptor (NequIP / MACE class, kept small).

Node features :math:`h_i^{(t)}` are e3nn irreps (default ``32x0e + 16x1o + 8x2e``).  With
:math:`r_e = |\\mathbf r_e|`, :math:`\\hat{\\mathbf r}_e = \\mathbf r_e / r_e` for the edge
:math:`e = (j \\to i)`:

.. math::

    h_i^{(0)} = W_{\\rm emb}\\, \\mathbf 1_{t_i}  \\quad (\\text{one-hot type} \\to \\text{scalars})

    B_n(r) = \\sqrt{2/r_c}\\, \\frac{\\sin(n\\pi r / r_c)}{r}\\, u(r / r_c),\\qquad
    u(x) = 1 - \\tfrac{(p+1)(p+2)}{2} x^p + p(p+2) x^{p+1} - \\tfrac{p(p+1)}{2} x^{p+2}\\ (x<1),\\ 0\\ (x \\ge 1)

    m_i = \\frac{1}{\\bar n} \\sum_{e \\to i} \\big(L_{\\rm up} h_j^{(t)}\\big)
          \\otimes_{R(B(r_e))} Y^{l \\le l_{\\max}}(\\hat{\\mathbf r}_e)

    h_i^{(t+1)} = \\mathrm{Gate}\\big(L_{\\rm down}\\, m_i + \\mathrm{SC}(h_i^{(t)}, \\mathbf 1_{t_i})\\big)

:math:`u` is NequIP's polynomial envelope (``p = 6``): it and its first two derivatives vanish at
:math:`r_c`, so energies, forces and their first derivative are continuous as atoms cross the
cutoff.  :math:`\\otimes_R` is an e3nn ``TensorProduct`` with one ``uvu`` path per allowed
(input irrep, spherical harmonic, output irrep), its weights per edge given by the radial MLP
:math:`R` (``e3nn.nn.FullyConnectedNet``, no biases, so :math:`R(0) = 0`); :math:`\\bar n`
(``avg_num_neighbors``) is a constant from the training data; SC is a species-dependent
self-connection (``FullyConnectedTensorProduct`` with the one-hot); the Gate applies SiLU
(``0e``) / tanh (``0o``) to scalars and sigmoid gates to the ``l > 0`` irreps.

Outputs: ``descriptor`` = the ``0e`` channels of the last layer ``[N, n_scalars]`` (invariant,
for the energy head) and ``equivariant`` = the whole last layer ``[N, irreps_out.dim]`` for the
e3nn tensor heads (:mod:`mtzoo.heads.e3nn_heads`).  No se-style axis vectors (``dim_rot = 0``).

References: Batzner et al., Nat. Commun. 13, 2453 (2022) (NequIP); Geiger & Smidt, e3nn (2022).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet, Gate
from torch import nn

from mtzoo import keys as K
from mtzoo.descriptors.base import Descriptor, register
from mtzoo.nn.common import default_dtype, to_dtype
from mtzoo.nn.scatter import scatter_sum


class BesselEnvelope(nn.Module):
    """Bessel radial basis times the polynomial cutoff envelope (see module docstring).

    Shapes
    ------
    r ``[E]`` -> ``[E, n_radial]``.
    """

    def __init__(self, rcut: float, n_radial: int = 8, p: float = 6) -> None:
        super().__init__()
        self.rcut, self.n_radial, self.p = float(rcut), int(n_radial), float(p)
        self.register_buffer("freq", torch.arange(1, n_radial + 1, dtype=torch.get_default_dtype()) * math.pi / rcut)

    def envelope(self, r: torch.Tensor) -> torch.Tensor:
        p, x = self.p, r / self.rcut
        u = 1.0 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
        return torch.where(x < 1.0, u, torch.zeros_like(u))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.unsqueeze(-1)
        b = math.sqrt(2.0 / self.rcut) * torch.sin(self.freq.to(r.dtype) * r) / r
        return b * self.envelope(r)


def _gate_for(irreps_hidden: o3.Irreps) -> Gate:
    """Gate producing ``irreps_hidden``: SiLU/tanh on its scalars, a sigmoid gate per ``l > 0`` irrep."""
    scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_hidden if ir.l == 0])
    gated = o3.Irreps([(mul, ir) for mul, ir in irreps_hidden if ir.l > 0])
    gates = o3.Irreps([(mul, "0e") for mul, _ in gated])
    acts = {1: torch.nn.functional.silu, -1: torch.tanh}
    return Gate(scalars, [acts[ir.p] for _, ir in scalars], gates, [torch.sigmoid] * len(gates), gated)


class Interaction(nn.Module):
    """One message-passing layer: linear, edge tensor product with radial weights, scatter-sum,
    linear, self-connection, gate (see module docstring).

    Shapes
    ------
    h ``[N, irreps_in.dim]``, attr ``[N, ntypes]``, sh ``[E, irreps_sh.dim]``, radial ``[E, n_radial]``,
    edge_index ``[2, E]`` -> ``[N, irreps_out.dim]`` (``irreps_out`` = ``irreps_hidden``).
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_hidden: o3.Irreps, ntypes: int,
                 n_radial: int, radial_neurons: Sequence[int]) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.gate = _gate_for(irreps_hidden)
        target = self.gate.irreps_in  # scalars + gates + gated
        wanted = {ir for _, ir in target}
        irreps_mid, instr = uvu_paths(self.irreps_in, irreps_sh, wanted)
        self.linear_up = o3.Linear(self.irreps_in, self.irreps_in)
        self.tp = o3.TensorProduct(self.irreps_in, irreps_sh, irreps_mid, instr, shared_weights=False,
                                   internal_weights=False)
        self.radial = FullyConnectedNet([n_radial, *radial_neurons, self.tp.weight_numel], torch.nn.functional.silu)
        self.linear_down = o3.Linear(irreps_mid, target)
        self.self_connection = o3.FullyConnectedTensorProduct(self.irreps_in, o3.Irreps(f"{ntypes}x0e"), target)
        self.irreps_out = self.gate.irreps_out

    def forward(self, h: torch.Tensor, attr: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor,
                edge_index: torch.Tensor, inv_avg: torch.Tensor) -> torch.Tensor:
        src, dst = edge_index[0], edge_index[1]
        msg = self.tp(self.linear_up(h)[src], sh, self.radial(radial))
        agg = scatter_sum(msg, dst, h.shape[0]) * inv_avg
        return self.gate(self.linear_down(agg) + self.self_connection(h, attr))


def _keep_own_constants(module, state_dict, prefix, *args) -> None:
    """Load hook: keep this module's own e3nn constant buffers (``_w3j_*``, ``cg_*``), computed in float64 at
    construction, instead of the file's copies (a file written by a model built with a float32
    default dtype holds them rounded to float32, which breaks equivariance at about 1e-9)."""
    own = module.state_dict(prefix=prefix)
    for key in list(state_dict):
        if key.startswith(prefix) and ("._w3j_" in key or ".cg_" in key) and key in own:
            state_dict[key] = own[key]


@register("e3nn_mp")
class DescrptE3nnMP(Descriptor):
    """Equivariant message-passing descriptor built from e3nn (see module docstring for the equations).

    Parameters
    ----------
    ntypes : int
        Number of atom types.
    rcut : float
        Cutoff radius (Angstrom); the envelope is C^2 there.
    lmax : int
        Highest degree of the edge spherical harmonics (1 to 3).
    num_layers : int
        Number of interaction layers (>= 1).
    hidden_irreps : str
        Irreps of the node features of every layer (must contain ``0e``), e.g. ``"32x0e + 16x1o + 8x2e"``.
    n_radial : int
        Number of Bessel functions.
    radial_neurons : list of int
        Hidden widths of the radial MLP that gives the tensor-product weights of each edge.
    avg_num_neighbors : float or None
        Normalisation :math:`\\bar n` of the neighbour sum; None: mean number of neighbours
        within ``rcut`` in the training data (:meth:`compute_stats`; 1 until then).
    precision : str
        Parameter dtype (``"default"`` = float64).
    trainable : bool
        Whether the parameters are trained.
    seed : int or None
        Seed of the initialisation (drawn under a forked RNG; the global RNG is untouched).

    Shapes
    ------
    edge_vec ``[E, 3]``, edge_index ``[2, E]``, atom_type ``[N]`` ->
    ``descriptor`` ``[N, dim_out]`` (the ``0e`` channels), ``equivariant`` ``[N, irreps_out.dim]``.
    """

    dim_rot = 0
    mixed_types = True

    def __init__(self, ntypes: int, rcut: float = 5.0, lmax: int = 2, num_layers: int = 2,
                 hidden_irreps: str = "32x0e + 16x1o + 8x2e", n_radial: int = 8,
                 radial_neurons: Sequence[int] = (64,), avg_num_neighbors: float | None = None,
                 precision: str = "default", trainable: bool = True, seed: int | None = None) -> None:
        super().__init__()
        if not 1 <= int(lmax) <= 3:
            raise ValueError(f"e3nn_mp: lmax must be 1, 2 or 3, got {lmax}")
        if int(num_layers) < 1:
            raise ValueError(f"e3nn_mp: num_layers must be >= 1, got {num_layers}")
        irreps_hidden = o3.Irreps(hidden_irreps).simplify()
        n_scalars = sum(mul for mul, ir in irreps_hidden if ir == o3.Irrep("0e"))
        if n_scalars == 0:
            raise ValueError(f"e3nn_mp: hidden_irreps '{hidden_irreps}' has no 0e channels (the invariant descriptor)")
        set_common(self, ntypes, rcut, lmax, num_layers, n_radial, radial_neurons, avg_num_neighbors, precision,
                   trainable, seed)
        self.hidden_irreps = str(irreps_hidden)
        # e3nn's constants (Wigner 3j) are computed in the default dtype: build in float64 so that
        # they are exact to double precision whatever the caller's default (then cast to precision)
        with torch.random.fork_rng(devices=[]), default_dtype(torch.float64):
            if seed is not None:
                torch.manual_seed(int(seed))
            self.embedding = o3.Linear(o3.Irreps(f"{ntypes}x0e"), o3.Irreps(f"{n_scalars}x0e"))
            self.radial_basis = BesselEnvelope(self.rcut, self.n_radial)
            layers, irreps = [], o3.Irreps(f"{n_scalars}x0e")
            for _ in range(self.num_layers):
                layers.append(Interaction(irreps, self.irreps_sh, irreps_hidden, ntypes, self.n_radial,
                                          self.radial_neurons))
                irreps = layers[-1].irreps_out
            self.layers = nn.ModuleList(layers)
        self.irreps_out: o3.Irreps = irreps
        self.register_buffer("avg_num_neighbors", torch.tensor(self.avg_num_neighbors_fixed or 1.0, dtype=torch.float64))
        # columns of the 0e channels in the last layer's output (the invariant descriptor)
        cols = [torch.arange(s.start, s.stop) for s, (_, ir) in zip(irreps.slices(), irreps) if ir == o3.Irrep("0e")]
        self.register_buffer("scalar_cols", torch.cat(cols), persistent=False)
        self.dim_out = int(self.scalar_cols.numel())
        finish_init(self)
        self.scalar_cols = self.scalar_cols.long()

    def get_config(self) -> dict:
        return {"type": "e3nn_mp", "rcut": self.rcut, "lmax": self.lmax, "num_layers": self.num_layers,
                "hidden_irreps": self.hidden_irreps, "n_radial": self.n_radial, "radial_neurons": self.radial_neurons,
                "avg_num_neighbors": self.avg_num_neighbors_fixed, "precision": self.precision,
                "trainable": self.trainable, "seed": self.seed}

    def forward(self, edge_vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor) -> dict[str, torch.Tensor]:
        attr, sh, radial, inv_avg = edge_inputs(self, edge_vec, atom_type)
        h = self.embedding(attr)
        for layer in self.layers:
            h = layer(h, attr, sh, radial, edge_index, inv_avg)
        return {K.DESCRIPTOR: h.index_select(1, self.scalar_cols), K.EQUIVARIANT: h}

    @torch.no_grad()
    def compute_stats(self, graphs: Sequence, protection: float = 1e-2) -> None:
        """Set ``avg_num_neighbors`` to the mean number of neighbours within ``rcut`` per atom
        (unless given in the config).  ``protection`` is accepted for the common interface."""
        if self.avg_num_neighbors_fixed is not None:
            return
        mean = mean_neighbour_count(graphs, self.rcut)
        if mean is not None:
            self.avg_num_neighbors.fill_(mean)


def set_common(desc: nn.Module, ntypes: int, rcut: float, lmax: int, num_layers: int, n_radial: int,
               radial_neurons: Sequence[int], avg_num_neighbors: float | None, precision: str, trainable: bool,
               seed: int | None) -> None:
    r"""Store the settings every e3nn descriptor (``e3nn_mp``, ``e3nn_mace``) has, as attributes of ``desc``,
    with the precision's dtype and the edge harmonics' irreps :math:`l = 0 \dots l_{\max}`."""
    desc.ntypes, desc.rcut, desc.lmax, desc.num_layers = int(ntypes), float(rcut), int(lmax), int(num_layers)
    desc.n_radial, desc.radial_neurons = int(n_radial), [int(n) for n in radial_neurons]
    desc.avg_num_neighbors_fixed = None if avg_num_neighbors is None else float(avg_num_neighbors)
    desc.precision, desc.trainable, desc.seed = precision, bool(trainable), seed
    desc.dtype = to_dtype(precision)
    desc.irreps_sh = o3.Irreps.spherical_harmonics(desc.lmax)


def finish_init(desc: nn.Module) -> None:
    """Last step of an e3nn descriptor's constructor: cast to its precision, freeze it unless
    ``trainable``, and keep its own e3nn constants when a state dict is loaded."""
    desc.to(desc.dtype)
    if not desc.trainable:
        desc.requires_grad_(False)
    desc._register_load_state_dict_pre_hook(_keep_own_constants, with_module=True)


def uvu_paths(irreps_in: o3.Irreps, irreps_sh: o3.Irreps, wanted) -> tuple[o3.Irreps, list[tuple]]:
    r"""Output irreps and instructions of the channel-wise (``uvu``) edge convolution
    :math:`h_j \otimes Y(\hat{\mathbf r}_e)`: every product of an input irrep and a harmonic whose
    result is in ``wanted``, with the input's multiplicity (one weight per channel and path, from the
    radial MLP)."""
    irreps_mid, instr = [], []
    for i1, (mul, ir1) in enumerate(irreps_in):
        for i2, (_, ir2) in enumerate(irreps_sh):
            for ir in ir1 * ir2:
                if ir in wanted:
                    instr.append((i1, i2, len(irreps_mid), "uvu", True))
                    irreps_mid.append((mul, ir))
    return o3.Irreps(irreps_mid), instr


def edge_inputs(desc: nn.Module, edge_vec: torch.Tensor, atom_type: torch.Tensor):
    r"""The inputs every layer of an e3nn descriptor (``e3nn_mp``, ``e3nn_mace``) shares, in ``desc.dtype``.

    Returns the element one-hot ``[N, ntypes]``, the spherical harmonics
    :math:`Y^{l \le l_{\max}}(\hat{\mathbf r}_e)` ``[E, irreps_sh.dim]`` (component normalisation),
    the radial basis :math:`B(r_e)` ``[E, n_radial]`` and :math:`1/\bar n` (a 0-d tensor).
    """
    vec = edge_vec.to(desc.dtype)
    attr = torch.nn.functional.one_hot(atom_type, desc.ntypes).to(desc.dtype)
    sh = o3.spherical_harmonics(desc.irreps_sh, vec, normalize=True, normalization="component")
    radial = desc.radial_basis(torch.linalg.vector_norm(vec, dim=-1))
    return attr, sh, radial, (1.0 / desc.avg_num_neighbors).to(desc.dtype)


@torch.no_grad()
def mean_neighbour_count(graphs: Sequence, rcut: float) -> float | None:
    """Mean number of neighbours within ``rcut`` per atom over ``graphs`` (None when there are none)."""
    n_edges, n_atoms = 0, 0
    for g in graphs:
        ei = g[K.EDGE_INDEX]
        vec = g[K.POSITIONS][ei[0]] - g[K.POSITIONS][ei[1]] + g[K.CELL_SHIFT].to(g[K.POSITIONS].dtype) @ g[K.CELL][0]
        n_edges += int((torch.linalg.norm(vec, dim=-1) < rcut).sum())
        n_atoms += int(g.num_nodes)
    return n_edges / n_atoms if n_atoms and n_edges else None
