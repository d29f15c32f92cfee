"""ASE calculator over an mtzoo model: one named head, a Verlet neighbour list, explicit units.

The calculator is thin: it turns an ``ase.Atoms`` into the model's graph fields
(:mod:`mtzoo.keys`), calls :meth:`mtzoo.model.Model.forward` once per geometry and copies the
outputs into ASE's ``results`` with ASE's names and units.

Units (ASE's): energies in eV, forces in eV/A, stress in eV/A^3 with ASE's sign
(:math:`\\sigma = -W/V = \\frac{1}{V}\\partial E/\\partial\\varepsilon`, Voigt order xx yy zz yz xz xy),
dipole in the units of the training labels (e.g. e*A), polarizability ``[3, 3]`` in the
units of the training labels.

Neighbour list with a skin (Verlet list)
----------------------------------------
The list is built with vesin at :math:`r_c + \\text{skin}` and kept with the positions
:math:`\\mathbf x^0` it was built at.  At the next geometry, if cell, numbers and pbc are
unchanged, every atom is written :math:`\\mathbf x_k = \\mathbf x^0_k + \\mathbf n_k \\mathbf h + \\mathbf d_k`
with integer lattice jumps :math:`\\mathbf n_k` (atoms wrapped back into the cell by ASE) and
:math:`|\\mathbf d_k| \\le \\text{skin}/2`; then every pair now closer than :math:`r_c` was closer
than :math:`r_c + \\text{skin}` at build time, so the stored list (image shifts corrected by
:math:`\\mathbf n_i - \\mathbf n_j`) still holds it.  The edges are filtered to
:math:`|\\mathbf r_e| < r_c` with the current positions before the model sees them, so the model
gets exactly the edges of a fresh list (in another order: results agree to rounding).  When any
:math:`|\\mathbf d_k| > \\text{skin}/2` the list is rebuilt.

Examples
--------
>>> from mtzoo.calculator import MTZooCalculator              # doctest: +SKIP
>>> atoms.calc = MTZooCalculator("model.pth", head="pbe")      # doctest: +SKIP
>>> atoms.get_forces()                                         # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from mtzoo import keys as K
from mtzoo.model import Predictor
from mtzoo.nn.common import keep_freed_memory
from mtzoo.nn.extension import compiled
from mtzoo.zoo.frozen import DTYPES as _DTYPES, cast_model

__all__ = ["MTZooCalculator", "cast_model"]

_ENERGY_PROPERTIES = ["energy", "free_energy", "energies", "forces", "stress"]


class MTZooCalculator(Calculator):
    """ASE calculator for one head of an mtzoo model.

    Parameters
    ----------
    model : mtzoo.model.Model or str or Path
        A model, or the path of a frozen model (:func:`mtzoo.zoo.frozen.load_model`).
    head : str or None
        Head to evaluate; may be omitted only for single-head models.  An unknown name raises
        ``KeyError`` listing the model's heads (never a fall-back to another head).
    dtype : {None, "float32", "float64", torch.float32, torch.float64}
        Precision of the model (a cast copy when it differs); default: the model's own.
    skin : float
        Verlet skin (Angstrom): the neighbour list is built at ``rcut + skin`` and reused until
        an atom has moved more than ``skin / 2``.  ``0`` rebuilds at every new geometry.
    device : str or torch.device
        Where the model runs (default ``"cpu"``).
    compress : bool or dict
        Run a copy of the model with tabulated embedding nets (``mtzoo compress``, se_e2_a / se_e2_r
        models; a dict gives ``rmin``/``tol``): the same energies and forces to about the table
        tolerance, faster (measured accuracy and speed-up: the README's ``mtzoo compress`` paragraph).
    **kwargs
        Passed to :class:`ase.calculators.calculator.Calculator` (``label``, ``directory`` ...).

    Notes
    -----
    ``implemented_properties`` follow the head: an energy head gives ``energy``,
    ``free_energy`` (= energy, eV), ``energies`` (per atom, eV), ``forces`` (eV/A) and, for
    cells periodic in all three directions, ``stress`` (eV/A^3, ASE sign, Voigt); a dipole head
    gives ``dipole`` ``[3]``; a polarizability head gives ``polarizability`` ``[3, 3]``.
    Frames must be periodic in all three directions or in none; elements must be in the
    model's ``type_map``.

    Attributes
    ----------
    nl_builds, nl_reuses : int
        Number of neighbour-list builds and reuses so far.
    """

    implemented_properties: list[str] = []  # set per instance from the head's outputs
    default_parameters: dict = {}

    def __init__(self, model, head: str | None = None, dtype=None, skin: float = 1.0, device="cpu",
                 compress: bool | dict = False, **kwargs) -> None:
        from mtzoo.model import Model

        if isinstance(model, (str, Path)):  # a model file or a zoo name (sha256 checked)
            from mtzoo.zoo.registry import load_pretrained

            model = load_pretrained(model, compress=compress)
        elif compress and isinstance(model, Model):  # tabulate a copy; the caller's model is left as it is
            import copy

            from mtzoo.zoo.compress import compress_model

            model = copy.deepcopy(model)
            compress_model(model, **(compress if isinstance(compress, dict) else {}))
        if not isinstance(model, Model):
            raise TypeError(f"model must be an mtzoo Model, a model file path or a zoo name, not {type(model).__name__}")
        self.head = model.resolve_head(head)  # raises, listing the heads, on an unknown name
        if dtype is not None:
            if dtype not in _DTYPES:
                raise ValueError(f"dtype must be float32 or float64, not {dtype!r}")
            model = cast_model(model, _DTYPES[dtype])
        if skin < 0:
            raise ValueError(f"skin must be >= 0, got {skin}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        keep_freed_memory()  # an MD run repeats the same allocations every step (nn/common.py)
        self.skin = float(skin)
        self.rcut = float(model.rcut)
        outputs = {o.name for o in model.heads[self.head].outputs}
        if K.ENERGY in outputs:
            self.kind = "energy"
            props = list(_ENERGY_PROPERTIES)
        elif K.DIPOLE in outputs:
            self.kind, props = "dipole", ["dipole"]
        elif K.POLARIZABILITY in outputs:
            self.kind, props = "polarizability", ["polarizability"]
        else:
            raise ValueError(f"head '{self.head}' outputs {sorted(outputs)}: no ASE property for it")
        self.implemented_properties = props
        self._type_index = {el: i for i, el in enumerate(model.type_map)}
        self._nl = None
        self._types_cache = None
        self.nl_builds = 0
        self.nl_reuses = 0
        super().__init__(**kwargs)

    # ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        super().reset()
        self._nl = None

    def _types(self, atoms) -> np.ndarray:
        numbers = atoms.numbers
        cached = self._types_cache
        if cached is not None and np.array_equal(cached[0], numbers):  # an MD run: same atoms every step
            return cached[1]
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(self._type_index))
        if unknown:
            raise ValueError(f"elements {unknown} are not in this model's type_map {self.model.type_map}")
        types = np.array([self._type_index[s] for s in symbols], dtype=np.int64)
        self._types_cache = (numbers.copy(), types)
        return types

    def _edges(self, pos: np.ndarray, cell: np.ndarray | None, numbers: np.ndarray, pbc: np.ndarray):
        """``edge_index [2, E]`` and ``cell_shift [E, 3]`` of the pairs closer than ``rcut`` (Verlet list)."""
        from mtzoo.data.graph import neighbor_list

        nl = self._nl
        if nl is not None and (nl["numbers"].shape != numbers.shape or not np.array_equal(nl["numbers"], numbers)
                               or not np.array_equal(nl["pbc"], pbc)
                               or (nl["cell"] is None) != (cell is None)
                               or (cell is not None and not np.array_equal(nl["cell"], cell))):
            nl = None
        if nl is not None:
            disp = pos - nl["pos"]
            if cell is not None:  # lattice jumps (atoms wrapped by ASE) are taken out of the displacement
                jump = np.rint(disp @ nl["inv_cell"])
                disp = disp - jump @ cell
            if float(np.einsum("ij,ij->i", disp, disp).max(initial=0.0)) > (0.5 * self.skin) ** 2:
                nl = None
            elif cell is not None and jump.any():
                ei = nl["edge_index"]
                nl["shift"] = nl["shift"] + jump[ei[1]] - jump[ei[0]]  # S' = S + n_i - n_j
                nl["pos"] = nl["pos"] + jump @ cell
        if nl is None:
            ei, shift = neighbor_list(pos, cell, self.rcut + self.skin)
            nl = self._nl = {"pos": pos.copy(), "cell": None if cell is None else cell.copy(),
                             "inv_cell": None if cell is None else np.linalg.inv(cell),
                             "numbers": numbers.copy(), "pbc": pbc.copy(), "edge_index": ei, "shift": shift}
            self.nl_builds += 1
        else:
            self.nl_reuses += 1
        ei, shift = nl["edge_index"], nl["shift"]
        if self.skin == 0.0:
            return ei, shift
        ext = compiled()
        if ext is not None:  # one compiled pass (neighbors_ext.cpp: filter_edges), same edges in the same order
            ei_t, sh_t = ext.filter_edges(torch.from_numpy(pos), torch.from_numpy(np.ascontiguousarray(ei)),
                                          torch.from_numpy(np.ascontiguousarray(shift)),
                                          torch.from_numpy(cell) if cell is not None else torch.empty(0), self.rcut)
            return ei_t.numpy(), sh_t.numpy()
        vec = pos[ei[0]] - pos[ei[1]]
        if cell is not None:
            vec = vec + shift @ cell
        keep = np.einsum("ij,ij->i", vec, vec) < self.rcut ** 2
        return ei[:, keep], shift[keep]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.any() and not pbc.all():
            raise ValueError(f"mixed periodicity pbc={pbc.tolist()} is not supported: "
                             "the cell must be periodic in all three directions or in none")
        periodic = bool(pbc.all())
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError("stress needs a cell periodic in all three directions "
                                              f"(this Atoms has pbc={pbc.tolist()})")
        types = self._types(atoms)
        pos = np.array(atoms.positions, dtype=np.float64)
        cell = np.array(atoms.cell[:], dtype=np.float64) if periodic else None
        if periodic and abs(np.linalg.det(cell)) < 1e-10:
            raise ValueError(f"periodic Atoms with a singular cell {cell.tolist()}")
        edge_index, shift = self._edges(pos, cell, atoms.numbers, pbc)
        dev = self.device
        data = {
            K.POSITIONS: torch.as_tensor(pos, device=dev),
            K.ATOM_TYPE: torch.as_tensor(types, device=dev),
            K.EDGE_INDEX: torch.as_tensor(np.ascontiguousarray(edge_index), device=dev),
            K.CELL_SHIFT: torch.as_tensor(np.ascontiguousarray(shift), device=dev),
            K.CELL: torch.as_tensor(np.zeros((1, 3, 3)) if cell is None else cell[None], device=dev),
            K.BATCH: torch.zeros(len(atoms), dtype=torch.long, device=dev),
        }
        energy_head = self.kind == "energy"
        with torch.no_grad():
            out = Predictor(self.model)(data, head=self.head, forces=energy_head, virial=energy_head and periodic)

        def arr(key):
            return out[key].detach().to("cpu", torch.float64).numpy()

        if energy_head:
            energy = float(arr(K.ENERGY)[0])
            self.results["energy"] = energy
            self.results["free_energy"] = energy
            self.results["energies"] = arr(K.ATOM_ENERGY)
            self.results["forces"] = arr(K.FORCES)
            if periodic:
                s = arr(K.STRESS)[0]
                self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        elif self.kind == "dipole":
            self.results["dipole"] = arr(K.DIPOLE)[0]
        else:
            self.results["polarizability"] = arr(K.POLARIZABILITY)[0]
