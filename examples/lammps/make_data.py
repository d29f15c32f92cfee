"""Write ``molecules.data`` (LAMMPS data file) and ``pbe.mliap.pkl`` (the zoo model's ``pbe`` head) for ``in.nve``.

The start is the one of ``benchmarks/lammps_nve.py``: the four bundled molecules (frame 0 of
``examples/data/molecules/dft/<name>/valid``: ethanol, water, methylamine, acetamide; 28 atoms)
12 A apart on a line, in a fixed box 10 A larger than the atoms on each side.  LAMMPS types 1-4
are the model's type_map (H C N O).

Usage (from this folder)::

    python make_data.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))


def main() -> None:
    import numpy as np
    from ase.io import write

    import mtzoo
    from lammps_nve import start_frame
    from mtzoo.lammps import export_lammps

    model = mtzoo.load_pretrained("hcno-mf-se-v1")
    atoms = start_frame(12.0)
    pos = atoms.get_positions()
    lo, hi = pos.min(0) - 10.0, pos.max(0) + 10.0
    atoms.positions = pos - lo
    atoms.set_cell(np.diag(hi - lo))
    write(HERE / "molecules.data", atoms, format="lammps-data", specorder=model.type_map, masses=True,
          units="metal", atom_style="atomic")
    mliap = export_lammps(model, head="pbe", output=HERE / "pbe.mliap.pkl")
    print(f"wrote molecules.data ({len(atoms)} atoms) and pbe.mliap.pkl (pair_coeff * * {' '.join(mliap.element_types)})")


if __name__ == "__main__":
    main()
