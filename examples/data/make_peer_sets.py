"""Generate the data sets of the side-by-side accuracy studies with DeePMD-kit and MACE.

Two sets, each from GFN2-xTB Langevin MD (tblite's ASE calculator, 0.5 fs time step, a frame
every 20 steps = 10 fs, seeded) labelled with PySCF:

``finetune`` (issue 17: fine-tuning a CCSD(T) head on a small set)
    ethanol and acetaldehyde, MD at 600 K, 450 frames each.  B3LYP/6-31G* energies and forces
    on every frame; CCSD(T)/cc-pVDZ energies (frozen core, RHF reference) on frames 0-149.
    Fixed split (chosen before any result was seen):

    * ``b3lyp/<mol>/base``     frames 150-449 (300): the base model's training data
    * ``b3lyp/<mol>/cc``       frames 0-149 at B3LYP (the "exact old level + shift" floor, and
      B3LYP test frames of the base model: 50-149)
    * ``ccsdt/<mol>/train``    frames 0-49 (50): the new head's training frames
    * ``ccsdt/<mol>/test``     frames 50-149 (100): its test frames

``accuracy`` (issue 18: an e3nn model at MACE's accuracy)
    ethanol and malonaldehyde (enol form, built here and relaxed with GFN2-xTB: not in ASE's g2
    collection), MD at 500 K, 500 frames each, B3LYP/6-31G* energies and forces.  Fixed split:
    ``b3lyp/<mol>/train`` frames 0-249, ``b3lyp/<mol>/test`` frames 250-499 (500 test frames).

B3LYP: ``dft.RKS`` with ``xc = "b3lyp"`` (PySCF's definition of B3LYP), 6-31G* (``6-31g*``),
grid level 3, ``conv_tol`` 1e-10, no density fitting.

Written as DeePMD-kit npy systems (float64, ``nopbc``, ``type_map.raw`` = H C N O) under
``examples/data/peers/<set>/``.  Resumable: each label is cached as one ``.npz`` per frame under
``<out>/.cache`` and skipped when present; the systems are re-assembled from the cache at the end
of every run (``--assemble`` does only that), so a partial cache gives partial systems (the
PROVENANCE.md lists the counts).  ``--max-minutes`` stops starting new labels after that time.

Run (from the repository root; ``pip install tblite pyscf``)::

    OMP_NUM_THREADS=1 python examples/data/make_peer_sets.py --sets finetune           # ~75 min on a core
    OMP_NUM_THREADS=1 python examples/data/make_peer_sets.py --sets accuracy           # ~100 min
    OMP_NUM_THREADS=1 python examples/data/make_peer_sets.py --sets finetune --part 1/2  # split the
          frames of every (level, molecule) between processes: --part 1/2 and --part 2/2 in parallel
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_molecules as mm  # noqa: E402  (MD, xTB and CCSD(T) labellers, system writer)

SEED = 20261204
B3LYP = {"xc": "B3LYP", "basis": "6-31G*", "grid_level": 3, "conv_tol": 1e-10}
MD600 = dict(mm.MD, temperature_K=600.0)
MD500 = dict(mm.MD, temperature_K=500.0)
# set -> molecule -> (geometry source, MD settings, frames, {level: frame indices})
SETS = {
    "finetune": {
        "ethanol": ("CH3CH2OH", MD600, 450, {"ccsdt": range(0, 150), "b3lyp": range(0, 450)}),
        "acetaldehyde": ("CH3CHO", MD600, 450, {"ccsdt": range(0, 150), "b3lyp": range(0, 450)}),
    },
    "accuracy": {
        "ethanol": ("CH3CH2OH", MD500, 500, {"b3lyp": range(0, 500)}),
        "malonaldehyde": ("malonaldehyde", MD500, 500, {"b3lyp": range(0, 500)}),
    },
}
SPLITS = {  # set -> level -> part -> frame range
    "finetune": {"b3lyp": {"base": range(150, 450), "cc": range(0, 150)},
                 "ccsdt": {"train": range(0, 50), "test": range(50, 150)}},
    "accuracy": {"b3lyp": {"train": range(0, 250), "test": range(250, 500)}},
}


def malonaldehyde():
    """Enol malonaldehyde (3-hydroxyprop-2-enal, C3H4O2), planar ring start, relaxed with GFN2-xTB."""
    from ase import Atoms
    from ase.optimize import BFGS
    from tblite.ase import TBLite

    r = 1.4
    ring = {a: (r * np.cos(np.deg2rad(t)), r * np.sin(np.deg2rad(t))) for a, t in
            (("C2", 90), ("C1", 30), ("O1", -30), ("Hb", -90), ("O2", -150), ("C3", 150))}
    out = {k: np.array([x, y, 0.0]) for k, (x, y) in ring.items()}
    for c in ("C2", "C1", "C3"):  # ring hydrogens pointing outwards
        out["H" + c] = out[c] * (r + 1.08) / r
    order = ["C1", "C2", "C3", "O1", "O2", "Hb", "HC1", "HC2", "HC3"]
    atoms = Atoms([k[0] for k in order], positions=[out[k] for k in order])
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    BFGS(atoms, logfile=None).run(fmax=0.005, steps=500)
    return atoms


def _molecule(name: str):
    from ase.build import molecule

    return malonaldehyde() if name == "malonaldehyde" else molecule(name)


def md_frames(cache: Path, name: str, source: str, nframes: int, md: dict, seed: int):
    """:func:`make_molecules.md_frames` from :func:`_molecule` (g2 names, or malonaldehyde built here)."""
    return mm.md_frames(cache, name, source, nframes, md, seed, start=lambda: _molecule(source), key="source")


def b3lyp_label(symbols, pos) -> dict:
    from ase.units import Bohr, Hartree
    from pyscf import dft

    mf = dft.RKS(mm._mol(symbols, pos, B3LYP["basis"]))
    mf.xc = B3LYP["xc"].lower()
    mf.grids.level = B3LYP["grid_level"]
    mf.conv_tol = B3LYP["conv_tol"]
    e = mf.kernel()
    if not mf.converged:
        raise RuntimeError("B3LYP SCF not converged")
    grad = mf.nuc_grad_method().kernel()
    return {"energy": e * Hartree, "force": -grad * Hartree / Bohr}


LABELLERS = {"b3lyp": b3lyp_label, "ccsdt": mm.ccsdt_label}


def label_all(out: Path, set_name: str, part: tuple[int, int], deadline: float) -> int:
    cache = out / ".cache"
    done = 0
    for i, (name, (source, md, n, levels)) in enumerate(SETS[set_name].items()):
        symbols, coord = md_frames(cache, name, source, n, md, SEED + i)
        for level in ("ccsdt", "b3lyp"):  # the smaller, more valuable set first
            for idx in levels.get(level, []):
                if idx % part[1] != part[0] - 1:
                    continue
                f = cache / level / name / f"{idx:04d}.npz"
                if f.is_file():
                    continue
                if time.time() > deadline:
                    return done
                t = time.time()
                lab = LABELLERS[level](symbols, coord[idx])
                f.parent.mkdir(parents=True, exist_ok=True)
                tmp = f.with_suffix(".tmp.npz")
                np.savez(tmp, wall=time.time() - t, **lab)
                tmp.replace(f)
                done += 1
                print(f"{set_name} {level} {name} {idx}: {time.time() - t:.1f} s", flush=True)
    return done


def assemble(out: Path, set_name: str) -> dict:
    cache = out / ".cache"
    counts, walls = {}, {}
    for name in SETS[set_name]:
        md = cache / "md" / f"{name}.npz"
        if not md.is_file():
            continue
        d = np.load(md)
        symbols, coord = [str(s) for s in d["symbols"]], d["coord"]
        for level, parts in SPLITS[set_name].items():
            for part, frames in parts.items():
                labs = []
                for idx in frames:
                    lab = mm._load(cache, level, name, idx)
                    if lab is None:
                        continue
                    walls.setdefault(level, []).append(float(lab.pop("wall")))
                    lab["coord"] = coord[idx]
                    labs.append(lab)
                target = out / level / name / part
                if labs:
                    mm._write_system(target, symbols, labs)
                counts[f"{level}/{name}/{part}"] = (len(labs), len(frames))
    lines = [f"# Provenance: {set_name} set", "",
             f"Made by `examples/data/make_peer_sets.py --sets {set_name}` (docstring: method, split, seeds).",
             f"Seed {SEED} (+ molecule index). B3LYP: {json.dumps(B3LYP)}; CCSD(T): cc-pVDZ, frozen core, RHF.",
             f"Programs: PySCF {_version('pyscf')}, tblite {_version('tblite')}, ASE {_version('ase')}, "
             f"Python {platform.python_version()}.", "",
             "| system | frames present / planned |", "|---|---|"]
    lines += [f"| `{k}` | {a} / {b} |" for k, (a, b) in sorted(counts.items())]
    lines += ["", "Median wall time per label (one core): " +
              ", ".join(f"{lv} {np.median(w):.1f} s" for lv, w in sorted(walls.items())), ""]
    (out / "PROVENANCE.md").write_text("\n".join(lines))
    return counts


def _version(pkg: str) -> str:
    from importlib.metadata import version

    try:
        return version(pkg)
    except Exception:  # noqa: BLE001
        return "?"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", choices=sorted(SETS), default=["finetune"])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "peers")
    p.add_argument("--part", default="1/1", help="K/N: label only frames with index %% N == K-1")
    p.add_argument("--max-minutes", type=float, default=float("inf"))
    p.add_argument("--assemble", action="store_true", help="only re-assemble the systems from the cache")
    args = p.parse_args(argv)
    k, n = (int(x) for x in args.part.split("/"))
    deadline = time.time() + 60 * args.max_minutes
    for s in args.sets:
        out = args.out / s
        if not args.assemble:
            label_all(out, s, (k, n), deadline)
        counts = assemble(out, s)
        print(json.dumps({s: counts}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
