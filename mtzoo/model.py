"""The model: one descriptor, named heads, and the one place that differentiates the energy.

A frame flows as: positions + neighbour graph -> edge vectors (inside autograd) ->
descriptor -> head -> per-atom outputs -> frame sums; forces and virial come from the
gradient of the energy with respect to the edge vectors :math:`\\mathbf r_e`:

.. math::

    \\mathbf F_k = -\\frac{\\partial E}{\\partial \\mathbf r_k}
      = \\sum_{e: i_e = k} \\mathbf g_e - \\sum_{e: j_e = k} \\mathbf g_e,\\qquad
    W = -\\sum_e \\mathbf r_e \\otimes \\mathbf g_e,\\qquad
    \\mathbf g_e = \\frac{\\partial E}{\\partial \\mathbf r_e}

which equals :math:`-\\partial E / \\partial \\varepsilon` for a homogeneous strain
:math:`\\varepsilon` of positions and cell (DeePMD's virial), without building a strained
copy of the graph.  Stress (ASE sign) is :math:`-W / V` for periodic frames.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mtzoo import keys as K
from mtzoo.descriptors.base import Descriptor
from mtzoo.heads.base import Head
from mtzoo.nn.geometry import MIN_DISTANCE, check_overlaps, edge_vectors  # noqa: F401  (re-exported)
from mtzoo.nn.extension import compiled
from mtzoo.nn.scatter import scatter_sum


class Model(nn.Module):
    """Shared descriptor + a ModuleDict of named heads (one per level of theory or property).

    Parameters
    ----------
    type_map : list of str
        Element of each type index.
    descriptor : Descriptor
        Shared representation.
    heads : mapping of str to Head
        Named heads; each is checked against the descriptor at build time.
    """

    def __init__(self, type_map: Sequence[str], descriptor: Descriptor, heads: Mapping[str, Head]) -> None:
        super().__init__()
        self.type_map = list(type_map)
        self.descriptor = descriptor
        for name, head in heads.items():
            head.check_descriptor(descriptor)
        self.heads = nn.ModuleDict(dict(heads))

    @property
    def rcut(self) -> float:
        return self.descriptor.rcut

    @property
    def dtype(self) -> torch.dtype:
        return self.descriptor.dtype

    @property
    def device(self) -> torch.device:
        """Where the model's tensors are (its first parameter or buffer; cpu without any)."""
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def head_names(self) -> list[str]:
        return list(self.heads.keys())

    def resolve_head(self, head: str | None) -> str:
        """Name of the head to use; a wrong or missing name lists the available heads (no fall-back)."""
        names = self.head_names()
        if head is None:
            if len(names) == 1:
                return names[0]
            raise ValueError(f"this model has several heads {names}: choose one with head=")
        if head not in self.heads:
            raise KeyError(f"head '{head}' not in this model (available: {names})")
        return head

    def forward(self, data, head: str | None = None, forces: bool = True, virial: bool = True,
                create_graph: bool | None = None) -> dict[str, torch.Tensor]:
        """Evaluate one head on a (batched) graph: the reference path, autograd through descriptor
        and head for every descriptor and head (training uses it; :class:`Predictor` is the fast
        inference path, equal to it to rounding).

        Parameters
        ----------
        data : torch_geometric.data.Data or Batch
            Graph with the fields of :mod:`mtzoo.keys`.
        head : str or None
            Head name (may be omitted for single-head models).
        forces, virial : bool
            Compute forces / virial (and stress for periodic frames) for energy heads.
        create_graph : bool or None
            Keep the graph of the derivatives (needed to train on forces); default: ``self.training``.

        Returns
        -------
        dict
            ``energy`` ``[B]``, ``atom_energy`` ``[N]``, ``force`` ``[N, 3]``, ``virial`` ``[B, 3, 3]``,
            ``stress`` ``[B, 3, 3]`` (zeros for non-periodic frames).
        """
        create_graph = self.training if create_graph is None else create_graph
        return evaluate_graph(self, self.head_outputs, data, head, forces, virial, create_graph)

    def head_outputs(self, vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor, head: str | None,
                     differentiate: bool = True, create_graph: bool = False,
                     n_centres: int | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Per-atom outputs of one head and :math:`\\mathbf g_e = \\partial E/\\partial \\mathbf r_e`
        from the edge vectors: the part of :meth:`forward` between the edge vectors and the frame
        sums (forward turns ``g`` into forces and virial; LAMMPS's ML-IAP interface,
        :mod:`mtzoo.lammps`, takes ``g`` as its pair forces).

        The reference path: autograd through descriptor and head (:meth:`Predictor.head_outputs` is
        the fast one, for inference).

        Parameters
        ----------
        vec, edge_index, atom_type
            Edge vectors (row 0 of ``edge_index`` the neighbour, row 1 the centre) and atom types.
        head : str or None
            Head name.
        differentiate : bool
            Compute ``g`` (None otherwise).
        create_graph : bool
            Keep the graph of ``g`` (training on forces).
        n_centres : int or None
            The head runs on the first ``n_centres`` atoms only; the others are neighbours whose
            own outputs are not wanted (LAMMPS's ghost atoms).  Default: every atom.

        Shapes
        ------
        vec ``[E, 3]``, edge_index ``[2, E]``, atom_type ``[N]`` -> per-atom outputs ``[n_centres]``
        (``atom_energy``) or ``[n_centres, ...]``, ``g`` ``[E, 3]`` float64.
        """
        hd = self.heads[self.resolve_head(head)]
        n = atom_type.shape[0] if n_centres is None else int(n_centres)
        with torch.enable_grad() if differentiate else contextlib.nullcontext():
            if differentiate and not vec.requires_grad:
                vec.requires_grad_(True)
            feats, types = _centres(self.descriptor(vec, edge_index, atom_type), atom_type, n)
            out, g = hd(feats, types), None
            if differentiate:
                total = sum(out[o.atom_name].sum() for o in hd.outputs if o.differentiable)
                (g,) = torch.autograd.grad(total, vec, create_graph=create_graph, allow_unused=True)
            return _with_pair_term(hd, out, g, vec, edge_index, atom_type, n, differentiate, create_graph,
                                   by_hand=False)

    def predict(self, frame, head: str | None = None) -> dict:
        """Outputs of one head on one frame, as numpy arrays.

        Parameters
        ----------
        frame : ase.Atoms, pymatgen Structure/Molecule, or mtzoo System (first frame)
            The atoms; elements must be in ``type_map``.
        head : str or None
            Head name (may be omitted for single-head models).

        Returns
        -------
        dict
            Energy heads: ``energy`` (float, eV), ``energies`` ``[n]`` (eV), ``forces`` ``[n, 3]``
            (eV/A), ``virial`` ``[3, 3]`` (eV) and, for periodic frames, ``stress`` ``[3, 3]``
            (eV/A^3, ASE sign).  Dipole heads: ``dipole`` ``[3]`` and ``atomic_dipole`` ``[n, 3]``;
            polarizability heads: ``polarizability`` ``[3, 3]`` and ``atomic_polarizability``
            ``[n, 3, 3]`` (units of the training labels; atoms outside ``sel_type`` give zeros).
        """
        from mtzoo.data.graph import collate, system_graphs
        from mtzoo.data.readers import load_systems
        from mtzoo.data.system import System

        system = frame if isinstance(frame, System) else load_systems([frame])[0]
        graph = system_graphs(system, self.type_map, self.rcut)[0]
        name = self.resolve_head(head)
        out = Predictor(self)(collate([graph]).to(self.device), head=name)
        if K.ENERGY not in out:  # tensor head: global and atomic tensors
            res = {}
            for o in self.heads[name].outputs:
                res[o.name] = out[o.name][0].detach().cpu().numpy()
                res[o.atom_name] = out[o.atom_name].detach().cpu().numpy()
            return res
        res = {"energy": float(out[K.ENERGY][0].detach()), "energies": out[K.ATOM_ENERGY].detach().cpu().numpy(),
               "forces": out[K.FORCES].detach().cpu().numpy(), "virial": out[K.VIRIAL][0].detach().cpu().numpy()}
        if system.periodic:
            res["stress"] = out[K.STRESS][0].detach().cpu().numpy()
        return res

    def calculator(self, head: str | None = None, **kwargs):
        """ASE calculator for one head (:class:`mtzoo.calculator.MTZooCalculator`; ``dtype``, ``skin`` ... in ``kwargs``)."""
        from mtzoo.calculator import MTZooCalculator

        return MTZooCalculator(self, head=head, **kwargs)


def model_config(model: Model) -> dict:
    """Plain-data config that :func:`build_model` turns back into the same architecture."""
    return {"type_map": model.type_map, "descriptor": model.descriptor.get_config(),
            "heads": {name: head.get_config() for name, head in model.heads.items()}}


def _centres(feats: dict, atom_type: torch.Tensor, n: int) -> tuple[dict, torch.Tensor]:
    """The descriptor's per-atom outputs and the types of the first ``n`` atoms (the centres; the
    others are LAMMPS's ghost atoms, whose own outputs are not wanted)."""
    n_all = atom_type.shape[0]
    if n == n_all:
        return feats, atom_type
    return ({k: v[:n] if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == n_all else v for k, v in feats.items()},
            atom_type[:n])


def evaluate_graph(model: Model, head_outputs, data, head: str | None, forces: bool, virial: bool,
                   create_graph: bool, compiled_sums: bool = False) -> dict[str, torch.Tensor]:
    r"""One head on a (batched) graph, with ``head_outputs`` (:meth:`Model.head_outputs`, the
    reference path, or :meth:`Predictor.head_outputs`, the fast one) between the edge vectors and
    the frame sums; forces :math:`\mathbf F_k = \sum_{e: i_e = k} \mathbf g_e - \sum_{e: j_e = k}
    \mathbf g_e`, virial :math:`W = -\sum_e \mathbf r_e \otimes \mathbf g_e` and stress
    :math:`-W/V` (module docstring).  ``compiled_sums``: the force sums by the compiled extension
    (CPU float64, no graph), else by ``scatter_sum``.  Shapes: :meth:`Model.forward`."""
    name = model.resolve_head(head)
    hd = model.heads[name]
    pos = data[K.POSITIONS].to(model.dtype)
    atom_type = data[K.ATOM_TYPE]
    edge_index = data[K.EDGE_INDEX]
    batch = data[K.BATCH] if K.BATCH in data and data[K.BATCH] is not None else None
    n_frames = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
    if batch is None:
        batch = torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
    # differentiated outputs need autograd even under no_grad; other heads follow the caller's grad mode
    differentiate = (forces or virial) and any(o.differentiable for o in hd.outputs)
    with torch.enable_grad() if differentiate else contextlib.nullcontext():
        vec = edge_vectors(pos, edge_index, data[K.CELL_SHIFT], data[K.CELL], batch)
        check_overlaps(vec, edge_index)
        out, g = head_outputs(vec, edge_index, atom_type, name, differentiate, create_graph)
        for o in hd.outputs:
            if o.reducible:
                out[o.name] = scatter_sum(out[o.atom_name], batch, n_frames)
        if differentiate and forces:
            n = pos.shape[0]
            ext = compiled() if compiled_sums and not create_graph and g.device.type == "cpu" else None
            out[K.FORCES] = (torch.ops.mtzoo.edge_forces(g, edge_index, n) if ext is not None else
                             scatter_sum(g, edge_index[1], n) - scatter_sum(g, edge_index[0], n))
        if differentiate and virial:
            v64 = vec.to(torch.float64)
            if n_frames == 1:
                w = -(v64.t() @ g).unsqueeze(0)
            else:
                rg = v64.unsqueeze(2) * g.unsqueeze(1)  # [E, 3, 3]
                w = -scatter_sum(rg.reshape(-1, 9), batch[edge_index[1]], n_frames).view(n_frames, 3, 3)
            out[K.VIRIAL] = w
            cell = data[K.CELL].to(torch.float64)
            vol = torch.linalg.vecdot(cell[:, 0], torch.linalg.cross(cell[:, 1], cell[:, 2])).abs()  # |a . (b x c)|
            periodic = vol > 0
            out[K.STRESS] = torch.where(periodic[:, None, None], -w / torch.where(periodic, vol, 1.0)[:, None, None],
                                        torch.zeros_like(w))
    return out


def _with_pair_term(hd: Head, out: dict, g: torch.Tensor | None, vec: torch.Tensor, edge_index: torch.Tensor,
                    atom_type: torch.Tensor, n: int, differentiate: bool, create_graph: bool,
                    by_hand: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """``g`` as float64 (zeros where the energy does not depend on the edges: isolated atoms), and the
    head's two-body term (:mod:`mtzoo.heads.pair`, by autograd on every path) added to its atomic
    energies and to ``g``.  ``by_hand``: the fast path's outputs, which record nothing for autograd."""
    if differentiate:
        g = torch.zeros_like(vec, dtype=torch.float64) if g is None else g.to(torch.float64)
    if hd.pair is None:
        return out, g
    v = vec if create_graph or not differentiate else vec.detach().requires_grad_(True)
    e_pair, centre = hd.pair.edge_energy(v, edge_index, atom_type), edge_index[1]
    if n < atom_type.shape[0]:  # edges around ghost centres belong to other atoms' energies
        e_pair, centre = e_pair * (centre < n), centre.clamp(max=n - 1)
    if differentiate and e_pair.numel():
        (gp,) = torch.autograd.grad(e_pair.sum(), v, create_graph=create_graph, retain_graph=not by_hand)
        g = g + gp.to(torch.float64)
    if by_hand:
        e_pair = e_pair.detach()
    out[K.ATOM_ENERGY] = out[K.ATOM_ENERGY] + scatter_sum(e_pair, centre, n)
    return out, g


class Predictor:
    r"""The fast inference path of a model (no graph of the derivatives): what the ASE calculator,
    ``mtzoo test``, :meth:`Model.predict`, LAMMPS and the trainer's validation use.

    An energy head that declares ``energy_grad_by_hand`` gives its energy and
    :math:`\partial E/\partial \mathcal D` without autograd (``energy_and_grad``: the fitting nets'
    backward pass by hand, one compiled call for tanh nets), the descriptor maps it to
    :math:`\mathbf g_e` by its ``forward_with_pullback`` where it has one (compressed se_e2_a,
    se_e2_a's folded layout) or by one autograd pass through the descriptor only, and the force sums
    run compiled.  Every other head runs :meth:`Model.head_outputs`.  Equal to :meth:`Model.forward`
    to rounding (``tests/test_inference_paths.py``, 1e-12); it holds the model, not a copy.

    >>> out = Predictor(model)(batch, head="pbe")          # doctest: +SKIP
    """

    def __init__(self, model: Model) -> None:
        self.model = model

    def __call__(self, data, head: str | None = None, forces: bool = True, virial: bool = True) -> dict[str, torch.Tensor]:
        """:meth:`Model.forward`'s outputs (same keys and shapes) by the fast path."""
        return evaluate_graph(self.model, self.head_outputs, data, head, forces, virial, create_graph=False,
                              compiled_sums=True)

    def head_outputs(self, vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor, head: str | None,
                     differentiate: bool = True, create_graph: bool = False,
                     n_centres: int | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """:meth:`Model.head_outputs` by the fast path (``create_graph`` must be False)."""
        if create_graph:
            raise ValueError("Predictor is the inference path: it keeps no graph of the derivatives (use Model)")
        hd = self.model.heads[self.model.resolve_head(head)]
        n = atom_type.shape[0] if n_centres is None else int(n_centres)
        if not (differentiate and hd.energy_grad_by_hand and n > 0):
            return self.model.head_outputs(vec, edge_index, atom_type, head, differentiate, False, n_centres)
        with torch.enable_grad():
            out, g = self._energy_by_hand(hd, vec, edge_index, atom_type, n)
            return _with_pair_term(hd, out, g, vec, edge_index, atom_type, n, True, False, by_hand=True)

    def _energy_by_hand(self, hd: Head, vec: torch.Tensor, edge_index: torch.Tensor, atom_type: torch.Tensor,
                        n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        r"""Atomic energies and :math:`\mathbf g_e` of an ``energy_grad_by_hand`` head (class docstring)."""
        desc = self.model.descriptor
        lean = fold = None
        if not vec.requires_grad:
            # the folded descriptor (symmetric block stored once) where both the head and the descriptor take it
            fold = desc.folded_index() if hd.takes_folded else None
            lean = desc.forward_with_pullback(vec, edge_index, atom_type, folded=fold is not None)
        if lean is None:
            fold = None
            if not vec.requires_grad:
                vec.requires_grad_(True)
            feats, pullback = desc(vec, edge_index, atom_type), None
        else:
            feats, pullback = lean
        feats, types = _centres(feats, atom_type, n)
        atom_e, g_desc = hd.energy_and_grad(feats, types, fold=fold)
        if pullback is not None:
            n_all = atom_type.shape[0]
            if n < n_all:
                g_desc = torch.cat([g_desc, g_desc.new_zeros((n_all - n, *g_desc.shape[1:]))])
            return {K.ATOM_ENERGY: atom_e}, pullback(g_desc)
        g = None
        if feats[K.DESCRIPTOR].requires_grad:
            g = torch.autograd.grad(feats[K.DESCRIPTOR], vec, g_desc, allow_unused=True)[0]
        return {K.ATOM_ENERGY: atom_e}, g


def build_model(config: Mapping) -> Model:
    """Build a model (random weights) from ``{"type_map", "descriptor", "heads": {name: cfg}}``."""
    from mtzoo.descriptors import build_descriptor
    from mtzoo.heads import build_head
    from mtzoo.heads.shared import share_named_layers

    type_map = list(config["type_map"])
    desc = build_descriptor(config["descriptor"], len(type_map))
    heads = {name: build_head(cfg, len(type_map), desc) for name, cfg in config["heads"].items()}
    share_named_layers(heads)
    return Model(type_map, desc, heads)


#: Descriptors that can be tabulated (and hybrids of them: their members that are compressible).
COMPRESSIBLE = ("se_e2_a", "se_e2_r")


def compress_model(model: Model, rmin: float = 0.5, tol: float = 1e-10, max_bins: int = 20000) -> dict:
    """Tabulate the embedding nets of ``model``'s descriptor in place.

    Parameters
    ----------
    model : Model
        A trained model whose descriptor is one of :data:`COMPRESSIBLE`, or a hybrid with such
        members (those are compressed; the others stay exact).
    rmin : float
        Shortest neighbour distance (Angstrom) covered by the tables; closer pairs are evaluated
        by the nets themselves (exact), so this only trades table size against speed.
    tol : float
        Largest deviation of a table from its net per embedding channel (checked at seven
        interior points of every bin).
    max_bins : int
        Limit on bins per net.

    Returns
    -------
    dict
        ``descriptor``, ``compressed`` (the descriptors tabulated), ``bins`` per net,
        ``max_deviation``, ``rmin``, ``tol``.
    """
    desc = model.descriptor
    name = getattr(desc, "type_name", type(desc).__name__)
    members = list(desc.descrpt_list) if name == "hybrid" else [desc]
    todo = [d for d in members if getattr(d, "type_name", "") in COMPRESSIBLE]
    if not todo:
        kinds = [getattr(d, "type_name", type(d).__name__) for d in members]
        raise ValueError(f"compression is implemented for {list(COMPRESSIBLE)} descriptors (and hybrids holding "
                         f"them); this model's is '{name}'" + (f" with members {kinds}" if name == "hybrid" else ""))
    infos = [d.enable_compression(rmin=rmin, tol=tol, max_bins=max_bins) for d in todo]
    return {"descriptor": name, "compressed": [d.type_name for d in todo],
            "bins": [b for i in infos for b in i["bins"]], "max_deviation": max(i["max_deviation"] for i in infos),
            "rmin": rmin, "tol": tol}
