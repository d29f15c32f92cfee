"""The labelling step of ``mtzoo simplify``: any ASE calculator, named or given as an entry point.

Built-in names (model potentials, not DFT; the levels of the bundled Ag-Au data):

* ``"emt"``: ASE's EMT;
* ``"emt+d3"`` or ``"emt+d3bj"``: EMT + DFT-D3(BJ) with PBE parameters (the ``dftd3`` package,
  ``pip install "mtzoo[simplify]"``), the level of ``examples/data/agau_d3bj``;
* ``"emt+d3zero"``: EMT + DFT-D3(zero damping), the level of ``examples/data/agau_d3zero``.

Any other calculator: ``"package.module:callable"``, where ``callable()`` returns an ASE
calculator (a class with a no-argument constructor works), imported when the labelling starts.
"""

from __future__ import annotations

import importlib

import numpy as np

from mtzoo import keys as K

BUILTIN = ("emt", "emt+d3", "emt+d3bj", "emt+d3zero")


def check_calculator_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a built-in name or looks like ``module:callable``."""
    if name.lower() in BUILTIN:
        return
    mod, sep, attr = name.partition(":")
    if not sep or not mod or not attr:
        raise ValueError(f"'{name}' is neither a built-in labeller ({', '.join(BUILTIN)}) nor an entry point "
                         "'module:callable'")


def make_calculator(name: str):
    """A fresh ASE calculator for ``name`` (see the module docstring)."""
    check_calculator_name(name)
    key = name.lower()
    if key in BUILTIN:
        from ase.calculators.emt import EMT

        if key == "emt":
            return EMT()
        try:
            from dftd3.ase import DFTD3
        except ImportError:
            raise ImportError(f"labeller '{name}' needs the dftd3 package: pip install 'mtzoo[simplify]' "
                              "(or pip install dftd3)") from None
        from ase.calculators.mixing import SumCalculator

        damping = "d3zero" if key == "emt+d3zero" else "d3bj"
        return SumCalculator([EMT(), DFTD3(method="PBE", damping=damping)])
    mod, _, attr = name.partition(":")
    try:
        obj = importlib.import_module(mod)
    except ImportError as exc:
        raise ImportError(f"labeller '{name}': cannot import '{mod}' ({exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AttributeError(f"labeller '{name}': '{mod}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    calc = obj() if callable(obj) and not hasattr(obj, "get_potential_energy") else obj
    if not hasattr(calc, "get_potential_energy") and not hasattr(calc, "calculate"):
        raise TypeError(f"labeller '{name}' did not give an ASE calculator (got {type(calc).__name__})")
    return calc


def label_system(system, calc):
    """A copy of ``system`` with energies ``[nf]``, forces ``[nf, n, 3]`` and, when periodic, virials
    ``[nf, 3, 3]`` (``-stress * volume``, DeePMD-kit's sign) computed by the ASE calculator ``calc``."""
    import dataclasses

    from ase import Atoms

    if system.elements is None:
        raise ValueError(f"{system.name}: labelling needs element names (a type_map.raw beside type.raw)")
    nf, n = system.nframes, system.natoms
    energy, force, virial = np.zeros(nf), np.zeros((nf, n, 3)), np.zeros((nf, 3, 3))
    for f in range(nf):
        periodic = system.box is not None
        atoms = Atoms(symbols=system.elements, positions=system.coord[f],
                      cell=system.box[f] if periodic else None, pbc=periodic)
        atoms.calc = calc
        energy[f] = atoms.get_potential_energy()
        force[f] = atoms.get_forces()
        if periodic:
            virial[f] = -atoms.get_stress(voigt=False) * atoms.get_volume()
    labels = {K.ENERGY: energy, K.FORCES: force}
    if system.box is not None:
        labels[K.VIRIAL] = virial
    return dataclasses.replace(system, labels=labels, masks={k: np.ones(nf, dtype=bool) for k in labels})
