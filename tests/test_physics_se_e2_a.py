"""Physics checks (tests/physics.py) for the se_e2_a + ener model.

Systems: a periodic Ag-Au EMT frame (bundled), the non-periodic ethanol-like molecule, and a
shared water frame (skipped when ../shared is absent).  Model variants: type_one_side True,
False, and False with exclude_types [[0, 1]].  Statistics come from compute_stats, then
davg[..., 0] gets a random per-pair offset (exercises the padding term) and the head a random
bias_atom_e.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import physics
from conftest import AGAU, molecule_system, water_frames
from mtzoo.data.graph import system_graphs
from mtzoo.data.readers import read_deepmd
from mtzoo.model import build_model

SYSTEMS = {
    # type_map, rcut, rcut_smth, sel
    "agau": (["Ag", "Au"], 5.0, 2.0, [42, 41]),
    "molecule": (["C", "H", "O"], 4.0, 0.5, [10, 10, 10]),
    "water": (["O", "H"], 4.0, 0.5, [24, 48]),
}
VARIANTS = {
    "one_side": {"type_one_side": True},
    "two_side": {"type_one_side": False},
    "exclude01": {"type_one_side": False, "exclude_types": [[0, 1]]},
}
CASES = [pytest.param(s, v, id=f"{s}-{v}") for s in SYSTEMS for v in VARIANTS]
HEAD = "default"


def _agau(name: str, iframe: int = 0):
    return (read_deepmd(AGAU / "train" / name)[0], iframe)


def _water(iframe: int = 0):
    return (water_frames(iframe + 1), iframe)


def frames_for(system: str) -> list:
    """Frames of one case: the first is the main test frame."""
    if system == "agau":
        return [_agau("au16", 0), _agau("au08", 3), _agau("au24", 7)]
    if system == "molecule":
        return [molecule_system()]
    if system == "water":  # DeePMD's example with ../shared, generated water without (conftest.water_frames)
        return [_water(0), _water(1)]
    raise KeyError(system)


@functools.lru_cache(maxsize=None)
def _model(system: str, variant: str):
    type_map, rcut, rcut_smth, sel = SYSTEMS[system]
    desc = {"type": "se_e2_a", "sel": sel, "rcut": rcut, "rcut_smth": rcut_smth, "neuron": [8, 16],
            "axis_neuron": 4, "resnet_dt": False, "seed": 1, **VARIANTS[variant]}
    model = build_model({"type_map": type_map, "descriptor": desc,
                         "heads": {HEAD: {"type": "ener", "neuron": [16, 16], "resnet_dt": True, "seed": 2}}})
    graphs = []
    for obj in frames_for(system):
        s, i = obj if isinstance(obj, tuple) else (obj, 0)
        graphs += system_graphs(s, type_map, rcut)[i: i + 1]
    model.descriptor.compute_stats(graphs)
    rng = np.random.default_rng(11)
    nt = len(type_map)
    with torch.no_grad():
        d = model.descriptor
        d.davg[..., 0] += torch.as_tensor(rng.uniform(0.05, 0.3, size=(nt, nt)), dtype=d.davg.dtype)
        d.dstd.mul_(torch.as_tensor(rng.uniform(0.8, 1.2, size=(nt, nt, 1)), dtype=d.dstd.dtype))
        assert torch.all(d.davg[..., 0] != 0) and torch.all(d.davg[..., 1:] == 0)
        model.heads[HEAD].bias_atom_e.copy_(torch.as_tensor(rng.normal(size=nt)))
    return model.eval()


def model_for(system: str, variant: str):
    return physics.keep_default_dtype(_model)(system, variant)


_report = physics.report


# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("system,variant", CASES)
def test_forces_fd(system, variant, request):
    model = model_for(system, variant)
    frame = frames_for(system)[0]
    err = physics.check_forces_fd(model, frame, HEAD, h=1e-5, rtol=1e-6, max_atoms=12 if system != "molecule" else None)
    _report(request, "forces_fd_rel", err)


@pytest.mark.parametrize("system,variant", CASES)
def test_virial_fd(system, variant, request):
    model = model_for(system, variant)
    frame = frames_for(system)[0]
    err = physics.check_virial_fd(model, frame, HEAD, h=1e-6, rtol=1e-6)
    _report(request, "virial_fd_rel", err)


@pytest.mark.parametrize("system,variant", CASES)
def test_invariance(system, variant, request):
    model = model_for(system, variant)
    frame = frames_for(system)[0]
    err = physics.check_invariance(model, frame, HEAD, rtol=1e-10)
    _report(request, "invariance_rel", err)


def _pairs(model, excluded: bool) -> list[tuple[str, str]]:
    tm = model.type_map
    ex = {tuple(sorted(p)) for p in model.descriptor.exclude_types}
    return [(tm[a], tm[b]) for a in range(len(tm)) for b in range(len(tm)) if (tuple(sorted((a, b))) in ex) == excluded]


@pytest.mark.parametrize("system,variant", CASES)
def test_cutoff_smoothness(system, variant, request):
    """Every type pair that is not excluded (all pairs for the variants without exclude_types)."""
    model = model_for(system, variant)
    errs = physics.check_cutoff_smoothness(model, HEAD, step=1e-6, tol=1e-8, pairs=_pairs(model, excluded=False))
    _report(request, "cutoff", errs)


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="kept for parity with DeePMD-kit (and warned about when the model is built): an excluded "
                          "neighbour still takes one of the sel slots, so one padding row (-davg/dstd) disappears as it "
                          "enters rcut and the energy jumps when davg[...,0] != 0 (Ag-Au at rcut=5.0: -3.3e-2 eV; "
                          "deepmd.dpmodel 3.2.0 jumps the same way). Smooth with set_davg_zero, tested below.")
@pytest.mark.parametrize("system", list(SYSTEMS))
def test_cutoff_smoothness_excluded_pair(system):
    model = model_for(system, "exclude01")
    physics.check_cutoff_smoothness(model, HEAD, step=1e-6, tol=1e-8, pairs=_pairs(model, excluded=True))


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_cutoff_smoothness_excluded_pair_with_zero_mean(system):
    """With davg = 0 (set_davg_zero) the padding row is zero and excluded pairs cross rcut smoothly."""
    model = model_for(system, "exclude01")
    with torch.no_grad():
        model.descriptor.davg.zero_()
    physics.check_cutoff_smoothness(model, HEAD, step=1e-6, tol=1e-8, pairs=_pairs(model, excluded=True))


@pytest.mark.parametrize("system,variant", CASES)
def test_batch_independence(system, variant, request):
    model = model_for(system, variant)
    frames = frames_for(system)
    if system == "molecule":
        # the C/H/O model also evaluates water (periodic, 192 atoms), and a distorted copy
        mol = physics.as_frame(frames[0])
        rng = np.random.default_rng(5)
        other = mol.replace(pos=mol.pos + rng.normal(scale=0.1, size=mol.pos.shape))
        frames = [mol, other, _water(0)]
    else:
        # add a small non-periodic cluster (different size, mixed periodicity in one batch)
        # (atom 0 and its 4 nearest atoms without images, so that the cluster has edges)
        first = physics.as_frame(frames[0], model.type_map)
        near = np.argsort(np.linalg.norm(first.pos - first.pos[0], axis=1))[:5]
        frames = frames + [physics.Frame([first.symbols[i] for i in near], first.pos[near], None)]
    sizes = {physics.as_frame(f, model.type_map).natoms for f in frames}
    assert len(sizes) >= 2
    err = physics.check_batch_independence(model, frames, HEAD, rtol=1e-12)
    _report(request, "batch_rel", err)


@pytest.mark.parametrize("system,variant", CASES)
def test_dtype_float32(system, variant, request):
    model = model_for(system, variant)
    err = physics.check_dtype_float32(model, frames_for(system), HEAD, rtol=1e-5)
    _report(request, "float32_energy_rel", err)


@pytest.mark.parametrize("system", ["agau", "molecule"])
def test_isolated_atom(system):
    physics.check_isolated_atom(model_for(system, "two_side"), HEAD)
