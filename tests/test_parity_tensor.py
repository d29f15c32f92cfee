"""Parity with DeePMD-kit's numpy reference (deepmd.dpmodel): se_e2_a + dipole / polar models.

DeePMD-kit models are built with ``get_model`` (``fitting_net.type`` = ``dipole`` / ``polar``),
given random statistics ``davg/dstd``, random fitting biases ``bias_atom_e``, a random polar
``constant_matrix`` and a random atomic-model ``out_bias``, then imported through
:func:`mtzoo.zoo.deepmd_import.model_from_deepmd`.  Global and atomic tensors are compared on
two periodic water frames and a non-periodic molecule; 1e-10 relative in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import molecule_system, water_frames
from mtzoo import keys as K
from mtzoo.data.graph import collate, system_graphs
from mtzoo.heads import DipoleHead, PolarHead
from mtzoo.zoo.deepmd_import import model_from_deepmd

dp = pytest.importorskip("deepmd.dpmodel", reason="deepmd-kit (test oracle) not importable")
from deepmd.dpmodel.model.model import get_model  # noqa: E402

RTOL = 1e-10
# fitting variants: (DeePMD fitting_net keys, atom_exclude_types)
VARIANTS = {
    "dipole": ({"type": "dipole"}, []),
    "dipole-exclH": ({"type": "dipole"}, [1]),
    "polar-diag": ({"type": "polar"}, []),
    "polar-full-scale-exclH": ({"type": "polar", "fit_diag": False, "scale": "random", "shift_diag": True}, [1]),
    "polar-noshift": ({"type": "polar", "fit_diag": False, "shift_diag": False}, []),
}
CASES = [pytest.param(v, tos, id=f"{v}-{'one_side' if tos else 'two_side'}")
         for v, tos in (("dipole", True), ("dipole-exclH", False), ("polar-diag", False),
                        ("polar-full-scale-exclH", True), ("polar-full-scale-exclH", False),
                        ("polar-noshift", True))]


def _dp_model(kind_cfg: dict, atom_exclude: list, type_map, sel, type_one_side: bool, seed: int = 5):
    rng = np.random.default_rng(seed)
    nt, nnei = len(type_map), sum(sel)
    fit = {"neuron": [12, 12], "resnet_dt": True, "seed": seed + 1, **kind_cfg}
    if fit.get("scale") == "random":
        fit["scale"] = rng.uniform(0.5, 2.0, size=nt).tolist()
    cfg = {"type_map": list(type_map), "atom_exclude_types": list(atom_exclude),
           "descriptor": {"type": "se_e2_a", "sel": list(sel), "rcut": 6.0, "rcut_smth": 0.5,
                          "neuron": [6, 12, 24], "axis_neuron": 5, "resnet_dt": True,
                          "type_one_side": type_one_side, "seed": seed},
           "fitting_net": fit}
    m = get_model(cfg)
    bounds = np.cumsum([0] + list(sel))
    davg, dstd = np.zeros((nt, nnei, 4)), np.ones((nt, nnei, 4))
    for ti in range(nt):
        for tj in range(nt):
            davg[ti, bounds[tj]:bounds[tj + 1]] = rng.normal(scale=0.3, size=4)
            dstd[ti, bounds[tj]:bounds[tj + 1]] = rng.uniform(0.5, 1.5, size=4)
    am = m.atomic_model
    am.descriptor.davg, am.descriptor.dstd = davg, dstd
    am.fitting_net.bias_atom_e = rng.normal(size=am.fitting_net.bias_atom_e.shape)
    if kind_cfg["type"] == "polar":
        am.fitting_net.constant_matrix = rng.normal(size=nt)
    am.out_bias = rng.normal(size=am.out_bias.shape)  # used by polar (shift_diag), ignored by dipole
    return m


def _systems():
    return [("water", water_frames(2), ["O", "H"], [46, 92]), ("ethanol", molecule_system(), ["C", "H", "O"], [10, 10, 10])]


def _compare(dpm, model, system, type_map, what):
    kind = "dipole" if isinstance(model.heads["default"], DipoleHead) else "polar"
    gkey, akey = (K.DIPOLE, K.ATOM_DIPOLE) if kind == "dipole" else (K.POLARIZABILITY, K.ATOM_POLARIZABILITY)
    nf = system.nframes
    atype = system.model_types(type_map)[None].repeat(nf, 0)
    box = system.box.reshape(nf, 9) if system.periodic else None
    ref = dpm(system.coord.reshape(nf, -1), atype, box)
    out = model(collate(system_graphs(system, type_map, model.rcut)))
    errs = []
    for got, want, name in ((out[gkey], ref[f"global_{kind}"], "global"), (out[akey], ref[kind], "atomic")):
        got, want = got.detach().numpy().reshape(nf, -1), want.reshape(nf, -1)
        assert np.abs(want).max() > 0, f"{what} {name}: reference is zero, the test would be vacuous"
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * np.abs(want).max(), err_msg=f"{what} {name}")
        errs.append(np.abs(got - want).max() / np.abs(want).max())
    return max(errs), out[akey].detach().numpy(), atype.reshape(-1)


@pytest.mark.parametrize("variant,type_one_side", CASES)
def test_tensor_model_parity(variant, type_one_side):
    kind_cfg, excl = VARIANTS[variant]
    for name, system, type_map, sel in _systems():
        dpm = _dp_model(kind_cfg, excl, type_map, sel, type_one_side)
        model = model_from_deepmd(dpm.serialize())
        head = model.heads["default"]
        assert isinstance(head, DipoleHead if kind_cfg["type"] == "dipole" else PolarHead)
        assert head.sel_types() == [t for t in range(len(type_map)) if t not in excl]
        err, atomic, atype = _compare(dpm, model, system, type_map, f"{variant} {name}")
        # excluded types output exactly zero (polar: the diagonal shift too)
        for t in excl:
            assert np.all(atomic[atype == t] == 0.0), f"{variant} {name}: type {t} is excluded but non-zero"
        print(f"{variant} type_one_side={type_one_side} {name}: max relative error {err:.2e}")


def test_import_polar_from_dp_and_yaml_files(tmp_path):
    from deepmd.dpmodel.utils.serialization import save_dp_model

    system, type_map, sel = water_frames(1), ["O", "H"], [46, 92]
    dpm = _dp_model(VARIANTS["polar-full-scale-exclH"][0], [1], type_map, sel, True)
    for ext in (".dp", ".yaml"):
        path = tmp_path / f"model{ext}"
        save_dp_model(str(path), {"model": dpm.serialize()})
        _compare(dpm, model_from_deepmd(path), system, type_map, f"file {ext}")


def test_import_keeps_energy_models_strict():
    cfg = {"type_map": ["O", "H"], "atom_exclude_types": [1],
           "descriptor": {"type": "se_e2_a", "sel": [4, 8], "rcut": 4.0, "rcut_smth": 0.5, "neuron": [4, 8],
                          "axis_neuron": 2, "seed": 1},
           "fitting_net": {"type": "ener", "neuron": [8], "seed": 2}}
    with pytest.raises(ValueError, match="atom_exclude_types"):
        model_from_deepmd(get_model(cfg).serialize())


@pytest.mark.parametrize("names", [("atomic_system", "global_system"), ("global_system",), ("atomic_system",)])
@pytest.mark.parametrize("excl", [[], [1]])
def test_polar_output_stats_match_deepmd(names, excl):
    """PolarHead.compute_output_stats == DeePMD's set-by-statistic out_bias on the shared polar data."""
    from deepmd.dpmodel.utils.stat import compute_output_stats

    from conftest import tensor_systems

    available = tensor_systems("polar")  # DeePMD's water_tensor, or bundled water without ../shared
    type_map, nf = ["O", "H"], 5
    systems, sampled = [], []
    for name in names:
        s = available[name]
        s.coord, s.box = s.coord[:nf], None if s.box is None else s.box[:nf]
        s.labels, s.masks = {k: v[:nf] for k, v in s.labels.items()}, {k: v[:nf] for k, v in s.masks.items()}
        systems.append(s)
        atype = np.repeat(s.model_types(type_map)[None], nf, 0)
        counts = np.concatenate([[s.natoms, s.natoms], np.bincount(atype[0], minlength=2)])
        d = {"atype": atype, "natoms": np.repeat(counts[None], nf, 0)}
        for key, dp_key, width in ((K.ATOM_POLARIZABILITY, "atom_polarizability", s.natoms * 9),
                                   (K.POLARIZABILITY, "polarizability", 9)):
            have = key in s.labels
            d[dp_key] = s.labels[key].reshape(nf, -1) if have else np.zeros((nf, width))
            d["find_" + dp_key] = float(have)
        if excl:
            d["atom_exclude_types"] = excl
        sampled.append(d)
    ref, _ = compute_output_stats(sampled, 2, keys=["polarizability"])
    head = PolarHead(ntypes=2, dim_descrpt=4, dim_rot=2, neuron=[4], exclude_types=excl)
    head.compute_output_stats(systems, type_map)
    np.testing.assert_allclose(head.out_bias.numpy().reshape(2, 9), np.asarray(ref["polarizability"]).reshape(2, 9),
                               rtol=1e-12, atol=1e-12)
