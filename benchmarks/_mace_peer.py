"""MACE side of ``bench_mace.py``: runs in MACE's own virtual environment (mace-torch pins e3nn 0.4.4).

Not imported by mtzoo and imports nothing from it.  Started by ``bench_mace.py`` as

    PEER_PYTHON benchmarks/_mace_peer.py --frames FRAMES.npz --dtype float64 --config JSON

It builds a ``ScaleShiftMACE`` (what ``mace_run_train --model MACE`` builds) from ``--config``,
the graphs of the frames with MACE's own ``AtomicData.from_config`` (neighbour list outside every
timed region), warms up, prints one line ``@@ {json}`` (parameter count, versions, edges) and then
answers commands read from stdin, one per line, each with one ``@@ {json}`` line:

* ``infer N``: seconds of N energy + force calls on frame 0
  (``model(batch, training=False, compute_force=True)``);
* ``train N``: seconds of N training steps, frames cycled in order: zero_grad, forward with
  ``training=True`` (forces with ``create_graph``), loss, backward, Adam step;
* ``quit``.

The loss is the one ``bench_mace.py`` uses on the mtzoo side, written out the same way:

.. math::

    L = \\big((E - E_{\\rm ref}) / N\\big)^2 + \\tfrac{1}{3N} \\sum_i |\\mathbf F_i - \\mathbf F_{i,\\rm ref}|^2

``FRAMES.npz`` holds ``numbers`` ``[N]``, ``coord`` ``[F, N, 3]``, ``box`` ``[F, 3, 3]``,
``energy`` ``[F]``, ``force`` ``[F, N, 3]`` (eV, Angstrom).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"  # before torch is imported

import argparse
import json
import platform
import sys
import time

import numpy as np

# mace first: it sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, without which e3nn 0.4.4 cannot load its
# constants under torch >= 2.6
import mace
import torch


def reply(obj: dict) -> None:
    """One protocol line on stdout (other libraries' prints never start with ``@@``)."""
    sys.stdout.write("@@ " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def build(cfg: dict, numbers: np.ndarray, e0: dict[int, float]):
    """``ScaleShiftMACE`` with the benchmark's sizes; the rest as ``mace_run_train --model MACE``."""
    from e3nn import o3
    from mace import modules

    z = sorted(set(int(n) for n in numbers))
    model = modules.ScaleShiftMACE(
        r_max=cfg["r_max"], num_bessel=cfg["num_bessel"], num_polynomial_cutoff=cfg["num_polynomial_cutoff"],
        max_ell=cfg["max_ell"],
        interaction_cls=modules.interaction_classes[cfg["interaction"]],
        interaction_cls_first=modules.interaction_classes[cfg["interaction_first"]],
        num_interactions=cfg["num_interactions"], num_elements=len(z),
        hidden_irreps=o3.Irreps(cfg["hidden_irreps"]), MLP_irreps=o3.Irreps(cfg["MLP_irreps"]),
        atomic_energies=np.array([e0[k] for k in z]), avg_num_neighbors=cfg["avg_num_neighbors"],
        atomic_numbers=z, correlation=cfg["correlation"], gate=modules.gate_dict[cfg["gate"]],
        radial_MLP=cfg["radial_MLP"], atomic_inter_scale=cfg["atomic_inter_scale"],
        atomic_inter_shift=cfg["atomic_inter_shift"],
    )
    return model, z


def graphs(frames: dict, z: list[int], r_max: float) -> list[dict[str, torch.Tensor]]:
    """One MACE batch dict per frame (MACE's own neighbour list and collation)."""
    import ase
    from mace import data as mdata
    from mace import tools
    from mace.tools import torch_geometric

    table = tools.AtomicNumberTable(z)
    out = []
    for f in range(frames["coord"].shape[0]):
        atoms = ase.Atoms(numbers=frames["numbers"], positions=frames["coord"][f], cell=frames["box"][f], pbc=True)
        config = mdata.config_from_atoms(atoms)
        ad = mdata.AtomicData.from_config(config, z_table=table, cutoff=r_max, heads=["Default"])
        b = torch_geometric.Batch.from_data_list([ad]).to_dict()
        dtype = torch.get_default_dtype()
        b["energy"] = torch.tensor([float(frames["energy"][f])], dtype=dtype)
        b["forces"] = torch.as_tensor(frames["force"][f], dtype=dtype)
        out.append(b)
    return out


def infer(model, batch: dict) -> None:
    out = model(batch, training=False, compute_force=True)
    out["forces"].sum().item()


def train_step(model, opt, batch: dict) -> float:
    opt.zero_grad(set_to_none=True)
    out = model(batch, training=True, compute_force=True)
    n = float(batch["positions"].shape[0])
    loss = (((out["energy"] - batch["energy"]) / n) ** 2).mean() + ((out["forces"] - batch["forces"]) ** 2).mean()
    loss.backward()
    opt.step()
    return float(loss.detach())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", required=True)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--config", required=True, help="JSON: the model's sizes (see build)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.set_default_dtype(getattr(torch, args.dtype))
    cfg = json.loads(args.config)
    frames = dict(np.load(args.frames))
    e0 = {int(k): float(v) for k, v in zip(frames["e0_numbers"], frames["e0"])}
    torch.manual_seed(0)
    model, z = build(cfg, frames["numbers"], e0)
    model = model.to(getattr(torch, args.dtype))
    batches = graphs(frames, z, cfg["r_max"])
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    model.eval()
    for _ in range(args.warmup):
        infer(model, batches[0])
    model.train()
    for i in range(args.warmup):
        train_step(model, opt, batches[i % len(batches)])
    import e3nn

    reply({"ready": True, "params": int(sum(p.numel() for p in model.parameters())),
           "n_edges": int(batches[0]["edge_index"].shape[1]), "natoms": int(batches[0]["positions"].shape[0]),
           "model": type(model).__name__, "dtype": args.dtype, "torch_threads": torch.get_num_threads(),
           "versions": {"mace": mace.__version__, "e3nn": e3nn.__version__, "torch": torch.__version__,
                        "numpy": np.__version__, "python": platform.python_version()}})
    step = args.warmup
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        n = int(words[1])
        times, loss = [], None
        if words[0] == "infer":
            model.eval()
            for _ in range(n):
                t0 = time.perf_counter()
                infer(model, batches[0])
                times.append(time.perf_counter() - t0)
        elif words[0] == "train":
            model.train()
            for _ in range(n):
                t0 = time.perf_counter()
                loss = train_step(model, opt, batches[step % len(batches)])
                times.append(time.perf_counter() - t0)
                step += 1
        else:
            reply({"error": f"unknown command {words[0]!r}"})
            continue
        reply({"times": times, "loss": loss})


if __name__ == "__main__":
    main()
