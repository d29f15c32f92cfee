"""Parity with DeePMD-kit's numpy reference (deepmd.dpmodel): se_e2_a descriptor and se_e2_a + ener model.

Weights and statistics are random and identical on both sides (imported through
:func:`mtzoo.zoo.deepmd_import.model_from_deepmd`, the same path users take).
Tolerance: 1e-10 relative in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import molecule_system, water_frames
from mtzoo import keys as K
from mtzoo.data.graph import collate, system_graphs
from mtzoo.zoo.deepmd_import import model_from_deepmd

dp = pytest.importorskip("deepmd.dpmodel", reason="deepmd-kit (test oracle) not importable")
from deepmd.dpmodel.model.model import get_model  # noqa: E402
from deepmd.dpmodel.utils.nlist import extend_input_and_build_neighbor_list  # noqa: E402

RTOL = 1e-10


def _dp_model(type_map, sel, type_one_side, rcut=6.0, rcut_smth=0.5, exclude_types=(), seed=7):
    cfg = {"type_map": list(type_map),
           "descriptor": {"type": "se_e2_a", "sel": list(sel), "rcut": rcut, "rcut_smth": rcut_smth,
                          "neuron": [6, 12, 24], "axis_neuron": 5, "resnet_dt": True,
                          "type_one_side": type_one_side, "exclude_types": [list(p) for p in exclude_types],
                          "seed": seed},
           "fitting_net": {"neuron": [16, 16, 16], "resnet_dt": True, "seed": seed + 1}}
    m = get_model(cfg)
    rng = np.random.default_rng(seed)
    nt, nnei = len(type_map), sum(sel)
    # random statistics: one row per (centre type, neighbour-type segment), as DeePMD's stats give
    bounds = np.cumsum([0] + list(sel))
    davg = np.zeros((nt, nnei, 4))
    dstd = np.ones((nt, nnei, 4))
    for ti in range(nt):
        for tj in range(nt):
            davg[ti, bounds[tj]:bounds[tj + 1]] = rng.normal(scale=0.3, size=4)
            dstd[ti, bounds[tj]:bounds[tj + 1]] = rng.uniform(0.5, 1.5, size=4)
    m.atomic_model.descriptor.davg = davg
    m.atomic_model.descriptor.dstd = dstd
    m.atomic_model.fitting_net.bias_atom_e = rng.normal(size=(nt, 1))
    m.atomic_model.out_bias = rng.normal(size=(1, nt, 1))
    return m


def _cases():
    water = water_frames(2)
    mol = molecule_system()
    return [("water", water, ["O", "H"], [46, 92]), ("ethanol", mol, ["C", "H", "O"], [10, 10, 10])]


def _dp_inputs(system, type_map):
    atype = system.model_types(type_map)[None].repeat(system.nframes, 0)
    coord = system.coord.reshape(system.nframes, -1)
    box = system.box.reshape(system.nframes, 9) if system.periodic else None
    return coord, atype, box


@pytest.mark.parametrize("type_one_side", [True, False])
@pytest.mark.parametrize("exclude", [False, True])
def test_descriptor_parity(type_one_side, exclude):
    for name, system, type_map, sel in _cases():
        excl = [(0, 1)] if exclude else []
        dpm = _dp_model(type_map, sel, type_one_side, exclude_types=excl)
        # serialize() zeroes the nets of excluded pairs in place (DeePMD's TF-compatibility quirk):
        # take the dict first so both sides use the same weights
        serialized = dpm.serialize()
        ref_desc = dpm.atomic_model.descriptor
        coord, atype, box = _dp_inputs(system, type_map)
        ext_coord, ext_atype, mapping, nlist = extend_input_and_build_neighbor_list(
            coord, atype, ref_desc.get_rcut(), ref_desc.get_sel(), mixed_types=False, box=box)
        assert (nlist[..., :] >= 0).sum(-1).max() < sum(sel), "test frames must not overflow sel"
        ref, ref_rot, *_ = ref_desc.call(ext_coord, ext_atype, nlist)
        model = model_from_deepmd(serialized)
        graphs = system_graphs(system, type_map, model.rcut)
        for f, g in enumerate(graphs):
            vec = g[K.POSITIONS][g[K.EDGE_INDEX][0]] - g[K.POSITIONS][g[K.EDGE_INDEX][1]] + g[K.CELL_SHIFT] @ g[K.CELL][0]
            out = model.descriptor(vec, g[K.EDGE_INDEX], g[K.ATOM_TYPE])
            d = out[K.DESCRIPTOR].detach().numpy()
            np.testing.assert_allclose(d, ref[f], rtol=RTOL, atol=RTOL * np.abs(ref[f]).max(), err_msg=name)
            rot = out[K.ROT_MAT].detach().numpy()
            np.testing.assert_allclose(rot, ref_rot[f], rtol=RTOL, atol=RTOL * np.abs(ref_rot[f]).max(), err_msg=name)


@pytest.mark.parametrize("type_one_side", [True, False])
def test_model_energy_parity(type_one_side):
    for name, system, type_map, sel in _cases():
        dpm = _dp_model(type_map, sel, type_one_side)
        coord, atype, box = _dp_inputs(system, type_map)
        ref = dpm(coord, atype, box)
        model = model_from_deepmd(dpm.serialize())
        batch = collate(system_graphs(system, type_map, model.rcut))
        out = model(batch, forces=False, virial=False)
        np.testing.assert_allclose(out[K.ENERGY].detach().numpy(), ref["energy"].reshape(-1), rtol=RTOL, err_msg=name)
        np.testing.assert_allclose(out[K.ATOM_ENERGY].detach().numpy(), ref["atom_energy"].reshape(-1),
                                   rtol=RTOL, atol=RTOL * np.abs(ref["atom_energy"]).max(), err_msg=name)


def test_import_from_dp_and_yaml_files(tmp_path):
    from deepmd.dpmodel.utils.serialization import save_dp_model

    system, type_map, sel = water_frames(1), ["O", "H"], [46, 92]
    dpm = _dp_model(type_map, sel, True)
    coord, atype, box = _dp_inputs(system, type_map)
    ref = dpm(coord, atype, box)["energy"].reshape(-1)
    batch = collate(system_graphs(system, type_map, 6.0))
    for ext in (".dp", ".yaml"):
        path = tmp_path / f"model{ext}"
        save_dp_model(str(path), {"model": dpm.serialize()})
        model = model_from_deepmd(path)
        e = model(batch, forces=False, virial=False)[K.ENERGY].detach().numpy()
        np.testing.assert_allclose(e, ref, rtol=RTOL)


def test_import_rejects_unsupported():
    with pytest.raises(ValueError, match="standard model"):
        model_from_deepmd({"@class": "Model", "type": "zbl"})
