"""Physics checks (tests/physics.py) for se_atten (dpa1) and se_atten_v2 with an ener head.

Systems: the periodic Ag-Au EMT frame (bundled) and the non-periodic ethanol-like molecule.
Statistics come from compute_stats; for se_atten_v2 (which keeps davg) the radial mean gets a
random per-type offset so that DeePMD's empty ``sel`` slots contribute; dstd gets a random
(isotropic) scale and the head a random bias_atom_e.  Without ``smooth_type_embedding`` the
attention weight of a neighbour jumps as it crosses rcut (DeePMD-kit behaves the same), so the
cutoff-smoothness check runs only on the smooth variants.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import physics
from conftest import AGAU, molecule_system
from mtzoo.data.graph import system_graphs
from mtzoo.data.readers import read_deepmd
from mtzoo.model import build_model

SYSTEMS = {
    # type_map, rcut, rcut_smth, sel (all types together)
    "agau": (["Ag", "Au"], 4.5, 2.0, 83),
    "molecule": (["C", "H", "O"], 4.0, 0.5, 30),
}
VARIANTS = {
    "dpa1": {"type": "dpa1", "attn_layer": 2},
    "dpa1_smooth": {"type": "se_atten", "attn_layer": 2, "smooth_type_embedding": True},
    "v2": {"type": "se_atten_v2", "attn_layer": 2},
}
SMOOTH = ("dpa1_smooth", "v2")
CASES = [pytest.param(s, v, id=f"{s}-{v}") for s in SYSTEMS for v in VARIANTS]
HEAD = "default"


def frames_for(system: str) -> list:
    if system == "agau":
        return [(read_deepmd(AGAU / "train" / "au16")[0], 0), (read_deepmd(AGAU / "train" / "au08")[0], 3)]
    return [molecule_system()]


@functools.lru_cache(maxsize=None)
def _model(system: str, variant: str):
    type_map, rcut, rcut_smth, sel = SYSTEMS[system]
    desc = {"sel": sel, "rcut": rcut, "rcut_smth": rcut_smth, "neuron": [4, 8], "axis_neuron": 4, "tebd_dim": 4,
            "attn": 6, "resnet_dt": True, "seed": 1, **VARIANTS[variant]}
    model = build_model({"type_map": type_map, "descriptor": desc,
                         "heads": {HEAD: {"type": "ener", "neuron": [8, 8], "resnet_dt": True, "seed": 2}}})
    graphs = []
    for obj in frames_for(system):
        s, i = obj if isinstance(obj, tuple) else (obj, 0)
        graphs += system_graphs(s, type_map, rcut)[i: i + 1]
    d = model.descriptor
    d.compute_stats(graphs)
    rng = np.random.default_rng(11)
    with torch.no_grad():
        if not d.set_davg_zero:
            d.davg[:, 0].add_(torch.as_tensor(rng.uniform(0.05, 0.3, size=d.ntypes), dtype=d.davg.dtype))
        scale = torch.as_tensor(rng.uniform(0.8, 1.2, size=d.dstd.shape), dtype=d.dstd.dtype)
        scale[:, 2:] = scale[:, 1:2]
        d.dstd.mul_(scale)
        for layer in d.attention_layers:  # non-trivial layer norms
            layer.ln_weight.copy_(torch.as_tensor(rng.uniform(0.5, 1.5, size=layer.ln_weight.shape)))
            layer.ln_bias.copy_(torch.as_tensor(rng.normal(scale=0.3, size=layer.ln_bias.shape)))
        model.heads[HEAD].bias_atom_e.copy_(torch.as_tensor(rng.normal(size=len(type_map))))
    return model.eval()


model_for = physics.keep_default_dtype(_model)


_report = physics.report


@pytest.mark.parametrize("system,variant", CASES)
def test_forces_fd(system, variant, request):
    err = physics.check_forces_fd(model_for(system, variant), frames_for(system)[0], HEAD, h=1e-5, rtol=1e-6,
                                  max_atoms=8 if system != "molecule" else None)
    _report(request, "forces_fd_rel", err)


@pytest.mark.parametrize("system,variant", CASES)
def test_virial_fd(system, variant, request):
    err = physics.check_virial_fd(model_for(system, variant), frames_for(system)[0], HEAD, h=1e-6, rtol=1e-6)
    _report(request, "virial_fd_rel", err)


@pytest.mark.parametrize("system,variant", CASES)
def test_invariance(system, variant, request):
    err = physics.check_invariance(model_for(system, variant), frames_for(system)[0], HEAD, rtol=1e-10)
    _report(request, "invariance_rel", err)


@pytest.mark.parametrize("system,variant", [c for c in CASES if c.values[1] in SMOOTH])
def test_cutoff_smoothness(system, variant, request):
    errs = physics.check_cutoff_smoothness(model_for(system, variant), HEAD, step=1e-6, tol=1e-8)
    _report(request, "cutoff", errs)


@pytest.mark.parametrize("system,variant", CASES)
def test_batch_independence(system, variant, request):
    model = model_for(system, variant)
    frames = frames_for(system)
    first = physics.as_frame(frames[0], model.type_map)
    if system == "molecule":
        rng = np.random.default_rng(5)
        frames = [first, first.replace(pos=first.pos + rng.normal(scale=0.1, size=first.pos.shape))]
    near = np.argsort(np.linalg.norm(first.pos - first.pos[0], axis=1))[:5]
    frames = frames + [physics.Frame([first.symbols[i] for i in near], first.pos[near], None)]
    err = physics.check_batch_independence(model, frames, HEAD, rtol=1e-12)
    _report(request, "batch_rel", err)


def test_dipole_head_on_se_atten():
    """se_atten carries axis vectors (rot_mat [N, M1, 3]): a dipole head attaches and is equivariant."""
    type_map, rcut, rcut_smth, sel = SYSTEMS["molecule"]
    desc = {"type": "se_atten_v2", "sel": sel, "rcut": rcut, "rcut_smth": rcut_smth, "neuron": [4, 8],
            "axis_neuron": 4, "tebd_dim": 4, "attn": 6, "attn_layer": 1, "seed": 1}
    model = build_model({"type_map": type_map, "descriptor": desc,
                         "heads": {HEAD: {"type": "dipole", "neuron": [8], "resnet_dt": True, "seed": 3}}})
    physics.check_tensor_equivariance(model.eval(), molecule_system(), HEAD, rtol=1e-10)
