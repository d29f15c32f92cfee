"""Descriptors at equal training steps on DeePMD-kit's water examples (energy/force, dipole, polar).

Energy/force: each descriptor trains from DeePMD-kit's own water input for it (the shared
``examples/water/*/input*.json``), with ``numb_steps = --steps`` and the *same* learning-rate
schedule, loss prefactors, batch size (one 192-atom frame) and batch order for all, then its frozen
model is evaluated with :func:`mtzoo.evaluation.evaluate` on every frame of ``data_3`` (80 frames,
the inputs' validation system).  Also timed: the median seconds per training step (optimizer step
only, from :class:`~mtzoo.training.trainer.Trainer`) and one energy+force call (no virial) on the
first frame of ``data_3`` (192 atoms).  The RMSEs of trivial predictors (constant energy per atom,
zero force, constant tensor) are written beside them (``baselines``).

Tensors: the ``water_tensor`` dipole and polar inputs (``dipole_input.json``, ``polar_input.json``:
the ``*_torch.json`` variants select the oxygen atoms with a model-level ``atom_exclude_types``,
which mtzoo does not read yet) with the descriptor section replaced by each descriptor's (cut-off
radii set to the tensor input's), evaluated on both validation systems.  Descriptors without axis
vectors or e3nn features (``se_e2_r``, ``se_e3``) cannot carry a tensor head: the error mtzoo
raises at build time is recorded instead of figures.

Writes ``benchmarks/results/YYYY-MM-DD-descriptors-water-<steps>steps.json``.  At one thread on the
project's machine ``--steps 100`` takes ~30 min, two thirds of it se_atten and se_atten_v2 (~4 s per
step each).

    OMP_NUM_THREADS=1 python benchmarks/descriptors_water.py --steps 100 [--seeds 1] [--shared ../shared]

Overrides applied to every shipped input (recorded in the JSON): ``numb_steps``; the
``learning_rate`` section of ``se_e2_a/input_torch.json`` (energy) or of the tensor input
(tensors), so that the decay is computed for the same number of steps; descriptor and fitting
``seed`` = each of ``--seeds``, training ``seed`` = 9 + seed (seed 1 = se_e2_a's input as shipped);
``batch_size`` 1 (what ``"auto"`` gives for 192 atoms); ``disp_freq``/``save_freq``; no
``stat_file``.  One thread (``torch.set_num_threads(1)``).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import sys
import time
import traceback
from pathlib import Path

from _common import git_commit  # benchmarks/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parents[1]
WATER = Path("data/deepmd-examples/examples/water")
TENSOR = Path("data/deepmd-examples/examples/water_tensor")

#: Energy/force runs: name -> (shipped input under ``WATER``, descriptor type it must hold).
ENERGY_INPUTS = {
    "se_e2_a": ("se_e2_a/input_torch.json", "se_e2_a"),
    "se_e2_r": ("se_e2_r/input.json", "se_e2_r"),
    "se_e3": ("se_e3/input.json", "se_e3"),
    "se_atten": ("se_atten/input_torch.json", "dpa1"),
    "se_atten_v2": ("se_atten/input.json", "se_atten_v2"),
    "hybrid": ("hybrid/input.json", "hybrid"),
    "e3nn_mp": ("se_e2_a/input_torch.json", "se_e2_a"),
}

#: The e3nn_mp descriptor of these benchmarks: NequIP-like but small (two layers of rcut 4: an
#: 8 A receptive field), chosen so that one training step costs less than 2x se_e2_a's on this data
#: (measured 1.7-1.8x; in trial steps at one thread rcut 5 with the same irreps cost ~3x, and lmax 1
#: without 2e cannot carry a polarizability).
E3NN_DESCRIPTOR = {"type": "e3nn_mp", "rcut": 4.0, "lmax": 2, "num_layers": 2,
                   "hidden_irreps": "16x0e + 8x1o + 4x2e", "n_radial": 8, "radial_neurons": [32]}

#: Tensor runs: kind -> shipped input under ``TENSOR``.
TENSOR_INPUTS = {"dipole": "dipole/dipole_input.json", "polar": "polar/polar_input.json"}
TENSOR_DESCRIPTORS = ("se_e2_a", "se_e2_r", "se_e3", "se_atten", "e3nn_mp")

#: The learning-rate section every energy run uses (that of se_e2_a/input_torch.json).
LR_SOURCE = "se_e2_a/input_torch.json"


def _absolute_systems(cfg: dict, base: Path) -> None:
    for part in ("training_data", "validation_data"):
        cfg["training"][part]["systems"] = [str((base / p).resolve()) for p in cfg["training"][part]["systems"]]


def _common_overrides(cfg: dict, steps: int, seed: int) -> None:
    """numb_steps, seeds, batch size 1, display/save frequencies, no stat file."""
    model, training = cfg["model"], cfg["training"]
    if "seed" in model["descriptor"] or model["descriptor"]["type"] != "hybrid":
        model["descriptor"]["seed"] = seed
    for member in model["descriptor"].get("list", []):
        member["seed"] = seed
    model["fitting_net"]["seed"] = seed
    training.update(numb_steps=steps, seed=9 + seed, save_freq=steps, disp_freq=max(steps // 2, 1))
    training["training_data"]["batch_size"] = 1
    for key in ("stat_file", "disp_training", "time_training", "profiling", "profiling_file"):
        training.pop(key, None)


def energy_config(shared: Path, name: str, steps: int, seed: int) -> tuple[dict, dict]:
    """The input of energy run ``name`` with the overrides; and a record of where it came from.

    Parameters
    ----------
    shared : Path
        The shared folder (holds ``data/deepmd-examples``).
    name : str
        A key of :data:`ENERGY_INPUTS`.
    steps, seed : int
        ``numb_steps`` and the seed (descriptor/fitting ``seed``; training seed ``9 + seed``).

    Returns
    -------
    cfg : dict
        The input, with absolute data paths.
    source : dict
        ``input`` (path under ``examples/water``), ``changes`` (what differs from the shipped file).
    """
    rel, expected = ENERGY_INPUTS[name]
    path = shared / WATER / rel
    cfg = json.loads(path.read_text())
    if cfg["model"]["descriptor"]["type"] != expected:
        raise ValueError(f"{path}: expected descriptor type {expected!r}, got {cfg['model']['descriptor']['type']!r}")
    changes = [f"numb_steps={steps}", f"seeds: descriptor/fitting {seed}, training {9 + seed}", "batch_size=1"]
    lr_ref = json.loads((shared / WATER / LR_SOURCE).read_text())["learning_rate"]
    if {k: v for k, v in cfg["learning_rate"].items() if not k.startswith("_")} != \
            {k: v for k, v in lr_ref.items() if not k.startswith("_")}:
        changes.append(f"learning_rate from {LR_SOURCE} (shipped start_lr {cfg['learning_rate'].get('start_lr')})")
    cfg["learning_rate"] = dict(lr_ref)
    if name == "e3nn_mp":
        cfg["model"]["descriptor"] = dict(E3NN_DESCRIPTOR)
        changes.append("descriptor replaced by E3NN_DESCRIPTOR")
    _common_overrides(cfg, steps, seed)
    _absolute_systems(cfg, path.parent)
    return cfg, {"input": f"examples/water/{rel}", "changes": changes}


def tensor_config(shared: Path, kind: str, name: str, steps: int, seed: int) -> tuple[dict, dict]:
    """The ``kind`` (dipole/polar) input with descriptor ``name`` (its section from the energy
    input, ``rcut``/``rcut_smth`` set to the tensor input's; as shipped for ``se_e2_a``)."""
    rel = TENSOR_INPUTS[kind]
    path = shared / TENSOR / rel
    cfg = json.loads(path.read_text())
    shipped = cfg["model"]["descriptor"]
    changes = [f"numb_steps={steps}", f"seeds: descriptor/fitting {seed}, training {9 + seed}", "batch_size=1"]
    if name != shipped["type"]:
        desc = copy.deepcopy(energy_config(shared, name, steps, seed)[0]["model"]["descriptor"])
        if desc["type"] == "hybrid":
            raise ValueError("hybrid: no single cut-off radius to take from the tensor input")
        desc["rcut"] = shipped["rcut"]
        if "rcut_smth" in desc:
            desc["rcut_smth"] = shipped["rcut_smth"]
        cfg["model"]["descriptor"] = desc
        origin = "E3NN_DESCRIPTOR" if name == "e3nn_mp" else f"descriptor from {ENERGY_INPUTS[name][0]}"
        changes.append(f"{origin} with rcut {shipped['rcut']}"
                       + (f", rcut_smth {shipped['rcut_smth']}" if "rcut_smth" in desc else ""))
    _common_overrides(cfg, steps, seed)
    _absolute_systems(cfg, path.parent)
    return cfg, {"input": f"examples/water_tensor/{rel}", "changes": changes}


def count_parameters(model) -> dict[str, int]:
    """Trainable parameters of the descriptor and of all heads."""
    n = lambda m: int(sum(p.numel() for p in m.parameters()))  # noqa: E731
    return {"descriptor": n(model.descriptor), "heads": n(model.heads)}


def time_inference(model, system, calls: int = 10) -> dict[str, float]:
    """Median ms of one energy+force call (no virial) on the first frame of ``system``.

    ``graph_prebuilt_ms``: the inference path (``Predictor``) on a graph built before the timer;
    ``with_neighbor_list_ms``: neighbour list + graph + forward.
    """
    import numpy as np

    from mtzoo.data.graph import collate, frame_to_graph
    from mtzoo.model import Predictor

    predict = Predictor(model)  # the inference path (Model.forward is the autograd reference)
    atom_type = system.model_types(model.type_map)
    batch = collate([frame_to_graph(system, 0, atom_type, model.rcut)])
    for _ in range(3):
        predict(batch, forces=True, virial=False)
    pre, full = [], []
    for _ in range(calls):
        t0 = time.perf_counter()
        predict(batch, forces=True, virial=False)
        pre.append(time.perf_counter() - t0)
    for _ in range(calls):
        t0 = time.perf_counter()
        predict(collate([frame_to_graph(system, 0, atom_type, model.rcut)]), forces=True, virial=False)
        full.append(time.perf_counter() - t0)
    return {"graph_prebuilt_ms": 1e3 * float(np.median(pre)), "with_neighbor_list_ms": 1e3 * float(np.median(full)),
            "natoms": int(system.natoms), "calls": calls}


def train_and_test(cfg: dict, workdir: Path, test_paths: list[Path], energy: bool) -> dict:
    """Train ``cfg`` in ``workdir``, freeze, evaluate on ``test_paths`` (and time inference for energy)."""
    from mtzoo.data.readers import load_systems
    from mtzoo.evaluation import evaluate
    from mtzoo.training.trainer import Trainer
    from mtzoo.zoo.frozen import freeze, load_model

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "input.json").write_text(json.dumps(cfg, indent=1) + "\n")
    t0 = time.perf_counter()
    trainer = Trainer(cfg, workdir, progress=False, log=lambda *a: None)
    setup = time.perf_counter() - t0
    res = trainer.run()
    model = load_model(freeze(workdir, workdir / "frozen_model.pth"))
    systems = load_systems(test_paths)
    t0 = time.perf_counter()
    ev = evaluate(model, systems, batch_size=1, progress=False)
    out = {"setup_s": setup, "train_wall_s": res["wall_s"], "s_per_step_median": res["s_per_step_median"],
           "eval_s": time.perf_counter() - t0, "parameters": count_parameters(model),
           "lcurve_last": {"step": res.get("step"), "valid": res.get("valid")}}
    if energy:
        tot = ev["total"]
        out.update(energy_rmse_per_atom_meV=1e3 * tot["energy_per_atom"]["rmse"],
                   energy_mae_per_atom_meV=1e3 * tot["energy_per_atom"]["mae"],
                   force_rmse=tot["force"]["rmse"], force_mae=tot["force"]["mae"],
                   test_frames=sum(r["nframes"] for r in ev["systems"]),
                   inference=time_inference(model, systems[0]))
    else:
        out["metrics"] = {k: v for k, v in ev["total"].items()}
        out["systems"] = [{"name": Path(r["name"]).name, "nframes": r["nframes"],
                           **{k: v for k, v in r.items() if isinstance(v, dict)}} for r in ev["systems"]]
        out["sel_type"] = ev.get("sel_type")
    return out


def _run(label: str, build, workdir: Path, test_paths: list[Path], energy: bool) -> dict:
    """One run; an exception is recorded (``error``, first line) instead of figures."""
    try:
        cfg, source = build()
    except Exception as exc:  # noqa: BLE001 - recorded in the results
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    try:
        row = {**source, **train_and_test(cfg, workdir, test_paths, energy)}
    except Exception as exc:  # noqa: BLE001 - e.g. a tensor head on a descriptor without axis vectors
        traceback.print_exc()
        row = {**source, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    print(f"{label}: " + json.dumps({k: v for k, v in row.items() if k not in ("systems", "lcurve_last")}), flush=True)
    return row


def _median(rows: list[dict], key: str) -> float | None:
    import numpy as np

    vals = [r[key] for r in rows if r.get(key) is not None]
    return float(np.median(vals)) if vals else None


def summarise(energy: dict, tensor: dict) -> dict:
    """Medians over seeds of the headline figures."""
    import numpy as np

    out = {"energy": {}, "dipole": {}, "polar": {}}
    for name, rows in energy.items():
        ok = [r for r in rows if "error" not in r]
        if not ok:
            out["energy"][name] = {"error": rows[0]["error"]}
            continue
        out["energy"][name] = {k: _median(ok, k) for k in ("energy_rmse_per_atom_meV", "force_rmse", "s_per_step_median")}
        out["energy"][name]["ef_ms_192"] = float(np.median([r["inference"]["graph_prebuilt_ms"] for r in ok]))
        out["energy"][name]["ef_ms_192_with_nlist"] = float(np.median([r["inference"]["with_neighbor_list_ms"] for r in ok]))
        out["energy"][name]["parameters"] = ok[0]["parameters"]
    for kind, by_desc in tensor.items():
        for name, rows in by_desc.items():
            ok = [r for r in rows if "error" not in r]
            if not ok:
                out[kind][name] = {"error": rows[0]["error"]}
                continue
            keys = sorted({k for r in ok for k in r["metrics"]})
            out[kind][name] = {f"{k}_rmse": float(np.median([r["metrics"][k]["rmse"] for r in ok if k in r["metrics"]]))
                               for k in keys}
            out[kind][name]["s_per_step_median"] = _median(ok, "s_per_step_median")
            out[kind][name]["parameters"] = ok[0]["parameters"]
    return out


def label_baselines(shared: Path) -> dict:
    """RMSE of trivial predictors on the test labels, to read the errors against.

    Energy: the best constant energy per atom (= the standard deviation of E/N over ``data_3``,
    meV/atom); forces: zero (= the RMS force, eV/A); tensors: the best constant per component
    (the frame tensor over the global system, the atomic tensor over the selected atoms, type 0).
    """
    import numpy as np

    from mtzoo.data.readers import load_systems

    (water,) = load_systems([shared / WATER / "data/data_3"])
    e = water.labels["energy"] / water.natoms
    out = {"energy_rmse_per_atom_meV_constant": 1e3 * float(np.std(e)),
           "force_rmse_zero": float(np.sqrt(np.mean(water.labels["force"] ** 2)))}
    for kind, (frame_key, atom_key) in {"dipole": ("dipole", "atomic_dipole"),
                                        "polar": ("polarizability", "atomic_polarizability")}.items():
        base = shared / TENSOR / kind / "validation_data_reformat"
        (glob,) = load_systems([base / "global_system"])
        (atomic,) = load_systems([base / "atomic_system"])
        g = glob.labels[frame_key].reshape(glob.labels[frame_key].shape[0], -1)
        a = atomic.labels[atom_key][:, atomic.model_types(["O", "H"]) == 0].reshape(-1, g.shape[1])
        out[kind] = {f"{frame_key}_rmse_constant": float(np.sqrt(np.mean((g - g.mean(0)) ** 2))),
                     f"{atom_key}_rmse_constant": float(np.sqrt(np.mean((a - a.mean(0)) ** 2)))}
    return out




def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100, help="numb_steps of every energy/force run")
    p.add_argument("--tensor-steps", type=int, default=None, help="numb_steps of the tensor runs (default: --steps)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--descriptors", nargs="+", default=list(ENERGY_INPUTS), choices=list(ENERGY_INPUTS))
    p.add_argument("--tensor-descriptors", nargs="*", default=list(TENSOR_DESCRIPTORS), choices=list(ENERGY_INPUTS))
    p.add_argument("--tensors", nargs="*", default=list(TENSOR_INPUTS), choices=list(TENSOR_INPUTS))
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/mtzoo-descriptors"))
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--no-write", action="store_true", help="print only (for trial runs)")
    args = p.parse_args()
    shared = args.shared.resolve()
    if not (shared / WATER).is_dir():
        sys.exit(f"skipped: shared DeePMD data not found under {args.shared}")
    import torch

    torch.set_num_threads(1)
    tsteps = args.tensor_steps or args.steps
    t_start, load_start, commit = time.perf_counter(), os.getloadavg(), git_commit()
    energy: dict[str, list[dict]] = {}
    val = [shared / WATER / "data/data_3"]
    for name in args.descriptors:
        energy[name] = [_run(f"energy {name} seed {s}", lambda n=name, s=s: energy_config(shared, n, args.steps, s),
                             args.workdir / f"ener-{name}-{s}", val, True) for s in args.seeds]
    tensor: dict[str, dict[str, list[dict]]] = {}
    for kind in args.tensors:
        tval = [shared / TENSOR / kind / "validation_data_reformat" / d for d in ("atomic_system", "global_system")]
        tensor[kind] = {name: [_run(f"{kind} {name} seed {s}",
                                    lambda k=kind, n=name, s=s: tensor_config(shared, k, n, tsteps, s),
                                    args.workdir / f"{kind}-{name}-{s}", tval, False) for s in args.seeds]
                        for name in args.tensor_descriptors}
    result = {"benchmark": "descriptors-water", "date": datetime.date.today().isoformat(),
              "commit": commit, "commit_at_end": git_commit(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "steps": args.steps, "tensor_steps": tsteps, "seeds": args.seeds,
              "e3nn_descriptor": E3NN_DESCRIPTOR, "learning_rate_source": f"examples/water/{LR_SOURCE}",
              "energy_test_system": "examples/water/data/data_3, every frame",
              "tensor_test_systems": "examples/water_tensor/<kind>/validation_data_reformat/{atomic,global}_system",
              "total_wall_s": time.perf_counter() - t_start, "load_average_start": load_start,
              "load_average_end": os.getloadavg(), "logical_cpus": os.cpu_count(),
              "baselines": label_baselines(shared), "summary": summarise(energy, tensor),
              "energy": energy, "tensor": tensor}
    text = json.dumps(result, indent=2) + "\n"
    print(json.dumps(result["summary"], indent=2))
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{result['date']}-descriptors-water-{args.steps}steps.json"
        path.write_text(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
