"""Parity with DeePMD-kit's numpy reference (deepmd.dpmodel): se_e2_r and se_e3 descriptors and models.

Weights and statistics (random, non-trivial, including a non-zero mean of the vector part for
se_e3 so that the padded slots matter) are identical on both sides: the mtzoo model is imported
with :func:`mtzoo.zoo.deepmd_import.model_from_deepmd`.  Tolerance: 1e-10 relative in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import molecule_system, water_frames
from mtzoo import keys as K
from mtzoo.data.graph import collate, system_graphs
from mtzoo.descriptors.se_common import load_deepmd_stats
from mtzoo.zoo.deepmd_import import model_from_deepmd

dp = pytest.importorskip("deepmd.dpmodel", reason="deepmd-kit (test oracle) not importable")
from deepmd.dpmodel.model.model import get_model  # noqa: E402
from deepmd.dpmodel.utils.nlist import extend_input_and_build_neighbor_list  # noqa: E402

RTOL = 1e-10


def _dp_model(kind, type_map, sel, rcut, exclude_types=(), seed=11):
    desc = {"type": kind, "sel": list(sel), "rcut": rcut, "rcut_smth": 0.5, "neuron": [4, 8, 16],
            "resnet_dt": True, "exclude_types": [list(p) for p in exclude_types], "seed": seed}
    if kind == "se_e2_r":
        desc["type_one_side"] = True
    m = get_model({"type_map": list(type_map), "descriptor": desc,
                   "fitting_net": {"neuron": [16, 16], "resnet_dt": True, "seed": seed + 1}})
    rng = np.random.default_rng(seed)
    nt, nnei = len(type_map), sum(sel)
    ncomp = 1 if kind == "se_e2_r" else 4
    bounds = np.cumsum([0, *sel])
    davg = np.zeros((nt, nnei, ncomp))
    dstd = np.ones((nt, nnei, ncomp))
    for ti in range(nt):
        for tj in range(nt):
            davg[ti, bounds[tj]:bounds[tj + 1]] = rng.normal(scale=0.3, size=ncomp)
            dstd[ti, bounds[tj]:bounds[tj + 1]] = rng.uniform(0.5, 1.5, size=ncomp)
    m.atomic_model.descriptor.davg = davg
    m.atomic_model.descriptor.dstd = dstd
    m.atomic_model.fitting_net.bias_atom_e = rng.normal(size=(nt, 1))
    m.atomic_model.out_bias = rng.normal(size=(1, nt, 1))
    return m


def _cases(kind):
    water = water_frames(2)
    mol = molecule_system()
    if kind == "se_e2_r":
        return [("water", water, ["O", "H"], [46, 92], 6.0), ("ethanol", mol, ["C", "H", "O"], [10, 10, 10], 6.0)]
    return [("water", water, ["O", "H"], [16, 32], 4.0), ("ethanol", mol, ["C", "H", "O"], [4, 8, 3], 6.0)]


def _dp_inputs(system, type_map):
    atype = system.model_types(type_map)[None].repeat(system.nframes, 0)
    coord = system.coord.reshape(system.nframes, -1)
    box = system.box.reshape(system.nframes, 9) if system.periodic else None
    return coord, atype, box


def _max_rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.filterwarnings("ignore:se_e2_r. with exclude_types")
@pytest.mark.parametrize("kind", ["se_e2_r", "se_e3"])
@pytest.mark.parametrize("exclude", [False, True])
def test_descriptor_parity(kind, exclude):
    for name, system, type_map, sel, rcut in _cases(kind):
        excl = [(0, 1)] if exclude else []
        dpm = _dp_model(kind, type_map, sel, rcut, exclude_types=excl)
        serialized = dpm.serialize()  # se_e3 zeroes some nets in place on serialize: take the dict first
        ref_desc = dpm.atomic_model.descriptor
        coord, atype, box = _dp_inputs(system, type_map)
        ext_coord, ext_atype, mapping, nlist = extend_input_and_build_neighbor_list(
            coord, atype, ref_desc.get_rcut(), ref_desc.get_sel(), mixed_types=False, box=box)
        bounds = np.cumsum([0, *sel])
        for t in range(len(sel)):  # no overflow of any type's slots
            assert (nlist[..., bounds[t + 1] - 1] < 0).all(), f"{name}: test frames overflow sel"
        ref = ref_desc.call(ext_coord, ext_atype, nlist)[0]
        model = model_from_deepmd(serialized)
        assert model.descriptor.dim_rot == 0
        graphs = system_graphs(system, type_map, model.rcut)
        for f, g in enumerate(graphs):
            vec = g[K.POSITIONS][g[K.EDGE_INDEX][0]] - g[K.POSITIONS][g[K.EDGE_INDEX][1]] + g[K.CELL_SHIFT] @ g[K.CELL][0]
            d = model.descriptor(vec, g[K.EDGE_INDEX], g[K.ATOM_TYPE])[K.DESCRIPTOR].detach().numpy()
            assert d.shape == ref[f].shape
            print(f"{kind} {name} exclude={exclude}: max rel err {_max_rel(d, ref[f]):.2e}")
            np.testing.assert_allclose(d, ref[f], rtol=RTOL, atol=RTOL * np.abs(ref[f]).max(), err_msg=name)


@pytest.mark.parametrize("kind", ["se_e2_r", "se_e3"])
def test_model_energy_parity(kind):
    for name, system, type_map, sel, rcut in _cases(kind):
        dpm = _dp_model(kind, type_map, sel, rcut)
        serialized = dpm.serialize()
        coord, atype, box = _dp_inputs(system, type_map)
        ref = dpm(coord, atype, box)
        model = model_from_deepmd(serialized)
        batch = collate(system_graphs(system, type_map, model.rcut))
        out = model(batch, forces=False, virial=False)
        print(f"{kind} {name}: energy max rel err {_max_rel(out[K.ENERGY].detach().numpy(), ref['energy'].reshape(-1)):.2e}")
        np.testing.assert_allclose(out[K.ENERGY].detach().numpy(), ref["energy"].reshape(-1), rtol=RTOL, err_msg=name)
        np.testing.assert_allclose(out[K.ATOM_ENERGY].detach().numpy(), ref["atom_energy"].reshape(-1),
                                   rtol=RTOL, atol=RTOL * np.abs(ref["atom_energy"]).max(), err_msg=name)


def test_se_e2_r_pair_nets_equal_one_side_nets_when_copied():
    """type_one_side=False (not in DeePMD's numpy reference): with every pair net (c, t) a copy of
    net t, the pair-net descriptor equals the one-side descriptor, which has DeePMD parity above."""
    from mtzoo.descriptors import DescrptSeR

    name, system, type_map, sel, rcut = _cases("se_e2_r")[1]
    one = model_from_deepmd(_dp_model("se_e2_r", type_map, sel, rcut).serialize()).descriptor
    nt = len(type_map)
    pair = DescrptSeR(nt, sel, rcut=rcut, rcut_smth=0.5, neuron=[4, 8, 16], resnet_dt=True, type_one_side=False)
    for c in range(nt):
        for t in range(nt):
            pair.embeddings[c * nt + t].load_state_dict(one.embeddings[t].state_dict())
    pair.davg.copy_(one.davg)
    pair.dstd.copy_(one.dstd)
    g = system_graphs(system, type_map, rcut)[0]
    vec = g[K.POSITIONS][g[K.EDGE_INDEX][0]] - g[K.POSITIONS][g[K.EDGE_INDEX][1]]
    a = one(vec, g[K.EDGE_INDEX], g[K.ATOM_TYPE])[K.DESCRIPTOR]
    b = pair(vec, g[K.EDGE_INDEX], g[K.ATOM_TYPE])[K.DESCRIPTOR]
    torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("kind", ["se_e2_r", "se_e3"])
def test_compute_stats_match_deepmd(kind):
    """davg/dstd from mtzoo's compute_stats equal DeePMD's compute_input_stats on the same frames."""
    name, system, type_map, sel, rcut = _cases(kind)[0]
    dpm = _dp_model(kind, type_map, sel, rcut)
    coord, atype, box = _dp_inputs(system, type_map)
    ref_desc = dpm.atomic_model.descriptor
    ref_desc.compute_input_stats([{"coord": coord.reshape(system.nframes, -1, 3), "atype": atype,
                                   "box": box.reshape(system.nframes, 3, 3), "natoms": None}])
    model = model_from_deepmd(dpm.serialize())
    model.descriptor.compute_stats(system_graphs(system, type_map, rcut), protection=1e-2)
    for buf, arr in ((model.descriptor.davg, ref_desc.davg), (model.descriptor.dstd, ref_desc.dstd)):
        expect = torch.zeros_like(buf)
        load_deepmd_stats(arr, sel, expect, "stat")
        torch.testing.assert_close(buf, expect, rtol=1e-12, atol=1e-12)
