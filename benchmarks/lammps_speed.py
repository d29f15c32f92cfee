"""MD speed in ns/day: LAMMPS (``pair_style mliap unified``) beside mtzoo's ASE calculator.

The model has the size of DeePMD-kit's water example (``md_speed.py``: se_e2_a sel [46, 92],
rcut 6, rcut_smth 0.5, neuron [25, 50, 100], axis_neuron 16, type_one_side; ener fitting
[240, 240, 240]) with random weights (statistics from the frame): speed does not depend on the
weights.  Frames: frame 0 of DeePMD's ``examples/water/data/data_3`` (192 atoms, periodic) and
that frame repeated 2x2x2 (1536 atoms) when ``../shared`` has DeePMD's examples; otherwise
generated water of the same size and density (``tests/conftest.py: generated_water``).

Both sides run velocity Verlet (NVE, ``--timestep`` 0.5 fs) in float64 on one thread from the
same velocities (300 K, seeded), after one untimed warm-up call: LAMMPS ``fix nve`` with its own
neighbour list (skin 2 A, LAMMPS's default for metal units), ASE ``VelocityVerlet`` with
:class:`mtzoo.calculator.MTZooCalculator` (skin 1 A).  Each, exact and compressed
(``compress=True``).  Rounds are interleaved (LAMMPS, ASE, LAMMPS compressed, ASE compressed)
because the machine is shared; reported: median ns/day over ``--rounds``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/lammps_speed.py [--rounds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, cpu_model, first_frame_atoms, git_commit  # noqa: E402

TYPE_MAP = ["O", "H"]
WATER = REPO.parent / "shared" / "data" / "deepmd-examples" / "examples" / "water" / "data" / "data_3"
DESC = {"type": "se_e2_a", "sel": [46, 92], "rcut": 6.0, "rcut_smth": 0.5, "neuron": [25, 50, 100],
        "axis_neuron": 16, "type_one_side": True, "seed": 1}


def frame(repeat: int):
    from ase import Atoms

    if WATER.is_dir():
        return first_frame_atoms(WATER, TYPE_MAP, repeat), "DeePMD water data_3 frame 0"
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import generated_water

    s = generated_water(1)
    atoms = Atoms(s.elements, positions=s.coord[0], cell=s.box[0], pbc=True)
    return (atoms.repeat((repeat,) * 3) if repeat > 1 else atoms), "generated water (tests/conftest.py)"


def water_model(atoms):
    import torch

    from mtzoo.data.graph import atoms_to_graph
    from mtzoo.model import build_model

    model = build_model({"type_map": TYPE_MAP, "descriptor": DESC,
                         "heads": {"e": {"type": "ener", "neuron": [240, 240, 240], "resnet_dt": True, "seed": 1}}})
    with torch.no_grad():
        model.descriptor.compute_stats([atoms_to_graph(atoms, TYPE_MAP, DESC["rcut"])])
        model.heads["e"].bias_atom_e.copy_(torch.tensor([-93.6, -187.2]))
    return model.eval()


def run_ase(atoms, model, steps: int, dt_fs: float, compress: bool) -> float:
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from mtzoo.calculator import MTZooCalculator

    atoms = atoms.copy()
    atoms.calc = MTZooCalculator(model, head="e", compress=compress)
    atoms.get_forces()
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    t0 = time.perf_counter()
    dyn.run(steps)
    return time.perf_counter() - t0


def run_lammps(atoms, model_file: Path, steps: int, dt_fs: float) -> float:
    from ase import units

    from mtzoo.lammps import lammps_frame

    lmp, prism = lammps_frame(atoms, model_file, TYPE_MAP)
    try:
        n = len(atoms)
        order = np.argsort(np.asarray(lmp.numpy.extract_atom("id"))[:n])
        lmp.numpy.extract_atom("v")[:n][order] = prism.vector_to_lammps(atoms.get_velocities() * (units.fs * 1000.0))
        lmp.commands_string(f"timestep {dt_fs * 1e-3!r}\nfix mtzoo_nve all nve\nthermo 0\nrun 0")  # warm-up call
        t0 = time.perf_counter()
        lmp.command(f"run {steps} pre no post no")
        return time.perf_counter() - t0
    finally:
        lmp.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, nargs=2, default=[40, 8], help="MD steps at 192 and 1536 atoms (default: 40 8)")
    p.add_argument("--timestep", type=float, default=0.5, help="fs (default: 0.5)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: 3)")
    p.add_argument("--json", default=None, help="write the results here (default: print only)")
    args = p.parse_args()

    import ase.md.velocitydistribution as vd
    import torch

    from mtzoo.lammps import export_lammps

    torch.set_num_threads(1)
    result = {"benchmark": "lammps_speed", "commit": git_commit(), "cpu": cpu_model(), "torch": torch.__version__,
              "model": {"descriptor": DESC, "fitting": [240, 240, 240], "weights": "random"},
              "timestep_fs": args.timestep, "threads": 1, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat, steps in zip((1, 2), args.steps):
            atoms, source = frame(repeat)
            (getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution)(
                atoms, temperature_K=300.0, rng=np.random.default_rng(0))
            vd.Stationary(atoms)
            model = water_model(atoms)
            files = {c: Path(tmp) / f"model-{'compressed' if c else 'exact'}.pkl" for c in (False, True)}
            for c, path in files.items():
                export_lammps(model, compress=c, output=path)
            walls: dict[str, list[float]] = {k: [] for k in ("lammps", "ase", "lammps compressed", "ase compressed")}
            for r in range(args.rounds):
                for c in (False, True):
                    tag = " compressed" if c else ""
                    walls["lammps" + tag].append(run_lammps(atoms, files[c], steps, args.timestep))
                    walls["ase" + tag].append(run_ase(atoms, model, steps, args.timestep, c))
                print(f"{len(atoms)} atoms round {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in walls.items()),
                      file=sys.stderr)
            nsd = {k: steps * args.timestep * 1e-6 / (statistics.median(v) / 86400) for k, v in walls.items()}
            result["sizes"][str(len(atoms))] = {"frame": source, "steps": steps, "wall_s": walls,
                                                "ns_per_day_median": nsd,
                                                "lammps_over_ase": nsd["lammps"] / nsd["ase"],
                                                "lammps_over_ase_compressed": nsd["lammps compressed"] / nsd["ase compressed"]}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
