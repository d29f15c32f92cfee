"""e3nn descriptors (``e3nn_mp``, ``e3nn_mace``) and their native tensor heads: contracts, training,
freeze/load and the config schema (float64).  Their physics checks (derivatives, symmetry,
smoothness, batching) run on these models in tests/test_physics.py.

Models are small (``8x0e + 4x1o + 2x2e`` resp. ``6x0e + 6x1o + 6x2e``, lmax 2, two layers; the
MACE-class one with correlation 3) with per-type polar scales and a random ``out_bias``, so that
every term of the heads is exercised.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

from conftest import AGAU, WATER, molecule_system, water_frames
from mtzoo import keys as K
from mtzoo.config import parse_input
from mtzoo.config.base import ConfigError
from mtzoo.data.graph import collate, system_graphs
from mtzoo.data.readers import load_systems, read_deepmd
from mtzoo.descriptors.e3nn_mp import DescrptE3nnMP
from mtzoo.heads import E3nnDipoleHead, E3nnPolarHead, EnergyHead, fit_energy_bias
from mtzoo.model import build_model, model_config
from mtzoo.testing import check_tensor_equivariance
from mtzoo.training.loss import TensorLoss
from mtzoo.zoo.frozen import load_model, save_model

DESC = {"type": "e3nn_mp", "rcut": 3.5, "lmax": 2, "num_layers": 2, "hidden_irreps": "8x0e + 4x1o + 2x2e",
        "n_radial": 6, "radial_neurons": [16], "seed": 1}
DESC_MACE = {"type": "e3nn_mace", "rcut": 3.5, "lmax": 2, "num_layers": 2, "hidden_irreps": "6x0e + 6x1o + 6x2e",
             "correlation": 3, "n_radial": 6, "radial_neurons": [16], "seed": 1}
DESCS = {"e3nn_mp": DESC, "e3nn_mace": DESC_MACE}
#: MACE's own choices: a scalar-only last layer, an unscaled atomic basis (energy heads only) and
#: MACE's redundant product-basis weights
DESC_MACE_SCALAR = {**DESC_MACE, "scalar_last_layer": True, "normalize_atomic_basis": False, "product_weights": "mace"}
HEADS = {"e": {"type": "ener", "neuron": [8, 8], "seed": 2}, "mu": {"type": "dipole", "seed": 3},
         "alpha": {"type": "polar", "seed": 4, "scale": "random"}}


def agau_frame():
    return load_systems([AGAU / "train"])[0]


FRAMES = {"agau": (["Ag", "Au"], agau_frame), "molecule": (["C", "H", "O"], molecule_system)}


@functools.lru_cache(maxsize=None)
def _model(system: str, kind: str = "e3nn_mp"):
    type_map, frame = FRAMES[system]
    nt = len(type_map)
    rng = np.random.default_rng(5)
    heads = {k: dict(v) for k, v in HEADS.items()}
    heads["alpha"]["scale"] = rng.uniform(0.5, 2.0, size=nt).tolist()
    model = build_model({"type_map": type_map, "descriptor": DESCS[kind], "heads": heads})
    with torch.no_grad():
        model.descriptor.compute_stats(system_graphs(frame(), type_map, DESCS[kind]["rcut"]))
        model.heads["e"].bias_atom_e.copy_(torch.as_tensor(rng.normal(size=nt)))
        model.heads["alpha"].out_bias.copy_(torch.as_tensor(rng.normal(size=(nt, 3, 3))))
    return model.eval()


@functools.lru_cache(maxsize=None)
def mace_scalar_model(system: str = "molecule"):
    """An energy-only e3nn_mace model with ``DESC_MACE_SCALAR`` (physics cases in tests/test_physics.py)."""
    type_map, frame = FRAMES[system]
    model = build_model({"type_map": type_map, "descriptor": DESC_MACE_SCALAR, "heads": {"e": HEADS["e"]}})
    with torch.no_grad():
        model.descriptor.compute_stats(system_graphs(frame(), type_map, DESC_MACE_SCALAR["rcut"]))
        model.heads["e"].bias_atom_e.copy_(torch.as_tensor(np.random.default_rng(5).normal(size=len(type_map))))
    return model.eval()


def test_contract_and_dispatch():
    model = _model("molecule")
    d = model.descriptor
    assert isinstance(d, DescrptE3nnMP) and d.dim_rot == 0 and str(d.irreps_out) == "8x0e+4x1o+2x2e"
    assert d.dim_out == 8 and 2.0 < float(d.avg_num_neighbors) < 9.0
    assert isinstance(model.heads["e"], EnergyHead)
    assert isinstance(model.heads["mu"], E3nnDipoleHead) and isinstance(model.heads["alpha"], E3nnPolarHead)
    batch = collate(system_graphs(molecule_system(), model.type_map, model.rcut))
    from mtzoo.model import edge_vectors

    vec = edge_vectors(batch[K.POSITIONS], batch[K.EDGE_INDEX], batch[K.CELL_SHIFT], batch[K.CELL], batch[K.BATCH])
    feats = d(vec, batch[K.EDGE_INDEX], batch[K.ATOM_TYPE])
    assert feats[K.DESCRIPTOR].shape == (9, 8) and feats[K.EQUIVARIANT].shape == (9, d.irreps_out.dim)
    assert torch.equal(feats[K.DESCRIPTOR], feats[K.EQUIVARIANT][:, :8])


def test_polar_symmetric_and_sel_type():
    model = build_model({**model_config(_model("molecule")),
                         "heads": {"alpha": {"type": "polar", "sel_type": [0, 2], "seed": 4}}})
    out = model(collate(system_graphs(molecule_system(), model.type_map, model.rcut)))
    a = out[K.ATOM_POLARIZABILITY].detach()
    assert torch.equal(a, a.transpose(1, 2))
    types = molecule_system().model_types(model.type_map)
    assert torch.all(a[torch.as_tensor(types == 1)] == 0) and a[torch.as_tensor(types != 1)].abs().max() > 0


@pytest.mark.parametrize("kind", list(DESCS))
def test_freeze_load_round_trip(tmp_path, kind):
    model = _model("agau", kind)
    cfg = model_config(model)
    assert json.loads(json.dumps(cfg)) == cfg
    again = load_model(save_model(model, tmp_path / "e3nn.pth"))
    assert model_config(again) == cfg
    batch = collate(system_graphs(agau_frame(), model.type_map, model.rcut))
    for head in model.head_names():
        want, got = model(batch, head=head), again(batch, head=head)
        for key, value in want.items():
            assert torch.equal(got[key], value), (head, key)


def test_config_parses_e3nn_mp():
    cfg = {"model": {"type_map": ["O", "H"], "descriptor": {"type": "e3nn_mp", "rcut": 4.0, "seed": 1},
                     "fitting_net": {"type": "dipole", "sel_type": [0], "neuron": [8]}},
           "learning_rate": {"start_lr": 1e-3}, "loss": {"type": "tensor", "pref": 1.0, "pref_atomic": 0.0},
           "training": {"training_data": {"systems": ["x"]}, "numb_steps": 10}}
    c = parse_input(cfg)
    d = c.model.descriptor
    assert d.type == "e3nn_mp" and d.dim_out == 32 and d.hidden_irreps == "32x0e + 16x1o + 8x2e"
    model = build_model({"type_map": ["O", "H"], "descriptor": d.to_dict(), "heads": {"mu": {"type": "dipole"}}})
    assert isinstance(model.heads["mu"], E3nnDipoleHead)
    for key, value, msg in (("hidden_irreps", "8x1o", "must contain 0e"), ("lmax", 4, "must be 1, 2 or 3"),
                            ("sel", [4, 8], "unknown key")):
        bad = json.loads(json.dumps(cfg))
        bad["model"]["descriptor"][key] = value
        with pytest.raises(ConfigError, match=msg):
            parse_input(bad)


# ------------------------------------------------------------------------------------------
# multi-task training smoke test
# ------------------------------------------------------------------------------------------
def _tasks():
    """(type_map, {head: (head config, training graphs)}): water energy + dipole when the shared
    data is present, else two energy heads on the bundled Ag-Au data (two levels of theory)."""
    dip = WATER.parent / "water_tensor" / "dipole" / "training_data_reformat" / "atomic_system"
    if (WATER / "data" / "data_0").is_dir() and dip.is_dir():
        ener = water_frames(2)
        mu = read_deepmd(dip)[0]
        mu.coord, mu.box = mu.coord[:2], None if mu.box is None else mu.box[:2]
        mu.labels = {k: v[:2] for k, v in mu.labels.items()}
        mu.masks = {k: v[:2] for k, v in mu.masks.items()}
        return ["O", "H"], {"energy": ({"type": "ener", "neuron": [16], "seed": 2}, ener),
                            "dipole": ({"type": "dipole", "sel_type": [0], "seed": 3}, mu)}
    emt, d3 = load_systems([AGAU / "train"])[0], load_systems([AGAU.parent / "agau_d3bj" / "train"])[0]
    return ["Ag", "Au"], {"emt": ({"type": "ener", "neuron": [16], "seed": 2}, emt),
                          "d3": ({"type": "ener", "neuron": [16], "seed": 3}, d3)}


def _loss(model, name, batch):
    head = model.heads[name]
    if isinstance(head, EnergyHead):
        out = model(batch, head=name, virial=False)
        de = (out[K.ENERGY] - batch[K.ENERGY]) / batch[K.NUM_ATOMS]
        return (de**2).mean() + ((out[K.FORCES] - batch[K.FORCES]) ** 2).mean()
    out = model(batch, head=name)
    return TensorLoss.for_head(head, pref=1.0, pref_atomic=1.0)(out, batch, 1e-3)[0]


@pytest.mark.parametrize("kind", list(DESCS))
def test_multitask_training_loss_falls(kind):
    type_map, tasks = _tasks()
    irreps = "8x0e + 4x1o" if kind == "e3nn_mp" else "8x0e + 8x1o"  # e3nn_mace: one multiplicity
    desc = {**DESCS[kind], "hidden_irreps": irreps, "radial_neurons": [8]}
    model = build_model({"type_map": type_map, "descriptor": desc, "heads": {n: c for n, (c, _) in tasks.items()}})
    batches = {}
    for name, (_, system) in tasks.items():
        graphs = system_graphs(system, type_map, model.rcut)[:2]
        batches[name] = collate(graphs)
        if isinstance(model.heads[name], EnergyHead):
            counts = np.stack([np.bincount(system.model_types(type_map), minlength=len(type_map))] * system.nframes)
            bias = fit_energy_bias(counts, system.labels[K.ENERGY])
            model.heads[name].bias_atom_e.copy_(torch.as_tensor(bias))
    model.descriptor.compute_stats([g for b in batches.values() for g in b.to_data_list()])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    first = {n: float(_loss(model, n, b).detach()) for n, b in batches.items()}
    names = list(batches)
    for step in range(40):  # round-robin over the tasks: each step trains one head (and the descriptor)
        name = names[step % len(names)]
        opt.zero_grad()
        _loss(model, name, batches[name]).backward()
        opt.step()
    last = {n: float(_loss(model, n, b).detach()) for n, b in batches.items()}
    print("loss before", first, "after", last)
    for n in names:
        assert last[n] < 0.8 * first[n], (n, first[n], last[n])


@pytest.mark.parametrize("kind", list(DESCS))
def test_constants_are_float64_whatever_the_default_dtype(tmp_path, kind):
    """e3nn computes its Wigner-3j constants in the default dtype; mtzoo builds them in float64,
    and loading a file whose constants were rounded to float32 (written by an older build under
    a float32 default) keeps the exact ones: trained weights then stay equivariant to 1e-12."""
    torch.set_default_dtype(torch.float32)
    try:
        m32 = build_model({"type_map": ["C", "H", "O"], "descriptor": DESCS[kind], "heads": {"mu": HEADS["mu"]}})
    finally:
        torch.set_default_dtype(torch.float64)
    m64 = build_model(model_config(m32))
    consts = [k for k in m64.state_dict() if "._w3j_" in k or ".cg_" in k]
    assert consts
    for k in consts:
        assert torch.equal(m32.state_dict()[k], m64.state_dict()[k]), k
    # a state dict with float32-rounded constants and large weights (as after training)
    sd = {k: v.clone() for k, v in m64.state_dict().items()}
    for k in consts:
        sd[k] = sd[k].float().double()
    rng = torch.Generator().manual_seed(0)
    for k, v in sd.items():
        if k.endswith("weight") and v.numel():
            sd[k] = 3.0 * torch.randn(v.shape, generator=rng, dtype=v.dtype)
    assert any(not torch.equal(sd[k], m64.state_dict()[k]) for k in consts)
    m64.load_state_dict(sd)
    assert all(torch.equal(m64.state_dict()[k], m32.state_dict()[k]) for k in consts)
    check_tensor_equivariance(m64.eval(), molecule_system(), "mu", rtol=1e-12)


# ------------------------------------------------------------------------------------------
# e3nn_mace: outputs, schema and the completeness of the symmetric product basis
# ------------------------------------------------------------------------------------------
def test_mace_contract_and_config():
    from mtzoo.descriptors.e3nn_mace import DescrptE3nnMACE

    model = _model("molecule", "e3nn_mace")
    d = model.descriptor
    assert isinstance(d, DescrptE3nnMACE) and str(d.irreps_out) == "6x0e+6x1o+6x2e" and d.dim_out == 12
    assert isinstance(model.heads["mu"], E3nnDipoleHead) and isinstance(model.heads["alpha"], E3nnPolarHead)
    batch = collate(system_graphs(molecule_system(), model.type_map, model.rcut))
    from mtzoo.model import edge_vectors

    vec = edge_vectors(batch[K.POSITIONS], batch[K.EDGE_INDEX], batch[K.CELL_SHIFT], batch[K.CELL], batch[K.BATCH])
    feats = d(vec, batch[K.EDGE_INDEX], batch[K.ATOM_TYPE])
    # the descriptor is the scalars of both layers; the last layer's are the equivariant output's first columns
    assert feats[K.DESCRIPTOR].shape == (9, 12) and torch.equal(feats[K.DESCRIPTOR][:, 6:], feats[K.EQUIVARIANT][:, :6])
    cfg = {"model": {"type_map": ["O", "H"], "descriptor": {"type": "e3nn_mace", "seed": 1},
                     "fitting_net": {"neuron": [16]}},
           "learning_rate": {"start_lr": 1e-3}, "loss": {"type": "ener"},
           "training": {"training_data": {"systems": ["x"]}, "numb_steps": 10}}
    c = parse_input(cfg).model.descriptor
    assert (c.dim_out, c.hidden_irreps, c.correlation, c.lmax, c.radial_neurons) == (64, "32x0e + 32x1o", 3, 3, [64, 64, 64])
    for key, value, msg in (("hidden_irreps", "8x0e + 4x1o", "same number of channels"), ("correlation", 4, "1, 2 or 3"),
                            ("hidden_irreps", "8x1o", "must contain 0e")):
        bad = json.loads(json.dumps(cfg))
        bad["model"]["descriptor"][key] = value
        with pytest.raises(ConfigError, match=msg):
            parse_input(bad)


def test_mace_scalar_last_layer_and_unscaled_basis(tmp_path):
    """``scalar_last_layer``: the last layer outputs 0e only (the descriptor keeps the scalars of
    every layer); ``normalize_atomic_basis: false`` leaves ``a_scale`` at 1.  Both survive freezing,
    a file without them loads as before (full last layer, scaled basis), and a tensor head on a
    scalar-only descriptor is refused with the key to change."""
    model = mace_scalar_model()
    d = model.descriptor
    assert str(d.irreps_out) == "6x0e" and d.dim_out == 12
    assert torch.equal(d.a_scale, torch.ones_like(d.a_scale)) and float(d.avg_num_neighbors) > 1
    cfg = model_config(model)
    assert cfg["descriptor"]["scalar_last_layer"] is True and cfg["descriptor"]["normalize_atomic_basis"] is False
    again = load_model(save_model(model, tmp_path / "scalar.pth"))
    assert model_config(again) == cfg
    batch = collate(system_graphs(molecule_system(), model.type_map, model.rcut))
    assert torch.equal(again(batch, head="e")[K.ENERGY], model(batch, head="e")[K.ENERGY])
    legacy = build_model({"type_map": ["C", "H", "O"], "descriptor": DESC_MACE, "heads": {"e": HEADS["e"]}})
    assert str(legacy.descriptor.irreps_out) == "6x0e+6x1o+6x2e" and legacy.descriptor.scalar_last_layer is False
    with pytest.raises(ValueError, match="needs equivariant features .* with 1o .*\"scalar_last_layer\": false"):
        build_model({**cfg, "heads": {"mu": {"type": "dipole"}}})
    with pytest.raises(ValueError, match="with 0e and 2e channels; descriptor 'e3nn_mace' provides 6x0e\\+6x1o$"):
        build_model({**cfg, "descriptor": {**DESC_MACE, "hidden_irreps": "6x0e + 6x1o"}, "heads": {"a": {"type": "polar"}}})


def test_mace_scalar_last_layer_default_follows_the_heads():
    """``scalar_last_layer: null`` (the schema's default) becomes true for energy heads only and false
    when a dipole head reads the equivariant features."""
    from mtzoo.training.tasks import model_from_input

    cfg = {"model": {"type_map": ["O", "H"], "descriptor": {"type": "e3nn_mace", "seed": 1, "lmax": 1,
                                                           "hidden_irreps": "4x0e + 4x1o"},
                     "fitting_net": {"neuron": [8]}},
           "learning_rate": {"start_lr": 1e-3}, "loss": {"type": "ener"},
           "training": {"training_data": {"systems": ["x"]}, "numb_steps": 10}}
    assert parse_input(cfg).model.descriptor.scalar_last_layer is None
    energy = model_from_input(parse_input(cfg), []).descriptor
    assert energy.scalar_last_layer is True and str(energy.irreps_out) == "4x0e"
    cfg["model"]["fitting_net"], cfg["loss"] = {"type": "dipole"}, {"type": "tensor", "pref": 1, "pref_atomic": 0}
    dipole = model_from_input(parse_input(cfg), []).descriptor
    assert dipole.scalar_last_layer is False and str(dipole.irreps_out) == "4x0e+4x1o"


def _multiplicity_in_sym_power(lmax: int, nu: int, target) -> int:
    r"""Multiplicity of the O(3) irrep ``target`` in :math:`\mathrm{Sym}^\nu V`, :math:`V = \bigoplus_{l \le l_{\max}}`
    (natural parity), by characters: :math:`\chi_{\mathrm{Sym}^2}(g) = (\chi(g)^2 + \chi(g^2))/2`,
    :math:`\chi_{\mathrm{Sym}^3}(g) = (\chi(g)^3 + 3\chi(g^2)\chi(g) + 2\chi(g^3))/6`, integrated over SO(3)
    with the Haar density :math:`(1 - \cos\theta)/\pi` and averaged over the inversion."""
    theta = (np.arange(200000) + 0.5) * np.pi / 200000

    def chi_l(l, t):
        return np.sin((l + 0.5) * t) / np.sin(t / 2)

    def chi_v(t, inv):  # the element g (angle t), times the inversion when inv is odd
        return sum(((-1) ** l if inv % 2 else 1) * chi_l(l, t) for l in range(lmax + 1))

    def chi_sym(inv):
        c1, c2 = chi_v(theta, inv), chi_v(2 * theta, 0)
        if nu == 1:
            return c1
        if nu == 2:
            return (c1**2 + c2) / 2
        return (c1**3 + 3 * c2 * c1 + 2 * chi_v(3 * theta, inv)) / 6

    w = (1 - np.cos(theta)) / np.pi * (np.pi / len(theta))
    even = np.sum(w * chi_sym(0) * chi_l(target.l, theta))
    odd = np.sum(w * chi_sym(1) * chi_l(target.l, theta)) * target.p
    return int(round((even + odd) / 2))


@pytest.mark.parametrize("target", ["0e", "1o", "2e", "1e"])
def test_mace_product_basis_spans_the_symmetric_tensors(target):
    """For every correlation order, the coupling paths of one channel span exactly the target irrep's
    copies in the symmetric power of the atomic basis (numerical rank on random inputs = the
    multiplicity from characters), so the basis is complete (MACE's) and has no path that vanishes."""
    from e3nn import o3

    from mtzoo.descriptors.e3nn_mace import ProductBasis, coupling_paths

    lmax, ir = 3, o3.Irrep(target)
    rng = torch.Generator().manual_seed(0)
    for nu in (1, 2, 3):
        paths = [p for p in coupling_paths(lmax, ir, nu) if len(p) in {1: (1,), 2: (2,), 3: (4,)}[nu]]
        want = _multiplicity_in_sym_power(lmax, nu, ir)
        if not paths:
            assert want == 0, (nu, target)
            continue
        basis = ProductBasis(lmax, o3.Irreps(f"1x{target}"), 1, 1, 3).to(torch.float64)
        basis.paths = [paths]
        with torch.no_grad():
            basis.weights[0] = torch.nn.Parameter(torch.zeros(1, len(paths), 1, dtype=torch.float64))
        a = [torch.randn(400, 1, 2 * l + 1, generator=rng, dtype=torch.float64) for l in range(lmax + 1)]
        cols = []
        for k in range(len(paths)):  # path k's output on the same random inputs: one-hot weights
            with torch.no_grad():
                basis.weights[0].zero_()
                basis.weights[0][0, k, 0] = 1.0
                cols.append(basis(a, torch.zeros(400, dtype=torch.long)).reshape(-1))
        rank = int(torch.linalg.matrix_rank(torch.stack(cols, 1), rtol=1e-9))
        assert rank == want, (nu, target, len(paths), rank, want)


def test_mace_product_weights_act_through_the_minimal_paths():
    """``product_weights: "mace"``: one weight per coupling path in every order of the factors
    (MACE's counts at lmax 3: 1 + 4 + 23 scalar and 1 + 6 + 46 vector paths, the 5 vector paths
    that vanish identically left out), and the basis equals the direct sum over those paths of
    weight x coupling of A (float64, 1e-13); the key survives the model config."""
    from e3nn import o3

    from mtzoo.descriptors.e3nn_mace import ProductBasis, _path_tensor, coupling_paths

    assert [len(coupling_paths(3, o3.Irrep(t), 3, ordered=True)) for t in ("0e", "1o")] == [28, 53]
    lmax, n, c = 2, 4, 2
    basis = ProductBasis(lmax, o3.Irreps("1x0e + 1x1o + 1x2e"), c, 2, 3, "mace").to(torch.float64)
    rng = torch.Generator().manual_seed(1)
    a = [torch.randn(n, c, 2 * l + 1, generator=rng, dtype=torch.float64) for l in range(lmax + 1)]
    atom_type = torch.tensor([0, 1, 1, 0])
    full = torch.cat(a, dim=2)
    want = []
    for i, ir in enumerate(basis.targets):
        acc = torch.zeros(n, c, 2 * ir.l + 1, dtype=torch.float64)
        for k, path in enumerate(coupling_paths(lmax, ir, 3, ordered=True)):
            nu = {1: 1, 2: 2, 4: 3}[len(path)]
            t = _path_tensor(path, ir.l, lmax).reshape(*(full.shape[2],) * nu, 2 * ir.l + 1)
            letters = "abd"[:nu]
            value = torch.einsum(",".join(f"nc{x}" for x in letters) + f",{letters}z->ncz", *([full] * nu), t)
            acc = acc + value * basis.weights[i][atom_type, k, :].detach().unsqueeze(-1)
        want.append(acc.reshape(n, -1))
    got = basis(a, atom_type).detach()
    assert float((got - torch.cat(want, 1)).abs().max()) < 1e-13 * max(1.0, float(got.abs().max()))
    assert model_config(mace_scalar_model())["descriptor"]["product_weights"] == "mace"


def test_inference_path_equals_the_reference_path():
    """``Predictor`` (the energy head's nets differentiated by hand, the descriptor by one autograd
    pass) gives ``Model.forward``'s energies, forces and virial to 1e-12, and the tensor heads'
    outputs unchanged; it keeps no graph and refuses to."""
    from mtzoo.model import Predictor

    for model in (_model("molecule"), mace_scalar_model("molecule")):
        batch = collate(system_graphs(molecule_system(), model.type_map, model.rcut)[:3])
        for head in model.heads:
            fast, ref = Predictor(model)(batch, head=head), model(batch, head=head)
            assert set(fast) == set(ref)
            for key in ref:
                scale = max(1.0, float(ref[key].abs().max()))
                err = float((fast[key].detach() - ref[key].detach()).abs().max()) / scale
                assert err < 1e-12, f"{head} {key}: {err:.2e}"
        with pytest.raises(ValueError, match="no graph of the derivatives"):
            Predictor(model).head_outputs(batch[K.POSITIONS][:0], batch[K.EDGE_INDEX][:, :0], batch[K.ATOM_TYPE], "e",
                                          create_graph=True)
