"""Speed of the fitting nets' inference pass: the packed AVX-512 product against MKL's, in one process.

``FittingNet.value_and_input_grad`` (output and ``d(sum y)/dx`` by hand, one compiled call:
``mtzoo/nn/fitting_ext.cpp``) on the water model's energy nets (input 1480 = the folded se_e2_a
descriptor, hidden [240, 240, 240] with resnet_dt, one output), for the rows of one 192-atom
frame (64 O, 128 H) and of its 2x2x2 replica (512, 1024). Each call is timed twice in a row,
once with ``MTZOO_NO_AVX512=1`` (ATen's matrix products: MKL) and once without (``gemm_ext.cpp``
on CPUs with AVX-512; the flag also puts tanh back on 4 lanes, a few percent of the pass),
alternating which goes first; reported: both medians, the median of the
paired ratios MKL / packed, and the products' rate in GFLOP/s (``4 n (1480 * 240 + 2 * 240^2)``
multiply-adds counted twice per call: forward and input gradient, the output layer left out).

    python benchmarks/fitting_gemm.py [--calls 200] [--out benchmarks/results]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"  # before torch is imported

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import cpu_model, git_commit  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=200, help="timed calls per side and size")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args()
    import torch

    from mtzoo.nn.extension import compiled
    from mtzoo.nn.mlp import FittingNet

    torch.set_num_threads(1)
    ext = compiled()
    if ext is None or not ext.gemm_packed_available():
        print("skipped: the packed AVX-512 product does not run here (no AVX-512, no compiler, or MTZOO_NO_AVX512 set)")
        return
    net = FittingNet(1480, 1, [240, 240, 240], "tanh", True, dtype=torch.float64, seed=1)
    results = {}
    for rows in (64, 128, 512, 1024):
        x = torch.randn(rows, 1480, dtype=torch.float64)
        flops = 4 * rows * (1480 * 240 + 2 * 240 * 240)

        def mkl():
            os.environ["MTZOO_NO_AVX512"] = "1"
            try:
                return net.value_and_input_grad(x)
            finally:
                del os.environ["MTZOO_NO_AVX512"]

        def packed():
            return net.value_and_input_grad(x)

        (y0, g0), (y1, g1) = mkl(), packed()
        diff = max(float((y0 - y1).abs().max()) / float(y0.abs().max()), float((g0 - g1).abs().max()) / float(g0.abs().max()))
        assert diff < 1e-12, f"packed and MKL passes differ by {diff:.2e} relative"
        for _ in range(5):
            mkl(), packed()
        tm, tp = [], []
        calls = max(10, args.calls * 64 // rows)
        for i in range(calls):
            order = ((mkl, tm), (packed, tp)) if i % 2 == 0 else ((packed, tp), (mkl, tm))
            for f, acc in order:
                t0 = time.perf_counter()
                f()
                acc.append(time.perf_counter() - t0)
        tm, tp = np.array(tm), np.array(tp)
        results[str(rows)] = {"mkl_s_median": float(np.median(tm)), "packed_s_median": float(np.median(tp)),
                              "median_paired_ratio": float(np.median(tm / tp)), "calls": calls,
                              "mkl_gflops": flops / float(np.median(tm)) / 1e9,
                              "packed_gflops": flops / float(np.median(tp)) / 1e9, "max_rel_diff": diff}
        r = results[str(rows)]
        print(f"{rows:5d} rows: MKL {1e3 * r['mkl_s_median']:7.3f} ms ({r['mkl_gflops']:5.1f} GFLOP/s), packed "
              f"{1e3 * r['packed_s_median']:7.3f} ms ({r['packed_gflops']:5.1f} GFLOP/s), paired {r['median_paired_ratio']:.2f}x")
    out = {"script": "benchmarks/fitting_gemm.py", "date": datetime.date.today().isoformat(), "commit": git_commit(),
           "machine": {"cpu": cpu_model(), "threads": 1, "torch": torch.__version__},
           "net": "FittingNet(1480, 1, [240, 240, 240], tanh, resnet_dt)", "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{out['date']}-fitting-gemm.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
