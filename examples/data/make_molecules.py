"""Generate the bundled multi-fidelity molecular data set (xTB, DFT, DFT polarizability, CCSD(T)).

Small organic molecules with H, C, N and O (water, methylamine, ethanol, acetamide).
Conformers come from GFN2-xTB Langevin molecular dynamics (tblite's ASE calculator,
500 K, 0.5 fs time step, seeded); each sampled frame is then labelled at up to four
levels of theory (the "fidelities"):

* ``xtb``: GFN2-xTB (tblite) energy + forces, every frame;
* ``dft``: PBE/def2-SVP (PySCF, RKS, density fitting with def2-universal-jkfit) energy +
  forces + dipole, a regular subset of the frames;
* ``dft_polar``: the same DFT energy/forces/dipole plus the static dipole polarizability
  from finite electric fields (central differences, F = 0.001 a.u.), a sparser subset of
  the ``dft`` frames;
* ``ccsdt``: CCSD(T)/cc-pVDZ energy (frozen core, RHF reference, no density fitting), a
  subset of the MD frames (denser than ``dft`` for the small molecules, so that fine-tuning
  studies can draw 25-100 training frames and still test on held-out ones).

What it writes (DeePMD-kit npy systems, float64, one ``set.000`` each, ``nopbc``)::

    molecules/<level>/<molecule>/train    frames with MD index <  80 % of the trajectory
    molecules/<level>/<molecule>/valid    frames with MD index >= 80 % (later in time)
    molecules/PROVENANCE.md

Every system has ``type_map.raw`` = ``H C N O`` (the global map; not every element occurs in
every molecule) and ``type.raw`` in the molecule's atom order.  The same MD frame carries
the same coordinates at every level, so frames can be matched across levels by molecule
and coordinates.  Units: Angstrom, eV, eV/Angstrom; dipole in e*Angstrom; polarizability
in Angstrom^3 (polarizability volume alpha / (4 pi eps0); 1 a.u. = 0.148185 A^3).
Energies are total electronic energies (no atomic reference subtracted); note that the xTB
total energies are on a different scale from the DFT and CCSD(T) ones.

Resumable: every label is cached as one ``.npz`` per frame under ``<out>/.cache`` (not part
of the data set) and skipped when already present; the systems and PROVENANCE.md are
re-assembled from the cache at the end of every run (``--assemble`` does only that).
``--max-minutes`` stops starting new labels after that wall time (then assembles).

Run (from the repository root)::

    OMP_NUM_THREADS=1 python examples/data/make_molecules.py            # full, ~30-45 min
    OMP_NUM_THREADS=1 python examples/data/make_molecules.py --check    # force checks
    OMP_NUM_THREADS=1 python examples/data/make_molecules.py --smoke --out /tmp/mol

Requires ``tblite`` and ``pyscf`` (``pip install tblite pyscf``).  Use one thread per process on a
shared machine: with more OpenMP threads than free cores tblite and PySCF slow down badly.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEED = 20250301
TYPE_MAP = ["H", "C", "N", "O"]
LEVELS = ["xtb", "dft", "dft_polar", "ccsdt"]
MD = {"temperature_K": 500.0, "timestep_fs": 0.5, "friction_per_fs": 0.01, "equil_steps": 400, "every": 20}
DFT = {"xc": "PBE", "basis": "def2-SVP", "auxbasis": "def2-universal-jkfit", "grid_level": 3, "conv_tol": 1e-10}
POLAR_FIELD = 1e-3  # a.u.
CC_BASIS = "cc-pVDZ"
VALID_FRACTION = 0.2
# molecule: (ase g2 name, MD frames, dft stride, dft_polar stride, ccsdt stride); a stride of 0
# means no frames at that level; the dft_polar stride is a multiple of the dft stride (its frames
# reuse the dft labels); the ccsdt stride runs over the MD frames, independently of dft.
FULL = {
    "water": ("H2O", 100, 2, 4, 1),
    "methylamine": ("H3CNH2", 100, 3, 12, 1),
    "ethanol": ("CH3CH2OH", 100, 4, 20, 4),
    "acetamide": ("CH3CONH2", 100, 5, 25, 10),
}
SMOKE = {
    "water": ("H2O", 5, 2, 4, 4),
    "methylamine": ("H3CNH2", 4, 0, 0, 0),
}
SMOKE_MD = dict(MD, equil_steps=20, every=5)


# --------------------------------------------------------------------------------------
# conformers
# --------------------------------------------------------------------------------------
def md_frames(cache: Path, name: str, g2name: str, nframes: int, md: dict, seed: int, start=None,
              key: str = "g2"):
    """Symbols and [nframes, natoms, 3] positions from GFN2-xTB Langevin MD (cached).

    ``start``: a callable returning the starting ``ase.Atoms`` (default: ASE's g2 molecule
    ``g2name``); ``key``: the name ``g2name`` is recorded under in the cache's settings.
    """
    from ase import units
    from ase.build import molecule
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
    from tblite.ase import TBLite

    fname = cache / "md" / f"{name}.npz"
    params = json.dumps({key: g2name, "n": nframes, "md": md, "seed": seed}, sort_keys=True)
    if fname.is_file():
        d = np.load(fname)
        if str(d["params"]) != params:
            raise SystemExit(f"{fname}: made with other MD settings; delete {cache} to regenerate")
        return [str(s) for s in d["symbols"]], d["coord"]
    atoms = start() if start is not None else molecule(g2name)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=md["temperature_K"], rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    dyn = Langevin(atoms, timestep=md["timestep_fs"] * units.fs, temperature_K=md["temperature_K"],
                   friction=md["friction_per_fs"] / units.fs, rng=rng)
    dyn.run(md["equil_steps"])
    coords = []
    for _ in range(nframes):
        dyn.run(md["every"])
        coords.append(atoms.positions - atoms.get_center_of_mass())
    coord = np.array(coords)
    fname.parent.mkdir(parents=True, exist_ok=True)
    np.savez(fname, symbols=np.array(atoms.get_chemical_symbols()), coord=coord, params=params)
    return atoms.get_chemical_symbols(), coord


# --------------------------------------------------------------------------------------
# labels (all return eV, eV/A, e*A, A^3)
# --------------------------------------------------------------------------------------
def xtb_label(symbols, pos) -> dict:
    from ase import Atoms
    from tblite.ase import TBLite

    atoms = Atoms(symbols, positions=pos)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    return {"energy": atoms.get_potential_energy(), "force": atoms.get_forces()}


def _mol(symbols, pos, basis):
    from pyscf import gto

    return gto.M(atom=[(s, p) for s, p in zip(symbols, pos)], unit="Angstrom", basis=basis,
                 verbose=0, max_memory=4000)


def _rks(mol):
    from pyscf import dft

    mf = dft.RKS(mol).density_fit(auxbasis=DFT["auxbasis"])
    mf.xc = DFT["xc"].lower()
    mf.grids.level = DFT["grid_level"]
    mf.conv_tol = DFT["conv_tol"]
    return mf


def dft_energy(symbols, pos) -> float:
    from ase.units import Hartree

    mf = _rks(_mol(symbols, pos, DFT["basis"]))
    e = mf.kernel()
    if not mf.converged:
        raise RuntimeError("DFT SCF not converged")
    return e * Hartree


def dft_label(symbols, pos) -> dict:
    from ase.units import Bohr, Hartree

    mf = _rks(_mol(symbols, pos, DFT["basis"]))
    e = mf.kernel()
    if not mf.converged:
        raise RuntimeError("DFT SCF not converged")
    grad = mf.nuc_grad_method().kernel()
    dip = mf.dip_moment(unit="AU", verbose=0)  # e*Bohr (neutral molecule: origin-independent)
    return {"energy": e * Hartree, "force": -grad * Hartree / Bohr, "dipole": dip * Bohr}


def dft_polar_label(symbols, pos) -> dict:
    """Static polarizability from dipoles at +-F along x, y, z (A^3)."""
    from ase.units import Bohr

    mol = _mol(symbols, pos, DFT["basis"])
    mf0 = _rks(mol)
    mf0.kernel()
    dm0 = mf0.make_rdm1()
    h0 = mf0.get_hcore()
    with mol.with_common_orig(np.zeros(3)):
        r = mol.intor_symmetric("int1e_r", comp=3)
    alpha = np.zeros((3, 3))
    for j in range(3):
        mus = []
        for sign in (1.0, -1.0):
            mf = _rks(mol)
            mf.conv_tol = 1e-11
            hj = h0 + sign * POLAR_FIELD * r[j]  # electrons: -mu.F = +F.r
            mf.get_hcore = lambda *args, _h=hj: _h
            mf.kernel(dm0=dm0)
            if not mf.converged:
                raise RuntimeError("finite-field SCF not converged")
            mus.append(mf.dip_moment(unit="AU", verbose=0))
        alpha[:, j] = (mus[0] - mus[1]) / (2 * POLAR_FIELD)
    alpha = 0.5 * (alpha + alpha.T)
    return {"polarizability": alpha * Bohr**3}


def ccsdt_label(symbols, pos) -> dict:
    from ase.units import Hartree
    from pyscf import cc, scf

    mol = _mol(symbols, pos, CC_BASIS)
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-10
    mf.kernel()
    ncore = sum(1 for s in symbols if s != "H")  # 1s of C, N, O
    mycc = cc.CCSD(mf, frozen=ncore if ncore else None)
    mycc.conv_tol = 1e-8
    mycc.kernel()
    if not (mf.converged and mycc.converged):
        raise RuntimeError("HF or CCSD not converged")
    e_t = mycc.ccsd_t()
    return {"energy": (mycc.e_tot + e_t) * Hartree}


LABELLERS = {"xtb": xtb_label, "dft": dft_label, "dft_polar": dft_polar_label, "ccsdt": ccsdt_label}


def subset(level: str, spec: tuple) -> list[int]:
    _, n, s_dft, s_pol, s_cc = spec
    stride = {"xtb": 1, "dft": s_dft, "dft_polar": s_pol, "ccsdt": s_cc}[level]
    return list(range(0, n, stride)) if stride else []


# --------------------------------------------------------------------------------------
# assembling the systems
# --------------------------------------------------------------------------------------
def _write_system(folder: Path, symbols, frames: list[dict]) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    s = folder / "set.000"
    s.mkdir(parents=True)
    (folder / "type.raw").write_text("".join(f"{TYPE_MAP.index(e)}\n" for e in symbols))
    (folder / "type_map.raw").write_text("".join(f"{e}\n" for e in TYPE_MAP))
    (folder / "nopbc").write_text("")
    nf = len(frames)
    np.save(s / "coord.npy", np.array([f["coord"] for f in frames]).reshape(nf, -1))
    for key in ("energy", "force", "dipole", "polarizability"):
        if key in frames[0]:
            np.save(s / f"{key}.npy", np.array([f[key] for f in frames], dtype=np.float64).reshape(nf, -1)
                    if key != "energy" else np.array([f[key] for f in frames], dtype=np.float64))


def _load(cache: Path, level: str, name: str, idx: int):
    f = cache / level / name / f"{idx:04d}.npz"
    if not f.is_file():
        return None
    d = np.load(f)
    return {k: d[k] for k in d.files}


def assemble(out: Path, specs: dict, info: dict) -> dict:
    cache = out / ".cache"
    counts, timings = {}, {}
    for level in LEVELS:
        if (out / level).exists():
            shutil.rmtree(out / level)
        for name, spec in specs.items():
            md = cache / "md" / f"{name}.npz"
            if not md.is_file():
                continue
            d = np.load(md)
            symbols, coord = [str(s) for s in d["symbols"]], d["coord"]
            n_valid_from = int(round((1 - VALID_FRACTION) * spec[1]))
            split = {"train": [], "valid": []}
            for idx in subset(level, spec):
                lab = _load(cache, level, name, idx)
                if lab is None:
                    continue
                wall = float(lab.pop("wall"))
                timings.setdefault(level, []).append(wall)
                timings.setdefault((level, name), []).append(wall)
                if level == "dft_polar":
                    base = _load(cache, "dft", name, idx)
                    if base is None:
                        continue
                    base.pop("wall")
                    lab.update(base)
                lab["coord"] = coord[idx]
                split["valid" if idx >= n_valid_from else "train"].append(lab)
            for part, frames in split.items():
                if frames:
                    _write_system(out / level / name / part, symbols, frames)
                counts[(level, name, part)] = len(frames)
    write_provenance(out, specs, counts, timings, info)
    return counts


def write_provenance(out: Path, specs: dict, counts: dict, timings: dict, info: dict) -> None:
    from importlib.metadata import version

    import ase
    import pyscf

    check_file = out / ".cache" / "check.json"
    checks = json.loads(check_file.read_text()) if check_file.is_file() else None
    size = sum(p.stat().st_size for lv in LEVELS if (out / lv).exists() for p in (out / lv).rglob("*") if p.is_file())
    lines = [
        "# Multi-fidelity molecular example data: provenance",
        "",
        "* **Generated by**: `examples/data/make_molecules.py`, run from the repository root as "
        "`OMP_NUM_THREADS=1 python examples/data/make_molecules.py` (resumable: rerun to continue; it stops "
        "starting labels after `--max-minutes`), then `... --check`; "
        f"last run as `{info['command']}`"
        + (" (**smoke mode**: a handful of frames, not the bundled data set)" if info.get("smoke") else ""),
        f"* **Software**: tblite {version('tblite')}, pyscf {pyscf.__version__}, "
        f"ase {ase.__version__}, numpy {np.__version__}, Python {platform.python_version()}",
        f"* **Random seed**: {SEED} (`numpy.random.default_rng`, per molecule seed + index)",
        f"* **Conformers**: GFN2-xTB (tblite ASE calculator) Langevin MD from the ASE g2 geometry, "
        f"{info['md']['temperature_K']} K, {info['md']['timestep_fs']} fs time step, friction "
        f"{info['md']['friction_per_fs']} /fs, {info['md']['equil_steps']} equilibration steps, then one frame "
        f"every {info['md']['every']} steps; coordinates centred on the centre of mass. No periodic boundaries "
        "(`nopbc`).",
        "* **Levels** (each `<level>/<molecule>/{train,valid}`, a DeePMD-kit npy system):",
        "  * `xtb`: GFN2-xTB (tblite, default accuracy) energy + forces, every MD frame.",
        f"  * `dft`: {DFT['xc']}/{DFT['basis']} (PySCF RKS, density fitting with {DFT['auxbasis']}, "
        f"grid level {DFT['grid_level']}, conv_tol {DFT['conv_tol']:g} Eh) energy + analytic forces + dipole.",
        f"  * `dft_polar`: the `dft` labels plus the static polarizability from central finite "
        f"differences of the DFT dipole in uniform fields of +-{POLAR_FIELD:g} a.u. along x, y, z "
        "(symmetrised).",
        f"  * `ccsdt`: CCSD(T)/{CC_BASIS} total energy (PySCF, RHF reference, frozen 1s cores of C/N/O, "
        "no density fitting). Energy only.",
        "  Frames at the other levels are subsets of the `xtb` frames (`dft_polar` also of the "
        "`dft` frames) with identical coordinates. `valid` holds the frames from the last "
        f"{int(VALID_FRACTION * 100)} % of each trajectory.",
        "* **Units**: Angstrom (coord), eV (energy; Hartree = 27.211386 eV), eV/Angstrom (force), "
        "e*Angstrom (dipole; Bohr = 0.529177 A), Angstrom^3 (polarizability volume alpha/(4 pi eps0); "
        "1 a.u. = 0.148185 A^3). Energies are total energies, no atomic references subtracted.",
        "* **Types**: `type_map.raw` = `H C N O` in every system (global map), `type.raw` in the g2 atom order.",
    ]
    if checks:
        lines.append("* **Checks** (`--check`): analytic forces vs central finite differences of the energy "
                     "(max |error| over the components tested):")
        for c in checks:
            lines.append(f"  * `{c['level']}` {c['molecule']} frame {c['frame']}: {c['components']} components, "
                         f"step {c['step']} A, max |F_analytic - F_fd| = {c['max_err']:.2e} eV/A "
                         f"(max |F| = {c['max_force']:.2f} eV/A)")
    else:
        lines.append("* **Checks**: not run yet (`--check`).")
    lines.append("* **Compute time per label** (seconds per frame, mean over the cached labels, "
                 f"OMP_NUM_THREADS={info.get('threads', '?')} on a shared 2-core machine): "
                 + ", ".join(f"`{lv}` {np.mean(t):.2f} s ({len(t)} frames)" for lv, t in timings.items()
                            if isinstance(lv, str)) + "; per molecule in the table below.")
    lines.append(f"* **Total label compute time**: "
                 f"{sum(sum(t) for lv, t in timings.items() if isinstance(lv, str)) / 60:.1f} min "
                 f"(this run: {info['wall'] / 60:.1f} min wall).")
    lines.append(f"* **Size**: {size} bytes of data files.")
    lines += ["", "| level | molecule | atoms | train | valid | planned | s/frame |", "|---|---|---|---|---|---|---|"]
    from ase.build import molecule as g2mol

    for level in LEVELS:
        for name, spec in specs.items():
            tr, va = counts.get((level, name, "train"), 0), counts.get((level, name, "valid"), 0)
            planned = len(subset(level, spec))
            if planned:
                lines.append(f"| `{level}` | {name} ({g2mol(spec[0]).get_chemical_formula()}) | "
                             f"{len(g2mol(spec[0]))} | {tr} | {va} | {planned} | "
                             f"{np.mean(timings[(level, name)]) if (level, name) in timings else float('nan'):.2f} |")
    (out / "PROVENANCE.md").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------
# finite-difference check
# --------------------------------------------------------------------------------------
def fd_check(out: Path, specs: dict, md: dict, h: float = 1e-3) -> list[dict]:
    cache = out / ".cache"
    results = []
    plan = [("xtb", "ethanol" if "ethanol" in specs else "water", xtb_label,
             lambda s, p: xtb_label(s, p)["energy"], 3),
            ("dft", "water", dft_label, dft_energy, 3)]
    for level, name, label, energy, natoms_checked in plan:
        symbols, coord = md_frames(cache, name, *specs[name][:2], md, SEED + list(specs).index(name))
        pos = coord[0]
        ref = label(symbols, pos)["force"]
        err, ncomp = 0.0, 0
        for i in range(min(natoms_checked, len(symbols))):
            for d in range(3):
                p, m = pos.copy(), pos.copy()
                p[i, d] += h
                m[i, d] -= h
                f_fd = -(energy(symbols, p) - energy(symbols, m)) / (2 * h)
                err = max(err, abs(f_fd - ref[i, d]))
                ncomp += 1
        results.append({"level": level, "molecule": name, "frame": 0, "components": ncomp, "step": h,
                        "max_err": err, "max_force": float(np.abs(ref).max())})
        print(f"check {level} {name}: max |F - F_fd| = {err:.2e} eV/A over {ncomp} components", flush=True)
    (cache / "check.json").write_text(json.dumps(results, indent=1))
    return results


# --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    import os

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default examples/data/molecules; a temporary folder with --smoke)")
    ap.add_argument("--smoke", action="store_true", help="a handful of frames (< 1 min), for CI")
    ap.add_argument("--check", action="store_true", help="finite-difference force checks (xtb and dft), then assemble")
    ap.add_argument("--assemble", action="store_true", help="only rebuild systems + PROVENANCE.md from the cache")
    ap.add_argument("--levels", default=",".join(LEVELS), help="comma-separated levels to label")
    ap.add_argument("--max-minutes", type=float, default=40.0, help="start no new label after this wall time")
    args = ap.parse_args(argv)
    t0 = time.time()
    specs = SMOKE if args.smoke else FULL
    md = SMOKE_MD if args.smoke else MD
    out = args.out or (Path(tempfile.mkdtemp(prefix="mtzoo_mol_smoke_")) if args.smoke
                       else Path(__file__).resolve().parent / "molecules")
    cache = out / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    cmd = "OMP_NUM_THREADS={} python examples/data/make_molecules.py {}".format(
        os.environ.get("OMP_NUM_THREADS", "?"), " ".join(sys.argv[1:] if argv is None else argv)).strip()
    info = {"command": cmd, "smoke": args.smoke, "md": md, "threads": os.environ.get("OMP_NUM_THREADS", "?")}

    trajs = {name: md_frames(cache, name, spec[0], spec[1], md, SEED + i)
             for i, (name, spec) in enumerate(specs.items())}
    if args.check:
        fd_check(out, specs, md)
    elif not args.assemble:
        levels = [lv for lv in args.levels.split(",") if lv]
        tasks = []
        for li, level in enumerate(levels):
            for mi, (name, spec) in enumerate(specs.items()):
                idxs = subset(level, spec)
                for pos, idx in enumerate(idxs):
                    # xtb first (cheap); then rounds over fifths of every subset so that a
                    # run cut short still covers every level and molecule
                    key = (level != "xtb", int(5 * pos / len(idxs)), LEVELS.index(level), mi, pos)
                    tasks.append((key, level, name, idx))
        tasks.sort()
        done = 0
        for _, level, name, idx in tasks:
            f = cache / level / name / f"{idx:04d}.npz"
            if f.is_file():
                continue
            if time.time() - t0 > 60 * args.max_minutes:
                print(f"time limit of {args.max_minutes} min reached; stopping (resume by rerunning)", flush=True)
                break
            symbols, coord = trajs[name]
            t1 = time.time()
            try:
                lab = LABELLERS[level](symbols, coord[idx])
            except RuntimeError as exc:
                print(f"{level} {name} {idx}: {exc}; skipped", flush=True)
                continue
            wall = time.time() - t1
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_suffix(".tmp.npz")
            np.savez(tmp, wall=wall, **lab)
            tmp.replace(f)
            done += 1
            if level != "xtb" or done % 50 == 0:
                print(f"{level:9s} {name:12s} frame {idx:3d}: {wall:6.2f} s "
                      f"(elapsed {(time.time() - t0) / 60:.1f} min)", flush=True)
    info["wall"] = time.time() - t0
    counts = assemble(out, specs, info)
    total = {lv: sum(v for (l, _, _), v in counts.items() if l == lv) for lv in LEVELS}
    print(f"wrote {out}: frames per level {total}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
