"""Command line: the train -> freeze -> test cycle, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import AGAU
from mtzoo.cli.main import main
from test_train import small_input


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_input(tmp_path, cfg, name="input.json"):
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    return path


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtzoo: error:"), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_train_freeze_test_cycle(tmp_path, capsys):
    path = write_input(tmp_path, small_input(20))
    code, out, _ = run_cli(capsys, "train", str(path), "-o", str(tmp_path / "run"), "--no-progress")
    assert code == 0 and "trained to step 20" in out
    code, out, _ = run_cli(capsys, "freeze", "-c", str(tmp_path / "run"), "-o", str(tmp_path / "m.pth"))
    assert code == 0 and (tmp_path / "m.pth").exists()
    code, out, _ = run_cli(capsys, "test", "-m", str(tmp_path / "m.pth"), "-s", str(AGAU / "valid"), "--json")
    assert code == 0
    res = json.loads(out)
    assert [r["nframes"] for r in res["systems"]] == [10, 10]
    for m in ("energy_per_atom", "force", "virial_per_atom"):
        assert np.isfinite(res["total"][m]["rmse"]) and res["total"][m]["rmse"] >= res["total"][m]["mae"] > 0
    code, out, _ = run_cli(capsys, "test", "-m", str(tmp_path / "m.pth"), "-s", str(AGAU / "valid"))
    assert "force RMSE / MAE (eV/A)" in out and "ALL" in out


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "mtzoo", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "train" in r.stdout and "freeze" in r.stdout


def test_missing_system_folder(tmp_path, capsys):
    cfg = small_input(2)
    cfg["training"]["training_data"]["systems"] = [str(tmp_path / "nowhere")]
    code, _, err = run_cli(capsys, "train", str(write_input(tmp_path, cfg)), "-o", str(tmp_path))
    assert_one_line_error(code, err, "nowhere")


def test_set_with_mismatched_frame_counts(tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(AGAU / "train" / "au08", bad)
    e = np.load(bad / "set.000" / "energy.npy")
    np.save(bad / "set.000" / "energy.npy", e[:-1])
    cfg = small_input(2)
    cfg["training"]["training_data"]["systems"] = [str(bad)]
    code, _, err = run_cli(capsys, "train", str(write_input(tmp_path, cfg)), "-o", str(tmp_path))
    assert_one_line_error(code, err, "energy.npy", "set.000")


def test_unknown_element(tmp_path, capsys):
    cfg = small_input(2)
    cfg["model"]["type_map"] = ["Ag", "Cu"]
    code, _, err = run_cli(capsys, "train", str(write_input(tmp_path, cfg)), "-o", str(tmp_path))
    assert_one_line_error(code, err, "Au", "type_map")


@pytest.mark.parametrize("edit, needles", [
    (lambda c: c["model"]["descriptor"].update(rcut="six"), ["model.descriptor.rcut"]),
    (lambda c: c["training"]["training_data"].update(batchsize=1), ["training.training_data.batchsize", "batch_size"]),
    (lambda c: c["model"]["descriptor"].update(rcut=-1.0), ["model.descriptor.rcut"]),
    (lambda c: c["model"]["descriptor"].update(rcut_smth=5.0), ["model.descriptor.rcut_smth"]),
    (lambda c: c["model"]["descriptor"].update(sel=[10]), ["model.descriptor.sel"]),
])
def test_malformed_input_json(tmp_path, capsys, edit, needles):
    cfg = small_input(2)
    edit(cfg)
    code, _, err = run_cli(capsys, "train", str(write_input(tmp_path, cfg)), "-o", str(tmp_path))
    assert_one_line_error(code, err, "input.json", *needles)


def test_invalid_json_syntax(tmp_path, capsys):
    path = tmp_path / "input.json"
    path.write_text('{"model": {"type_map": ["Ag"],}\n')
    code, _, err = run_cli(capsys, "train", str(path))
    assert_one_line_error(code, err, "input.json", "line")


def test_missing_model_file(tmp_path, capsys):
    code, _, err = run_cli(capsys, "test", "-m", str(tmp_path / "none.pth"), "-s", str(AGAU / "valid"))
    assert_one_line_error(code, err, "none.pth")


def test_not_a_model_file(tmp_path, capsys):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a model")
    code, _, err = run_cli(capsys, "test", "-m", str(junk), "-s", str(AGAU / "valid"))
    assert_one_line_error(code, err, "junk.pth")


def test_unknown_head(tmp_path, capsys):
    path = write_input(tmp_path, small_input(1))
    run_cli(capsys, "train", str(path), "-o", str(tmp_path / "run"), "--no-progress")
    run_cli(capsys, "freeze", "-c", str(tmp_path / "run"), "-o", str(tmp_path / "m.pth"))
    code, _, err = run_cli(capsys, "test", "-m", str(tmp_path / "m.pth"), "-s", str(AGAU / "valid"), "--head", "dft")
    assert_one_line_error(code, err, "dft", "default")


def test_test_accepts_zoo_name_and_writes_parity_plot(tmp_path, capsys):
    png = tmp_path / "parity.png"
    code, out, err = run_cli(capsys, "test", "-m", "agau-emt-d3-v1", "-s", f"emt={AGAU / 'valid'}",
                             "--plot", str(png), "-n", "2")
    assert code == 0, err
    assert "head: emt" in out and "head: emt_d3bj" not in out  # only the head given systems is evaluated
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_evaluate_progress_bar(capsys):
    from mtzoo.data.readers import load_systems
    from mtzoo.evaluation import evaluate
    from mtzoo.zoo.registry import load_pretrained

    res = evaluate(load_pretrained("agau-emt-d3-v1", head="emt"), load_systems(AGAU / "valid"), nframes=1, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "systems/s" in err and res["total"]["force"]["n"] == 2 * 32 * 3
