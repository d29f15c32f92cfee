"""MD speed in ns/day through the ASE calculators: mtzoo beside DeePMD-kit's ``DP`` on the same frames.

One model in both codes, with the same weights: DeePMD-kit's water example
(``examples/water/se_e2_a/input_torch.json``: se_e2_a sel [46, 92], rcut 6, neuron [25, 50, 100],
axis_neuron 16, type_one_side; ener fitting [240, 240, 240]) trained for ``--train-steps`` steps
with the peer's ``dp --pt train`` (accuracy does not matter for speed), frozen with
``dp --pt freeze`` and converted with ``dp convert-backend frozen.pth frozen.dp``; mtzoo reads the
same weights from ``frozen.dp`` with :func:`mtzoo.zoo.deepmd_import.model_from_deepmd`.  Both give
the same energy and forces on the starting frame before anything is timed (printed).

Frames: the first frame of ``examples/water/data/data_3`` (192 atoms, periodic; a system neither
side trained on) and that frame repeated 2x2x2 (1536 atoms).  The frames and the starting
velocities (Maxwell-Boltzmann at 300 K, seeded, zero total momentum) go to every MD process
through a temporary ``.npz`` file, so both codes start from identical atoms.

MD: ASE ``Langevin``, ``--timestep`` 0.5 fs, 300 K, friction 0.01/fs, the same seed for the
thermostat's noise on both sides, float64, one thread per process.  Each run is a fresh process
(``--worker``): the calculator is built, evaluated ``--warmup`` times on the starting frame (not
timed; DeePMD-kit's TorchScript model optimises itself during its first calls), then
``Langevin.run(steps)`` is timed (wall clock).  ns/day = steps x timestep / wall.

* mtzoo: :class:`mtzoo.calculator.MTZooCalculator` (float64, Verlet neighbour list with
  ``--skin`` 1 A, reused until an atom has moved skin/2), in this python; and the same with
  ``compress=True`` ("mtzoo compressed": tabulated embedding nets, ``mtzoo compress``);
* DeePMD-kit 3.2.0: ``deepmd.calculator.DP(model="frozen.pth")`` in the peer's python
  (``shared/peers/deepmd_setup.sh``); it builds its neighbour list inside every call.  The peer
  has no ``vesin``, so DeePMD-kit uses its dense all-pairs (O(N^2)) neighbour search; with
  ``--deepmd-vesin DIR`` (a folder holding ``vesin`` and ``vesin-torch``, put on the peer's
  ``PYTHONPATH``) a second DeePMD-kit variant runs on the 1536-atom box with its O(N) vesin
  neighbour list (at 192 atoms the neighbour search is a small part of DeePMD-kit's time).

Rounds are interleaved (mtzoo, DeePMD-kit[, DeePMD-kit+vesin], mtzoo, ...) because the machine is
shared with other jobs: each round sees about the same load on both sides.  Reported: median
over rounds of ns/day, and the ratio of medians mtzoo / DeePMD-kit.

Molecule (mtzoo only): ethanol (ASE g2 ``CH3CH2OH``, 9 atoms, no cell) with the zoo model
``hcno-mf-se-v1`` (head ``pbe``) when the zoo has it; otherwise a model of that recipe's size
(se_e2_a rcut 5, neuron [16, 32], axis_neuron 4; ener fitting [64, 64, 64]) trained for
``--mol-train-steps`` steps on ``examples/data/molecules/dft/*/train`` (speed only).

Writes ``benchmarks/results/YYYY-MM-DD-md-speed.json`` (every round's ns/day, medians, ratios,
atoms, steps, timestep, versions, threads, git commit, command) and prints a table.

    python benchmarks/md_speed.py [--shared ../shared] [--peer-python PY] [--rounds 3]
        [--steps-small 50] [--steps-large 6] [--mol-steps 2000] [--deepmd-vesin DIR]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS", "DP_INTER_OP_PARALLELISM_THREADS"):
    os.environ[_v] = "1"  # before torch is imported, here and in every MD subprocess

import argparse
import datetime
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import cpu_model, first_frame_atoms, git_commit  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

REPO = Path(__file__).resolve().parents[1]
WATER = "data/deepmd-examples/examples/water"
INPUT = WATER + "/se_e2_a/input_torch.json"
FRAME = WATER + "/data/data_3"
MOLECULE = "CH3CH2OH"
ZOO_MOLECULAR = ("hcno-mf-se-v1", "pbe")
MOL_DATA = REPO / "examples" / "data" / "molecules" / "dft"
SIDES = ("mtzoo", "deepmd", "deepmd_vesin")
LABELS = {"mtzoo": "mtzoo", "mtzoo_compressed": "mtzoo compressed", "deepmd": "DeePMD-kit",
          "deepmd_vesin": "DeePMD-kit + vesin"}
MTZOO_SIDES = ("mtzoo", "mtzoo_compressed")


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def ns_per_day(steps: int, timestep_fs: float, wall_s: float) -> float:
    return steps * timestep_fs * 1e-6 / wall_s * 86400.0


# ----------------------------------------------------------------------------------------------
# Worker: one MD run in a fresh process (this python for mtzoo, the peer's for DeePMD-kit).
# Imports only numpy, ASE and the calculator's own package.
# ----------------------------------------------------------------------------------------------
def worker(spec: dict) -> dict:
    """Load the frame, build the calculator, warm up, time ``Langevin.run(steps)``."""
    import torch
    from ase import Atoms, units
    from ase.calculators.calculator import all_changes
    from ase.md.langevin import Langevin

    torch.set_num_threads(1)
    fr = np.load(spec["frame"])
    atoms = Atoms(numbers=fr["numbers"], positions=fr["positions"], cell=fr["cell"], pbc=fr["pbc"])
    atoms.set_momenta(fr["momenta"])
    t0 = time.perf_counter()
    if spec["calc"] == "mtzoo":
        from mtzoo.calculator import MTZooCalculator

        calc = MTZooCalculator(spec["model"], head=spec.get("head"), dtype="float64", skin=spec["skin"],
                               compress=bool(spec.get("compress")))
    else:
        from deepmd.calculator import DP

        calc = DP(model=spec["model"])
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(max(1, spec["warmup"])):  # the last one leaves energy/forces of the start frame cached
        calc.calculate(atoms, ["energy", "forces"], all_changes)
    warmup_s = time.perf_counter() - t0
    e0, f0 = float(calc.results["energy"]), np.array(calc.results["forces"], dtype=np.float64)
    atoms.calc = calc
    res = {"calc": spec["calc"], "natoms": len(atoms), "steps": spec["steps"], "load_s": load_s,
           "warmup_calls": max(1, spec["warmup"]), "warmup_s": warmup_s, "energy_start": e0,
           "torch_threads": torch.get_num_threads()}
    if spec.get("forces_out"):
        np.save(spec["forces_out"], f0)
    if spec["steps"] > 0:
        dyn = Langevin(atoms, timestep=spec["timestep_fs"] * units.fs, temperature_K=spec["temperature_K"],
                       friction=spec["friction_per_fs"] / units.fs, rng=np.random.default_rng(spec["seed"]))
        t0 = time.perf_counter()
        dyn.run(spec["steps"])
        wall = time.perf_counter() - t0
        res.update(wall_s=wall, ms_per_step=1e3 * wall / spec["steps"],
                   ns_per_day=ns_per_day(spec["steps"], spec["timestep_fs"], wall),
                   energy_end=float(atoms.get_potential_energy()), temperature_end_K=float(atoms.get_temperature()))
    if spec["calc"] == "mtzoo":
        res.update(nl_builds=calc.nl_builds, nl_reuses=calc.nl_reuses)
    else:  # which neighbour-list builder DeepPot picked (None: its native all-pairs search)
        builder = getattr(getattr(calc.dp, "deep_eval", None), "_nlist_builder", "unknown")
        res["deepmd_nlist_builder"] = "native" if builder is None else str(getattr(builder, "__class__", builder).__name__)
    return res


def run_worker(python: str, spec: dict, workdir: Path, env_extra: dict | None = None) -> dict:
    path = workdir / "spec.json"
    path.write_text(json.dumps(spec))
    env = dict(os.environ, **(env_extra or {}))
    out = subprocess.run([python, str(Path(__file__).resolve()), "--worker", str(path)], capture_output=True,
                         text=True, env=env, cwd=workdir)
    if out.returncode != 0:
        raise RuntimeError(f"{spec['calc']} MD worker failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------
def water_models(peer: str, shared: Path, steps: int, workdir: Path, frozen: Path | None = None) -> tuple[Path, Path]:
    """DeePMD-kit water model (``.pth``; trained ``steps`` steps and frozen unless ``frozen`` is given) and the same weights as an mtzoo file."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_deepmd import deepmd_freeze, deepmd_train

    from mtzoo.zoo.deepmd_import import model_from_deepmd
    from mtzoo.zoo.frozen import save_model

    dp_dir = workdir / "deepmd-train"
    t0 = time.perf_counter()
    if frozen is None:
        deepmd_train(peer, shared, steps, dp_dir)  # peers/deepmd_time.py train: `dp --pt train`
        frozen = deepmd_freeze(peer, dp_dir)  # `dp --pt freeze -o frozen.pth`
        log(f"DeePMD-kit: trained {steps} steps and froze in {time.perf_counter() - t0:.0f} s")
    dp_dir.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([str(Path(peer).parent / "dp"), "convert-backend", str(frozen), "frozen.dp"], cwd=dp_dir,
                         capture_output=True, text=True, env=dict(os.environ))
    if out.returncode != 0:
        raise RuntimeError(f"dp convert-backend failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    mt = save_model(model_from_deepmd(dp_dir / "frozen.dp").eval(), workdir / "water-mtzoo.pth",
                    metadata={"source": "DeePMD-kit frozen.dp via mtzoo.zoo.deepmd_import"})
    return frozen, mt


def molecular_model(workdir: Path, train_steps: int) -> tuple[Path, dict]:
    """The zoo's molecular model (head ``pbe``) if present, else a model of its size trained briefly."""
    from mtzoo.training.trainer import train
    from mtzoo.zoo.frozen import freeze, save_model
    from mtzoo.zoo.registry import list_pretrained, load_pretrained

    name, head = ZOO_MOLECULAR
    entry = next((e for e in list_pretrained() if e["name"] == name), None)
    if entry is not None:
        model = load_pretrained(name, head=head, dtype="float64")  # sha256 checked
        return save_model(model, workdir / "molecule.pth"), {
            "model": f"zoo {name}, head {head}", "label": "zoo model", "zoo_version": entry.get("version"),
            "zoo_sha256": entry.get("sha256"), "descriptor": entry.get("descriptor"), "cutoff": entry.get("cutoff")}
    systems = [str(p) for p in sorted(MOL_DATA.glob("*/train"))]
    cfg = {
        "model": {"type_map": ["H", "C", "N", "O"],
                  "descriptor": {"type": "se_e2_a", "sel": [6, 2, 1, 1], "rcut": 5.0, "rcut_smth": 0.5,
                                 "neuron": [16, 32], "axis_neuron": 4, "type_one_side": True, "seed": 1},
                  "fitting_net": {"neuron": [64, 64, 64], "resnet_dt": True, "seed": 1}},
        "learning_rate": {"type": "exp", "start_lr": 1e-3, "stop_lr": 1e-5, "decay_steps": max(1, train_steps // 5)},
        "loss": {"type": "ener", "start_pref_e": 0.2, "limit_pref_e": 20, "start_pref_f": 100, "limit_pref_f": 1},
        "training": {"training_data": {"systems": systems, "batch_size": 1}, "numb_steps": train_steps,
                     "disp_freq": max(1, train_steps // 5), "save_freq": train_steps, "seed": 1},
    }
    inp = workdir / "molecule-input.json"
    inp.write_text(json.dumps(cfg, indent=1))
    train(inp, workdir=workdir / "molecule-train", progress=False)
    path = freeze(workdir / "molecule-train", workdir / "molecule.pth")
    return Path(path), {"model": f"{name} not in the zoo: a model of its size (se_e2_a rcut 5, neuron [16, 32], "
                                 f"axis_neuron 4; ener [64, 64, 64]) trained {train_steps} steps on "
                                 "examples/data/molecules/dft/*/train (speed only)",
                          "label": f"{train_steps}-step model"}


# ----------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------
def write_frame(atoms, path: Path, temperature_K: float, seed: int) -> Path:
    """``atoms`` with Maxwell-Boltzmann momenta (seeded, zero total momentum) as ``.npz``."""
    import ase.md.velocitydistribution as vd

    atoms = atoms.copy()
    # thermalize_momenta (ASE >= 3.28) replaces MaxwellBoltzmannDistribution
    (getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution)(
        atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    vd.Stationary(atoms)
    np.savez(path, numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell[:], pbc=atoms.pbc,
             momenta=atoms.get_momenta())
    return path


def water_frame(shared: Path, type_map: list[str], repeat: int):
    return first_frame_atoms(shared / FRAME, type_map, repeat)


def versions(peer: str) -> dict:
    import ase
    import torch

    import mtzoo

    peer_v = subprocess.run([peer, "-c", "import deepmd, torch, ase; print(deepmd.__version__, torch.__version__, "
                                         "ase.__version__)"], capture_output=True, text=True).stdout.split()
    return {"mtzoo": mtzoo.__version__, "torch": torch.__version__, "ase": ase.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0],
            "peer": dict(zip(("deepmd_kit", "torch", "ase"), peer_v)) if len(peer_v) == 3 else None}






def summarise(rounds: list[dict], sides: list[str]) -> dict:
    med = {s: float(np.median([r[s]["ns_per_day"] for r in rounds])) for s in sides}
    out = {"ns_per_day_median": med,
           "ms_per_step_median": {s: float(np.median([r[s]["ms_per_step"] for r in rounds])) for s in sides},
           "ns_per_day_rounds": {s: [r[s]["ns_per_day"] for r in rounds] for s in sides}}
    for m in MTZOO_SIDES:
        if m in sides:
            out[f"ratio_{m}_over"] = {s: med[m] / med[s] for s in sides if s not in MTZOO_SIDES}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--peer-python", default="/tmp/mtzoo-peers/deepmd/bin/python")
    p.add_argument("--deepmd-vesin", type=Path, default=None,
                   help="folder with vesin + vesin-torch (pip install --target DIR vesin vesin-torch): also time "
                        "DeePMD-kit with its O(N) vesin neighbour list")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per system (default 3)")
    p.add_argument("--steps-small", type=int, default=50, help="MD steps per round, 192-atom box (default 50)")
    p.add_argument("--steps-large", type=int, default=6, help="MD steps per round, 1536-atom box (default 6)")
    p.add_argument("--mol-steps", type=int, default=2000, help="MD steps per round, molecule (default 2000)")
    p.add_argument("--timestep", type=float, default=0.5, help="fs (default 0.5)")
    p.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs (default 0.01)")
    p.add_argument("--skin", type=float, default=1.0, help="mtzoo Verlet skin, A (default 1)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls on the start frame per run (default 3; "
                   "DeePMD-kit's 1st-3rd calls are 2-6x slower than later ones)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-steps", type=int, default=20, help="dp --pt train steps for the water model (default 20)")
    p.add_argument("--dp-model", type=Path, default=None,
                   help="reuse this frozen DeePMD-kit water se_e2_a model (.pth) instead of training one")
    p.add_argument("--mol-train-steps", type=int, default=50, help="steps of the fallback molecular model")
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker.read_text()))))
        return

    shared = args.shared.resolve()
    peer = args.peer_python
    if not (shared / INPUT).is_file() or not (shared / FRAME).is_dir():
        print(f"skipped: DeePMD water example not found under {shared} (give --shared)")
        return
    if not Path(peer).exists() or not (shared / "peers/deepmd_time.py").is_file():
        print(f"skipped: DeePMD-kit peer not found ({peer}); run shared/peers/deepmd_setup.sh")
        return
    sides = ["mtzoo", "mtzoo_compressed", "deepmd"]
    vesin_env = None
    if args.deepmd_vesin is not None:
        vesin_dir = args.deepmd_vesin.resolve()
        if not (vesin_dir / "vesin").is_dir():
            raise SystemExit(f"--deepmd-vesin {vesin_dir}: no vesin package there "
                             f"(pip install --target {vesin_dir} vesin vesin-torch)")
        vesin_env = {"PYTHONPATH": os.pathsep.join(filter(None, (str(vesin_dir), os.environ.get("PYTHONPATH"))))}
        sides.append("deepmd_vesin")

    import torch

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="mtzoo-md-speed-") if args.workdir is None else None
    workdir = Path(tmp.name) if tmp else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    info = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "threads_per_process": 1,
            "load_average_start": os.getloadavg(), **versions(peer)}
    log(f"machine: {info}")

    dp_model, mt_model = water_models(peer, shared, args.train_steps, workdir,
                                      args.dp_model.resolve() if args.dp_model else None)
    pythons = {"mtzoo": sys.executable, "mtzoo_compressed": sys.executable, "deepmd": peer, "deepmd_vesin": peer}
    models = {"mtzoo": str(mt_model), "mtzoo_compressed": str(mt_model), "deepmd": str(dp_model),
              "deepmd_vesin": str(dp_model)}
    envs = {"deepmd_vesin": vesin_env}
    md = {"timestep_fs": args.timestep, "temperature_K": args.temperature, "friction_per_fs": args.friction,
          "seed": args.seed, "skin": args.skin, "warmup": args.warmup}

    def spec(side: str, frame: Path, steps: int, **kw) -> dict:
        return {"calc": "mtzoo" if side in MTZOO_SIDES else "deepmd", "model": models[side], "frame": str(frame),
                "steps": steps, "compress": side == "mtzoo_compressed", **md, **kw}

    type_map = ["O", "H"]
    frames = {rep: write_frame(water_frame(shared, type_map, rep), workdir / f"water-x{rep}.npz", args.temperature,
                               args.seed) for rep in (1, 2)}

    # same weights: energy and forces of both calculators on the 192-atom start frame, before timing
    check = {}
    for side in ("mtzoo", "deepmd"):
        res = run_worker(pythons[side], spec(side, frames[1], 0, forces_out=str(workdir / f"f0-{side}.npy"), warmup=1),
                         workdir, envs.get(side))
        check[side] = {"energy": res["energy_start"], "forces": np.load(workdir / f"f0-{side}.npy")}
    de = check["mtzoo"]["energy"] - check["deepmd"]["energy"]
    df = float(np.abs(check["mtzoo"]["forces"] - check["deepmd"]["forces"]).max())
    parity = {"natoms": 192, "energy_mtzoo_eV": check["mtzoo"]["energy"], "energy_deepmd_eV": check["deepmd"]["energy"],
              "energy_diff_eV": de, "force_max_abs_diff_eV_per_A": df}
    print(f"same weights, 192-atom start frame: E mtzoo {check['mtzoo']['energy']:.10f} eV, DeePMD-kit "
          f"{check['deepmd']['energy']:.10f} eV, difference {de:.2e} eV; max |dF| {df:.2e} eV/A", flush=True)
    if abs(de) > 1e-6 * max(1.0, abs(check["deepmd"]["energy"])) or df > 1e-6:
        raise SystemExit("the two models differ: not the same weights, timings would not be comparable")

    cases = {}
    for rep, steps in ((1, args.steps_small), (2, args.steps_large)):
        case_sides = sides if rep == 2 else [s for s in sides if s != "deepmd_vesin"]
        rounds = []
        for r in range(args.rounds):
            row = {}
            for side in case_sides:
                row[side] = run_worker(pythons[side], spec(side, frames[rep], steps), workdir, envs.get(side))
                log(f"{row[side]['natoms']} atoms, round {r + 1}/{args.rounds}, {LABELS[side]}: "
                    f"{row[side]['ms_per_step']:.1f} ms/step, {row[side]['ns_per_day']:.4f} ns/day "
                    f"(E start {row[side]['energy_start']:.8f}, end {row[side]['energy_end']:.8f} eV)")
            rounds.append(row)
        natoms = rounds[0]["mtzoo"]["natoms"]
        cases[f"water_{natoms}"] = {"natoms": natoms, "steps_per_round": steps, "replicate": [rep] * 3,
                                    **summarise(rounds, case_sides), "rounds": rounds}

    mol_path, mol_info = molecular_model(workdir, args.mol_train_steps)
    from ase.build import molecule

    mol_frame = write_frame(molecule(MOLECULE), workdir / "molecule.npz", args.temperature, args.seed)
    models["mtzoo"] = models["mtzoo_compressed"] = str(mol_path)
    mol_rounds = []
    for r in range(args.rounds):
        row = {}
        for side in MTZOO_SIDES:
            res = row[side] = run_worker(sys.executable, spec(side, mol_frame, args.mol_steps), workdir)
            log(f"{MOLECULE}, round {r + 1}/{args.rounds}, {LABELS[side]}: {res['ms_per_step']:.2f} ms/step, "
                f"{res['ns_per_day']:.3f} ns/day")
        mol_rounds.append(row)
    cases["molecule"] = {"molecule": MOLECULE, "natoms": mol_rounds[0]["mtzoo"]["natoms"],
                         "steps_per_round": args.mol_steps, **mol_info, **summarise(mol_rounds, list(MTZOO_SIDES)),
                         "rounds": mol_rounds}

    result = {
        "benchmark": "MD speed (ASE Langevin), mtzoo's ASE calculator beside DeePMD-kit's DP calculator",
        "date": datetime.date.today().isoformat(), "commit": git_commit(),
        "command": " ".join(shlex.quote(a) for a in ["python", "benchmarks/md_speed.py", *sys.argv[1:]]),
        "machine": {**info, "load_average_end": os.getloadavg()},
        "md": {"integrator": "ase.md.langevin.Langevin", **md, "precision": "float64",
               "timed": "Langevin.run(steps) wall clock, after --warmup untimed calls on the start frame; "
                        "a fresh process per run; rounds interleaved"},
        "water_model": {"input": "examples/water/se_e2_a/input_torch.json", "dp_train_steps": None if args.dp_model else args.train_steps,
                        "dp_model_reused": str(args.dp_model) if args.dp_model else None,
                        "deepmd": "dp --pt train / dp --pt freeze -> frozen.pth, deepmd.calculator.DP(model=frozen.pth)",
                        "mtzoo": "dp convert-backend frozen.pth frozen.dp -> mtzoo.zoo.deepmd_import.model_from_deepmd "
                                 "-> MTZooCalculator(dtype=float64, skin)",
                        "frame": "examples/water/data/data_3 frame 0 (x1 and 2x2x2)", "parity": parity},
        "deepmd_neighbor_list": {"deepmd": "native dense all-pairs (no vesin in the peer venv)",
                                 "deepmd_vesin": "vesin.torch O(N) (nlist_backend='auto' with vesin on PYTHONPATH)"},
        "cases": cases, "wall_total_s": time.perf_counter() - t_start,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{result['date']}-md-speed.json"
    path.write_text(json.dumps(result, indent=2) + "\n")

    head = f"{'system':28s} {'atoms':>6s} {'steps':>6s}" + "".join(f" {LABELS[s] + ' ns/day':>26s}" for s in sides)
    dp_sides = [s for s in sides if s not in MTZOO_SIDES]
    print(head + "".join(f" {LABELS[m] + ' / ' + LABELS[s]:>36s}" for m in MTZOO_SIDES for s in dp_sides))
    for key, c in cases.items():
        name = f"ethanol, {c['label']}" if key == "molecule" else f"water box x{c['replicate'][0] ** 3}"
        line = f"{name:28s} {c['natoms']:6d} {c['steps_per_round']:6d}"
        for s in sides:
            v = c["ns_per_day_median"].get(s)
            line += f" {v:26.4f}" if v is not None else f" {'-':>26s}"
        for m in MTZOO_SIDES:
            for s in dp_sides:
                v = c.get(f"ratio_{m}_over", {}).get(s)
                line += f" {v:35.2f}x" if v is not None else f" {'-':>36s}"
        print(line)
    print(f"wrote {path} ({result['wall_total_s']:.0f} s)")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
