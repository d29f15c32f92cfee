"""The model cards' trivial baselines (``model_cards/recipes/build_zoo.py``) on hand-made data."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import REPO

from mtzoo.data.system import System


@pytest.fixture(scope="module")
def build_zoo():
    spec = importlib.util.spec_from_file_location("build_zoo", REPO / "model_cards" / "recipes" / "build_zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _system(name, elements, energies, forces=None, dipoles=None):
    nf, na = len(energies), len(elements)
    labels = {"energy": np.asarray(energies, dtype=float)}
    if forces is not None:
        labels["force"] = np.asarray(forces, dtype=float).reshape(nf, na, 3)
    if dipoles is not None:
        labels["dipole"] = np.asarray(dipoles, dtype=float).reshape(nf, 3)
    s = System(name=name, elements=list(elements), types=np.zeros(na, dtype=np.int64),
               coord=np.zeros((nf, na, 3)), box=None, labels=labels,
               masks={k: np.ones(nf, dtype=bool) for k in labels})
    s.check()
    return s


def test_composition_fit_and_zero_force(build_zoo):
    # training: H2O at -10 and -12 eV, HO2 at -20 eV -> 2h + o = -11, h + 2o = -20 exactly:
    # h = -2/3, o = -29/3.  Test: HO at -10 eV -> predicted -31/3, error -1/3 eV = -1/6 eV/atom
    train = [_system("h2o", "HHO", [-10.0, -12.0]), _system("ho2", "HOO", [-20.0])]
    test = [_system("ho", "HO", [-10.0], forces=[[3.0, 0.0, 0.0], [0.0, -4.0, 0.0]])]
    np.testing.assert_allclose(build_zoo.composition_fit([[2, 1], [2, 1], [1, 2]], [-10.0, -12.0, -20.0]),
                               [-2 / 3, -29 / 3])
    b = build_zoo.trivial_baselines(train, test, ["H", "O"])
    e = b["systems"][0]["energy_per_atom"]
    assert e["rmse"] == pytest.approx(1 / 6) and e["mae"] == pytest.approx(1 / 6) and e["n"] == 1
    f = b["systems"][0]["force"]  # zero force: components 3, 0, 0, 0, -4, 0
    assert f["rmse"] == pytest.approx(np.sqrt(25 / 6)) and f["mae"] == pytest.approx(7 / 6) and f["n"] == 6
    assert b["total"]["force"] == f
    assert (b["train_compositions"], b["train_composition_rank"]) == (2, 2)


def test_tensor_labels_fitted_per_component_and_pooled(build_zoo):
    # one composition: the fit is the mean training dipole, (1, 2, 0); test dipoles (1, 2, 3) and (1, 2, -1)
    train = [_system("a", "HO", [0.0, 0.0], dipoles=[[0.0, 2.0, 0.0], [2.0, 2.0, 0.0]])]
    test = [_system("b", "HO", [0.0], dipoles=[[1.0, 2.0, 3.0]]), _system("c", "OH", [0.0], dipoles=[[1.0, 2.0, -1.0]])]
    b = build_zoo.trivial_baselines(train, test, ["H", "O"])
    assert [r["dipole"]["rmse"] for r in b["systems"]] == pytest.approx([np.sqrt(3.0), np.sqrt(1 / 3)])
    assert b["total"]["dipole"]["rmse"] == pytest.approx(np.sqrt(10 / 6))
    assert b["total"]["dipole"]["mae"] == pytest.approx(4 / 6)
    assert "force" not in b["total"]


def test_card_block_flags_a_head_no_better_than_its_baseline(build_zoo):
    stats = lambda rmse: {"rmse": rmse, "mae": rmse, "n": 1}  # noqa: E731
    result = {"model": {"systems": [{"name": "x/valid", "nframes": 2, "energy_per_atom": stats(0.002), "force": stats(0.5)}],
                        "total": {"energy_per_atom": stats(0.002), "force": stats(0.5)}},
              "baseline": {"systems": [{"name": "x/valid", "nframes": 2, "energy_per_atom": stats(0.001), "force": stats(2.0)}],
                           "total": {"energy_per_atom": stats(0.001), "force": stats(2.0)},
                           "train_compositions": 1, "train_composition_rank": 1}}
    text = build_zoo.baselines_markdown({"e": result}, {})
    assert "| `e` | **all** | 2 | 2.00 / 1.00 | 2.00 / 1.00 | 0.500 / 2.00 | 0.500 / 2.00 |" in text
    assert "`e` energy 2.00, force 0.25" in text
    assert "`e` energy on `x/valid` (2.00 vs 1.00 meV/atom RMSE)" in " ".join(text.split())


def test_test_command_per_split(build_zoo):
    """Held-out frames (``valid``) and held-out molecules (``test``) give one ``mtzoo test`` each;
    a split no head names gives none (the card keeps no block for it)."""
    recipe = {"heads": {"a": {"valid": ["d/x/valid"], "test": ["d/y/test"]}, "b": {"valid": ["d/x/valid"]}}}
    model = build_zoo.MODELS / "m.pth"
    valid = build_zoo.test_command(recipe, model, ["a", "b"], "valid")
    assert valid[3:6] == ["test", "-m", "mtzoo/zoo/models/m.pth"]
    assert valid[6:] == ["-s", "a=d/x/valid", "b=d/x/valid"]
    assert build_zoo.test_command(recipe, model, ["a", "b"], "test")[6:] == ["-s", "a=d/y/test"]
    assert build_zoo.test_command(recipe, model, ["b"], "test") is None
    assert build_zoo.SPLITS == {"valid": "test", "test": "test_molecules"}
