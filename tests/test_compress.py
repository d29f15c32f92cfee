"""Model compression (tabulated se_e2_a embedding nets, mtzoo.nn.tabulate / mtzoo.zoo.compress).

The tables are checked on their own (Hermite interpolation exact on quintics, C2 at knots,
deviation bounded by tol between test points) and through the model: compressed and exact
energies/forces/virials agree, forces and virial equal finite differences of the compressed
energy (the hand-written backward), the energy stays smooth at rcut, neighbours closer than
rmin fall back to the nets, and the compression survives a save/load round trip.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import physics
from mtzoo import keys as K
from mtzoo.nn.mlp import EmbeddingNet
from mtzoo.nn.tabulate import check_compress, eval_table, hermite_coefficients, net_derivatives, tabulate_net
from physics import HEAD, SE_A_SYSTEMS, SE_A_VARIANTS, se_a_frames as frames_for, se_a_model as model_for

CASES = [pytest.param(s, v, id=f"{s}-{v}") for s in SE_A_SYSTEMS for v in SE_A_VARIANTS]


@pytest.fixture(params=["compiled", "torch"])
def kernels(request, monkeypatch):
    """Run a test with the compiled per-edge kernels (tabulate_ext.cpp) and with torch ops."""
    from mtzoo.nn.tabulate import fused_extension

    if request.param == "torch":
        monkeypatch.setenv("MTZOO_EXTENSIONS", "0")
    elif fused_extension() is None:
        pytest.skip("compiled kernels unavailable here (no compiler?)")
    return request.param


def _compressed(system: str, variant: str, **kw):
    exact = model_for(system, variant)
    model = copy.deepcopy(exact)
    model.descriptor.enable_compression(**kw)
    return exact, model


# ------------------------------------------------------------------------------------------
def test_hermite_reproduces_a_quintic():
    rng = np.random.default_rng(0)
    c = torch.as_tensor(rng.normal(size=(6, 3)))

    def poly(x, d=0):
        out = torch.zeros(x.shape[0], 3)
        for k in range(d, 6):
            fac = float(np.prod(np.arange(k - d + 1, k + 1))) if d else 1.0
            out += fac * c[k] * x[:, None] ** (k - d)
        return out

    knots = torch.tensor([-1.0, -0.3, 0.4, 2.0])
    coef = hermite_coefficients(knots, poly(knots), poly(knots, 1), poly(knots, 2))
    x = torch.linspace(-1.0, 2.0, 101)
    err = float((eval_table(knots, coef, x) - poly(x)).abs().max())
    assert err < 1e-12, err


def test_table_is_c2_at_knots_and_within_tol():
    torch.manual_seed(0)
    net = EmbeddingNet(1, [8, 16, 32], "tanh", resnet_dt=True, seed=3)
    tol = 1e-9
    knots, coef, dev = tabulate_net(net, -1.0, 12.0, tol)
    assert dev <= tol and coef.shape[0] >= 16
    # value, slope and curvature of neighbouring bins agree at every inner knot
    inner = knots[1:-1]
    left = torch.arange(len(inner))
    h = (knots[1:] - knots[:-1])[left].unsqueeze(-1)
    powers = lambda d: torch.stack([torch.as_tensor(float(np.prod(np.arange(k - d + 1, k + 1))) if d else 1.0) * h ** max(k - d, 0)
                                    if k >= d else torch.zeros_like(h) for k in range(6)], 1)
    for d in range(3):
        from_left = (coef[left] * powers(d)).sum(1)
        from_right = coef[left + 1][:, d] * float(np.prod(np.arange(1, d + 1)))
        assert float((from_left - from_right).abs().max()) < 1e-8 * (1 + float(from_right.abs().max())), d
    # between the test points too: 4000 random inputs
    x = torch.as_tensor(np.random.default_rng(1).uniform(-1.0, 12.0, 4000))
    with torch.no_grad():
        err = float((eval_table(knots, coef, x) - net(x.unsqueeze(-1))).abs().max())
    assert err <= 3 * tol, err
    f, df, d2f = net_derivatives(net, x[:5])
    eps = 1e-5
    num = (net((x[:5] + eps).unsqueeze(-1)) - net((x[:5] - eps).unsqueeze(-1))) / (2 * eps)
    assert float((df - num.detach()).abs().max()) < 1e-8


@pytest.mark.parametrize("system,variant", CASES)
def test_compressed_equals_exact(system, variant, kernels, request):
    exact, model = _compressed(system, variant)
    frames = [physics.as_frame(f, exact.type_map) for f in frames_for(system)]
    ref = physics.evaluate(exact, frames, HEAD)
    got = physics.evaluate(model, frames, HEAD)
    errs = {}
    for key in (K.ENERGY, K.ATOM_ENERGY, K.FORCES, K.VIRIAL):
        errs[key] = physics._assert_close(f"compressed {key}", got[key], ref[key], rtol=1e-8)
    physics.report(request, "compressed_vs_exact_rel", errs)


@pytest.mark.parametrize("system,variant", CASES)
def test_compressed_forces_and_virial_fd(system, variant, kernels, request):
    _, model = _compressed(system, variant)
    frame = frames_for(system)[0]
    errs = {"forces": physics.check_forces_fd(model, frame, HEAD, h=1e-5, rtol=1e-6, max_atoms=8),
            "virial": physics.check_virial_fd(model, frame, HEAD, h=1e-6, rtol=1e-6)}
    physics.report(request, "compressed_fd_rel", errs)


def test_compressed_smooth_at_cutoff_invariant_batch_independent(request):
    _, model = _compressed("agau", "one_side")
    errs = physics.check_cutoff_smoothness(model, HEAD, step=1e-6, tol=1e-8)
    inv = physics.check_invariance(model, frames_for("agau")[0], HEAD, rtol=1e-10)
    batch = physics.check_batch_independence(model, frames_for("agau"), HEAD, rtol=1e-12)
    physics.report(request, "compressed_cutoff_invariance_batch", {"cutoff": errs, "invariance": inv, "batch": batch})


@pytest.mark.parametrize("variant", ["one_side", "two_side"])
def test_neighbours_closer_than_rmin_use_the_net(variant, kernels):
    """rmin = 3.5 A puts most Ag-Au neighbours beyond the tables: those edges run the nets."""
    exact, model = _compressed("agau", variant, rmin=3.5)
    frame = physics.as_frame(frames_for("agau")[0], exact.type_map)
    graph = physics.frame_graph(exact, frame)
    r = (graph[K.POSITIONS][graph[K.EDGE_INDEX][0]] - graph[K.POSITIONS][graph[K.EDGE_INDEX][1]]
         + graph[K.CELL_SHIFT] @ graph[K.CELL][0]).norm(dim=-1)
    assert bool((r < 3.5).any()) and bool((r > 3.5).any())
    ref, got = physics.evaluate(exact, frame, HEAD), physics.evaluate(model, frame, HEAD)
    physics._assert_close("energy", got[K.ENERGY], ref[K.ENERGY], rtol=1e-9)
    physics._assert_close("forces", got[K.FORCES], ref[K.FORCES], rtol=1e-9)
    physics.check_forces_fd(model, frames_for("agau")[0], HEAD, h=1e-5, rtol=1e-6, max_atoms=6)


def test_compressed_model_file_round_trip(tmp_path):
    from mtzoo.zoo.compress import compress
    from mtzoo.zoo.frozen import load_model, save_model

    exact = model_for("molecule", "two_side")
    save_model(exact, tmp_path / "exact.pth")
    info = compress(tmp_path / "exact.pth", tmp_path / "small.pth", tol=1e-10)
    assert info["max_deviation"] <= 1e-10 and sum(info["bins"]) > 0
    loaded = load_model(tmp_path / "small.pth")
    assert loaded.descriptor.compress == {"rmin": 0.5, "tol": 1e-10, "max_bins": 20000}
    frame = frames_for("molecule")[0]
    ref, got = physics.evaluate(exact, physics.as_frame(frame), HEAD), physics.evaluate(loaded, physics.as_frame(frame), HEAD)
    physics._assert_close("energy after load", got[K.ENERGY], ref[K.ENERGY], rtol=1e-9)
    physics._assert_close("forces after load", got[K.FORCES], ref[K.FORCES], rtol=1e-9)
    # float32 cast: tables follow the weights' precision
    m32 = physics.float32_copy(loaded)
    got32 = physics.evaluate(m32, physics.as_frame(frame), HEAD)
    physics._assert_close("float32 energy", got32[K.ENERGY], ref[K.ENERGY], rtol=1e-5)


def test_compressed_descriptor_refuses_training():
    _, model = _compressed("molecule", "one_side")
    model.train()
    graph = physics.frame_graph(model, physics.as_frame(frames_for("molecule")[0]))
    from mtzoo.data.graph import collate

    with pytest.raises(RuntimeError, match="compressed .* for inference"):
        model(collate([graph]), head=HEAD)
    model.descriptor.disable_compression()
    assert model.descriptor.compress is None and "compress" not in model.descriptor.get_config()
    model(collate([graph]), head=HEAD)


def test_bad_compress_settings_and_descriptors(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"compress: unknown key\(s\) \['step'\]"):
        check_compress({"step": 0.01})
    with pytest.raises(ValueError, match="compress.rmin must be > 0"):
        check_compress({"rmin": 0.0})
    with pytest.raises(ValueError, match="compress.tol must be > 0"):
        check_compress({"tol": -1})
    net = EmbeddingNet(1, [4, 8], "relu", seed=1)
    with pytest.raises(ValueError, match="needs more than 8 bins to reach tol"):
        tabulate_net(net, -1.0, 3.0, 1e-14, max_bins=8)
    from mtzoo.cli.main import main

    assert main(["compress", "-i", str(tmp_path / "none.pth"), "-o", str(tmp_path / "x.pth")]) == 2
    assert f"model '{tmp_path / 'none.pth'}' is neither a pretrained model of the zoo" in capsys.readouterr().err
    assert main(["compress", "-i", "hcno-mf-e3nn-v1", "-o", str(tmp_path / "x.pth")]) == 2
    assert "compression is implemented for ['se_e2_a', 'se_e2_r'] descriptors (and hybrids holding them); this model's is 'e3nn_mp'" in capsys.readouterr().err


def test_training_flows_start_from_a_compressed_file(tmp_path):
    """finetune / --init-frz-model read a compressed file's nets; its recorded input survives compression."""
    import torch as _torch

    from mtzoo.zoo.compress import compress
    from mtzoo.zoo.registry import resolve_model_path
    from mtzoo.zoo.frozen import load_model
    from mtzoo.training.tasks import load_frozen_state

    out = tmp_path / "c.pth"
    compress("hcno-mf-se-v1", out)
    src = _torch.load(resolve_model_path("hcno-mf-se-v1"), weights_only=True)["metadata"]["input"]
    state = load_frozen_state(out)
    assert state["metadata"]["input"] == src and "compress" not in state["model_config"]["descriptor"]
    assert load_model(out).descriptor.compress is not None
    assert load_model(out, uncompress=True).descriptor.compress is None


def test_compressed_zoo_model_all_heads(request):
    """hcno-mf-se-v1 compressed: energies and forces, dipoles and polarizabilities equal the exact
    model's, and the tensor heads stay exactly equivariant."""
    from mtzoo.zoo.registry import check_frame, load_pretrained

    exact = load_pretrained("hcno-mf-se-v1")
    model = load_pretrained("hcno-mf-se-v1", compress=True)
    assert model.descriptor.compress is not None and exact.descriptor.compress is None
    frame = physics.as_frame(check_frame("hcno"))
    errs = {}
    for head in exact.head_names():
        ref, got = physics.evaluate(exact, frame, head), physics.evaluate(model, frame, head)
        for key in ref:
            errs[f"{head}.{key}"] = physics._assert_close(f"{head} {key}", got[key], ref[key], rtol=1e-8)
    for head in ("pbe_dipole", "pbe_polar"):
        errs[f"{head}.equivariance"] = physics.check_tensor_equivariance(model, frame, head, rtol=1e-10)
    physics.report(request, "compressed_zoo_rel", errs)


def test_chunked_contraction_equals_one_block(monkeypatch):
    """M is built in blocks of centres (cache-sized); tiny blocks give the same energies and forces
    (torch path; the compiled kernels build M in one block)."""
    import mtzoo.nn.tabulate as tab

    monkeypatch.setenv("MTZOO_EXTENSIONS", "0")
    exact, model = _compressed("agau", "one_side")
    frames = [physics.as_frame(f, exact.type_map) for f in frames_for("agau")]
    ref = physics.evaluate(model, frames, HEAD)
    monkeypatch.setattr(tab, "CHUNK_BYTES", 1)  # one centre per block
    got = physics.evaluate(model, frames, HEAD)
    for key in (K.ENERGY, K.FORCES, K.VIRIAL):
        physics._assert_close(f"chunked {key}", got[key], ref[key], rtol=1e-12)
    physics.check_forces_fd(model, frames_for("agau")[0], HEAD, h=1e-5, rtol=1e-6, max_atoms=4)


SE_R_CASES = [pytest.param(s, v, id=f"{s}-{v}") for s in ("agau", "molecule") for v in ("se_r_one_side", "se_r_two_side")]


@pytest.mark.parametrize("system,variant", SE_R_CASES)
def test_compressed_se_e2_r(system, variant, request):
    """se_e2_r tables: equal to the nets, forces = finite differences, smooth at rcut."""
    exact = physics.se_model(system, variant)
    model = copy.deepcopy(exact)
    from mtzoo.zoo.compress import compress_model

    info = compress_model(model)
    assert info["compressed"] == ["se_e2_r"] and info["max_deviation"] <= 1e-10
    frames = [physics.as_frame(f, exact.type_map) for f in physics.frames_for(system)]
    ref, got = physics.evaluate(exact, frames, HEAD), physics.evaluate(model, frames, HEAD)
    errs = {key: physics._assert_close(f"compressed {key}", got[key], ref[key], rtol=1e-8)
            for key in (K.ENERGY, K.FORCES, K.VIRIAL)}
    errs["forces_fd"] = physics.check_forces_fd(model, physics.frames_for(system)[0], HEAD, h=1e-5, rtol=1e-6, max_atoms=6)
    errs["cutoff"] = physics.check_cutoff_smoothness(model, HEAD, step=1e-6, tol=1e-8)
    physics.report(request, "compressed_se_e2_r", errs)


def test_compressed_hybrid_members(tmp_path):
    """A hybrid's se_e2_a / se_e2_r members are tabulated, the others (se_e3) stay exact."""
    from mtzoo.model import build_model
    from mtzoo.zoo.compress import compress_model

    type_map = ["C", "H", "O"]
    members = [{"type": "se_e2_a", "sel": [10, 10, 10], "rcut": 4.0, "rcut_smth": 0.5, "neuron": [4, 8], "axis_neuron": 2, "seed": 1},
               {"type": "se_e2_r", "sel": [10, 10, 10], "rcut": 3.0, "rcut_smth": 0.5, "neuron": [4, 8], "seed": 2},
               {"type": "se_e3", "sel": [10, 10, 10], "rcut": 2.5, "rcut_smth": 0.5, "neuron": [2, 4], "seed": 3}]
    exact = build_model({"type_map": type_map, "descriptor": {"type": "hybrid", "list": members},
                         "heads": {HEAD: {"type": "ener", "neuron": [8, 8], "seed": 4}}}).eval()
    frame = physics.as_frame(frames_for("molecule")[0])
    exact.descriptor.compute_stats([physics.frame_graph(exact, frame)])
    model = copy.deepcopy(exact)
    info = compress_model(model)
    assert info["descriptor"] == "hybrid" and info["compressed"] == ["se_e2_a", "se_e2_r"]
    cfg = model.descriptor.get_config()["list"]
    assert "compress" in cfg[0] and "compress" in cfg[1] and "compress" not in cfg[2]
    ref, got = physics.evaluate(exact, frame, HEAD), physics.evaluate(model, frame, HEAD)
    physics._assert_close("hybrid energy", got[K.ENERGY], ref[K.ENERGY], rtol=1e-9)
    physics._assert_close("hybrid forces", got[K.FORCES], ref[K.FORCES], rtol=1e-8)
    from mtzoo.zoo.frozen import load_model, save_model

    loaded = load_model(save_model(model, tmp_path / "hybrid.pth"))
    again = physics.evaluate(loaded, frame, HEAD)
    physics._assert_close("hybrid forces after load", again[K.FORCES], got[K.FORCES], rtol=1e-12)


@pytest.mark.parametrize("avx512", [True, False], ids=["avx512-if-present", "portable-loop"])
def test_compiled_kernels_equal_torch_ops(monkeypatch, avx512):
    """The compiled per-edge passes and per-atom tail (the AVX-512 / AVX2 kernels where the CPU
    has them, and the portable loops) and the torch ops give the same energies, forces and virials."""
    from mtzoo.nn.tabulate import fused_extension

    if fused_extension() is None:
        pytest.skip("compiled kernels unavailable here (no compiler?)")
    if not avx512:
        monkeypatch.setenv("MTZOO_NO_AVX512", "1")
        monkeypatch.setenv("MTZOO_NO_AVX2", "1")
    for variant in ("one_side", "two_side", "exclude01"):
        _, model = _compressed("agau", variant)
        frames = [physics.as_frame(f, model.type_map) for f in frames_for("agau")]
        compiled = physics.evaluate(model, frames, HEAD)
        monkeypatch.setenv("MTZOO_EXTENSIONS", "0")
        ops = physics.evaluate(model, frames, HEAD)
        monkeypatch.delenv("MTZOO_EXTENSIONS")
        for key in (K.ENERGY, K.FORCES, K.VIRIAL):
            physics._assert_close(f"{variant} compiled vs torch {key}", compiled[key], ops[key], rtol=1e-12)


@pytest.mark.parametrize("m1", [13, 44])
def test_compiled_kernels_with_channel_remainders(monkeypatch, m1):
    """Embedding widths that are not a multiple of 8 (13 = 8 + 4 + 1, 44 = 32 + 8 + 4): the
    vector kernels' 4-channel and scalar remainders give what the portable loops and the torch
    ops give."""
    from mtzoo.model import build_model
    from mtzoo.nn.tabulate import fused_extension
    SYSTEMS = physics.SE_A_SYSTEMS

    if fused_extension() is None:
        pytest.skip("compiled kernels unavailable here (no compiler?)")
    type_map, rcut, rcut_smth, sel = SYSTEMS["agau"]
    model = build_model({"type_map": type_map,
                         "descriptor": {"type": "se_e2_a", "sel": sel, "rcut": rcut, "rcut_smth": rcut_smth,
                                        "neuron": [4, m1], "axis_neuron": 4, "seed": 5},
                         "heads": {HEAD: {"type": "ener", "neuron": [8, 8], "seed": 6}}}).eval()
    frames = [physics.as_frame(f, type_map) for f in frames_for("agau")]
    model.descriptor.compute_stats([physics.frame_graph(model, f) for f in frames])
    model.descriptor.enable_compression()
    got = physics.evaluate(model, frames, HEAD)
    monkeypatch.setenv("MTZOO_NO_AVX512", "1")
    monkeypatch.setenv("MTZOO_NO_AVX2", "1")
    portable = physics.evaluate(model, frames, HEAD)
    monkeypatch.setenv("MTZOO_EXTENSIONS", "0")
    ops = physics.evaluate(model, frames, HEAD)
    for key in (K.ENERGY, K.FORCES, K.VIRIAL):
        physics._assert_close(f"M1={m1} vector vs torch {key}", got[key], ops[key], rtol=1e-12)
        physics._assert_close(f"M1={m1} portable vs torch {key}", portable[key], ops[key], rtol=1e-12)
