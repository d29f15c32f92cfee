"""Parity with DeePMD-kit's numpy reference (deepmd.dpmodel): se_atten (dpa1) and se_atten_v2.

DeePMD-kit pads every atom to ``sel`` neighbour slots; mtzoo adds the empty slots in closed form
(the ``-davg/dstd`` rows and, with ``smooth_type_embedding``, the ``exp(-20)`` terms of each
attention softmax).  Weights (attention layer norms included) and statistics are random and
identical on both sides (non-zero ``davg`` for se_atten_v2, where DeePMD's empty slots then
contribute); the mtzoo model is imported with :func:`mtzoo.zoo.deepmd_import.model_from_deepmd`.
Tolerance: 1e-10 relative in float64.

Without ``smooth_type_embedding`` an edge a hair inside ``rcut`` enters the attention with full
weight and a direction :math:`\\hat{\\mathcal R}/\\max(|\\hat{\\mathcal R}|, 10^{-12})` whose
size is set by the switch function's rounding noise (``1 - 10u^3 + 15u^4 - 6u^5`` near ``u = 1``):
DeePMD-kit itself is ill-conditioned there, so those cases use a cutoff with no edge within
3e-4 Angstrom of it (checked; one water edge lies 8e-5 Angstrom inside 4.0).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import molecule_system, water_frames
from mtzoo import keys as K
from mtzoo.data.graph import collate, system_graphs
from mtzoo.zoo.deepmd_import import model_from_deepmd

dp = pytest.importorskip("deepmd.dpmodel", reason="deepmd-kit (test oracle) not importable")
from deepmd.dpmodel.model.model import get_model  # noqa: E402
from deepmd.dpmodel.utils.nlist import extend_input_and_build_neighbor_list  # noqa: E402

RTOL = 1e-10

#: (id, descriptor keys) from the simplest configuration up
CONFIGS = [
    ("concat-noattn", {"type": "se_atten", "attn_layer": 0}),
    ("concat-noattn-oneside", {"type": "se_atten", "attn_layer": 0, "type_one_side": True}),
    ("concat-attn", {"type": "se_atten", "attn_layer": 2, "smooth_type_embedding": False}),
    ("concat-attn-smooth", {"type": "se_atten", "attn_layer": 2, "smooth_type_embedding": True}),
    ("concat-attn-smooth-nodotr", {"type": "se_atten", "attn_layer": 1, "smooth_type_embedding": True,
                                   "attn_dotr": False, "normalize": False, "temperature": 0.7}),
    ("strip-attn", {"type": "se_atten", "attn_layer": 1, "tebd_input_mode": "strip", "smooth_type_embedding": False}),
    ("v2", {"type": "se_atten_v2", "attn_layer": 2, "set_davg_zero": False}),
    ("v2-oneside", {"type": "se_atten_v2", "attn_layer": 2, "type_one_side": True, "set_davg_zero": False}),
    ("concat-attn-smooth-exclude", {"type": "se_atten", "attn_layer": 2, "smooth_type_embedding": True,
                                    "exclude_types": [[0, 1]]}),
    ("v2-exclude", {"type": "se_atten_v2", "attn_layer": 2, "exclude_types": [[0, 1]], "set_davg_zero": False}),
]


def _margin_rcut(system, candidates, margin=5e-4):
    """The first cutoff with no pair distance within ``margin`` below it (non-smooth se_atten is
    discontinuous at rcut, so an edge just inside it makes the comparison ill-conditioned)."""
    from mtzoo.data.graph import neighbor_list

    for rc in candidates:
        ok = True
        for f in range(system.nframes):
            cell = system.box[f] if system.periodic else None
            ei, sh = neighbor_list(system.coord[f], cell, rc)
            vec = system.coord[f][ei[0]] - system.coord[f][ei[1]] + (sh @ cell if cell is not None else 0.0)
            r = np.linalg.norm(vec, axis=1)
            ok &= not np.any((r > rc - margin) & (r < rc))
        if ok:
            return rc
    raise AssertionError(f"no cutoff among {candidates} leaves a {margin} A margin")


def _cases(smooth: bool):
    # DeePMD's water: 4.0 A puts one edge 8e-5 A inside rcut (fine when smooth); 3.9 A leaves a
    # 3.6e-4 A margin. The generated water of a fresh clone gets the first such cutoff near 3.9 A.
    water = water_frames(2)
    rcut = 4.0 if smooth else _margin_rcut(water, (3.9, 3.85, 3.95, 3.8), 3e-4)
    return [("water", water, ["O", "H"], 60, rcut),
            ("ethanol", molecule_system(), ["C", "H", "O"], 20, 6.0)]


def _is_smooth(desc: dict) -> bool:
    return desc["type"] == "se_atten_v2" or bool(desc.get("smooth_type_embedding"))


def _dp_model(desc, type_map, sel, rcut, seed=5):
    desc = {**desc, "sel": sel, "rcut": rcut, "rcut_smth": 0.5, "neuron": [4, 8, 16], "axis_neuron": 3,
            "tebd_dim": 5, "attn": 6, "resnet_dt": True, "seed": seed}
    m = get_model({"type_map": list(type_map), "descriptor": desc,
                   "fitting_net": {"neuron": [16, 16], "resnet_dt": True, "seed": seed + 1}})
    rng = np.random.default_rng(seed)
    block = m.atomic_model.descriptor.se_atten
    nt = len(type_map)
    davg, dstd = np.zeros((nt, sel, 4)), np.ones((nt, sel, 4))
    for t in range(nt):
        if not desc.get("set_davg_zero", desc["type"] != "se_atten_v2"):
            davg[t] = rng.normal(scale=0.3, size=4)
        dstd[t] = rng.uniform(0.5, 1.5, size=4)
    block.mean, block.stddev = davg, dstd
    for layer in block.dpa1_attention.attention_layers:
        ln = layer.attn_layer_norm
        ln.w, ln.b = rng.normal(size=ln.w.shape), rng.normal(size=ln.b.shape)
    m.atomic_model.fitting_net.bias_atom_e = rng.normal(size=(nt, 1))
    m.atomic_model.out_bias = rng.normal(size=(1, nt, 1))
    return m


def _dp_inputs(system, type_map):
    atype = system.model_types(type_map)[None].repeat(system.nframes, 0)
    coord = system.coord.reshape(system.nframes, -1)
    box = system.box.reshape(system.nframes, 9) if system.periodic else None
    return coord, atype, box


def _max_rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def _edge_vec(g):
    return g[K.POSITIONS][g[K.EDGE_INDEX][0]] - g[K.POSITIONS][g[K.EDGE_INDEX][1]] + g[K.CELL_SHIFT] @ g[K.CELL][0]


@pytest.mark.filterwarnings("ignore:se_atten. with exclude_types")
@pytest.mark.parametrize("desc", [c[1] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
def test_descriptor_parity(desc):
    for name, system, type_map, sel, rcut in _cases(_is_smooth(desc)):
        dpm = _dp_model(desc, type_map, sel, rcut)
        ref_desc = dpm.atomic_model.descriptor
        coord, atype, box = _dp_inputs(system, type_map)
        ext_coord, ext_atype, _, nlist = extend_input_and_build_neighbor_list(
            coord, atype, rcut, ref_desc.get_sel(), mixed_types=True, box=box)
        assert (nlist[..., -1] < 0).all(), f"{name}: test frames overflow sel"
        ref, ref_rot = ref_desc.call(ext_coord, ext_atype, nlist)[:2]
        model = model_from_deepmd(dpm.serialize())
        assert model.descriptor.mixed_types and model.descriptor.dim_out == ref.shape[-1]
        for f, g in enumerate(system_graphs(system, type_map, rcut)):
            vec = _edge_vec(g)
            if not _is_smooth(desc):
                assert float(vec.norm(dim=-1).max()) < rcut - 3e-4
            out = model.descriptor(vec, g[K.EDGE_INDEX], g[K.ATOM_TYPE])
            d = out[K.DESCRIPTOR].detach().numpy()
            print(f"{desc['type']} {name}: max rel err {_max_rel(d, ref[f]):.2e}")
            np.testing.assert_allclose(d, ref[f], rtol=RTOL, atol=RTOL * np.abs(ref[f]).max(), err_msg=name)
            rot = out[K.ROT_MAT].detach().numpy()
            np.testing.assert_allclose(rot, ref_rot[f], rtol=RTOL, atol=RTOL * np.abs(ref_rot[f]).max(), err_msg=name)


@pytest.mark.parametrize("desc", [CONFIGS[3][1], CONFIGS[6][1]], ids=[CONFIGS[3][0], CONFIGS[6][0]])
def test_model_energy_parity(desc):
    for name, system, type_map, sel, rcut in _cases(_is_smooth(desc)):
        dpm = _dp_model(desc, type_map, sel, rcut)
        coord, atype, box = _dp_inputs(system, type_map)
        ref = dpm(coord, atype, box)
        model = model_from_deepmd(dpm.serialize())
        batch = collate(system_graphs(system, type_map, model.rcut))
        out = model(batch, forces=False, virial=False)
        print(f"{desc['type']} {name}: energy max rel err {_max_rel(out[K.ENERGY].detach().numpy(), ref['energy'].reshape(-1)):.2e}")
        np.testing.assert_allclose(out[K.ENERGY].detach().numpy(), ref["energy"].reshape(-1), rtol=RTOL, err_msg=name)
        np.testing.assert_allclose(out[K.ATOM_ENERGY].detach().numpy(), ref["atom_energy"].reshape(-1),
                                   rtol=RTOL, atol=RTOL * np.abs(ref["atom_energy"]).max(), err_msg=name)


def test_unsupported_padding_modes_raise():
    """concat (or unsmoothed strip) with a non-zero davg: DeePMD's empty slots see the first atom's type."""
    from mtzoo.descriptors import DescrptSeAtten

    with pytest.raises(ValueError, match="first atom of the frame"):
        DescrptSeAtten(2, sel=10, set_davg_zero=False)
    with pytest.raises(ValueError, match="first atom of the frame"):
        DescrptSeAtten(2, sel=10, tebd_input_mode="strip", smooth_type_embedding=False, set_davg_zero=False)
    dpm = _dp_model({"type": "se_atten", "attn_layer": 1, "set_davg_zero": False}, ["O", "H"], 10, 4.0)
    data = dpm.serialize()
    data["descriptor"]["set_davg_zero"] = True  # pretend; the non-zero davg itself is refused
    data["descriptor"]["@variables"]["davg"] = np.full_like(data["descriptor"]["@variables"]["davg"], 0.1)
    with pytest.raises(ValueError, match="non-zero davg"):
        model_from_deepmd(data)


def test_compute_stats_match_deepmd():
    """davg/dstd from mtzoo's compute_stats equal DeePMD's compute_input_stats (se_atten_v2, davg kept)."""
    name, system, type_map, sel, rcut = _cases(True)[0]
    dpm = _dp_model(CONFIGS[6][1], type_map, sel, rcut)
    coord, atype, box = _dp_inputs(system, type_map)
    ref_desc = dpm.atomic_model.descriptor
    ref_desc.compute_input_stats([{"coord": coord.reshape(system.nframes, -1, 3), "atype": atype,
                                   "box": box.reshape(system.nframes, 3, 3), "natoms": None}])
    model = model_from_deepmd(dpm.serialize())
    model.descriptor.compute_stats(system_graphs(system, type_map, rcut), protection=1e-2)
    mean, std = ref_desc.get_stat_mean_and_stddev()
    torch.testing.assert_close(model.descriptor.davg, torch.as_tensor(np.asarray(mean)[:, 0]), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.descriptor.dstd, torch.as_tensor(np.asarray(std)[:, 0]), rtol=1e-12, atol=1e-12)


def test_config_rejects_unsupported_padding_mode():
    from mtzoo.config import parse_input
    from mtzoo.config.base import ConfigError

    inp = {"model": {"type_map": ["O", "H"], "descriptor": {"type": "dpa1", "sel": 40, "set_davg_zero": False},
                     "fitting_net": {"neuron": [8]}},
           "training": {"training_data": {"systems": "data/sys"}, "numb_steps": 1}}
    with pytest.raises(ConfigError, match="model.descriptor.set_davg_zero: set_davg_zero = false is supported only"):
        parse_input(inp)
    inp["model"]["descriptor"].update(tebd_input_mode="strip", smooth_type_embedding=True)
    assert parse_input(inp).model.descriptor.dim_out == 40 * 4 + 8
