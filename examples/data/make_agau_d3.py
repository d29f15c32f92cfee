"""Relabel the bundled Ag-Au structures at two dispersion-corrected levels: EMT + DFT-D3.

Levels of theory (both are model potentials, NOT DFT; they give the multi-task examples two
related but different energy surfaces on the same structures, like xTB vs DFT):

* ``emt_d3bj``: ASE EMT + DFT-D3(BJ) with PBE parameters (``dftd3`` package, simple-dftd3);
* ``emt_d3zero``: ASE EMT + DFT-D3(zero damping) with PBE parameters.

It reads the structures of ``examples/data/agau_emt`` (made by ``make_agau_emt.py``) and writes,
as DeePMD-kit npy systems with energy, force and virial (eV, eV/A, eV)::

    agau_d3bj/train/au08 au16 au24   the first 20 frames of each EMT training system
    agau_d3bj/valid/au12 au20        all 10 frames of each EMT validation system
    agau_d3zero/train/au16           the first 12 frames of au16 (a small "new level" set)
    agau_d3zero/valid/au12           the first 5 frames of au12
    agau_d3bj/PROVENANCE.md, agau_d3zero/PROVENANCE.md

Run from the repository root (about 10 s; ``pip install dftd3``)::

    OMP_NUM_THREADS=1 python examples/data/make_agau_d3.py [--out DIR]

``--out DIR`` writes ``DIR/agau_d3bj`` and ``DIR/agau_d3zero`` instead of the bundled folders
(default: ``examples/data``).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "agau_emt"
LEVELS = {
    "agau_d3bj": ("d3bj", {"train": {"au08": 20, "au16": 20, "au24": 20}, "valid": {"au12": 10, "au20": 10}}),
    "agau_d3zero": ("d3zero", {"train": {"au16": 12}, "valid": {"au12": 5}}),
}


def label(symbols, coord, box, damping):
    from ase import Atoms
    from ase.calculators.emt import EMT
    from ase.calculators.mixing import SumCalculator
    from dftd3.ase import DFTD3

    atoms = Atoms(symbols=symbols, positions=coord, cell=box, pbc=True)
    atoms.calc = SumCalculator([EMT(), DFTD3(method="PBE", damping=damping)])
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    virial = -atoms.get_stress(voigt=False) * atoms.get_volume()
    return e, f, virial


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE,
                    help="folder to write agau_d3bj/ and agau_d3zero/ into (default: examples/data)")
    args = ap.parse_args(argv)
    import ase
    import dftd3

    for out_name, (damping, splits) in LEVELS.items():
        out = args.out / out_name
        if out.exists():
            shutil.rmtree(out)
        counts = []
        for split, systems in splits.items():
            for name, nframes in systems.items():
                src = SOURCE / split / name
                types = np.loadtxt(src / "type.raw", dtype=int).reshape(-1)
                tmap = (src / "type_map.raw").read_text().split()
                symbols = [tmap[t] for t in types]
                coord = np.load(src / "set.000" / "coord.npy")[:nframes].reshape(nframes, -1, 3)
                box = np.load(src / "set.000" / "box.npy")[:nframes].reshape(nframes, 3, 3)
                e, f, v = zip(*(label(symbols, coord[i], box[i], damping) for i in range(nframes)))
                dst = out / split / name / "set.000"
                dst.mkdir(parents=True)
                shutil.copy(src / "type.raw", dst.parent / "type.raw")
                shutil.copy(src / "type_map.raw", dst.parent / "type_map.raw")
                np.save(dst / "coord.npy", coord.reshape(nframes, -1))
                np.save(dst / "box.npy", box.reshape(nframes, 9))
                np.save(dst / "energy.npy", np.array(e))
                np.save(dst / "force.npy", np.array(f).reshape(nframes, -1))
                np.save(dst / "virial.npy", np.array(v).reshape(nframes, 9))
                counts.append(f"| {split}/{name} | {nframes} | {np.mean(e):.4f} |")
        (out / "PROVENANCE.md").write_text(
            f"# {out_name}: Ag-Au, ASE EMT + DFT-D3({damping.removeprefix('d3')}) with PBE parameters\n\n"
            "Both terms are model potentials, not DFT: ASE's EMT (effective medium theory) plus Grimme's D3 "
            f"dispersion correction ({damping}, PBE parameters) from the `dftd3` package (simple-dftd3).\n"
            "Structures: the first frames of `examples/data/agau_emt` (see its PROVENANCE.md); labels recomputed.\n\n"
            f"Programs: ase {ase.__version__}, dftd3 {dftd3.__version__}, numpy {np.__version__}.\n"
            "Units: Angstrom, eV, eV/Angstrom; virial = -stress x volume (eV, DeePMD-kit sign).\n"
            "Command: `OMP_NUM_THREADS=1 python examples/data/make_agau_d3.py`\n\n"
            "| system | frames | mean energy (eV) |\n|---|---|---|\n" + "\n".join(counts) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
