"""Langevin MD with an mtzoo model through the ASE calculator: a 108-atom Ag-Au fcc cell or a molecule.

Usage::

    python examples/md/run_md.py                       # quick: trains a small model, 500 steps
    python examples/md/run_md.py --model frozen_model.pth --head default --steps 5000
    python examples/md/run_md.py --model hcno-mf-se-v1 --head pbe --molecule CH3CH2OH --timestep 0.5

Without ``--model`` the script trains the Ag-Au EMT example (``examples/agau_emt/input.json``)
for ``--train-steps`` steps into a temporary folder and freezes it (a short demo model, not a
converged one).  The cell is a 3x3x3 cubic fcc supercell (108 atoms, half Ag and half Au at
random), Langevin thermostat at ``--temperature`` K (default 300) with ``--timestep`` fs
(default 2).  ``--molecule NAME`` runs an ASE g2 molecule (e.g. ``CH3CH2OH``) in vacuum
instead (use a molecular model such as the zoo's ``hcno-mf-se-v1`` and ``--timestep 0.5``).
``--model`` takes a model file or a zoo name.  Prints the potential, kinetic and total energy (eV) and the temperature every
``--print-every`` steps, then the neighbour-list builds and the speed in ns/day (wall clock of
the MD loop only).
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

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_INPUT = REPO / "examples" / "agau_emt" / "input.json"


def train_demo_model(workdir: Path, steps: int) -> Path:
    """Train the Ag-Au EMT example for ``steps`` steps in ``workdir`` and freeze it."""
    import mtzoo

    cfg = json.loads(EXAMPLE_INPUT.read_text())
    tr = cfg["training"]
    for key in ("training_data", "validation_data"):
        tr[key]["systems"] = [str((EXAMPLE_INPUT.parent / p).resolve()) for p in tr[key]["systems"]]
    tr["numb_steps"] = steps
    tr["disp_freq"] = max(1, steps // 5)
    tr["save_freq"] = steps
    cfg["learning_rate"]["decay_steps"] = max(1, min(cfg["learning_rate"]["decay_steps"], steps // 5))
    inp = workdir / "input.json"
    inp.write_text(json.dumps(cfg, indent=1))
    t0 = time.perf_counter()
    mtzoo.train(inp, workdir=workdir / "run", progress=False)
    print(f"trained {steps} steps in {time.perf_counter() - t0:.1f} s")
    return mtzoo.freeze(workdir / "run", workdir / "frozen_model.pth")


def agau_supercell(seed: int, a: float = 4.07):
    from ase.build import bulk

    atoms = bulk("Ag", "fcc", a=a, cubic=True).repeat((3, 3, 3))  # 4 x 27 = 108 atoms
    rng = np.random.default_rng(seed)
    symbols = np.array(atoms.get_chemical_symbols())
    symbols[rng.permutation(len(atoms))[: len(atoms) // 2]] = "Au"
    atoms.set_chemical_symbols(symbols.tolist())
    return atoms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="frozen mtzoo model file or zoo name; default: train a short Ag-Au demo model")
    ap.add_argument("--molecule", default=None, help="ASE g2 molecule name (e.g. CH3CH2OH) instead of the Ag-Au cell")
    ap.add_argument("--head", default=None, help="head to run (needed for multi-head models)")
    ap.add_argument("--steps", type=int, default=500, help="MD steps (default 500; try 5000)")
    ap.add_argument("--timestep", type=float, default=2.0, help="fs (default 2)")
    ap.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    ap.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs (default 0.01)")
    ap.add_argument("--print-every", type=int, default=50)
    ap.add_argument("--skin", type=float, default=1.0, help="Verlet skin, Angstrom (default 1.0)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default=None, help="default: the model's")
    ap.add_argument("--compress", action="store_true",
                    help="tabulate the embedding nets (se_e2_a / se_e2_r models; same forces within 1e-8 of the largest, as tests/test_compress.py asserts; faster)")
    ap.add_argument("--train-steps", type=int, default=300, help="steps of the demo model (no --model)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch
    from ase import units
    from ase.md.langevin import Langevin
    import ase.md.velocitydistribution as vd

    from mtzoo.calculator import MTZooCalculator

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model if args.model else train_demo_model(Path(tmp), args.train_steps)
        calc = MTZooCalculator(model_path, head=args.head, dtype=args.dtype, skin=args.skin, compress=args.compress)
    if args.molecule:
        from ase.build import molecule

        atoms = molecule(args.molecule)
    else:
        atoms = agau_supercell(args.seed)
    atoms.calc = calc
    rng = np.random.default_rng(args.seed)
    # thermalize_momenta (ASE >= 3.28) replaces MaxwellBoltzmannDistribution
    (getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution)(
        atoms, temperature_K=args.temperature, rng=rng)
    vd.Stationary(atoms)
    dyn = Langevin(atoms, timestep=args.timestep * units.fs, temperature_K=args.temperature,
                   friction=args.friction / units.fs, fixcm=False, rng=rng)

    n = len(atoms)
    print(f"{n} atoms, head '{calc.head}', {calc.model.dtype}, rcut {calc.rcut} A + skin {calc.skin} A, "
          f"{args.steps} steps of {args.timestep} fs at {args.temperature} K")
    print(f"{'step':>7} {'Epot/eV':>14} {'Ekin/eV':>10} {'Etot/eV':>14} {'T/K':>8}")

    def report():
        epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        print(f"{dyn.nsteps:7d} {epot:14.6f} {ekin:10.4f} {epot + ekin:14.6f} {atoms.get_temperature():8.1f}",
              flush=True)

    dyn.attach(report, interval=args.print_every)
    t0 = time.perf_counter()
    dyn.run(args.steps)
    wall = time.perf_counter() - t0
    ns_day = args.steps * args.timestep * 1e-6 / wall * 86400.0
    print(f"neighbour list: {calc.nl_builds} builds, {calc.nl_reuses} reuses")
    print(f"{args.steps} steps in {wall:.2f} s: {wall / max(args.steps, 1) * 1e3:.2f} ms/step, {ns_day:.3f} ns/day "
          f"({torch.get_num_threads()} CPU thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
