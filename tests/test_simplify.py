"""``mtzoo simplify``: the pick (trust window, cap, seed), resuming, simplify.json errors, the example.

A tiny se_e2_a (20 steps on the 20 EMT frames of ``agau_emt/valid``) is the old model; the pool is
``agau_d3bj/valid`` (the same structures with EMT + D3(BJ) labels) with ``labeled: true``, so
no calculator runs except in the example test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

from mtzoo.config.base import ConfigError
from mtzoo.simplify import Simplify, parse_simplify
from mtzoo.simplify.loop import RECORD, classify, pick, read_record
from mtzoo.simplify.model_devi import COLUMNS, read_model_devi_out

DATA = REPO / "examples" / "data"


@pytest.fixture(scope="module")
def old_model(tmp_path_factory):
    import mtzoo

    tmp = tmp_path_factory.mktemp("old")
    cfg = {"model": {"type_map": ["Ag", "Au"],
                     "descriptor": {"type": "se_e2_a", "sel": [42, 41], "rcut": 5.0, "rcut_smth": 2.0,
                                    "neuron": [4, 8], "axis_neuron": 2, "type_one_side": True, "seed": 1},
                     "fitting_net": {"neuron": [8, 8, 8], "seed": 1}},
           "learning_rate": {"type": "exp", "decay_steps": 10, "start_lr": 0.003, "stop_lr": 1e-4},
           "loss": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1},
           "training": {"training_data": {"systems": [str(DATA / "agau_emt" / "valid")], "batch_size": 1},
                        "numb_steps": 20, "seed": 1, "disp_file": "lcurve.out", "disp_freq": 10, "save_freq": 20}}
    mtzoo.train(cfg, workdir=tmp / "run")
    return str(mtzoo.freeze(tmp / "run", tmp / "old.pth"))


def base_config(model: str, **over) -> dict:
    cfg = {"type_map": ["Ag", "Au"], "pick_data": str(DATA / "agau_d3bj" / "valid"),
           "training_iter0_model_path": model, "numb_models": 2, "labeled": True,
           "default_training_param": {"model": {"fitting_net": {"trainable": [False, False, False, True]}},
                                      "training": {"numb_steps": 10}},
           "init_pick_number": 4, "iter_pick_number": 3, "f_trust_lo": 0.0, "f_trust_hi": 100.0, "seed": 3,
           "max_iter": 2}
    cfg.update(over)
    return cfg


def test_classify_and_pick_follow_the_window_and_the_cap(tmp_path):
    (tmp_path / "m.pth").write_text("")
    cfg = parse_simplify(base_config(str(tmp_path / "m.pth"), f_trust_lo=0.1, f_trust_hi=0.3, e_trust_lo=0.01,
                                     e_trust_hi=0.05))
    f = np.array([0.05, 0.1, 0.2, 0.29999, 0.3, 0.5, 0.05, 0.05])
    e = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.02, 0.06])
    # accurate below both lo; candidate in [lo, hi) of either; failed at or above either hi (DP-GEN's rule)
    assert classify(f, e, cfg).tolist() == [0, 1, 1, 1, 2, 2, 1, 2]
    cands = [[0, i] for i in range(10)]
    a, rest = pick(cands, 4, seed=3, iteration=1)
    assert len(a) == 4 and sorted(a + rest) == cands
    assert pick(cands, 4, seed=3, iteration=1)[0] == a  # seeded
    assert pick(cands, 4, seed=3, iteration=2)[0] != a  # a new draw each iteration
    assert pick(cands[:2], 4, 3, 1)[0] == pick(cands[:2], 4, 3, 1)[0] and len(pick(cands[:2], 4, 3, 1)[0]) == 2


def test_loop_picks_inside_the_window_and_resumes_after_an_interrupt(tmp_path, old_model, monkeypatch):
    import mtzoo.simplify.loop as loop

    cfg = base_config(old_model)
    first = loop.Simplify(cfg, tmp_path / "run")
    # the window: the middle of iteration 1's deviations (measured below), so both sides occur
    real_fp = loop.Simplify.fp

    def fp_interrupted(self, k):
        if k == 1:
            raise KeyboardInterrupt("killed during 02.fp of iteration 1")
        return real_fp(self, k)

    monkeypatch.setattr(loop.Simplify, "fp", fp_interrupted)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    assert read_record(tmp_path / "run") == (1, 1)  # 00.train and 01.model_devi of iteration 1 done
    members = [tmp_path / "run" / "iter.000001" / "00.train" / f"{m:03d}" / "model.pth" for m in range(2)]
    stamps = [p.stat().st_mtime_ns for p in members]
    # the pick of iteration 1 respects the window [0, 100) and the cap of 3
    blocks = read_model_devi_out(tmp_path / "run" / "iter.000001" / "01.model_devi" / "model_devi.out")
    devi = np.concatenate([d for _, d in blocks])
    picks = json.loads((tmp_path / "run" / "iter.000001" / "01.model_devi" / "pick.json").read_text())
    assert devi.shape == (16, len(COLUMNS)) and picks["candidate"] == 16 and len(picks["picked"]) == 3

    monkeypatch.setattr(loop.Simplify, "fp", real_fp)
    lines = []
    summary = loop.Simplify(cfg, tmp_path / "run", log=lines.append).run()
    assert lines[0].startswith("resuming after iter.000001 01.model_devi"), lines
    assert not any("iter.000001 00.train" in ln or "iter.000000" in ln for ln in lines), lines  # nothing redone
    assert [p.stat().st_mtime_ns for p in members] == stamps
    assert any(ln.startswith("iter.000001 02.fp: labelled 3 frames") for ln in lines), lines
    assert [r["picked"] for r in summary["iterations"]] == [4, 3]
    assert (tmp_path / "run" / RECORD).read_text().split("\n")[:6] == ["0 0", "0 1", "0 2", "1 0", "1 1", "1 2"]
    # a narrow window: frames below f_trust_lo are accurate and never picked
    cfg2 = base_config(old_model, f_trust_lo=float(np.median(devi[:, 4])), f_trust_hi=100.0, iter_pick_number=50,
                       max_iter=2)
    s2 = loop.Simplify(cfg2, tmp_path / "run2")
    s2.model_devi(0)
    s2.fp(0)
    (tmp_path / "run2" / "iter.000001").mkdir()
    import shutil

    shutil.copytree(tmp_path / "run" / "iter.000001" / "00.train", tmp_path / "run2" / "iter.000001" / "00.train")
    res = s2.model_devi(1)
    blocks2 = read_model_devi_out(tmp_path / "run2" / "iter.000001" / "01.model_devi" / "model_devi.out")
    assert len(blocks2) == 2  # au12 and au20 (pool systems 0 and 1), step = the frame's index in its system
    by_frame = {(s, int(r[0])): r[4] for s, (_, d) in enumerate(blocks2) for r in d}
    assert res["accurate"] > 0 and res["candidate"] > 0
    assert all(by_frame[tuple(i)] >= cfg2["f_trust_lo"] for i in res["picked"])
    assert all(by_frame[tuple(i)] < cfg2["f_trust_lo"] for i in res["accurate_frames"])


@pytest.mark.parametrize("change,key", [
    ({"f_trust_lo": "0.1"}, "f_trust_lo"),
    ({"f_trust_lo": 0.5, "f_trust_hi": 0.2}, "f_trust_lo"),
    ({"numb_models": 1}, "numb_models"),
    ({"iter_pick_number": 0}, "iter_pick_number"),
    ({"pick_data": "no/such/folder"}, "pick_data"),
    ({"labeled": False}, "fp_calculator"),
    ({"labeled": False, "fp_calculator": "vasp"}, "fp_calculator"),
    ({"init_pick_numbr": 3}, "init_pick_numbr"),
    ({"default_training_param": {"training": {"numb_steps": -1}}}, "default_training_param.training.numb_steps"),
    ({"default_training_param": {"model": {"fitting_net": {"trainable": [1, 0]}}}},
     "default_training_param.model.fitting_net.trainable"),
])
def test_bad_simplify_json_is_a_one_line_error_naming_the_key(tmp_path, capsys, change, key):
    from mtzoo.cli.main import main

    (tmp_path / "m.pth").write_text("")
    cfg = base_config(str(tmp_path / "m.pth"))
    cfg.pop("init_pick_number") if key == "init_pick_numbr" else None
    cfg.update(change)
    path = tmp_path / "simplify.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("[", r"\[")):
        parse_simplify(path)
    assert main(["simplify", str(path), "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mtzoo: error:") and key in err and "\n" not in err, err


def test_aliases_and_ignored_dpgen_keys(tmp_path):
    (tmp_path / "m.pth").write_text("")
    cfg = base_config(str(tmp_path / "m.pth"))
    cfg.pop("f_trust_lo")
    cfg.update(model_devi_f_trust_lo=0.2, mass_map=[107.9, 197.0], fp_style="vasp", _comment="x")
    assert parse_simplify(cfg).f_trust_lo == 0.2


def test_example_runs_end_to_end(tmp_path):
    """``examples/simplify/run.py`` with tiny settings: old model, two iterations of the loop with EMT + D3, evaluation."""
    pytest.importorskip("dftd3.ase", reason="dftd3 not installed (pip install -e '.[simplify]')")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(REPO / "examples" / "simplify" / "run.py"), "--out", str(tmp_path / "ex"),
                        "--old-steps", "40", "--steps", "20", "--numb-models", "2", "--pick", "6", "--max-iter", "2"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "iter.000000 02.fp: labelled 6 frames with emt+d3" in out, out
    assert "iter.000001 01.model_devi: 114 frames" in out, out
    assert "held-out EMT + D3(BJ) frames" in out and "member 1 (simplify)" in out, out
    # training really trains: the loss (lcurve.out, training rmse, first line vs last) of the old model fell by
    # at least 3x in 40 steps (measured 4.9x), that of the first member by at least 1.5x in 20 steps (measured 2.6x)
    for lcurve, factor in ((tmp_path / "ex" / "old" / "lcurve.out", 3.0),
                           (tmp_path / "ex" / "loop" / "iter.000001" / "00.train" / "000" / "lcurve.out", 1.5)):
        rows = np.loadtxt(lcurve, ndmin=2)
        assert rows[-1, 2] * factor < rows[0, 2], (lcurve, rows[[0, -1], 2])
