"""Why mtzoo keeps kernels of its own: each against the established library that would do its job, in one process.

One thread; in each of ``--rounds`` rounds every side runs ``--calls`` calls in turn (which side goes
first alternates), and the figure per pair is the median over rounds of the per-round ratio
library / ours (> 1: ours is faster).  Cases:

* ``tanh``: the extension's vectorised float64 tanh (``torch.ops.mtzoo.tanh``) against ATen's
  ``torch.tanh`` and against Inductor (``torch.compile(torch.tanh)``, its C++ CPU backend), on
  46,080 elements (one hidden layer of the water fitting net, 192 atoms x 240) and on 10^6;
* ``edge_contract``: se_e2_a's edge contraction :math:`\\mathcal T_n = \\sum_{e \\to n}
  \\hat{\\mathcal R}_e^\\top \\mathcal G_e` (``[E, 4] x [E, 100] -> [N, 4, 100]``) on water's sizes
  (192 centres, 17,664 edges, float64): ours against the torch-ops path (outer product and
  ``index_add``) eagerly and under Inductor;
* ``neighbor_list``: the cell list of ``neighbors_ext.cpp`` against vesin (sorted full list, what
  mtzoo uses without the extension) on DeePMD-kit's 192-atom water frame and its 2x2x2 replica at 6 A
  (needs ``--shared``);
* ``model``: the water se_e2_a model (DeePMD-kit's example input, needs ``--shared``): the
  inference path (``Predictor``: energy, forces, virial on a prebuilt graph), exact and compressed,
  and one force-training gradient (``Model.forward(create_graph=True)`` and the backward of
  :math:`E^2 + |F|^2`), each with the extension against ``MTZOO_EXTENSIONS=0`` (torch ops only).

The fitting nets' packed matrix product (``gemm_ext.cpp``) runs on AVX-512 CPUs only and has its own
script (``benchmarks/fitting_gemm.py``); this one records whether it is active here.

    python benchmarks/kernels_vs_libraries.py [--shared ../shared] [--rounds 7] [--out benchmarks/results]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"  # before torch is imported

import argparse
import copy
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))
from _common import cpu_model, git_commit  # noqa: E402


def compare(sides: dict, rounds: int, calls: int) -> dict:
    """Interleaved timing of ``sides`` (name -> zero-argument callable; the first is ours): per-call
    medians and, for every other side, the median over rounds of its time over ours."""
    for f in sides.values():
        f()
        f()
    per = {k: [] for k in sides}
    names = list(sides)
    for r in range(rounds):
        for k in (names if r % 2 == 0 else names[::-1]):
            t = []
            for _ in range(calls):
                t0 = time.perf_counter()
                sides[k]()
                t.append(time.perf_counter() - t0)
            per[k].append(float(np.median(t)))
    ours = names[0]
    out = {f"{k}_s": float(np.median(v)) for k, v in per.items()}
    for k in names[1:]:
        out[f"{k}_over_{ours}"] = float(np.median(np.array(per[k]) / np.array(per[ours])))
    return out


def with_extension(on: bool, f):
    """``f`` run with the extension (on) or with ``MTZOO_EXTENSIONS=0`` (torch ops), as a callable."""
    def run():
        old = os.environ.get("MTZOO_EXTENSIONS")
        os.environ["MTZOO_EXTENSIONS"] = "1" if on else "0"
        try:
            return f()
        finally:
            if old is None:
                del os.environ["MTZOO_EXTENSIONS"]
            else:
                os.environ["MTZOO_EXTENSIONS"] = old
    return run


def tanh_cases(rounds: int) -> dict:
    import torch

    inductor = torch.compile(torch.tanh, dynamic=False)
    out = {}
    for n, calls in ((192 * 240, 200), (10**6, 20)):
        x = torch.randn(n, dtype=torch.float64)
        assert float((torch.ops.mtzoo.tanh(x) - torch.tanh(x)).abs().max()) < 1e-15
        out[str(n)] = compare({"mtzoo": lambda: torch.ops.mtzoo.tanh(x), "aten": lambda: torch.tanh(x),
                               "inductor": lambda: inductor(x)}, rounds, calls)
    return out


def edge_contract_case(rounds: int) -> dict:
    import torch

    from mtzoo.nn.contract import edge_contract

    n_atoms, per, m = 192, 92, 100
    g = torch.Generator().manual_seed(0)
    e = n_atoms * per
    rr = torch.randn(e, 4, dtype=torch.float64, generator=g)
    rows = torch.randn(e, m, dtype=torch.float64, generator=g)
    row = torch.arange(e)
    dst = torch.arange(n_atoms).repeat_interleave(per)

    def torch_ops(rr, rows, row, dst):
        part = rr.unsqueeze(-1) * rows.index_select(0, row).unsqueeze(1)
        return part.new_zeros(n_atoms, 4, m).index_add_(0, dst, part)

    inductor = torch.compile(torch_ops, dynamic=False)
    want = torch_ops(rr, rows, row, dst)
    for got in (edge_contract(rr, [rows], row, dst, n_atoms, use_compiled=True), inductor(rr, rows, row, dst)):
        assert float((got - want).abs().max()) < 1e-10
    res = compare({"mtzoo": lambda: edge_contract(rr, [rows], row, dst, n_atoms, use_compiled=True),
                   "torch_ops": lambda: torch_ops(rr, rows, row, dst),
                   "inductor": lambda: inductor(rr, rows, row, dst)}, rounds, 20)
    return {"edges": e, "centres": n_atoms, "m": m, **res}


def neighbor_cases(shared: Path, rounds: int) -> dict:
    import torch

    from bench_deepmd import water_atoms
    from mtzoo.data.graph import vesin_neighbor_list
    from mtzoo.nn.extension import compiled

    ext, out = compiled(), {}
    for rep, calls in ((1, 50), (2, 10)):
        atoms = water_atoms(shared, ["O", "H"], rep)
        pos, box = np.ascontiguousarray(atoms.positions), np.ascontiguousarray(atoms.cell.array)
        ei, _ = ext.neighbor_list(torch.from_numpy(pos), torch.from_numpy(box), 6.0)
        ev, _ = vesin_neighbor_list(pos, box, True, 6.0)
        assert ei.shape[1] == ev.shape[1]
        out[str(len(atoms))] = {"edges": int(ev.shape[1]), **compare(
            {"mtzoo": lambda: ext.neighbor_list(torch.from_numpy(pos), torch.from_numpy(box), 6.0),
             "vesin": lambda: vesin_neighbor_list(pos, box, True, 6.0)}, rounds, calls)}
    return out


def model_cases(shared: Path, rounds: int) -> dict:

    from bench_deepmd import mtzoo_model, water_atoms
    from mtzoo import keys as K
    from mtzoo.data.graph import atoms_to_graph, collate
    from mtzoo.model import Predictor
    from mtzoo.zoo.compress import compress_model

    model, type_map = mtzoo_model(shared)
    compressed = copy.deepcopy(model)
    compress_model(compressed)
    batch = collate([atoms_to_graph(water_atoms(shared, type_map, 1), type_map, model.rcut)])
    out = {}
    for name, m in (("exact", model), ("compressed", compressed)):
        predict = Predictor(m)
        a = with_extension(True, lambda: predict(batch))()
        b = with_extension(False, lambda: predict(batch))()
        assert float((a[K.FORCES] - b[K.FORCES]).abs().max()) < 1e-9
        out[f"inference_{name}"] = compare({"mtzoo": with_extension(True, lambda: predict(batch)),
                                            "torch_ops": with_extension(False, lambda: predict(batch))}, rounds, 10)
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        o = model(batch, create_graph=True)
        (o[K.ENERGY].pow(2).sum() + o[K.FORCES].pow(2).sum()).backward()

    out["training_gradient"] = compare({"mtzoo": with_extension(True, step),
                                        "torch_ops": with_extension(False, step)}, rounds, 5)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    from mtzoo.nn.extension import gemm_packed, ops

    if ops() is None:
        sys.exit("the compiled extension is unavailable here: nothing to compare")
    res = {"tanh_float64": tanh_cases(a.rounds), "edge_contract": edge_contract_case(a.rounds)}
    water = a.shared / "data/deepmd-examples/examples/water"
    if water.is_dir():
        res["neighbor_list"] = neighbor_cases(a.shared, a.rounds)
        res["model_water_se_e2_a"] = model_cases(a.shared, a.rounds)
    else:
        print(f"{water} absent: neighbour-list and model cases skipped")
    doc = {"script": "benchmarks/kernels_vs_libraries.py", "date": datetime.date.today().isoformat(),
           "commit": git_commit(), "command": " ".join(sys.argv),
           "machine": {"cpu": cpu_model(), "threads": 1, "torch": torch.__version__,
                       "packed_gemm_active": bool(gemm_packed())},
           "ratio": "library time / mtzoo kernel time, median of per-round ratios (> 1: ours faster)",
           "results": res}
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"{doc['date']}-kernels-vs-libraries.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
