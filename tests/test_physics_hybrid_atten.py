"""Physics checks (tests/physics.py) for the hybrid descriptor with an ener head.

hybrid = se_e2_a (short cutoff) + se_e2_r (long cutoff): the graph is built at the long cutoff
and se_e2_a keeps the edges inside its own, so the energy must be smooth across BOTH cutoffs.
Systems: the periodic Ag-Au EMT frame (bundled) and the non-periodic ethanol-like molecule.
Statistics from compute_stats, then a random radial mean offset per type pair and a random
scale (isotropic in the vector part), and a random bias_atom_e; small nets keep the file fast.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import physics
from conftest import AGAU, molecule_system
from mtzoo import keys as K
from mtzoo.data.graph import system_graphs
from mtzoo.data.readers import read_deepmd
from mtzoo.model import build_model

HEAD = "default"
SYSTEMS = {
    # type_map, [(kind, rcut, rcut_smth, sel)] of the members
    "agau": (["Ag", "Au"], [("se_e2_a", 3.2, 1.5, [14, 14]), ("se_e2_r", 4.5, 2.0, [42, 41])]),
    "molecule": (["C", "H", "O"], [("se_e2_a", 2.5, 0.5, [4, 8, 3]), ("se_e2_r", 4.0, 0.5, [10, 10, 10])]),
}


def frames_for(system: str) -> list:
    if system == "agau":
        return [(read_deepmd(AGAU / "train" / "au16")[0], 0), (read_deepmd(AGAU / "train" / "au08")[0], 3)]
    return [molecule_system()]


@functools.lru_cache(maxsize=None)
def _model(system: str):
    type_map, members = SYSTEMS[system]
    desc = {"type": "hybrid", "list": [
        {"type": kind, "sel": sel, "rcut": rcut, "rcut_smth": rs, "neuron": [4, 8], "resnet_dt": True, "seed": 1 + k,
         **({"axis_neuron": 4} if kind == "se_e2_a" else {"type_one_side": True})}
        for k, (kind, rcut, rs, sel) in enumerate(members)]}
    model = build_model({"type_map": type_map, "descriptor": desc,
                         "heads": {HEAD: {"type": "ener", "neuron": [8, 8], "resnet_dt": True, "seed": 2}}})
    graphs = []
    for obj in frames_for(system):
        s, i = obj if isinstance(obj, tuple) else (obj, 0)
        graphs += system_graphs(s, type_map, model.rcut)[i: i + 1]
    model.descriptor.compute_stats(graphs)
    rng = np.random.default_rng(11)
    with torch.no_grad():
        for d in model.descriptor.descrpt_list:
            off = torch.as_tensor(rng.uniform(0.05, 0.3, size=d.davg.shape), dtype=d.davg.dtype)
            scale = torch.as_tensor(rng.uniform(0.8, 1.2, size=d.dstd.shape), dtype=d.dstd.dtype)
            if d.davg.dim() == 3:  # se_e2_a: radial mean only, isotropic vector scale
                off[..., 1:] = 0.0
                scale[..., 2:] = scale[..., 1:2]
            d.davg.add_(off)
            d.dstd.mul_(scale)
        model.heads[HEAD].bias_atom_e.copy_(torch.as_tensor(rng.normal(size=len(type_map))))
    return model.eval()


def model_for(system: str):
    old = torch.get_default_dtype()
    try:
        return _model(system)
    finally:
        torch.set_default_dtype(old)


def test_hybrid_contract():
    model = model_for("molecule")
    d = model.descriptor
    assert d.rcut == 4.0 and d.dim_out == 8 * 4 + 8 and d.dim_rot == 8 and not d.mixed_types
    assert d.get_config()["type"] == "hybrid" and len(d.get_config()["list"]) == 2
    again = build_model({"type_map": model.type_map, "descriptor": d.get_config(),
                         "heads": {HEAD: model.heads[HEAD].get_config()}})
    again.load_state_dict(model.state_dict())
    frame = physics.as_frame(molecule_system())
    np.testing.assert_array_equal(physics.evaluate(again, frame, HEAD)[K.ENERGY],
                                  physics.evaluate(model, frame, HEAD)[K.ENERGY])


@pytest.mark.parametrize("system", SYSTEMS)
def test_forces_virial_fd(system):
    frame = frames_for(system)[0]
    model = model_for(system)
    physics.check_forces_fd(model, frame, HEAD, h=1e-5, rtol=1e-6, max_atoms=6 if system != "molecule" else None)
    physics.check_virial_fd(model, frame, HEAD, h=1e-6, rtol=1e-6)


@pytest.mark.parametrize("system", SYSTEMS)
def test_invariance(system):
    physics.check_invariance(model_for(system), frames_for(system)[0], HEAD, rtol=1e-10)


@pytest.mark.parametrize("system", SYSTEMS)
def test_smoothness_at_largest_cutoff(system):
    physics.check_cutoff_smoothness(model_for(system), HEAD, step=1e-6, tol=1e-8)


@pytest.mark.parametrize("system", SYSTEMS)
def test_smoothness_at_member_cutoffs(system):
    """Energy and forces are C^1 as one atom crosses the smaller cutoff (and each rcut_smth)."""
    model = model_for(system)
    type_map, members = SYSTEMS[system]
    step, tol = 1e-6, 1e-8
    radii = [r for _, rc, rs, _ in members for r in (rc, rs) if r > 0.3 and r < model.rcut]
    for a in type_map:
        for b in type_map:
            for r0 in radii:
                vals = {}
                for k in (-3, -1, 1, 3):
                    frame, _ = physics._line_cluster([a, b, a], r0 + k * step)
                    out = physics.evaluate(model, frame, HEAD)
                    vals[k] = (out[K.ENERGY][0], out[K.FORCES])
                fscale = max([float(np.abs(v[1]).max()) for v in vals.values()] + [1e-3])
                e_floor = 64 * np.finfo(np.float64).eps * max(abs(v[0]) for v in vals.values())
                jump_e = vals[1][0] - vals[-1][0]
                pred_e = (vals[3][0] - vals[-3][0]) / 3
                assert max(abs(jump_e - pred_e) - e_floor, 0.0) / (fscale * step) <= tol, (a, b, r0, jump_e, pred_e)
                jump_f = vals[1][1] - vals[-1][1]
                pred_f = (vals[3][1] - vals[-3][1]) / 3
                assert float(np.abs(jump_f - pred_f).max()) / fscale <= tol, (a, b, r0)


@pytest.mark.parametrize("system", SYSTEMS)
def test_batch_independence(system):
    model = model_for(system)
    frames = frames_for(system)
    first = physics.as_frame(frames[0], model.type_map)
    if system == "molecule":
        rng = np.random.default_rng(5)
        frames = [first, first.replace(pos=first.pos + rng.normal(scale=0.1, size=first.pos.shape))]
    near = np.argsort(np.linalg.norm(first.pos - first.pos[0], axis=1))[:5]
    frames = frames + [physics.Frame([first.symbols[i] for i in near], first.pos[near], None)]
    physics.check_batch_independence(model, frames, HEAD, rtol=1e-12)


def test_neighbor_counts_per_member_cutoff():
    from mtzoo.data.graph import count_neighbors
    from mtzoo.descriptors.hybrid import neighbor_counts

    s = read_deepmd(AGAU / "train" / "au16")[0]
    big = system_graphs(s, ["Ag", "Au"], 4.5)[:1]
    small = system_graphs(s, ["Ag", "Au"], 3.2)[:1]
    np.testing.assert_array_equal(neighbor_counts(big, 2, 3.2), count_neighbors(small, 2))
    assert (count_neighbors(big, 2) >= neighbor_counts(big, 2, 3.2)).all()
