"""The pair correction of an energy head (mtzoo.heads.pair) and its ridge fit.

Physics on a head with random pair weights (float64): finite-difference forces and virial,
invariance, continuity at the cut-off, batch independence, the hand-differentiated forces path
equal to autograd, ghost centres (LAMMPS) leaving their edges out; the ridge fit equal to an
independent numpy solution of the feature set the cross-validation chose.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import physics
from conftest import AGAU, molecule_system
from mtzoo import keys as K
from mtzoo.data.graph import collate, system_graphs
from mtzoo.data.readers import load_systems, read_deepmd
from mtzoo.heads.pair import PairCorrection
from mtzoo.model import Predictor, build_model, edge_vectors

HEAD = "default"
SYSTEMS = {"agau": (["Ag", "Au"], 4.5, [42, 41]), "molecule": (["C", "H", "O"], 4.0, [10, 10, 10])}


def _frames(system):
    if system == "agau":
        return [read_deepmd(AGAU / "train" / "au16")[0]]
    return [molecule_system()]


@functools.lru_cache(maxsize=None)
def _model(system: str):
    type_map, rcut, sel = SYSTEMS[system]
    desc = {"type": "se_e2_a", "sel": sel, "rcut": rcut, "rcut_smth": 0.5, "neuron": [4, 8], "axis_neuron": 2,
            "seed": 1}
    model = build_model({"type_map": type_map, "descriptor": desc, "heads": {HEAD: {
        "type": "ener", "neuron": [8], "seed": 2, "pair_correction": {"rcut": rcut, "n_basis": 6, "r_min": 1.0,
                                                                      "r_max": 3.5}}}})
    model.descriptor.compute_stats(system_graphs(_frames(system)[0], type_map, rcut)[:1])
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # pair forces of the size of the net's (asymmetric weights: symmetrised in use)
        model.heads[HEAD].pair.weight.copy_(torch.randn(model.heads[HEAD].pair.weight.shape, generator=g,
                                                        dtype=torch.float64))
    return model.eval()


model_for = physics.keep_default_dtype(_model)


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_pair_forces_and_virial_are_energy_derivatives(system):
    model = model_for(system)
    frame = _frames(system)[0]
    physics.check_forces_fd(model, frame, HEAD, rtol=1e-6)
    if system == "agau":
        physics.check_virial_fd(model, frame, HEAD, rtol=1e-6)
    physics.check_invariance(model, frame, HEAD)


def test_pair_term_is_continuous_at_the_cutoff():
    physics.check_cutoff_smoothness(model_for("molecule"), HEAD)


def test_pair_term_batch_independent_and_both_force_paths_agree():
    model = model_for("agau")
    s = read_deepmd(AGAU / "train" / "au16")[0]
    physics.check_batch_independence(model, [s, read_deepmd(AGAU / "train" / "au08")[0]], HEAD)
    batch = collate(system_graphs(s, model.type_map, model.rcut)[:3])
    lean = Predictor(model)(batch, head=HEAD)  # hand-differentiated nets + autograd pair term
    full = model(batch, head=HEAD, create_graph=True)  # autograd throughout
    for k in (K.ENERGY, K.FORCES, K.VIRIAL):
        torch.testing.assert_close(lean[k].detach(), full[k].detach(), rtol=0, atol=1e-11)


def test_pair_energy_is_the_sum_over_pairs_and_ghost_centres_are_left_out():
    """Frame energy of the pair term = sum over unordered pairs of phi_ab(r) (the closed form of the
    module docstring, evaluated here in numpy); with ``n_centres`` the edges around later atoms (LAMMPS
    ghosts) add nothing to the first atoms' energies."""
    model = model_for("molecule")
    hd = model.heads[HEAD]
    s = molecule_system()
    g = collate(system_graphs(s, model.type_map, model.rcut)[:1])
    vec = edge_vectors(g[K.POSITIONS], g[K.EDGE_INDEX], g[K.CELL_SHIFT], g[K.CELL], g[K.BATCH])
    out, _ = model.head_outputs(vec, g[K.EDGE_INDEX], g[K.ATOM_TYPE], HEAD, differentiate=False)
    pair = hd.pair
    hd.pair = None
    try:
        base, _ = model.head_outputs(vec, g[K.EDGE_INDEX], g[K.ATOM_TYPE], HEAD, differentiate=False)
        part, _ = model.head_outputs(vec, g[K.EDGE_INDEX], g[K.ATOM_TYPE], HEAD, differentiate=False, n_centres=4)
    finally:
        hd.pair = pair
    pos, types = g[K.POSITIONS].numpy(), g[K.ATOM_TYPE].numpy()
    w = pair.weight.detach().numpy()
    w = 0.5 * (w + w.transpose(1, 0, 2))
    mu, sig, rc = pair.centres.numpy(), pair.sigma, pair.rcut
    want = 0.0
    for i in range(len(pos)):
        for j in range(i + 1, len(pos)):
            r = np.linalg.norm(pos[i] - pos[j])
            if r < rc:
                want += (w[types[i], types[j]] * np.exp(-(r - mu) ** 2 / (2 * sig**2))).sum() * (1 - (r / rc) ** 2) ** 3
    got = float((out[K.ATOM_ENERGY] - base[K.ATOM_ENERGY]).detach().sum())
    assert abs(got - want) <= 1e-12 * max(abs(want), 1.0) and abs(want) > 1e-3
    part_full, _ = model.head_outputs(vec, g[K.EDGE_INDEX], g[K.ATOM_TYPE], HEAD, differentiate=False, n_centres=4)
    torch.testing.assert_close((part_full[K.ATOM_ENERGY] - part[K.ATOM_ENERGY]).detach(),
                               (out[K.ATOM_ENERGY] - base[K.ATOM_ENERGY]).detach()[:4], rtol=0, atol=1e-12)


def test_pair_correction_rejects_bad_settings():
    from mtzoo.config import parse_input
    from mtzoo.config.base import ConfigError

    with pytest.raises(ValueError, match="r_min < r_max"):
        PairCorrection(2, 5.0, r_min=3.0, r_max=1.0)
    raw = {"model": {"type_map": ["H"], "descriptor": {"type": "se_e2_a", "sel": [4], "rcut": 4.0, "rcut_smth": 0.5},
                     "fitting_net": {"pair_correction": {"rcut": 4.0, "nbasis": 8}}},
           "training": {"training_data": {"systems": ["x"]}, "numb_steps": 1}}
    with pytest.raises(ConfigError, match="nbasis"):
        parse_input(raw, "input.json")


def test_ridge_fit_with_pair_features_is_the_closed_form_solution(tmp_path):
    """The default fine-tune (ridge, descriptor and pair features) gives energies equal to an independent
    numpy ridge solution of the feature set that its cross-validation chose, on training and validation
    frames; every candidate feature set is scored and logged."""
    from test_finetune import D3ZERO, _counts, _energies, _energy_only_copy

    from mtzoo.heads.energy import fit_energy_bias
    from mtzoo.zoo.finetune import finetune
    from mtzoo.zoo.frozen import load_model
    from mtzoo.zoo.ridge import _features

    train = _energy_only_copy(D3ZERO / "train", tmp_path / "train")
    logs = []
    path = finetune("agau-emt-d3-v1", train, head_name="d3zero", init_from="emt_d3bj", workdir=tmp_path / "r",
                    log=logs.append)
    meta = torch.load(path, weights_only=True)["metadata"]["finetune"]["ridge"]
    assert set(meta["cv_rmse_by_features"]) == {"descriptor", "pair", "descriptor+pair"}
    assert "descriptor+pair" in "\n".join(logs)
    new = load_model(path)
    assert new.heads["d3zero"].pair is not None
    zero = load_model(finetune("agau-emt-d3-v1", train, head_name="d3zero", init_from="emt_d3bj", fit="sgd", steps=0,
                               correction_neuron=[], pair_correction=True, workdir=tmp_path / "z", log=lambda *a: None))
    systems = load_systems([str(train)])
    blocks, pred0, label, counts = _features(zero, "d3zero", systems)
    names = meta["features"].split("+")
    phi = np.concatenate([blocks[n] for n in names], 1)
    y = label - pred0
    sd = phi.std(0)
    keep = sd > 1e-12 * np.abs(phi).max()
    lo = 0
    for n in names:  # each block divided by its largest column standard deviation
        part = slice(lo, lo + blocks[n].shape[1])
        sd[part] = sd[part][keep[part]].max()
        lo = part.stop
    a = (phi[:, keep] - phi[:, keep].mean(0)) / sd[keep]
    lam = meta["lambda"] * np.mean(np.linalg.svd(a, compute_uv=False) ** 2)
    w_full = np.zeros(phi.shape[1])
    if np.isfinite(lam):
        w_full[keep] = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y - y.mean())) / sd[keep]
    delta = fit_energy_bias(counts, y - phi @ w_full)
    np.testing.assert_allclose(_energies(new, systems, "d3zero"), pred0 + phi @ w_full + counts @ delta, rtol=0, atol=1e-8)
    valid = load_systems([str(D3ZERO / "valid")])
    blocks_v, pred0_v, _, counts_v = _features(zero, "d3zero", valid)
    phi_v = np.concatenate([blocks_v[n] for n in names], 1)
    np.testing.assert_allclose(_energies(new, valid, "d3zero"), pred0_v + phi_v @ w_full + counts_v @ delta,
                               rtol=0, atol=1e-8)
    assert _counts(valid, new.type_map).shape == counts_v.shape


def test_cli_no_pair_correction_leaves_the_term_out(tmp_path):
    from test_finetune import D3ZERO, _energy_only_copy

    from mtzoo.cli.main import main
    from mtzoo.zoo.frozen import load_model

    train = _energy_only_copy(D3ZERO / "train", tmp_path / "train")
    for flag, has_pair in (([], True), (["--no-pair-correction"], False)):
        out = tmp_path / f"ft{len(flag)}.pth"
        main(["finetune", "-m", "agau-emt-d3-v1", "--train", str(train), "--head", "d3zero", "--init-from", "emt_d3bj",
              "-w", str(tmp_path / f"w{len(flag)}"), "-o", str(out), *flag])
        assert (load_model(out).heads["d3zero"].pair is not None) is has_pair
