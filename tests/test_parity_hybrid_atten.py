"""Parity with DeePMD-kit's numpy reference (deepmd.dpmodel): the hybrid descriptor.

Members se_e2_a (short cutoff) + se_e2_r (long cutoff), and se_e2_a + se_e2_a (two rotation
matrices, concatenated).  Weights and statistics (random per type pair, non-zero means so that
the empty slots matter) are identical on both sides: the mtzoo model is imported with
:func:`mtzoo.zoo.deepmd_import.model_from_deepmd`.  Tolerance: 1e-10 relative in float64.
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


def _member(kind, sel, rcut, seed):
    d = {"type": kind, "sel": list(sel), "rcut": rcut, "rcut_smth": 0.5, "neuron": [4, 8, 16],
         "resnet_dt": True, "seed": seed, "type_one_side": kind == "se_e2_r"}
    if kind == "se_e2_a":
        d["axis_neuron"] = 3
    return d


def _random_stats(desc, sel, rng):
    nt, nnei = len(sel), sum(sel)
    ncomp = desc.davg.shape[-1]
    bounds = np.cumsum([0, *sel])
    davg, dstd = np.zeros((nt, nnei, ncomp)), np.ones((nt, nnei, ncomp))
    for ti in range(nt):
        for tj in range(nt):
            davg[ti, bounds[tj]:bounds[tj + 1]] = rng.normal(scale=0.3, size=ncomp)
            dstd[ti, bounds[tj]:bounds[tj + 1]] = rng.uniform(0.5, 1.5, size=ncomp)
    desc.davg, desc.dstd = davg, dstd


def _dp_model(members, type_map, fitting=None, seed=11):
    desc = {"type": "hybrid", "list": [_member(k, s, r, seed + i) for i, (k, s, r) in enumerate(members)]}
    m = get_model({"type_map": list(type_map), "descriptor": desc,
                   "fitting_net": fitting or {"neuron": [16, 16], "resnet_dt": True, "seed": seed + 7}})
    rng = np.random.default_rng(seed)
    for sub, (_, sel, _) in zip(m.atomic_model.descriptor.descrpt_list, members):
        _random_stats(sub, sel, rng)
    fit = m.atomic_model.fitting_net
    fit.bias_atom_e = rng.normal(size=np.shape(fit.bias_atom_e))
    m.atomic_model.out_bias = rng.normal(size=m.atomic_model.out_bias.shape)
    return m


def _cases(pair):
    water, mol = water_frames(2), molecule_system()
    second = "se_e2_r" if pair == "a+r" else "se_e2_a"
    return [
        ("water", water, ["O", "H"], [("se_e2_a", [16, 32], 4.0), (second, [46, 92], 6.0)]),
        ("ethanol", mol, ["C", "H", "O"], [("se_e2_a", [3, 7, 2], 2.5), (second, [10, 10, 10], 6.0)]),
    ]


def _dp_inputs(system, type_map):
    atype = system.model_types(type_map)[None].repeat(system.nframes, 0)
    coord = system.coord.reshape(system.nframes, -1)
    box = system.box.reshape(system.nframes, 9) if system.periodic else None
    return coord, atype, box


def _max_rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def _edge_vec(g):
    return g[K.POSITIONS][g[K.EDGE_INDEX][0]] - g[K.POSITIONS][g[K.EDGE_INDEX][1]] + g[K.CELL_SHIFT] @ g[K.CELL][0]


@pytest.mark.parametrize("pair", ["a+r", "a+a"])
def test_hybrid_descriptor_parity(pair):
    for name, system, type_map, members in _cases(pair):
        dpm = _dp_model(members, type_map)
        ref_desc = dpm.atomic_model.descriptor
        coord, atype, box = _dp_inputs(system, type_map)
        ext_coord, ext_atype, _, nlist = extend_input_and_build_neighbor_list(
            coord, atype, ref_desc.get_rcut(), ref_desc.get_sel(), mixed_types=False, box=box)
        d_ref, gr_ref = ref_desc.call(ext_coord, ext_atype, nlist)[:2]
        # no member overflows its sel inside its own cutoff (else DeePMD drops neighbours)
        nall = ext_coord.reshape(system.nframes, -1, 3)
        for _, sel, rcut in members:
            for f in range(system.nframes):
                nl = nlist[f]
                r = np.linalg.norm(nall[f][np.where(nl >= 0, nl, 0)] - nall[f][:nl.shape[0], None], axis=-1)
                inside = (nl >= 0) & (r < rcut)
                bounds = np.cumsum([0, *ref_desc.get_sel()])
                for t in range(len(sel)):
                    assert inside[:, bounds[t]:bounds[t + 1]].sum(-1).max() <= sel[t], f"{name}: overflow"
        model = model_from_deepmd(dpm.serialize())
        desc = model.descriptor
        assert desc.rcut == max(r for _, _, r in members)
        assert desc.dim_rot == sum(16 for k, _, _ in members if k == "se_e2_a")
        for f, g in enumerate(system_graphs(system, type_map, model.rcut)):
            out = desc(_edge_vec(g), g[K.EDGE_INDEX], g[K.ATOM_TYPE])
            d = out[K.DESCRIPTOR].detach().numpy()
            gr = out[K.ROT_MAT].detach().numpy()
            assert d.shape == d_ref[f].shape and gr.shape == gr_ref[f].shape
            print(f"hybrid {pair} {name}: descriptor max rel err {_max_rel(d, d_ref[f]):.2e}, "
                  f"rot_mat {_max_rel(gr, gr_ref[f]):.2e}")
            np.testing.assert_allclose(d, d_ref[f], rtol=RTOL, atol=RTOL * np.abs(d_ref[f]).max(), err_msg=name)
            np.testing.assert_allclose(gr, gr_ref[f], rtol=RTOL, atol=RTOL * np.abs(gr_ref[f]).max(), err_msg=name)


def test_hybrid_energy_parity():
    for name, system, type_map, members in _cases("a+r"):
        dpm = _dp_model(members, type_map)
        coord, atype, box = _dp_inputs(system, type_map)
        ref = dpm(coord, atype, box)
        model = model_from_deepmd(dpm.serialize())
        out = model(collate(system_graphs(system, type_map, model.rcut)), forces=False, virial=False)
        err = _max_rel(out[K.ENERGY].detach().numpy(), ref["energy"].reshape(-1))
        print(f"hybrid a+r {name}: energy max rel err {err:.2e}")
        np.testing.assert_allclose(out[K.ENERGY].detach().numpy(), ref["energy"].reshape(-1), rtol=RTOL, err_msg=name)
        np.testing.assert_allclose(out[K.ATOM_ENERGY].detach().numpy(), ref["atom_energy"].reshape(-1),
                                   rtol=RTOL, atol=RTOL * np.abs(ref["atom_energy"]).max(), err_msg=name)


def test_hybrid_dipole_parity():
    """A dipole fitting on hybrid(se_e2_a, se_e2_a) contracts with the concatenated rotation matrices."""
    name, system, type_map, members = _cases("a+a")[0]
    dpm = _dp_model(members, type_map, fitting={"type": "dipole", "neuron": [16, 16], "resnet_dt": True, "seed": 3})
    coord, atype, box = _dp_inputs(system, type_map)
    ref = dpm(coord, atype, box)
    model = model_from_deepmd(dpm.serialize())
    out = model(collate(system_graphs(system, type_map, model.rcut)), forces=False, virial=False)
    for key, rkey in ((K.DIPOLE, "global_dipole"), (K.ATOM_DIPOLE, "dipole")):
        got, want = out[key].detach().numpy().reshape(-1), ref[rkey].reshape(-1)
        assert np.abs(want).max() > 0
        print(f"hybrid a+a {rkey}: max rel err {_max_rel(got, want):.2e}")
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * np.abs(want).max())


def test_hybrid_compute_stats_match_deepmd():
    """Each member's davg/dstd from mtzoo (edges inside its own cutoff) equal DeePMD's compute_input_stats."""
    name, system, type_map, members = _cases("a+r")[0]
    dpm = _dp_model(members, type_map)
    coord, atype, box = _dp_inputs(system, type_map)
    ref_desc = dpm.atomic_model.descriptor
    ref_desc.compute_input_stats([{"coord": coord.reshape(system.nframes, -1, 3), "atype": atype,
                                   "box": box.reshape(system.nframes, 3, 3), "natoms": None}])
    model = model_from_deepmd(dpm.serialize())
    model.descriptor.compute_stats(system_graphs(system, type_map, model.rcut), protection=1e-2)
    for sub, ref, (_, sel, _) in zip(model.descriptor.descrpt_list, ref_desc.descrpt_list, members):
        for buf, arr in ((sub.davg, ref.davg), (sub.dstd, ref.dstd)):
            expect = torch.zeros_like(buf)
            load_deepmd_stats(arr, sel, expect, "stat")
            torch.testing.assert_close(buf, expect, rtol=1e-12, atol=1e-12)
