"""Generate the bundled Ag-Au example data set with ASE's EMT calculator.

ASE's EMT (effective medium theory) is a cheap analytical model potential, NOT DFT: the
data exist to exercise the code (reading, training, tests) on a real, self-consistent
energy surface (forces and virials are exact derivatives of the energy), not to make a
physically accurate Ag-Au model.

What it writes (DeePMD-kit npy systems, float64, one ``set.000`` each)::

    agau_emt/train/au08  au16  au24   40 frames each
    agau_emt/valid/au12  au20         10 frames each
    agau_emt/PROVENANCE.md

Each frame is a 2x2x2 supercell of the conventional fcc cell (32 atoms).  A system has a
fixed number of Au atoms (``auNN``); atoms ``0 .. n_Ag-1`` are Ag and the rest Au (type.raw
fixed, type_map.raw = Ag Au) and the chemical disorder comes from assigning the atoms to
randomly permuted lattice sites in every frame.  The lattice constant is Vegard's law
between 4.09 A (Ag) and 4.08 A (Au) scaled by U(0.97, 1.03), the cell gets a random
symmetric strain with components U(-0.02, 0.02), and atoms are rattled with a Gaussian of
0.08 A standard deviation.  Labels: energy (eV), force (eV/A), virial = -stress * volume
(eV, DeePMD-kit sign).

Run (from the repository root)::

    OMP_NUM_THREADS=1 python examples/data/make_agau_emt.py

It also checks one frame's forces and virial against finite differences of the energy, and
reports the largest neighbour count per neighbour type within ``--rcut`` (used for ``sel``
in ``examples/agau_emt/input.json``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

SEED = 20240917
NATOMS = 32
A_AG, A_AU = 4.09, 4.08  # Angstrom (experimental fcc lattice constants, rounded)
SCALE = (0.97, 1.03)
STRAIN = 0.02
RATTLE = 0.08
TYPE_MAP = ["Ag", "Au"]
SPLITS = {  # split -> {system name: (number of Au atoms, number of frames)}
    "train": {"au08": (8, 40), "au16": (16, 40), "au24": (24, 40)},
    "valid": {"au12": (12, 10), "au20": (20, 10)},
}


def fcc_sites() -> np.ndarray:
    """Fractional coordinates of the 32 sites of a 2x2x2 conventional fcc supercell."""
    basis = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    shifts = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)])
    return ((shifts[:, None, :] + basis[None, :, :]).reshape(-1, 3)) / 2.0


def make_frame(rng: np.random.Generator, n_au: int):
    """One labelled frame (ase.Atoms with a SinglePointCalculator holding EMT results)."""
    from ase import Atoms
    from ase.calculators.emt import EMT

    n_ag = NATOMS - n_au
    a0 = (n_ag * A_AG + n_au * A_AU) / NATOMS
    a = a0 * rng.uniform(*SCALE)
    eps = rng.uniform(-STRAIN, STRAIN, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    cell = (2.0 * a * np.eye(3)) @ (np.eye(3) + eps)
    frac = fcc_sites()[rng.permutation(NATOMS)]
    pos = frac @ cell + rng.normal(0.0, RATTLE, size=(NATOMS, 3))
    atoms = Atoms(["Ag"] * n_ag + ["Au"] * n_au, positions=pos, cell=cell, pbc=True)
    atoms.calc = EMT()
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    virial = -atoms.get_stress(voigt=False) * atoms.get_volume()
    return atoms, energy, forces, virial


def write_system(folder: Path, frames: list, n_au: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    types = [0] * (NATOMS - n_au) + [1] * n_au
    (folder / "type.raw").write_text("".join(f"{t}\n" for t in types))
    (folder / "type_map.raw").write_text("".join(f"{e}\n" for e in TYPE_MAP))
    s = folder / "set.000"
    s.mkdir(exist_ok=True)
    nf = len(frames)
    np.save(s / "coord.npy", np.array([f[0].positions for f in frames]).reshape(nf, -1))
    np.save(s / "box.npy", np.array([f[0].cell[:] for f in frames]).reshape(nf, 9))
    np.save(s / "energy.npy", np.array([f[1] for f in frames], dtype=np.float64))
    np.save(s / "force.npy", np.array([f[2] for f in frames]).reshape(nf, -1))
    np.save(s / "virial.npy", np.array([f[3] for f in frames]).reshape(nf, 9))


def finite_difference_check(atoms, forces, virial, h: float = 1e-5) -> tuple[float, float]:
    """Max |error| of forces (eV/A) and virial (eV) against central differences of E."""
    from ase.calculators.emt import EMT

    def energy(pos, cell):
        b = atoms.copy()
        b.set_cell(cell, scale_atoms=False)
        b.positions = pos
        b.calc = EMT()
        return b.get_potential_energy()

    pos0, cell0 = atoms.positions.copy(), np.array(atoms.cell[:])
    f_err = 0.0
    for i in range(3):  # a few atoms are enough
        for d in range(3):
            p, m = pos0.copy(), pos0.copy()
            p[i, d] += h
            m[i, d] -= h
            f_fd = -(energy(p, cell0) - energy(m, cell0)) / (2 * h)
            f_err = max(f_err, abs(f_fd - forces[i, d]))
    v_err = 0.0
    for a in range(3):
        for b in range(3):
            e = np.zeros((3, 3))
            e[a, b] = h
            e = 0.5 * (e + e.T)
            ep, em = np.eye(3) + e, np.eye(3) - e
            dE = energy(pos0 @ ep, cell0 @ ep) - energy(pos0 @ em, cell0 @ em)
            v_err = max(v_err, abs(-dE / (2 * h) - virial[a, b]))
    return f_err, v_err


def neighbour_stats(frames_by_system: dict, rcut: float) -> np.ndarray:
    """Largest number of neighbours of each type (columns: Ag, Au) within rcut of any atom."""
    from ase.neighborlist import neighbor_list

    best = np.zeros(len(TYPE_MAP), dtype=int)
    for frames in frames_by_system.values():
        for atoms, *_ in frames:
            i, j = neighbor_list("ij", atoms, rcut)
            tj = np.array([TYPE_MAP.index(s) for s in atoms.get_chemical_symbols()])[j]
            counts = np.zeros((len(atoms), len(TYPE_MAP)), dtype=int)
            np.add.at(counts, (i, tj), 1)
            best = np.maximum(best, counts.max(axis=0))
    return best


def main(argv: list[str] | None = None) -> int:
    import ase

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "agau_emt")
    ap.add_argument("--rcut", type=float, default=5.0, help="cutoff for the neighbour statistics")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(SEED)
    frames_by_system: dict[str, list] = {}
    for split, systems in SPLITS.items():
        for name, (n_au, nf) in systems.items():
            frames_by_system[f"{split}/{name}"] = [make_frame(rng, n_au) for _ in range(nf)]

    f_err, v_err = finite_difference_check(*[frames_by_system["train/au16"][0][k] for k in (0, 2, 3)])
    print(f"finite-difference check (frame 0 of train/au16): max |dF| = {f_err:.2e} eV/A, "
          f"max |dvirial| = {v_err:.2e} eV")
    if f_err > 1e-4 or v_err > 1e-3:
        print("finite-difference check FAILED", file=sys.stderr)
        return 1

    for split in SPLITS:
        if (args.out / split).exists():
            shutil.rmtree(args.out / split)
    for key, frames in frames_by_system.items():
        split, name = key.split("/")
        write_system(args.out / split / name, frames, SPLITS[split][name][0])

    nmax = neighbour_stats(frames_by_system, args.rcut)
    sel = [int(np.ceil(1.2 * n)) for n in nmax]
    energies = np.concatenate([[f[1] for f in fr] for fr in frames_by_system.values()])
    nbytes = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file() and p.name != "PROVENANCE.md")
    counts = "\n".join(f"| `{k}` | {SPLITS[k.split('/')[0]][k.split('/')[1]][0]} | "
                       f"{NATOMS - SPLITS[k.split('/')[0]][k.split('/')[1]][0]} | {len(v)} |"
                       for k, v in frames_by_system.items())
    provenance = f"""# Ag-Au EMT example data: provenance

* **Method**: ASE's EMT calculator (`ase.calculators.emt.EMT`, effective medium theory).
  EMT is an analytical model potential, **not DFT** and not any quantum-chemistry level of
  theory; use these data only to exercise and test code, not as physical reference data.
* **Generated by**: `examples/data/make_agau_emt.py`, run from the repository root as
  `OMP_NUM_THREADS=1 python examples/data/make_agau_emt.py`
* **Software**: ase {ase.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}
* **Random seed**: {SEED} (`numpy.random.default_rng`)
* **Structures**: 2x2x2 supercells of the conventional fcc cell ({NATOMS} atoms), periodic in
  all three directions. Lattice constant: Vegard's law between {A_AG} A (Ag) and {A_AU} A (Au),
  scaled by U{SCALE}; random symmetric cell strain with components U(-{STRAIN}, {STRAIN});
  positions rattled with a Gaussian of {RATTLE} A standard deviation. Atoms `0..n_Ag-1` are
  Ag and the rest Au in every frame of a system (fixed `type.raw`); the Ag/Au arrangement
  varies from frame to frame because atoms are put on randomly permuted lattice sites.
* **Format**: DeePMD-kit npy systems (`type.raw`, `type_map.raw` = `Ag Au`, `set.000/`
  with `coord.npy`, `box.npy`, `energy.npy`, `force.npy`, `virial.npy`; float64).
* **Units**: Angstrom, eV (energy), eV/Angstrom (force), eV (virial = -stress * volume,
  DeePMD-kit sign). EMT energies are relative to EMT's reference state, so they are small
  (about {energies.min():.2f} to {energies.max():.2f} eV per frame here).
* **Checks**: forces and virial of frame 0 of `train/au16` agree with central finite
  differences of the energy (max errors {f_err:.1e} eV/A and {v_err:.1e} eV).
* **Neighbours within {args.rcut} A** (largest count of each neighbour type around any atom,
  all frames): Ag {nmax[0]}, Au {nmax[1]} (+20%: sel = {sel}).
* **Size**: {nbytes} bytes of data files.

| system | Au atoms | Ag atoms | frames |
|---|---|---|---|
{counts}
"""
    (args.out / "PROVENANCE.md").write_text(provenance)
    print(f"wrote {args.out} ({nbytes} bytes); max neighbours within {args.rcut} A: "
          f"Ag {nmax[0]}, Au {nmax[1]} -> sel (+20%) {sel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
