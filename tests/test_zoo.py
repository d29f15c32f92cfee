"""The pretrained-model zoo: registry, checksums, recorded energies, fine-tuning, CLI.

Every entry of ``mtzoo/zoo/models/index.json`` is loaded by name (checksum verified), its heads
compared with the index, its energies on the fixed check frame compared with the values recorded
at build time, and its forces checked against finite differences.  Fine-tuning runs each
strategy for a few steps on ``examples/data/agau_d3zero``.
"""

from __future__ import annotations

import contextlib
import shutil

import numpy as np
import pytest
import torch

from conftest import REPO
from physics import check_forces_fd, check_tensor_equivariance

import mtzoo
from mtzoo.cli.main import main
from mtzoo.zoo.frozen import file_sha256, load_model
from mtzoo.zoo.registry import MODELS_DIR, check_frame, list_pretrained, load_pretrained

ENTRIES = list_pretrained()
NAMES = [e["name"] for e in ENTRIES]
D3ZERO = REPO / "examples" / "data" / "agau_d3zero"
QUIET = {"log": lambda *a: None}


def test_zoo_has_models_and_lazy_exports():
    assert "agau-emt-d3-v1" in NAMES
    assert mtzoo.load_pretrained is load_pretrained and mtzoo.list_pretrained is list_pretrained


@pytest.mark.parametrize("entry", ENTRIES, ids=NAMES)
def test_entry_loads_and_reproduces_recorded_energies(entry):
    path = MODELS_DIR / entry["file"]
    assert path.stat().st_size < 5_000_000
    assert file_sha256(path) == entry["sha256"]
    assert (REPO / entry["model_card"]).exists()
    model = load_pretrained(entry["name"])
    assert model.head_names() == [h["name"] for h in entry["heads"]]
    assert model.type_map == entry["elements"] and model.rcut == pytest.approx(entry["cutoff"])
    atoms = check_frame(entry["check"].get("kind", "agau"))
    energy_heads = list(entry["check"]["energy"])
    tensor_heads = list(entry["check"].get("tensor", {}))
    assert sorted(energy_heads + tensor_heads) == sorted(model.head_names())
    for head, e_ref in entry["check"]["energy"].items():
        e = model.predict(atoms, head=head)["energy"]
        assert e == pytest.approx(e_ref, rel=1e-9, abs=1e-9), head
        single = load_pretrained(entry["name"], head=head)
        assert single.head_names() == [head]
        assert single.predict(atoms)["energy"] == pytest.approx(e_ref, rel=1e-9, abs=1e-9)
        check_forces_fd(model, atoms, head, max_atoms=3)
    for head, ref in entry["check"].get("tensor", {}).items():
        pred = model.predict(atoms, head=head)
        for key, value in ref.items():
            np.testing.assert_allclose(pred[key], np.asarray(value), rtol=1e-9, atol=1e-10, err_msg=f"{head} {key}")
        check_tensor_equivariance(model, atoms, head, rtol=1e-10)
    first = energy_heads[0]
    f32 = load_pretrained(entry["name"], head=first, dtype="float32")
    assert f32.dtype == torch.float32
    e_ref = entry["check"]["energy"][first]
    assert f32.predict(atoms)["energy"] == pytest.approx(e_ref, rel=1e-4, abs=1e-3)


def test_check_frames():
    agau, hcno = check_frame("agau"), check_frame("hcno")
    assert len(agau) == 32 and agau.pbc.all() and sorted(set(agau.get_chemical_symbols())) == ["Ag", "Au"]
    assert len(hcno) == 9 and not hcno.pbc.any() and sorted(set(hcno.get_chemical_symbols())) == ["C", "H", "N", "O"]
    with pytest.raises(ValueError, match="agau"):
        check_frame("nope")


def test_checksum_mismatch_names_file_and_both_hashes(tmp_path):
    entry = ENTRIES[0]
    shutil.copy(MODELS_DIR / "index.json", tmp_path / "index.json")
    data = bytearray((MODELS_DIR / entry["file"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / entry["file"]).write_bytes(bytes(data))
    bad = file_sha256(tmp_path / entry["file"])
    with pytest.raises(ValueError) as err:
        load_pretrained(entry["name"], index=tmp_path / "index.json")
    msg = str(err.value)
    assert entry["file"] in msg and entry["sha256"] in msg and bad in msg


def test_unknown_name_and_head_list_the_available_ones():
    with pytest.raises(KeyError) as err:
        load_pretrained("no-such-model")
    assert all(n in str(err.value) for n in NAMES)
    with pytest.raises(KeyError) as err:
        load_pretrained(NAMES[0], head="pbe")
    assert "pbe" in str(err.value) and all(h["name"] in str(err.value) for h in ENTRIES[0]["heads"])
    with pytest.raises(ValueError, match="float32 or float64"):
        load_pretrained(NAMES[0], dtype="float16")


def test_load_pretrained_reads_a_path():
    entry = ENTRIES[0]
    model = load_pretrained(MODELS_DIR / entry["file"], head=entry["heads"][-1]["name"])
    assert model.head_names() == [entry["heads"][-1]["name"]]


# ------------------------------------------------------------------------------------------
# fine-tuning
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    from mtzoo.zoo.finetune import finetune

    root = tmp_path_factory.mktemp("finetune")
    out = {}
    for strategy in ("multitask", "freeze", "full"):
        ctx = pytest.warns(UserWarning, match="old heads") if strategy == "full" else contextlib.nullcontext()
        with ctx:
            out[strategy] = finetune("agau-emt-d3-v1", D3ZERO / "train", D3ZERO / "valid", head_name="d3zero",
                                     strategy=strategy, init_from="emt_d3bj", steps=20, seed=3,
                                     workdir=root / strategy, replay_root=REPO, **QUIET)
    return out


def _sd(model, prefix):
    return {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}


def test_finetune_freeze_keeps_descriptor_and_old_heads_bit_identical(finetuned):
    base, new = load_pretrained("agau-emt-d3-v1"), load_pretrained(finetuned["freeze"])
    assert new.head_names() == ["emt", "emt_d3bj", "d3zero"]
    for prefix in ("descriptor.", "heads.emt.", "heads.emt_d3bj."):
        a, b = _sd(base, prefix), _sd(new, prefix)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), prefix
    assert (finetuned["freeze"].parent / "finetune_input.json").exists()
    assert (finetuned["freeze"].parent / "out.json").exists()


def test_finetune_multitask_keeps_old_heads_and_trains_descriptor(finetuned):
    base, new = load_pretrained("agau-emt-d3-v1"), load_pretrained(finetuned["multitask"])
    assert new.head_names() == ["emt", "emt_d3bj", "d3zero"]
    a, b = _sd(base, "descriptor."), _sd(new, "descriptor.")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # hard parameter sharing: the descriptor trained
    e = new.predict(check_frame(), head="d3zero")["energy"]
    assert np.isfinite(e)
    # the recorded input completes a further --init-frz-model run: every head has its data
    state = torch.load(finetuned["multitask"], weights_only=True)
    assert set(state["metadata"]["input"]["training"]["data_dict"]) == {"emt", "emt_d3bj", "d3zero"}


def test_finetune_full_has_only_the_new_head(finetuned):
    new = load_model(finetuned["full"])
    assert new.head_names() == ["d3zero"]


def test_finetune_errors(tmp_path):
    from mtzoo.zoo.finetune import finetune

    with pytest.raises(ValueError, match="available"):
        finetune("agau-emt-d3-v1", D3ZERO / "train", strategy="lora", workdir=tmp_path)
    with pytest.raises(ValueError, match="already a head"):
        finetune("agau-emt-d3-v1", D3ZERO / "train", head_name="emt", workdir=tmp_path)
    with pytest.raises(KeyError, match="emt_d3bj"):
        finetune("agau-emt-d3-v1", D3ZERO / "train", init_from="pbe", workdir=tmp_path)
    with pytest.raises(KeyError, match="pbe.*emt_d3bj"):
        finetune("agau-emt-d3-v1", D3ZERO / "train", strategy="multitask", replay_weight={"pbe": 1.0},
                 replay_root=REPO, workdir=tmp_path)
    with pytest.raises(ValueError, match="correction.*needs init_from"):
        finetune("agau-emt-d3-v1", D3ZERO / "train", head_mode="correction", workdir=tmp_path)


def test_finetune_replay_weights_per_head(tmp_path):
    """A dict of replay weights: heads left out get weight 0 (warned, not trained: bit-identical)."""
    import json

    from mtzoo.cli.main import _replay_arg
    from mtzoo.zoo.finetune import finetune

    assert _replay_arg("0.5") == 0.5 and _replay_arg("pbe=1,xtb=0.5") == {"pbe": 1.0, "xtb": 0.5}
    with pytest.warns(UserWarning, match="emt"):
        path = finetune("agau-emt-d3-v1", D3ZERO / "train", head_name="d3zero", replay_weight={"emt_d3bj": 2.0},
                        strategy="multitask", steps=6, seed=3, workdir=tmp_path, replay_root=REPO, **QUIET)
    weights = json.loads((tmp_path / "out.json").read_text())["training"]["fitting_weight"]
    assert weights == {"emt": 0.0, "emt_d3bj": 2.0, "d3zero": 1.0}
    base, new = load_pretrained("agau-emt-d3-v1"), load_model(path)
    private = [k for k in _sd(base, "heads.emt.") if ".layers.2." in k or ".layers.3." in k]  # not layer_name-shared
    assert len(private) == 10
    old_sd, new_sd = base.state_dict(), new.state_dict()
    assert all(torch.equal(old_sd[k], new_sd[k]) for k in private)
    assert not torch.equal(old_sd["heads.emt_d3bj.nets.0.layers.3.weight"], new_sd["heads.emt_d3bj.nets.0.layers.3.weight"])


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------
def test_cli_zoo_list_and_show(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["name", "version"]
    for e in ENTRIES:
        line = next(ln for ln in out.splitlines() if ln.startswith(e["name"]))
        assert e["version"] in line and all(h["name"] in line for h in e["heads"])
    assert main(["zoo", "show", NAMES[0]]) == 0
    out = capsys.readouterr().out
    assert ENTRIES[0]["sha256"] in out and "not DFT" in out
    assert main(["zoo", "show", "nope"]) == 2
    assert "available" in capsys.readouterr().err


def test_cli_finetune_freeze(tmp_path, capsys):
    out = tmp_path / "ft.pth"
    rc = main(["finetune", "-m", "agau-emt-d3-v1", "--train", str(D3ZERO / "train"), "--head", "d3zero",
               "--strategy", "freeze", "--init-from", "emt", "--steps", "5", "-w", str(tmp_path / "run"),
               "-o", str(out)])
    assert rc == 0 and out.exists()
    assert load_pretrained(out, head="d3zero").head_names() == ["d3zero"]
    assert main(["finetune", "-m", "nope", "--train", str(D3ZERO / "train"), "--head", "x", "-w",
                 str(tmp_path / "r2")]) == 2
    assert "agau-emt-d3-v1" in capsys.readouterr().err


def test_finetune_init_from_shifts_the_old_bias_along_the_new_compositions():
    """DeePMD's change-by-statistic: b_new = b_old + min-norm lstsq(C, E - E_pred); with one
    composition in the new data the shift is parallel to it (other compositions keep b_old)."""
    from mtzoo.data.readers import load_systems
    from mtzoo.evaluation import predict_system
    from mtzoo.zoo.finetune import _shifted_bias
    from mtzoo.zoo.registry import MODELS_DIR

    path = MODELS_DIR / "agau-emt-d3-v1.pth"
    base = load_model(path)
    old = base.heads["emt_d3bj"].bias_atom_e.detach().numpy().copy()
    one = sorted(p.parent for p in (D3ZERO / "train").rglob("type.raw"))[0]
    (s,) = load_systems([one])
    new = _shifted_bias(path, "emt_d3bj", [s], old)
    c = np.bincount(s.model_types(base.type_map), minlength=2).astype(float)
    delta = new - old
    resid = s.labels["energy"] - predict_system(base, s, head="emt_d3bj")["energy"]
    assert abs(delta[0] * c[1] - delta[1] * c[0]) < 1e-9 * np.abs(delta).max()  # parallel to c
    assert c @ delta == pytest.approx(resid.mean(), rel=1e-10)
    assert np.abs(delta).max() > 1e-6
