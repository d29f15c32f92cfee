"""The models and frames the physics suite (tests/test_physics.py) runs on.

The checks themselves are :mod:`mtzoo.testing`; they are re-exported here (with the old private
name ``_assert_close``) for the test files that import ``physics``.

Models are small (few neurons) and float64.  Statistics come from ``compute_stats`` on the
case's frames, then get random offsets so that every term is exercised: a radial mean offset per
type pair (the vector part of the mean stays zero, as compute_stats gives: a non-zero vector mean,
possible only in imported DeePMD-kit models, makes se_e3 depend on orientation, in DeePMD-kit
too), a random (isotropic) scale of the standard deviations, non-trivial attention layer norms,
and a random ``bias_atom_e``.  Builders are cached: tests must not change a model in place.
Systems: the periodic Ag-Au EMT frames (bundled), the non-periodic ethanol-like molecule
(``conftest.molecule_system``) and water (``conftest.water_frames``: DeePMD's example with
``../shared``, generated water without).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from conftest import AGAU, molecule_system, water_frames
from mtzoo.data.graph import system_graphs
from mtzoo.data.readers import read_deepmd
from mtzoo.heads import PolarHead
from mtzoo.model import build_model
from mtzoo.testing import *  # noqa: F403  (the names older test files use as physics.<name>)
from mtzoo.testing import Frame, as_frame, assert_close

_assert_close = assert_close
HEAD = "default"


def report(request, name: str, value) -> None:
    """Record a measured figure on the test (``user_properties``) and print it (``pytest -s``)."""
    request.node.user_properties.append((name, value))
    print(f"\n{request.node.name}: {name} = {value}")


def keep_default_dtype(build):
    """``build(*args)`` with torch's default dtype restored afterwards (model builders may change it)."""
    def wrapped(*args):
        old = torch.get_default_dtype()
        try:
            return build(*args)
        finally:
            torch.set_default_dtype(old)
    return wrapped


# ------------------------------------------------------------------------------------------
# frames
# ------------------------------------------------------------------------------------------
AGAU_FRAMES = (("au16", 0), ("au08", 3), ("au24", 7))


def agau(name: str, iframe: int = 0):
    return (read_deepmd(AGAU / "train" / name)[0], iframe)


def water(iframe: int = 0):
    return (water_frames(iframe + 1), iframe)


def frames_for(system: str, n_agau: int = 2) -> list:
    """Frames of one system (the first is the main test frame); the first ``n_agau`` Ag-Au ones."""
    if system == "agau":
        return [agau(name, i) for name, i in AGAU_FRAMES[:n_agau]]
    if system == "molecule":
        return [molecule_system()]
    if system == "water":
        return [water(0), water(1)]
    raise KeyError(system)


def _cluster(first: Frame) -> Frame:
    """Atom 0 and its 4 nearest atoms, without images (a small non-periodic frame with edges)."""
    near = np.argsort(np.linalg.norm(first.pos - first.pos[0], axis=1))[:5]
    return Frame([first.symbols[i] for i in near], first.pos[near], None)


def _rattled(first: Frame, seed: int, scale: float) -> Frame:
    return first.replace(pos=first.pos + np.random.default_rng(seed).normal(scale=scale, size=first.pos.shape))


#: batches of check_batch_independence, from a case's frames (mixed sizes and periodicity)
BATCHES = {
    "plus_cluster": lambda frames, first: frames + [_cluster(first)],
    "rattled_plus_cluster": lambda frames, first: [first, _rattled(first, 5, 0.1), _cluster(first)],
    "rattled_plus_water": lambda frames, first: [first, _rattled(first, 5, 0.1), water(0)],
    "rattled_plus_head": lambda frames, first: [first, _rattled(first, 1, 0.05),
                                                first.replace(pos=first.pos[:5], symbols=first.symbols[:5])],
}


def batch_frames(recipe: str, frames: list, type_map) -> list:
    return BATCHES[recipe](list(frames), as_frame(frames[0], type_map))


# ------------------------------------------------------------------------------------------
# models
# ------------------------------------------------------------------------------------------
def _energy_model(type_map, desc: dict, neuron: list, frames: list, perturb):
    """Descriptor + ener head, statistics of ``frames``, then ``perturb(descriptor, rng)`` and a random bias."""
    model = build_model({"type_map": type_map, "descriptor": desc,
                         "heads": {HEAD: {"type": "ener", "neuron": neuron, "resnet_dt": True, "seed": 2}}})
    graphs = []
    for obj in frames:
        s, i = obj if isinstance(obj, tuple) else (obj, 0)
        graphs += system_graphs(s, type_map, model.rcut)[i: i + 1]
    model.descriptor.compute_stats(graphs)
    rng = np.random.default_rng(11)
    with torch.no_grad():
        perturb(model.descriptor, rng)
        model.heads[HEAD].bias_atom_e.copy_(torch.as_tensor(rng.normal(size=len(type_map))))
    return model.eval()


def _perturb_se_a(d, rng) -> None:
    nt = d.ntypes
    d.davg[..., 0] += torch.as_tensor(rng.uniform(0.05, 0.3, size=(nt, nt)), dtype=d.davg.dtype)
    d.dstd.mul_(torch.as_tensor(rng.uniform(0.8, 1.2, size=(nt, nt, 1)), dtype=d.dstd.dtype))
    assert torch.all(d.davg[..., 0] != 0) and torch.all(d.davg[..., 1:] == 0)


def _perturb_se(d, rng) -> None:
    """Radial mean offset per type pair, random scale (one for the three vector components)."""
    off = torch.as_tensor(rng.uniform(0.05, 0.3, size=d.davg.shape), dtype=d.davg.dtype)
    if d.davg.dim() == 3:
        off[..., 1:] = 0.0
    d.davg.add_(off)
    scale = torch.as_tensor(rng.uniform(0.8, 1.2, size=d.dstd.shape), dtype=d.dstd.dtype)
    if d.dstd.dim() == 3:
        scale[..., 2:] = scale[..., 1:2]
    d.dstd.mul_(scale)


def _perturb_hybrid(d, rng) -> None:
    for member in d.descrpt_list:
        _perturb_se(member, rng)


def _perturb_atten(d, rng) -> None:
    """se_atten_v2 keeps davg: a radial offset per type makes DeePMD's empty ``sel`` slots contribute."""
    if not d.set_davg_zero:
        d.davg[:, 0].add_(torch.as_tensor(rng.uniform(0.05, 0.3, size=d.ntypes), dtype=d.davg.dtype))
    scale = torch.as_tensor(rng.uniform(0.8, 1.2, size=d.dstd.shape), dtype=d.dstd.dtype)
    scale[:, 2:] = scale[:, 1:2]
    d.dstd.mul_(scale)
    for layer in d.attention_layers:  # non-trivial layer norms
        layer.ln_weight.copy_(torch.as_tensor(rng.uniform(0.5, 1.5, size=layer.ln_weight.shape)))
        layer.ln_bias.copy_(torch.as_tensor(rng.normal(scale=0.3, size=layer.ln_bias.shape)))


#: se_e2_a: type_map, rcut, rcut_smth, sel; variants
SE_A_SYSTEMS = {"agau": (["Ag", "Au"], 5.0, 2.0, [42, 41]), "molecule": (["C", "H", "O"], 4.0, 0.5, [10, 10, 10]),
                "water": (["O", "H"], 4.0, 0.5, [24, 48])}
SE_A_VARIANTS = {"one_side": {"type_one_side": True}, "two_side": {"type_one_side": False},
                 "exclude01": {"type_one_side": False, "exclude_types": [[0, 1]]}}
#: se_e2_r, se_e3, se_atten, hybrid: type_map, rcut, rcut_smth, sel (per type; se_atten: their sum)
SYSTEMS = {"agau": (["Ag", "Au"], 4.5, 2.0, [42, 41]), "molecule": (["C", "H", "O"], 4.0, 0.5, [10, 10, 10])}
SE_VARIANTS = {"se_r_one_side": {"type": "se_e2_r", "type_one_side": True},
               "se_r_two_side": {"type": "se_e2_r", "type_one_side": False}, "se_t": {"type": "se_e3"}}
ATTEN_VARIANTS = {"dpa1": {"type": "dpa1", "attn_layer": 2},
                  "dpa1_smooth": {"type": "se_atten", "attn_layer": 2, "smooth_type_embedding": True},
                  "v2": {"type": "se_atten_v2", "attn_layer": 2}}
#: hybrid = se_e2_a (short cutoff) + se_e2_r (long cutoff): [(kind, rcut, rcut_smth, sel)] of the members
HYBRID_MEMBERS = {"agau": [("se_e2_a", 3.2, 1.5, [14, 14]), ("se_e2_r", 4.5, 2.0, [42, 41])],
                  "molecule": [("se_e2_a", 2.5, 0.5, [4, 8, 3]), ("se_e2_r", 4.0, 0.5, [10, 10, 10])]}


@keep_default_dtype
@functools.lru_cache(maxsize=None)
def se_a_model(system: str, variant: str):
    type_map, rcut, rcut_smth, sel = SE_A_SYSTEMS[system]
    desc = {"type": "se_e2_a", "sel": sel, "rcut": rcut, "rcut_smth": rcut_smth, "neuron": [8, 16],
            "axis_neuron": 4, "resnet_dt": False, "seed": 1, **SE_A_VARIANTS[variant]}
    return _energy_model(type_map, desc, [16, 16], frames_for(system, 3), _perturb_se_a)


@keep_default_dtype
@functools.lru_cache(maxsize=None)
def se_model(system: str, variant: str):
    """se_e2_r (one- and two-sided) and se_e3."""
    type_map, rcut, rcut_smth, sel = SYSTEMS[system]
    desc = {"sel": sel, "rcut": rcut, "rcut_smth": rcut_smth, "neuron": [4, 8], "resnet_dt": True, "seed": 1,
            **SE_VARIANTS[variant]}
    return _energy_model(type_map, desc, [8, 8], frames_for(system), _perturb_se)


@keep_default_dtype
@functools.lru_cache(maxsize=None)
def atten_model(system: str, variant: str):
    """se_atten (dpa1, with and without smooth_type_embedding) and se_atten_v2."""
    type_map, rcut, rcut_smth, sel = SYSTEMS[system]
    desc = {"sel": sum(sel), "rcut": rcut, "rcut_smth": rcut_smth, "neuron": [4, 8], "axis_neuron": 4, "tebd_dim": 4,
            "attn": 6, "resnet_dt": True, "seed": 1, **ATTEN_VARIANTS[variant]}
    return _energy_model(type_map, desc, [8, 8], frames_for(system), _perturb_atten)


@keep_default_dtype
@functools.lru_cache(maxsize=None)
def atten_dipole_model():
    """se_atten_v2 (axis vectors rot_mat [N, M1, 3]) with a dipole head, on the molecule's types."""
    type_map, rcut, rcut_smth, sel = SYSTEMS["molecule"]
    desc = {"type": "se_atten_v2", "sel": sum(sel), "rcut": rcut, "rcut_smth": rcut_smth, "neuron": [4, 8],
            "axis_neuron": 4, "tebd_dim": 4, "attn": 6, "attn_layer": 1, "seed": 1}
    return build_model({"type_map": type_map, "descriptor": desc,
                        "heads": {HEAD: {"type": "dipole", "neuron": [8], "resnet_dt": True, "seed": 3}}}).eval()


@keep_default_dtype
@functools.lru_cache(maxsize=None)
def hybrid_model(system: str):
    type_map = SYSTEMS[system][0]
    desc = {"type": "hybrid", "list": [
        {"type": kind, "sel": sel, "rcut": rcut, "rcut_smth": rs, "neuron": [4, 8], "resnet_dt": True, "seed": 1 + k,
         **({"axis_neuron": 4} if kind == "se_e2_a" else {"type_one_side": True})}
        for k, (kind, rcut, rs, sel) in enumerate(HYBRID_MEMBERS[system])]}
    return _energy_model(type_map, desc, [8, 8], frames_for(system), _perturb_hybrid)


def hybrid_radii(system: str) -> tuple[float, ...]:
    """The hybrid's rcut and every member cutoff and rcut_smth (> 0.3 A) below it."""
    members = HYBRID_MEMBERS[system]
    rcut = max(m[1] for m in members)
    return (rcut,) + tuple(sorted({r for _, rc, rs, _ in members for r in (rc, rs) if 0.3 < r < rcut}, reverse=True))


#: se_e2_a + tensor heads: type_map, rcut, sel; head configs
TENSOR_SYSTEMS = {"water": (["O", "H"], 4.0, [24, 48]), "molecule": (["C", "H", "O"], 4.0, [10, 10, 10])}
TENSOR_HEADS = {"dipole": {"type": "dipole"}, "polar-diag": {"type": "polar", "fit_diag": True},
                "polar-full": {"type": "polar", "fit_diag": False, "scale": "random", "shift_diag": True}}


def tensor_frame(system: str):
    return water_frames(1) if system == "water" else molecule_system()


@functools.lru_cache(maxsize=None)
def tensor_model(system: str, head: str, type_one_side: bool = False, sel_type: tuple | None = None):
    """se_e2_a + dipole / polar with random biases, per-type scales, constant_matrix and out_bias."""
    type_map, rcut, sel = TENSOR_SYSTEMS[system]
    nt = len(type_map)
    rng = np.random.default_rng(3)
    hcfg = {**TENSOR_HEADS[head], "neuron": [12, 12], "seed": 2,
            "sel_type": None if sel_type is None else list(sel_type)}
    if hcfg.get("scale") == "random":
        hcfg["scale"] = rng.uniform(0.5, 2.0, size=nt).tolist()
    desc = {"type": "se_e2_a", "sel": sel, "rcut": rcut, "rcut_smth": 0.5, "neuron": [6, 12], "axis_neuron": 4,
            "type_one_side": type_one_side, "seed": 1}
    model = build_model({"type_map": type_map, "descriptor": desc, "heads": {HEAD: hcfg}})
    with torch.no_grad():
        model.descriptor.compute_stats(system_graphs(tensor_frame(system), type_map, rcut))
        model.descriptor.davg[..., 0] += torch.as_tensor(rng.uniform(0.05, 0.3, size=(nt, nt)))
        h = model.heads[HEAD]
        h.bias_atom_e.copy_(torch.as_tensor(rng.normal(size=h.bias_atom_e.shape)))
        if isinstance(h, PolarHead):
            h.constant_matrix.copy_(torch.as_tensor(rng.normal(size=nt)))
            h.out_bias.copy_(torch.as_tensor(rng.normal(size=(nt, 3, 3))))
    return model.eval()


#: the se_e2_a cases and frames of test_compress, test_inference_paths and test_training_kernels
se_a_frames = functools.partial(frames_for, n_agau=3)
