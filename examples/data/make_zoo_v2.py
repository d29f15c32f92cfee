"""Generate zoo v2's pretraining set: GFN2-xTB and PBE labels on g2 molecules with H, C, N and O.

Molecules
    Every molecule of ASE's ``g2`` collection with only H, C, N and O atoms, 2 to 12 atoms and a
    closed shell (even electron count, no initial magnetic moment: the labellers are restricted,
    so radicals and triplets are left out), sorted by name with Python's ``sorted``.  Every 6th
    of that list (positions 6, 12, 18, ... counting from 1) is **held out**: its frames go to a
    ``test`` system only, for the model cards' held-out-molecule errors; the others are the
    training molecules.  The rule was fixed before any label was computed; ``split.json`` and
    ``PROVENANCE.md`` list both groups, and ``tests/test_zoo_v2_data.py`` pins them.

Conformers
    GFN2-xTB Langevin MD (tblite's ASE calculator, :func:`make_molecules.md_frames`: 0.5 fs time
    step, friction 0.01 /fs, 400 equilibration steps, then a frame every 20 steps = 10 fs,
    coordinates centred on the centre of mass) from the g2 geometry, one trajectory of 32 frames
    at each of 300, 500 and 800 K.  Seed of (molecule, temperature): ``SEED + 100 * i + j`` with
    ``i`` the molecule's position in the sorted list of all candidates and ``j`` the
    temperature's position in ``TEMPERATURES`` (so a run on a subset draws the same frames).

Levels (each ``<level>/<molecule>/{train,valid}`` or ``<level>/<molecule>/test``)
    * ``xtb``: GFN2-xTB (tblite, default accuracy) energy, forces and dipole on every frame;
    * ``dft``: PBE/def2-SVP (:func:`make_molecules.dft_label`: PySCF RKS, density fitting with
      def2-universal-jkfit, grid level 3, conv_tol 1e-10) energy, analytic forces and dipole on
      every 4th frame of every trajectory (frames 0, 4, ..., 28).

    Training molecules: frames with index >= 80 % of the trajectory (26-31, the later ones in
    time) in ``valid``, the others in ``train``; held-out molecules: every frame in ``test``.
    Each system joins the molecule's three temperatures (300, 500, then 800 K).

Output: DeePMD-kit npy systems (float64, one ``set.000``, ``nopbc``, ``type_map.raw`` =
``H C N O``, ``type.raw`` in the g2 atom order) under ``examples/data/zoo_v2``, with
``PROVENANCE.md`` and ``split.json``.  Units: Angstrom, eV (total energies, no atomic
references; the xTB and PBE scales differ), eV/Angstrom, e*Angstrom.

Resumable, and the cache is part of the repository (so a later session can resume):
``.cache/md/<molecule>_<T>K.npz`` holds a trajectory's frames (make_molecules' format) and
``.cache/<level>/<molecule>_<T>K.npz`` the labels done on it (``idx``, ``energy``, ``force``,
``dipole``, ``wall``), rewritten after every label; done frames are skipped.  The systems and
PROVENANCE.md are re-assembled from the cache at the end of every run (``--assemble`` does only
that).  ``--max-minutes`` stops starting new labels after that wall time.  PBE frames are
labelled in rounds over every (molecule, temperature), so a run cut short covers every molecule.

Run (from the repository root; ``pip install numpy ase tblite pyscf``)::

    OMP_NUM_THREADS=1 python examples/data/make_zoo_v2.py --levels xtb          # ~5 min (mostly the MD)
    OMP_NUM_THREADS=1 python examples/data/make_zoo_v2.py --levels dft --max-minutes 60  # ~3 h in all (~8 s/frame)
    OMP_NUM_THREADS=1 python examples/data/make_zoo_v2.py --assemble
    OMP_NUM_THREADS=1 python examples/data/make_zoo_v2.py --smoke               # < 1 min, temporary folder
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_molecules as mm  # noqa: E402  (MD, PBE labeller, system writer)

SEED = 20260718
TYPE_MAP = mm.TYPE_MAP  # H C N O
LEVELS = ["xtb", "dft"]
TEMPERATURES = (300.0, 500.0, 800.0)
MD = dict(mm.MD)  # 0.5 fs, friction 0.01 /fs, 400 equilibration steps, a frame every 20 steps
FRAMES = 32  # per trajectory (molecule, temperature)
STRIDE = {"xtb": 1, "dft": 4}
MAX_ATOMS = 12
HOLD_OUT_EVERY = 6
VALID_FRACTION = mm.VALID_FRACTION  # 0.2
BOND, BROKEN, FORMED = 1.3, 1.6, 1.1  # connectivity check, x the sum of covalent radii
SMOKE = {"molecules": ["CH3OH", "H2O"], "temperatures": (300.0, 800.0), "frames": 3,
         "md": dict(MD, equil_steps=20, every=5), "stride": {"xtb": 1, "dft": 2}}


# --------------------------------------------------------------------------------------
# molecules
# --------------------------------------------------------------------------------------
@functools.cache
def candidates() -> tuple[str, ...]:
    """Sorted g2 names: only H, C, N, O; 2 to ``MAX_ATOMS`` atoms; closed shell."""
    from ase.collections import g2

    names = []
    for name in g2.names:
        atoms = g2[name]
        closed = atoms.get_atomic_numbers().sum() % 2 == 0 and not np.any(atoms.get_initial_magnetic_moments())
        if set(atoms.get_chemical_symbols()) <= set(TYPE_MAP) and 2 <= len(atoms) <= MAX_ATOMS and closed:
            names.append(name)
    return tuple(sorted(names))


def split_molecules(names: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(training, held-out) molecules: every ``HOLD_OUT_EVERY``-th of the sorted list is held out."""
    names = sorted(candidates() if names is None else names)
    held = names[HOLD_OUT_EVERY - 1::HOLD_OUT_EVERY]
    return [n for n in names if n not in held], held


def seed(molecule: str, temperature: float) -> int:
    return SEED + 100 * candidates().index(molecule) + TEMPERATURES.index(temperature)


def traj_name(molecule: str, temperature: float) -> str:
    return f"{molecule}_{int(temperature)}K"


def planned(level: str, nframes: int, stride: dict) -> list[int]:
    return list(range(0, nframes, stride[level]))


def spread_order(k: int) -> list[int]:
    """0..k-1 ordered so that every prefix spreads over the range: 0, k-1, then bisections."""
    bits = max(1, (k - 1).bit_length())
    order = sorted(range(k), key=lambda p: int(format(p, f"0{bits}b")[::-1], 2))
    if k > 1:
        order.remove(k - 1)
        order.insert(1, k - 1)
    return order


# --------------------------------------------------------------------------------------
# labels (eV, eV/A, e*A)
# --------------------------------------------------------------------------------------
def xtb_label(symbols, pos) -> dict:
    """GFN2-xTB energy, forces and dipole.

    The calculator settings of :func:`make_molecules.xtb_label`, which does not return the dipole.
    """
    from ase import Atoms
    from tblite.ase import TBLite

    atoms = Atoms(symbols, positions=pos)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    return {"energy": atoms.get_potential_energy(), "force": atoms.get_forces(),
            "dipole": atoms.get_dipole_moment()}


LABELLERS = {"xtb": xtb_label, "dft": mm.dft_label}
LABEL_KEYS = ("energy", "force", "dipole", "wall")


def load_chunk(path: Path) -> dict[int, dict]:
    """frame index -> {energy, force, dipole, wall} from one trajectory's label file."""
    if not path.is_file():
        return {}
    d = np.load(path)
    return {int(i): {k: d[k][j] for k in LABEL_KEYS} for j, i in enumerate(d["idx"])}


def save_chunk(path: Path, labels: dict[int, dict]) -> None:
    idx = sorted(labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, idx=np.array(idx, dtype=np.int64),
                        **{k: np.array([labels[i][k] for i in idx], dtype=np.float64) for k in LABEL_KEYS})
    tmp.replace(path)


# --------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------
class Plan:
    """The frames to make: molecules, temperatures, frames per trajectory, MD settings, strides."""

    def __init__(self, molecules, temperatures=TEMPERATURES, frames=FRAMES, md=MD, stride=STRIDE):
        self.molecules, self.temperatures, self.frames = list(molecules), tuple(temperatures), frames
        self.md, self.stride = md, stride

    def trajectory(self, cache: Path, molecule: str, temperature: float):
        """Symbols and [frames, natoms, 3] positions (cached by make_molecules.md_frames)."""
        return mm.md_frames(cache, traj_name(molecule, temperature), molecule, self.frames,
                            dict(self.md, temperature_K=temperature), seed(molecule, temperature))


def generate(out: Path, plan: Plan, levels: list[str], deadline: float) -> int:
    """Label the planned frames not yet in the cache, until ``deadline``; returns the count done."""
    cache = out / ".cache"
    tasks = []
    for level in levels:
        order = spread_order(len(planned(level, plan.frames, plan.stride)))
        for mi, mol in enumerate(plan.molecules):
            for ti, temp in enumerate(plan.temperatures):
                for rank, p in enumerate(order):
                    idx = planned(level, plan.frames, plan.stride)[p]
                    # xtb trajectory by trajectory (cheap); dft in rounds over all trajectories
                    key = (LEVELS.index(level), rank if level != "xtb" else 0, mi, ti, idx)
                    tasks.append((key, level, mol, temp, idx))
    tasks.sort()
    done, chunks = 0, {}
    for _, level, mol, temp, idx in tasks:
        path = cache / level / f"{traj_name(mol, temp)}.npz"
        if path not in chunks:
            chunks[path] = load_chunk(path)
        labels = chunks[path]
        if idx in labels:
            continue
        if time.time() > deadline:
            print("time limit reached; stopping (rerun the same command to resume)", flush=True)
            break
        t = time.time()
        symbols, coord = plan.trajectory(cache, mol, temp)
        t1 = time.time()
        if t1 - t > 1:
            print(f"md  {traj_name(mol, temp):28s} {plan.frames} frames: {t1 - t:6.1f} s", flush=True)
        try:
            lab = LABELLERS[level](symbols, coord[idx])
        except Exception as exc:  # noqa: BLE001  (an SCF that does not converge: skip, retried next run)
            print(f"{level} {traj_name(mol, temp)} {idx}: {type(exc).__name__}: {exc}; skipped", flush=True)
            continue
        lab["wall"] = time.time() - t1
        labels[idx] = lab
        save_chunk(path, labels)
        done += 1
        if level != "xtb" or done % 200 == 0:
            print(f"{level:4s} {traj_name(mol, temp):28s} frame {idx:3d}: {lab['wall']:6.2f} s "
                  f"({done} labels this run)", flush=True)
    return done


# --------------------------------------------------------------------------------------
# assembling
# --------------------------------------------------------------------------------------
def bonds_changed(molecule: str, coord: np.ndarray) -> int:
    """Frames of ``coord`` with a bond of the g2 geometry broken or a new one formed.

    Bonded in the g2 geometry: distance < ``BOND`` x the sum of ASE's covalent radii; broken: a
    bonded pair beyond ``BROKEN`` x the sum; formed: a non-bonded pair within ``FORMED`` x the sum
    (the gap keeps thermal stretching at 800 K from counting).
    """
    from ase.build import molecule as g2mol
    from ase.data import covalent_radii

    ref = g2mol(molecule)
    r = covalent_radii[ref.get_atomic_numbers()]
    rsum = r[:, None] + r[None, :]

    def ratio(pos):
        return np.linalg.norm(pos[..., :, None, :] - pos[..., None, :, :], axis=-1) / rsum

    bonded = ratio(ref.positions) < BOND
    x = ratio(coord)
    changed = (bonded & (x > BROKEN)) | (~bonded & (x < FORMED))
    return int(np.sum(np.any(changed, axis=(1, 2))))


def assemble(out: Path, plan: Plan, info: dict) -> dict:
    """Write every system from the cache (all molecules cached, not only those of this run)."""
    cache = out / ".cache"
    train_mols, held = split_molecules()
    counts, walls, broken, seeds = {}, {}, {}, {}
    for level in LEVELS:
        if (out / level).exists():
            shutil.rmtree(out / level)
    for mol in candidates():
        for level in LEVELS:
            parts = {"test": []} if mol in held else {"train": [], "valid": []}
            symbols = None
            for temp in TEMPERATURES:
                md = cache / "md" / f"{traj_name(mol, temp)}.npz"
                if not md.is_file():
                    continue
                d = np.load(md)
                symbols, coord = [str(s) for s in d["symbols"]], d["coord"]
                seeds[traj_name(mol, temp)] = json.loads(str(d["params"]))["seed"]
                if level == LEVELS[0]:
                    broken[traj_name(mol, temp)] = (bonds_changed(mol, coord), len(coord))
                n_valid_from = int(round((1 - VALID_FRACTION) * len(coord)))
                for idx, lab in sorted(load_chunk(cache / level / f"{traj_name(mol, temp)}.npz").items()):
                    walls.setdefault(level, []).append(float(lab["wall"]))
                    frame = {k: lab[k] for k in ("energy", "force", "dipole")}
                    frame["coord"] = coord[idx]
                    part = "test" if mol in held else ("valid" if idx >= n_valid_from else "train")
                    parts[part].append(frame)
            for part, frames in parts.items():
                if frames:
                    mm._write_system(out / level / mol / part, symbols, frames)
                    counts[(level, mol, part)] = len(frames)
    (out / "split.json").write_text(json.dumps(
        {"rule": f"sorted candidates, every {HOLD_OUT_EVERY}th held out (positions {HOLD_OUT_EVERY}, "
                 f"{2 * HOLD_OUT_EVERY}, ... from 1)", "train": train_mols, "held_out": held}, indent=1) + "\n")
    write_provenance(out, plan, counts, walls, broken, seeds, info)
    return counts


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


def _size(paths) -> int:
    return sum(p.stat().st_size for top in paths if top.exists() for p in top.rglob("*") if p.is_file())


def write_provenance(out: Path, plan: Plan, counts: dict, walls: dict, broken: dict, seeds: dict, info: dict) -> None:
    from ase.collections import g2

    train_mols, held = split_molecules()
    total = {lv: sum(v for (l, _, _), v in counts.items() if l == lv) for lv in LEVELS}
    nmol = {lv: len({m for (l, m, _) in counts if l == lv}) for lv in LEVELS}
    n_traj = len(plan.temperatures) * len(plan.molecules if info.get("smoke") else candidates())
    md, frames, stride = plan.md, plan.frames, plan.stride
    lines = [
        "# zoo v2 pretraining set: provenance",
        "",
        "* **Generated by**: `examples/data/make_zoo_v2.py` (its docstring gives the method), run from the "
        "repository root; resumable: `OMP_NUM_THREADS=1 python examples/data/make_zoo_v2.py --levels xtb dft "
        "--max-minutes 60` continues from the cache in `.cache/` (committed) and re-assembles; last run as "
        f"`{info['command']}`"
        + (" (**smoke mode**: not the shipped set; planned counts are this run's)" if info.get("smoke") else "") + ".",
        f"* **Software**: tblite {_version('tblite')}, pyscf {_version('pyscf')}, ase {_version('ase')}, "
        f"numpy {np.__version__}, Python {platform.python_version()}.",
        f"* **Molecules**: ASE g2 with only H, C, N, O, 2-{MAX_ATOMS} atoms, closed shell "
        f"({len(candidates())}), sorted by name; every {HOLD_OUT_EVERY}th held out (fixed before any label).",
        f"  * **training** ({len(train_mols)}): " + ", ".join(f"`{m}`" for m in train_mols),
        f"  * **held out** ({len(held)}, `test` systems only): " + ", ".join(f"`{m}`" for m in held),
        "* **Conformers**: GFN2-xTB Langevin MD from the g2 geometry at "
        f"{', '.join(f'{t:g}' for t in plan.temperatures)} K, "
        f"{md['timestep_fs']} fs time step, friction {md['friction_per_fs']} /fs, {md['equil_steps']} equilibration "
        f"steps, then {frames} frames one every {md['every']} steps; centred on the centre of mass; `nopbc`. "
        f"Seed of (molecule, temperature) = {SEED} + 100 x (position in the candidate list) + (position of the "
        "temperature); every seed is in the table below and in the cache's `md/*.npz` (`params`).",
        f"* **Levels**: `xtb` GFN2-xTB (tblite) energy + forces + dipole on every frame; `dft` "
        f"{mm.DFT['xc']}/{mm.DFT['basis']} (PySCF RKS, density fitting with {mm.DFT['auxbasis']}, grid level "
        f"{mm.DFT['grid_level']}, conv_tol {mm.DFT['conv_tol']:g} Eh) energy + analytic forces + dipole on frames "
        f"{', '.join(map(str, planned('dft', frames, stride)))} of every trajectory (same coordinates as at `xtb`).",
        f"* **Split**: training molecules: frames with index >= {int(round((1 - VALID_FRACTION) * frames))} of each "
        "trajectory in `valid`, the others in `train`; held-out molecules: every frame in `test`. A system joins "
        "the molecule's trajectories in the order of rising temperature.",
        "* **Units**: Angstrom, eV (total energies, no atomic references; xTB and PBE on different scales), "
        "eV/Angstrom, e*Angstrom. `type_map.raw` = `H C N O` in every system.",
        f"* **Frames done**: `xtb` {total['xtb']} of {n_traj * len(planned('xtb', frames, stride))} planned "
        f"({nmol['xtb']} molecules), `dft` {total['dft']} of {n_traj * len(planned('dft', frames, stride))} "
        f"({nmol['dft']} molecules).",
        "* **Compute time per label** (mean wall seconds, OMP_NUM_THREADS=1, niced, on a shared 2-core machine "
        "beside other jobs): " + ", ".join(f"`{lv}` {np.mean(w):.3f} s ({len(w)} frames, {sum(w) / 60:.1f} min)"
                                          for lv, w in walls.items()) + ".",
        f"* **Connectivity**: frames where a bond of the g2 geometry (< {BOND} x the sum of ASE's covalent radii) "
        f"is broken (> {BROKEN} x) or a new one formed (< {FORMED} x): {sum(b for b, _ in broken.values())} of "
        f"{sum(n for _, n in broken.values())} (per trajectory in the table); such frames are kept.",
        f"* **Size**: systems {_size([out / lv for lv in LEVELS])} bytes, cache {_size([out / '.cache'])} bytes.",
        "",
        "| molecule | formula | atoms | set | `xtb` frames | `dft` frames | seeds (300/500/800 K) | bonds changed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mol in candidates():
        atoms = g2[mol]
        parts = ("test",) if mol in held else ("train", "valid")
        cell = {lv: " / ".join(str(counts.get((lv, mol, p), 0)) for p in parts) for lv in LEVELS}
        trajs = [traj_name(mol, t) for t in TEMPERATURES]
        lines.append(f"| `{mol}` | {atoms.get_chemical_formula()} | {len(atoms)} | "
                     f"{'held out (test)' if mol in held else 'train / valid'} | {cell['xtb']} | {cell['dft']} | "
                     + " / ".join(str(seeds.get(t, seed(mol, T))) for t, T in zip(trajs, TEMPERATURES)) + " | "
                     + " / ".join(str(broken[t][0]) if t in broken else "-" for t in trajs) + " |")
    (out / "PROVENANCE.md").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default examples/data/zoo_v2; a temporary folder with --smoke)")
    ap.add_argument("--levels", nargs="+", choices=LEVELS, default=LEVELS, help="levels to label")
    ap.add_argument("--molecules", nargs="+", default=None, help="g2 names (default: every candidate)")
    ap.add_argument("--max-minutes", type=float, default=float("inf"), help="start no new label after this time")
    ap.add_argument("--assemble", action="store_true", help="only rebuild the systems and PROVENANCE.md")
    ap.add_argument("--smoke", action="store_true", help=f"{SMOKE['molecules']}, a few frames (< 1 min)")
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.smoke:
        plan = Plan(args.molecules or SMOKE["molecules"], SMOKE["temperatures"], SMOKE["frames"], SMOKE["md"],
                    SMOKE["stride"])
    else:
        plan = Plan(args.molecules or candidates())
    unknown = set(plan.molecules) - set(candidates())
    if unknown:
        ap.error(f"not among the {len(candidates())} candidates: {sorted(unknown)}")
    out = args.out or (Path(tempfile.mkdtemp(prefix="mtzoo_zoo_v2_smoke_")) if args.smoke
                       else Path(__file__).resolve().parent / "zoo_v2")
    (out / ".cache").mkdir(parents=True, exist_ok=True)
    cmd = "OMP_NUM_THREADS={} python examples/data/make_zoo_v2.py {}".format(
        os.environ.get("OMP_NUM_THREADS", "?"), " ".join(sys.argv[1:] if argv is None else argv)).strip()
    if not args.assemble:
        generate(out, plan, args.levels, t0 + 60 * args.max_minutes)
    counts = assemble(out, plan, {"command": cmd, "smoke": args.smoke})
    total = {lv: sum(v for (l, _, _), v in counts.items() if l == lv) for lv in LEVELS}
    print(f"wrote {out}: frames per level {total} ({time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
