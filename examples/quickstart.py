"""The main job of the quick start: pretrained model -> new CCSD(T) head -> evaluation -> MD.

1. ``mtzoo.load_pretrained("hcno-mf-se-v1")``: the bundled multi-fidelity model for small H/C/N/O
   molecules (heads ``xtb``, ``pbe``, ``pbe_dipole``, ``pbe_polar``; sha256 checked).
2. ``mtzoo.finetune`` with its defaults: add a ``ccsdt`` head, trained on the bundled
   CCSD(T)/cc-pVDZ energies (``examples/data/molecules/ccsdt/*/train``), as the ``pbe`` head
   (frozen copy, bias refitted to the new frames) plus a correction net that starts at zero and
   learns the CCSD(T) - PBE difference; descriptor and old heads unchanged (strategy ``freeze``);
   steps, learning rate and batch size chosen from the data; 20 % of the training frames held
   out to keep the best weights (the choices are printed).
3. ``mtzoo.evaluate`` on the held-out CCSD(T) frames (``*/valid``): the new ``ccsdt`` head beside
   the ``pbe`` head of the same model (PBE is a different level of theory, so it is off by
   roughly the PBE-CCSD(T) difference).
4. A short Langevin MD of ethanol with the ``ccsdt`` head through the ASE calculator, with the
   model compressed (``compress=True``: tabulated embedding nets) for speed (ns/day).

Run from the repository root (about two minutes on one CPU core)::

    OMP_NUM_THREADS=1 python examples/quickstart.py [--md-steps 200] [--out runs/quickstart]

The same with the command line::

    mtzoo finetune -m hcno-mf-se-v1 --train examples/data/molecules/ccsdt/*/train --head ccsdt \\
        --init-from pbe -w runs/ft -o runs/ccsdt.pth
    mtzoo test -m runs/ccsdt.pth --head ccsdt -s examples/data/molecules/ccsdt/water/valid ...
    python examples/md/run_md.py --model runs/ccsdt.pth --head ccsdt --molecule CH3CH2OH --timestep 0.5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
CCSDT = REPO / "examples" / "data" / "molecules" / "ccsdt"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="hcno-mf-se-v1", help="zoo name or model file (default hcno-mf-se-v1)")
    ap.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: finetune's choice)")
    ap.add_argument("--md-steps", type=int, default=200, help="MD steps of 0.5 fs (default 200)")
    ap.add_argument("--out", default="runs/quickstart", help="run folder (default runs/quickstart)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from ase import units
    from ase.build import molecule
    from ase.md.langevin import Langevin
    import ase.md.velocitydistribution as vd

    import mtzoo
    from mtzoo.data.readers import load_systems
    from mtzoo.evaluation import evaluate, format_table

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    out = Path(args.out)
    # 1. the pretrained model
    base = mtzoo.load_pretrained(args.base)
    print(f"[1/4] loaded '{args.base}': heads {base.head_names()}, elements {base.type_map}, rcut {base.rcut} A")

    # 2. a new CCSD(T) head, fine-tuned with replay of the PBE and xTB heads
    train = sorted(str(p) for p in CCSDT.glob("*/train"))
    valid = sorted(str(p) for p in CCSDT.glob("*/valid"))
    t0 = time.perf_counter()
    path = mtzoo.finetune(args.base, train, head_name="ccsdt", init_from="pbe", steps=args.steps, seed=1,
                          workdir=out / "finetune", output=out / "hcno-ccsdt.pth",
                          log=lambda msg: print("      " + msg))
    nframes = sum(s.nframes for s in load_systems(train))
    print(f"[2/4] fine-tuned head 'ccsdt' on {nframes} CCSD(T) frames in "
          f"{time.perf_counter() - t0:.0f} s -> {path}")

    # 3. evaluation on held-out CCSD(T) frames
    model = mtzoo.load_pretrained(path)
    test = load_systems(valid)
    res_cc = evaluate(model, test, head="ccsdt", progress=False)
    res_pbe = evaluate(model, test, head="pbe", progress=False)
    print("[3/4] test on the held-out CCSD(T) frames:\n" + format_table(res_cc))
    mae_cc = res_cc["total"]["energy_per_atom"]["mae"] * 1000
    mae_pbe = res_pbe["total"]["energy_per_atom"]["mae"] * 1000
    print(f"      energy MAE per atom: head 'ccsdt' {mae_cc:.2f} meV/atom; head 'pbe' (other level) {mae_pbe:.1f} meV/atom")

    # 4. a short MD with the new head
    atoms = molecule("CH3CH2OH")
    atoms.calc = model.calculator(head="ccsdt", compress=True)  # tabulated embedding nets: same forces, faster
    rng = np.random.default_rng(0)
    # thermalize_momenta (ASE >= 3.28) replaces MaxwellBoltzmannDistribution
    (getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution)(atoms, temperature_K=300, rng=rng)
    vd.Stationary(atoms)
    vd.ZeroRotation(atoms)
    dyn = Langevin(atoms, timestep=0.5 * units.fs, temperature_K=300, friction=0.01 / units.fs, fixcm=False, rng=rng)
    e0 = atoms.get_potential_energy()
    t0 = time.perf_counter()
    dyn.run(args.md_steps)
    wall = time.perf_counter() - t0
    ns_day = args.md_steps * 0.5e-6 / wall * 86400
    print(f"[4/4] ethanol, Langevin 300 K, {args.md_steps} steps of 0.5 fs with head 'ccsdt': "
          f"Epot {e0:.3f} -> {atoms.get_potential_energy():.3f} eV, T {atoms.get_temperature():.0f} K, "
          f"{wall / max(args.md_steps, 1) * 1e3:.2f} ms/step = {ns_day:.2f} ns/day")
    return 0


if __name__ == "__main__":
    sys.exit(main())
