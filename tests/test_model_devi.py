"""Model deviation (``mtzoo.simplify.model_devi``, ``mtzoo model-devi``) against a direct numpy computation.

The committee is three energy heads (different seeds) of one small float64 se_e2_a model, and the
same heads saved as three model files; the definitions are DeePMD-kit's ``dp model-devi``
(population standard deviation over the members; energy and virial per atom).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from conftest import REPO

from mtzoo.data.readers import load_systems
from mtzoo.model import build_model
from mtzoo.simplify.model_devi import COLUMNS, deviations, model_devi, read_model_devi_out, write_model_devi_out

AGAU = REPO / "examples" / "data" / "agau_emt" / "valid"
HEADS = ("h0", "h1", "h2")


def direct(energies, forces, virials) -> np.ndarray:
    """The seven columns by explicit loops over frames, atoms and members (float64)."""
    nm, nf, na, _ = forces.shape
    out = np.zeros((nf, 7))
    for f in range(nf):
        eps_f = []
        for i in range(na):
            mean = sum(forces[k, f, i] for k in range(nm)) / nm
            eps_f.append(np.sqrt(sum(np.sum((forces[k, f, i] - mean) ** 2) for k in range(nm)) / nm))
        vk = virials[:, f].reshape(nm, 9) / na
        eps_v = np.sqrt(((vk - vk.mean(0)) ** 2).mean(0))
        ek = energies[:, f] / na
        out[f] = [eps_v.max(), eps_v.min(), np.sqrt((eps_v**2).sum()) / 3, max(eps_f), min(eps_f),
                  sum(eps_f) / na, np.sqrt(((ek - ek.mean()) ** 2).mean())]
    return out


def test_deviations_equal_direct_loops():
    rng = np.random.default_rng(0)
    e, f, v = rng.normal(size=(4, 5)), rng.normal(size=(4, 5, 7, 3)), rng.normal(size=(4, 5, 3, 3))
    np.testing.assert_allclose(deviations(e, f, v), direct(e, f, v), rtol=1e-13, atol=1e-15)
    # identical members deviate by nothing (to the rounding of their mean)
    assert np.all(deviations(np.repeat(e[:1], 3, 0), np.repeat(f[:1], 3, 0), np.repeat(v[:1], 3, 0)) < 1e-15)
    with pytest.raises(ValueError, match="n_models >= 2"):
        deviations(e[:1], f[:1], v[:1])


def test_deviations_match_deepmd_kit_functions_and_file():
    dm = pytest.importorskip("deepmd.infer.model_devi")
    rng = np.random.default_rng(1)
    nat = 6
    e, f, v = rng.normal(size=(3, 4)), rng.normal(size=(3, 4, nat, 3)), rng.normal(size=(3, 4, 3, 3))
    ref = np.stack([*dm.calc_model_devi_v(v.reshape(3, 4, 9) / nat), *dm.calc_model_devi_f(f)[:3],
                    np.asarray(dm.calc_model_devi_e(e[..., None] / nat)).reshape(-1)], axis=1)
    ours = deviations(e, f, v)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_file_layout_is_deepmd_kits(tmp_path):
    dm = pytest.importorskip("deepmd.infer.model_devi")
    rng = np.random.default_rng(2)
    devi = np.concatenate([np.arange(3.0)[:, None], rng.random((3, 7))], axis=1)
    write_model_devi_out([devi], tmp_path / "ours.out", ["sysA"])
    dm.write_model_devi_out(devi, str(tmp_path / "dp.out"), header="sysA")
    ours = (tmp_path / "ours.out").read_text().splitlines()
    theirs = (tmp_path / "dp.out").read_text().splitlines()
    assert [ln.rstrip() for ln in ours] == [ln.rstrip() for ln in theirs]
    assert ours[1].split()[1:] == list(COLUMNS)
    (header, back), = read_model_devi_out(tmp_path / "dp.out")
    assert header == "sysA"
    np.testing.assert_allclose(back, devi, rtol=1e-6)


@functools.lru_cache(maxsize=None)
def committee_model():
    desc = {"type": "se_e2_a", "sel": [40, 40], "rcut": 4.5, "rcut_smth": 1.5, "neuron": [4, 8], "axis_neuron": 2,
            "type_one_side": True, "seed": 1}
    model = build_model({"type_map": ["Ag", "Au"], "descriptor": desc,
                         "heads": {h: {"type": "ener", "neuron": [8, 8], "seed": 2 + k} for k, h in enumerate(HEADS)}})
    from mtzoo.data.graph import system_graphs

    systems = load_systems([str(AGAU / "au12")])
    with torch.no_grad():
        model.descriptor.compute_stats(system_graphs(systems[0], model.type_map, model.rcut)[:3])
    assert model.dtype == torch.float64
    return model.eval()


def _direct_on_frames(model, systems):
    out = []
    for s in systems:
        preds = [[model.predict(s if f == 0 else _frame(s, f), head=h) for f in range(s.nframes)] for h in HEADS]
        e = np.array([[p["energy"] for p in row] for row in preds])
        fo = np.array([[p["forces"] for p in row] for row in preds])
        v = np.array([[p["virial"] for p in row] for row in preds])
        out.append(direct(e, fo, v))
    return out


def _frame(s, f):
    from mtzoo.data.writers import subset

    return subset(s, [f])


def test_committee_of_heads_and_of_files_equal_direct(tmp_path):
    from mtzoo.cli.main import main
    from mtzoo.data.writers import subset
    from mtzoo.zoo.frozen import save_model, single_head

    model = committee_model()
    systems = [subset(s, range(3), s.name) for s in load_systems([str(AGAU)])]
    ref = _direct_on_frames(model, systems)
    got = model_devi([(model, h) for h in HEADS], systems)
    for g, r in zip(got, ref):
        assert g[:, 0].tolist() == [0, 1, 2]
        np.testing.assert_allclose(g[:, 1:], r, rtol=1e-10, atol=1e-14)
        assert (r[:, 3] > 1e-4).all()  # the members really differ
    # the same committee as three files, through the CLI
    files = []
    for h in HEADS:
        files.append(str(save_model(single_head(model, h), tmp_path / f"{h}.pth")))
    for k, s in enumerate(systems):
        from mtzoo.data.writers import write_deepmd

        write_deepmd(s, tmp_path / "data" / f"s{k}")
    out = tmp_path / "model_devi.out"
    assert main(["model-devi", "-m", *files, "-s", str(tmp_path / "data"), "-o", str(out)]) == 0
    blocks = read_model_devi_out(out)
    assert len(blocks) == 2
    for (_, arr), r in zip(blocks, ref):
        np.testing.assert_allclose(arr[:, 1:], r, rtol=2e-6)  # the file holds 7 significant digits
    # heads of one file via --head
    united = str(save_model(model, tmp_path / "united.pth"))
    out2 = tmp_path / "heads.out"
    assert main(["model-devi", "-m", united, "--head", *HEADS, "-s", str(tmp_path / "data"), "-o", str(out2)]) == 0
    assert out2.read_text() == out.read_text().replace(str(tmp_path / "data"), str(tmp_path / "data"))


def test_one_member_is_a_one_line_error(tmp_path, capsys):
    from mtzoo.cli.main import main
    from mtzoo.zoo.frozen import save_model, single_head

    f = str(save_model(single_head(committee_model(), "h0"), tmp_path / "h0.pth"))
    assert main(["model-devi", "-m", f, "-s", str(AGAU / "au12")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mtzoo: error:") and "at least 2 members" in err and "\n" not in err
