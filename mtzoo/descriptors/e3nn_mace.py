r"""``e3nn_mace``: an equivariant descriptor of MACE's class (higher body order through a symmetric
product basis), written with e3nn and torch.

Edges :math:`e = (j \to i)` with :math:`r_e = |\mathbf r_e|`; node features :math:`h_i^{(t)}` are
e3nn irreps (``hidden_irreps``, default ``32x0e + 32x1o``; every irrep with the same number of
channels :math:`C`).  One layer :math:`t`:

.. math::

    h_i^{(0)} = W_{\rm emb}\,\mathbf 1_{z_i}

    R_e = \mathrm{MLP}\big(B(r_e)\big),\qquad
    B_n(r) = \sqrt{2/r_c}\,\frac{\sin(n\pi r/r_c)}{r}\,u_p(r/r_c)

    A_{i,c\,lm} = s_t\Big[L_A\,\frac{1}{\bar n}\sum_{e\to i}
        \big(L_{\rm up} h_j^{(t)}\big)\otimes_{R_e} Y^{l\le l_{\max}}(\hat{\mathbf r}_e)\Big]_{c\,lm}
        \qquad (\text{first layer: then an element-dependent linear } W_{z_i})

    B_{i,c\,LM} = \sum_{\nu=1}^{\nu_{\max}} \sum_{\eta \in \mathcal P_\nu(L)}
        w^{(z_i)}_{\eta c}\; \big[\underbrace{A_{i,c} \otimes \cdots \otimes A_{i,c}}_{\nu}\big]_{\eta, LM}

    h_i^{(t+1)} = L_B\, B_i + \big[\,t > 0\,\big]\;\mathrm{SC}\big(h_i^{(t)}, \mathbf 1_{z_i}\big)

* :math:`u_p` is the polynomial envelope (:class:`~mtzoo.descriptors.e3nn_mp.BesselEnvelope`,
  ``envelope_exponent`` :math:`p`, 5 as in MACE): it and its first two derivatives vanish at
  :math:`r_c`.  :math:`\otimes_{R_e}` is a channel-wise (``uvu``) e3nn tensor product whose
  weights per edge come from the radial MLP (SiLU, no biases, so :math:`R(0) = 0`); only
  outputs of natural parity :math:`(-1)^l`, :math:`l \le l_{\max}` are kept, and :math:`L_A`
  maps them to :math:`C` channels of each :math:`l = 0 \dots l_{\max}` (the atomic basis
  :math:`A`).
* :math:`s_t` (buffer ``a_scale``) is set by :meth:`DescrptE3nnMACE.compute_stats` so that
  :math:`A` has unit mean square on the training data at initialisation; without it :math:`A \ll 1`
  and the products of two and three factors start (and stay) negligible.
* :math:`B` is the **symmetric product basis** of correlation order :math:`\nu_{\max}`
  (``correlation``, 1-3): for every channel :math:`c` separately, the products of :math:`\nu`
  copies of :math:`A_{i,c}` coupled to each target irrep :math:`L` of ``hidden_irreps`` by
  Clebsch-Gordan coefficients (e3nn's ``wigner_3j``, component normalisation
  :math:`\sqrt{2L+1}`).  The coupling paths :math:`\mathcal P_\nu(L)` are

  - :math:`\nu = 1`: :math:`A_{c,L}` itself;
  - :math:`\nu = 2`: :math:`(A_{l_1} A_{l_2})_L` with :math:`l_1 \le l_2`;
  - :math:`\nu = 3`: :math:`((A_{l_1} A_{l_2})_{l_{12}} A_{l_3})_L` with
    :math:`l_1 \le l_2 \le l_3` and every intermediate :math:`l_{12}`;

  with the parity rule :math:`(-1)^{\sum l} = p_L` and the couplings of two equal factors that
  vanish identically (:math:`l_1 = l_2`, :math:`2l_1 - l_{12}` odd) left out.  For a product of
  fixed degrees, the couplings through every intermediate :math:`l_{12}` span all
  :math:`L`-components of :math:`A_{l_1}\otimes A_{l_2}\otimes A_{l_3}`, so these paths span the
  symmetric tensors MACE's generalised Clebsch-Gordan basis spans (with some redundancy).  The
  weights :math:`w^{(z)}_{\eta c}` (initialised :math:`\mathcal N(0, 1/|\mathcal P(L)|^2)`, i.e.
  ``randn / |P(L)|`` as MACE's symmetric contraction; against ``randn / sqrt(|P(L)|)`` it lowered
  the ethanol base's force MAE from 35.0 to 32.3 meV/A and its energy MAE from 9.9 to 7.9
  meV/molecule, medians of 3 seeds, docs/descriptors.md) depend on the element, so :math:`B` is a body-order
  :math:`\nu_{\max}+1` (ACE) basis on each layer.
* SC is a species-dependent self-connection (e3nn ``FullyConnectedTensorProduct`` with the
  one-hot), the residual of MACE's later layers.

Outputs: ``descriptor`` = the ``0e`` channels of **every** layer, concatenated
``[N, num_layers * n_scalars]`` (a linear fitting net on it is MACE's sum of per-layer readouts),
and ``equivariant`` = the last layer ``[N, irreps_out.dim]`` for the e3nn tensor heads (dipole
needs ``1o``, polarizability ``0e`` and ``2e`` in ``hidden_irreps``).

Cost: the edge work (radial MLP and ``uvu`` product) scales with the edges; the product basis
with the atoms only (:math:`O(N\,C\,|\mathcal P|)` small contractions).

References: Batatia et al., "MACE: Higher Order Equivariant Message Passing Neural Networks for
Fast and Accurate Force Fields", NeurIPS 2022; Drautz, Phys. Rev. B 99, 014104 (2019) (ACE);
Batzner et al., Nat. Commun. 13, 2453 (2022) (NequIP).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet
from torch import nn

from mtzoo import keys as K
from mtzoo.descriptors.base import Descriptor, register
from mtzoo.descriptors.e3nn_mp import (BesselEnvelope, edge_inputs, finish_init, mean_neighbour_count, set_common,
                                        uvu_paths)
from mtzoo.nn.common import default_dtype
from mtzoo.nn.scatter import scatter_sum


def _natural(l: int) -> o3.Irrep:
    return o3.Irrep(l, (-1) ** l)


def coupling_paths(lmax: int, target: o3.Irrep, correlation: int, ordered: bool = False) -> list[tuple[int, ...]]:
    r"""The coupling paths :math:`\mathcal P_\nu(L)` of the product basis (see module docstring).

    Returns tuples ``(l,)`` (:math:`\nu = 1`), ``(l1, l2)`` (:math:`\nu = 2`, coupled directly to
    :math:`L`) and ``(l1, l2, l12, l3)`` (:math:`\nu = 3`), for factors of natural parity
    :math:`l \le` ``lmax``: with :math:`l_1 \le l_2 (\le l_3)` by default, in every order of the
    factors with ``ordered`` (MACE's generalised Clebsch-Gordan set; couplings that vanish
    identically are left out either way).
    """
    L, p = target.l, target.p
    out: list[tuple[int, ...]] = []
    if _natural(L) == target and L <= lmax:
        out.append((L,))
    if correlation >= 2:
        for l1 in range(lmax + 1):
            for l2 in range(0 if ordered else l1, lmax + 1):
                if (-1) ** (l1 + l2) == p and abs(l1 - l2) <= L <= l1 + l2 and not (l1 == l2 and L % 2):
                    out.append((l1, l2))
    if correlation >= 3:
        for l1 in range(lmax + 1):
            for l2 in range(0 if ordered else l1, lmax + 1):
                for l12 in range(abs(l1 - l2), l1 + l2 + 1):
                    if l1 == l2 and l12 % 2:
                        continue
                    for l3 in range(0 if ordered else l2, lmax + 1):
                        if (-1) ** (l1 + l2 + l3) == p and abs(l12 - l3) <= L <= l12 + l3:
                            out.append((l1, l2, l12, l3))
    return out


def _path_tensor(path: tuple[int, ...], L: int, lmax: int) -> torch.Tensor:
    r"""The coupling of one path as a symmetric tensor on one channel's atomic basis
    :math:`A = (A_0, \dots, A_{l_{\max}})` (dimension :math:`D = (l_{\max}+1)^2`):
    ``[D ** len, 2L + 1]`` flattened, with the normalisation of :class:`ProductBasis` (component:
    each coupling times :math:`\sqrt{2l+1}` of its output), in float64."""
    import itertools

    off = [l * l for l in range(lmax + 2)]
    dim = off[-1]

    def cg(a: int, b: int, c: int) -> torch.Tensor:
        with default_dtype(torch.float64):  # e3nn builds the coefficients in the default dtype
            return o3.wigner_3j(a, b, c) * math.sqrt(2 * c + 1)

    if len(path) == 1:
        t = torch.zeros(dim, 2 * L + 1, dtype=torch.float64)
        t[off[L]:off[L + 1]] = torch.eye(2 * L + 1, dtype=torch.float64)
        return t
    if len(path) == 2:
        ls, block = path, cg(path[0], path[1], L)
    else:
        l1, l2, l12, l3 = path
        ls, block = (l1, l2, l3), torch.einsum("abx,xcz->abcz", cg(l1, l2, l12), cg(l12, l3, L))
    t = torch.zeros(*(dim,) * len(ls), 2 * L + 1, dtype=torch.float64)
    t[tuple(slice(off[l], off[l + 1]) for l in ls)] = block
    perms = list(itertools.permutations(range(len(ls))))
    sym = sum(t.permute(*q, len(ls)) for q in perms) / len(perms)
    return sym.reshape(-1, 2 * L + 1)


def mace_weight_map(lmax: int, target: o3.Irrep, correlation: int) -> torch.Tensor:
    r"""``[|P|, |P_ordered|]``: each ordered path (:func:`coupling_paths` with ``ordered``) as a
    combination of the default paths, exact (least squares on the symmetric tensors, residual
    checked), so that weights per ordered path act through the default paths' computation."""
    minimal, ordered = coupling_paths(lmax, target, correlation), coupling_paths(lmax, target, correlation, True)
    out = torch.zeros(len(minimal), len(ordered), dtype=torch.float64)
    for nu in (1, 2, 4):
        rows = [i for i, q in enumerate(minimal) if len(q) == nu]
        cols = [k for k, q in enumerate(ordered) if len(q) == nu]
        if not cols:
            continue
        basis = torch.stack([_path_tensor(minimal[i], target.l, lmax).reshape(-1) for i in rows], 1)
        want = torch.stack([_path_tensor(ordered[k], target.l, lmax).reshape(-1) for k in cols], 1)
        coef = torch.linalg.pinv(basis, rtol=1e-10) @ want  # the minimal paths may be redundant (1o: 16 for rank 12)
        resid = float((basis @ coef - want).abs().max())
        if resid > 1e-10:
            raise AssertionError(f"e3nn_mace: ordered paths of order {nu} to {target} leave the span ({resid:.1e})")
        out[torch.tensor(rows)[:, None], torch.tensor(cols)[None, :]] = coef
    return out


class ProductBasis(nn.Module):
    r"""Element-weighted symmetric product basis :math:`B` of the atomic basis :math:`A` (module docstring).

    Parameters
    ----------
    lmax : int
        Highest degree of :math:`A` (its irreps are ``C x (0e + 1o + ... )``, natural parity).
    targets : e3nn Irreps
        The output irreps (each with ``channels`` channels; multiplicities are ignored).
    channels : int
        :math:`C`.
    ntypes : int
        Number of elements (one weight set each).
    correlation : int
        :math:`\nu_{\max}` (1 to 3).
    weights : str
        ``"minimal"``: one weight per path of :func:`coupling_paths` (a basis of the symmetric
        couplings); ``"mace"``: one weight per path in every order of the factors (MACE's
        generalised Clebsch-Gordan set with ``use_reduced_cg`` false: 23 scalar and 46 vector
        paths of order 3 at ``lmax`` 3 against 8 and 12), mapped exactly onto the minimal paths by
        :func:`mace_weight_map`.  Same functions; the redundant weights move the couplings
        faster under Adam, as MACE's do.

    Shapes
    ------
    blocks: list of ``[N, C, 2l+1]`` for ``l = 0..lmax``, atom_type ``[N]`` ->
    ``[N, C * targets.dim / mul]`` in e3nn layout (irrep by irrep, channel-major).
    """

    def __init__(self, lmax: int, targets: o3.Irreps, channels: int, ntypes: int, correlation: int,
                 weights: str = "minimal") -> None:
        super().__init__()
        if weights not in ("minimal", "mace"):
            raise ValueError(f"e3nn_mace: product_weights must be 'minimal' or 'mace', got {weights!r}")
        self.mode = weights
        self.lmax, self.channels, self.correlation = int(lmax), int(channels), int(correlation)
        self.targets = [ir for _, ir in o3.Irreps(targets)]
        self.paths = [coupling_paths(self.lmax, ir, self.correlation) for ir in self.targets]
        for ir, paths in zip(self.targets, self.paths):
            if not paths:
                raise ValueError(f"e3nn_mace: no product of degree <= {lmax} couples to {ir}")
        pairs, cgs = set(), {}
        for ir, paths in zip(self.targets, self.paths):
            for path in paths:
                if len(path) == 2:
                    pairs.add((path[0], path[1], ir.l))
                    cgs[(path[0], path[1], ir.l)] = None
                elif len(path) == 4:
                    pairs.add(path[:3])
                    cgs[path[:3]] = None
                    cgs[(path[2], path[3], ir.l)] = None
        self.pairs = sorted(pairs)
        for key in cgs:
            # component normalisation: the coupled output has unit mean square for unit inputs
            self.register_buffer(self._cg_name(key), o3.wigner_3j(*key) * math.sqrt(2 * key[2] + 1))
        sizes = [len(paths) for paths in self.paths]
        if self.mode == "mace":
            for i, ir in enumerate(self.targets):
                self.register_buffer(f"wmap_{i}", mace_weight_map(self.lmax, ir, self.correlation).to(torch.get_default_dtype()))
            sizes = [getattr(self, f"wmap_{i}").shape[1] for i in range(len(self.targets))]
        self.weights = nn.ParameterList(nn.Parameter(torch.randn(ntypes, n, self.channels) / n) for n in sizes)

    @staticmethod
    def _cg_name(key: tuple[int, int, int]) -> str:
        return "cg_{}_{}_{}".format(*key)

    def forward(self, blocks: list[torch.Tensor], atom_type: torch.Tensor) -> torch.Tensor:
        pair = {key: torch.einsum("ncx,ncy,xyz->ncz", blocks[key[0]], blocks[key[1]], getattr(self, self._cg_name(key)))
                for key in self.pairs}
        outs = []
        for i, (ir, paths, w) in enumerate(zip(self.targets, self.paths, self.weights)):
            if self.mode == "mace":  # the ordered paths' weights onto the minimal paths
                w = torch.einsum("pk,tkc->tpc", getattr(self, f"wmap_{i}"), w)
            terms = []
            for path in paths:
                if len(path) == 1:
                    terms.append(blocks[path[0]])
                elif len(path) == 2:
                    terms.append(pair[(path[0], path[1], ir.l)])
                else:
                    cg = getattr(self, self._cg_name((path[2], path[3], ir.l)))
                    terms.append(torch.einsum("ncx,ncy,xyz->ncz", pair[path[:3]], blocks[path[3]], cg))
            stack = torch.stack(terms, dim=2)  # [N, C, P, 2L+1]
            out = torch.einsum("ncpm,npc->ncm", stack, w[atom_type])
            outs.append(out.reshape(out.shape[0], -1))
        return torch.cat(outs, dim=1)


class MACELayer(nn.Module):
    r"""One layer: edge convolution to the atomic basis :math:`A`, product basis, linear, residual.

    Shapes
    ------
    h ``[N, irreps_in.dim]``, attr ``[N, ntypes]``, atom_type ``[N]``, sh ``[E, irreps_sh.dim]``,
    radial ``[E, n_radial]``, edge_index ``[2, E]`` -> ``[N, irreps_out.dim]``.
    """

    def __init__(self, irreps_in: o3.Irreps, lmax: int, irreps_out: o3.Irreps, channels: int, ntypes: int,
                 n_radial: int, radial_neurons: Sequence[int], correlation: int, first: bool,
                 residual: bool = True, product_weights: str = "minimal") -> None:
        super().__init__()
        self.irreps_in, self.irreps_out, self.lmax, self.channels = o3.Irreps(irreps_in), o3.Irreps(irreps_out), lmax, channels
        # MACE's first-layer variants: element-dependent mixing of A and no residual (mix_a), or the
        # residual self-connection of the later layers (MACE >= 0.3.10's default first block)
        self.residual = bool(residual)
        self.mix_a = bool(first) and not self.residual
        irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        wanted = {_natural(l) for l in range(lmax + 1)}
        irreps_mid, instr = uvu_paths(self.irreps_in, irreps_sh, wanted)
        self.irreps_a = o3.Irreps([(channels, _natural(l)) for l in range(lmax + 1)])
        self.linear_up = o3.Linear(self.irreps_in, self.irreps_in)
        self.conv = o3.TensorProduct(self.irreps_in, irreps_sh, irreps_mid, instr, shared_weights=False,
                                     internal_weights=False)
        self.radial = FullyConnectedNet([n_radial, *radial_neurons, self.conv.weight_numel], torch.nn.functional.silu)
        self.linear_a = o3.Linear(irreps_mid, self.irreps_a)
        attr_irreps = o3.Irreps(f"{ntypes}x0e")
        if self.mix_a:  # MACE's first layer: element-dependent mixing of A, no residual
            self.skip_a = o3.FullyConnectedTensorProduct(self.irreps_a, attr_irreps, self.irreps_a)
        else:
            self.self_connection = o3.FullyConnectedTensorProduct(self.irreps_in, attr_irreps, self.irreps_out)
        self.product = ProductBasis(lmax, self.irreps_out, channels, ntypes, correlation, product_weights)
        self.irreps_b = o3.Irreps([(channels, ir) for _, ir in self.irreps_out])
        self.linear_b = o3.Linear(self.irreps_b, self.irreps_out)

    def atomic_basis(self, h: torch.Tensor, attr: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor,
                     edge_index: torch.Tensor, inv_avg: torch.Tensor) -> torch.Tensor:
        """:math:`A` before its normalisation ``a_scale``: ``[N, irreps_a.dim]``."""
        src, dst = edge_index[0], edge_index[1]
        msg = self.conv(self.linear_up(h)[src], sh, self.radial(radial))
        a = self.linear_a(scatter_sum(msg, dst, h.shape[0]) * inv_avg)
        return self.skip_a(a, attr) if self.mix_a else a

    def forward(self, h: torch.Tensor, attr: torch.Tensor, atom_type: torch.Tensor, sh: torch.Tensor,
                radial: torch.Tensor, edge_index: torch.Tensor, inv_avg: torch.Tensor,
                a_scale: torch.Tensor) -> torch.Tensor:
        a = self.atomic_basis(h, attr, sh, radial, edge_index, inv_avg) * a_scale
        n = a.shape[0]
        blocks = [a[:, s].reshape(n, self.channels, 2 * ir.l + 1) for s, (_, ir) in zip(self.irreps_a.slices(), self.irreps_a)]
        out = self.linear_b(self.product(blocks, atom_type))
        if self.residual:
            out = out + self.self_connection(h, attr)
        return out


@register("e3nn_mace")
class DescrptE3nnMACE(Descriptor):
    """MACE-class equivariant descriptor built from e3nn (equations in the module docstring).

    Parameters
    ----------
    ntypes : int
        Number of atom types.
    rcut : float
        Cutoff radius (Angstrom).
    lmax : int
        Highest degree of the edge spherical harmonics and of the atomic basis (1 to 3).
    num_layers : int
        Number of layers (>= 1).
    hidden_irreps : str
        Node-feature irreps of every layer, one multiplicity for all, containing ``0e``
        (e.g. ``"32x0e + 32x1o"``; add ``32x2e`` for a polarizability head).
    correlation : int
        Correlation order of the product basis (1 to 3; body order ``correlation + 1``).
    n_radial : int
        Number of Bessel functions.
    radial_neurons : list of int
        Hidden widths of the radial MLP.
    envelope_exponent : int
        :math:`p` of the polynomial envelope.
    avg_num_neighbors : float or None
        Normalisation :math:`\\bar n` of the neighbour sum; None: the training data's mean
        neighbour count (:meth:`compute_stats`).
    first_layer_residual : bool
        False (default): the first layer mixes its atomic basis per element and has no residual
        (MACE's ``RealAgnosticInteractionBlock``); True: the first layer has the residual
        self-connection :math:`\\mathrm{SC}(h^{(0)}, \\mathbf 1_z)` of the later layers instead
        (MACE 0.3.16's default first block, ``RealAgnosticResidualInteractionBlock``).
    product_weights : str
        ``"minimal"`` or ``"mace"``: the weights of each layer's :class:`ProductBasis`.
    precision, trainable, seed : as for ``e3nn_mp``.

    Shapes
    ------
    edge_vec ``[E, 3]``, edge_index ``[2, E]``, atom_type ``[N]`` ->
    ``descriptor`` ``[N, num_layers * C]``, ``equivariant`` ``[N, irreps_out.dim]``.
    """

    dim_rot = 0
    mixed_types = True

    def __init__(self, ntypes: int, rcut: float = 5.0, lmax: int = 3, num_layers: int = 2,
                 hidden_irreps: str = "32x0e + 32x1o", correlation: int = 3, n_radial: int = 8,
                 radial_neurons: Sequence[int] = (64, 64, 64), envelope_exponent: int = 5,
                 avg_num_neighbors: float | None = None, first_layer_residual: bool = False,
                 scalar_last_layer: bool = False, normalize_atomic_basis: bool = True,
                 product_weights: str = "minimal",
                 precision: str = "default", trainable: bool = True, seed: int | None = None) -> None:
        super().__init__()
        irreps_hidden = o3.Irreps(hidden_irreps).simplify()
        muls = {mul for mul, _ in irreps_hidden}
        if len(muls) != 1:
            raise ValueError(f"e3nn_mace: hidden_irreps '{hidden_irreps}' must give every irrep the same multiplicity")
        if o3.Irrep("0e") not in [ir for _, ir in irreps_hidden]:
            raise ValueError(f"e3nn_mace: hidden_irreps '{hidden_irreps}' has no 0e channels (the invariant descriptor)")
        if not 1 <= int(lmax) <= 3:
            raise ValueError(f"e3nn_mace: lmax must be 1, 2 or 3, got {lmax}")
        if not 1 <= int(correlation) <= 3:
            raise ValueError(f"e3nn_mace: correlation must be 1, 2 or 3, got {correlation}")
        if int(num_layers) < 1:
            raise ValueError(f"e3nn_mace: num_layers must be >= 1, got {num_layers}")
        channels = muls.pop()
        set_common(self, ntypes, rcut, lmax, num_layers, n_radial, radial_neurons, avg_num_neighbors, precision,
                   trainable, seed)
        self.hidden_irreps, self.correlation = str(irreps_hidden), int(correlation)
        self.envelope_exponent = int(envelope_exponent)
        self.first_layer_residual = bool(first_layer_residual)
        self.scalar_last_layer, self.normalize_atomic_basis = bool(scalar_last_layer), bool(normalize_atomic_basis)
        self.product_weights = str(product_weights)
        with torch.random.fork_rng(devices=[]), default_dtype(torch.float64):
            if seed is not None:
                torch.manual_seed(int(seed))
            self.embedding = o3.Linear(o3.Irreps(f"{ntypes}x0e"), o3.Irreps(f"{channels}x0e"))
            self.radial_basis = BesselEnvelope(self.rcut, self.n_radial, self.envelope_exponent)
            layers, irreps = [], o3.Irreps(f"{channels}x0e")
            for t in range(self.num_layers):
                last_scalars = self.scalar_last_layer and t == self.num_layers - 1
                irreps_t = o3.Irreps(f"{channels}x0e") if last_scalars else irreps_hidden
                layers.append(MACELayer(irreps, self.lmax, irreps_t, channels, ntypes, self.n_radial,
                                        self.radial_neurons, self.correlation, first=t == 0,
                                        product_weights=self.product_weights,
                                        residual=t > 0 or self.first_layer_residual))
                irreps = layers[-1].irreps_out
            self.layers = nn.ModuleList(layers)
        self.irreps_out: o3.Irreps = irreps
        self.register_buffer("avg_num_neighbors", torch.tensor(self.avg_num_neighbors_fixed or 1.0, dtype=torch.float64))
        # 1 / rms of each layer's atomic basis A on the training data (compute_stats), so that A is O(1)
        # at the start and the products of 2 and 3 factors contribute (with A << 1 they would vanish)
        self.register_buffer("a_scale", torch.ones(self.num_layers, dtype=torch.float64))
        scal = [s for s, (_, ir) in zip(irreps.slices(), irreps) if ir == o3.Irrep("0e")][0]
        self.scalar_slice = (scal.start, scal.stop)
        self.dim_out = self.num_layers * (scal.stop - scal.start)
        finish_init(self)

    def get_config(self) -> dict:
        return {"type": "e3nn_mace", "rcut": self.rcut, "lmax": self.lmax, "num_layers": self.num_layers,
                "hidden_irreps": self.hidden_irreps, "correlation": self.correlation, "n_radial": self.n_radial,
                "radial_neurons": self.radial_neurons, "envelope_exponent": self.envelope_exponent,
                "first_layer_residual": self.first_layer_residual, "scalar_last_layer": self.scalar_last_layer,
                "normalize_atomic_basis": self.normalize_atomic_basis, "product_weights": self.product_weights,
                "avg_num_neighbors": self.avg_num_neighbors_fixed, "precision": self.precision,
                "trainable": self.trainable, "seed": self.seed}

    def forward(self, edge_vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor) -> dict[str, torch.Tensor]:
        attr, sh, radial, inv_avg = edge_inputs(self, edge_vec, atom_type)
        h = self.embedding(attr)
        a, b = self.scalar_slice
        scalars = []
        scale = self.a_scale.to(self.dtype)
        for t, layer in enumerate(self.layers):
            h = layer(h, attr, atom_type, sh, radial, edge_index, inv_avg, scale[t])
            scalars.append(h[:, a:b])
        return {K.DESCRIPTOR: torch.cat(scalars, dim=1), K.EQUIVARIANT: h}

    @torch.no_grad()
    def compute_stats(self, graphs: Sequence, protection: float = 1e-2, max_atoms: int = 4000) -> None:
        r"""Input statistics from training graphs.

        ``avg_num_neighbors``: the mean neighbour count within ``rcut`` (unless given in the config).
        ``a_scale[t]``: :math:`1/\sqrt{\langle A_t^2 \rangle}` over the atoms of the first graphs (up to
        ``max_atoms``), layer by layer with the scales of the earlier layers applied, so that each
        layer's atomic basis has unit mean square at initialisation.
        """
        from mtzoo.data.graph import collate
        from mtzoo.nn.geometry import edge_vectors

        if self.avg_num_neighbors_fixed is None:
            mean = mean_neighbour_count(graphs, self.rcut)
            if mean is not None:
                self.avg_num_neighbors.fill_(mean)
        if not self.normalize_atomic_basis:
            return
        chosen, n = [], 0
        for g in graphs:
            if n >= max_atoms:
                break
            chosen.append(g)
            n += int(g.num_nodes)
        if not chosen:
            return
        batch = collate(chosen)
        vec = edge_vectors(batch[K.POSITIONS], batch[K.EDGE_INDEX], batch[K.CELL_SHIFT], batch[K.CELL], batch[K.BATCH])
        if vec.shape[0] == 0:
            return
        atom_type, edge_index = batch[K.ATOM_TYPE], batch[K.EDGE_INDEX]
        attr, sh, radial, inv_avg = edge_inputs(self, vec, atom_type)
        h = self.embedding(attr)
        for t, layer in enumerate(self.layers):
            rms = float(layer.atomic_basis(h, attr, sh, radial, edge_index, inv_avg).pow(2).mean().sqrt())
            if rms > 0 and math.isfinite(rms):
                self.a_scale[t] = 1.0 / rms
            h = layer(h, attr, atom_type, sh, radial, edge_index, inv_avg, self.a_scale[t].to(self.dtype))
