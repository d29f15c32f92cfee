"""Physics checks (tests/physics.py) for the se_e2_r and se_e3 descriptors with an ener head.

Systems: the periodic Ag-Au EMT frame (bundled) and the non-periodic ethanol-like molecule.
Statistics come from compute_stats, then the radial component of davg gets a random per-pair
offset (the vector part stays zero, as compute_stats gives: a non-zero vector mean, possible only
in imported DeePMD-kit models, makes se_e3 depend on orientation, in DeePMD-kit too; the
padded-slot terms with a vector mean are covered by tests/test_parity_descriptors.py), dstd a
random scale and the head a random bias_atom_e.  Small nets keep the file fast.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import physics
from conftest import AGAU, molecule_system
from mtzoo.config import parse_input
from mtzoo.config.base import ConfigError
from mtzoo.data.graph import system_graphs
from mtzoo.data.readers import read_deepmd
from mtzoo.model import build_model

SYSTEMS = {
    # type_map, rcut, rcut_smth, sel
    "agau": (["Ag", "Au"], 4.5, 2.0, [42, 41]),
    "molecule": (["C", "H", "O"], 4.0, 0.5, [10, 10, 10]),
}
VARIANTS = {
    "se_r_one_side": {"type": "se_e2_r", "type_one_side": True},
    "se_r_two_side": {"type": "se_e2_r", "type_one_side": False},
    "se_t": {"type": "se_e3"},
}
CASES = [pytest.param(s, v, id=f"{s}-{v}") for s in SYSTEMS for v in VARIANTS]
HEAD = "default"


def frames_for(system: str) -> list:
    if system == "agau":
        return [(read_deepmd(AGAU / "train" / "au16")[0], 0), (read_deepmd(AGAU / "train" / "au08")[0], 3)]
    return [molecule_system()]


@functools.lru_cache(maxsize=None)
def _model(system: str, variant: str):
    type_map, rcut, rcut_smth, sel = SYSTEMS[system]
    desc = {"sel": sel, "rcut": rcut, "rcut_smth": rcut_smth, "neuron": [4, 8], "resnet_dt": True, "seed": 1,
            **VARIANTS[variant]}
    model = build_model({"type_map": type_map, "descriptor": desc,
                         "heads": {HEAD: {"type": "ener", "neuron": [8, 8], "resnet_dt": True, "seed": 2}}})
    graphs = []
    for obj in frames_for(system):
        s, i = obj if isinstance(obj, tuple) else (obj, 0)
        graphs += system_graphs(s, type_map, rcut)[i: i + 1]
    model.descriptor.compute_stats(graphs)
    rng = np.random.default_rng(11)
    d = model.descriptor
    with torch.no_grad():
        off = torch.as_tensor(rng.uniform(0.05, 0.3, size=d.davg.shape), dtype=d.davg.dtype)
        if d.davg.dim() == 3:  # se_e3: radial mean only (a vector mean would break rotational invariance)
            off[..., 1:] = 0.0
        d.davg.add_(off)
        scale = torch.as_tensor(rng.uniform(0.8, 1.2, size=d.dstd.shape), dtype=d.dstd.dtype)
        if d.dstd.dim() == 3:  # one scale for the three vector components (isotropic)
            scale[..., 2:] = scale[..., 1:2]
        d.dstd.mul_(scale)
        model.heads[HEAD].bias_atom_e.copy_(torch.as_tensor(rng.normal(size=len(type_map))))
    return model.eval()


model_for = physics.keep_default_dtype(_model)


_report = physics.report


@pytest.mark.parametrize("system,variant", CASES)
def test_forces_fd(system, variant, request):
    frame = frames_for(system)[0]
    err = physics.check_forces_fd(model_for(system, variant), frame, HEAD, h=1e-5, rtol=1e-6,
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


@pytest.mark.parametrize("system,variant", CASES)
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


@pytest.mark.parametrize("kind", ["se_e2_r", "se_r", "se_e3", "se_t"])
def test_tensor_head_needs_axis_vectors(kind):
    """dipole/polar on a descriptor without axis vectors fails when the model (or the input) is built."""
    desc = {"type": kind, "sel": [4, 4], "rcut": 4.0, "neuron": [4, 8]}
    with pytest.raises(ValueError, match="dim_rot = 0"):
        build_model({"type_map": ["O", "H"], "descriptor": desc,
                     "heads": {HEAD: {"type": "dipole", "neuron": [8], "resnet_dt": True}}})
    inp = {"model": {"type_map": ["O", "H"], "descriptor": desc, "fitting_net": {"type": "dipole"}},
           "loss": {"type": "tensor", "pref": 1.0, "pref_atomic": 0.0},
           "training": {"training_data": {"systems": "data/sys"}, "numb_steps": 1}}
    with pytest.raises(ConfigError, match="model.fitting_net.type: a 'dipole' fitting needs the descriptor's axis"):
        parse_input(inp)
