"""Bad input from a user's point of view: every case ends in one line ``mtzoo: error: ...`` (exit 2)
or a clear Python exception, never a traceback or a silently wrong result.

The table covers what a reliability probe of the CLI found: restart with a changed input,
overlapping atoms, non-finite labels, empty / foreign / malicious model files, bad numeric
arguments, a growing learning rate, a mistyped zoo name, and resume leftovers.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import AGAU
from mtzoo.cli.main import main
from test_cli import assert_one_line_error, run_cli, write_input
from test_train import read_lcurve, small_input

REPO = Path(__file__).resolve().parents[1]
WATER_MOL = REPO / "examples" / "data" / "molecules" / "dft" / "water" / "valid"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 20-step run (checkpoints at 10 and 20) and its frozen model."""
    tmp = tmp_path_factory.mktemp("trained")
    cfg = small_input(20, save_freq=10, disp_freq=5)
    path = write_input(tmp, cfg)
    assert main(["train", str(path), "-o", str(tmp / "run"), "--no-progress"]) == 0
    assert main(["freeze", "-c", str(tmp / "run"), "-o", str(tmp / "m.pth")]) == 0
    return tmp


def _bad_system(tmp_path, edit, name="bad"):
    bad = tmp_path / name
    shutil.copytree(AGAU / "train" / "au08", bad)
    edit(bad / "set.000")
    return bad


def _nan_energy(folder):
    e = np.load(folder / "energy.npy")
    e[3] = np.nan
    np.save(folder / "energy.npy", e)


def _inf_force(folder):
    f = np.load(folder / "force.npy")
    f[7, 5] = np.inf
    np.save(folder / "force.npy", f)


def _overlap(folder):
    c = np.load(folder / "coord.npy")
    c[2, 3:6] = c[2, 0:3]  # atom 1 on top of atom 0 in frame 2
    np.save(folder / "coord.npy", c)


# --- restart with a changed input ------------------------------------------------------------
@pytest.mark.parametrize("edit, key", [
    (lambda c: c["model"].update(type_map=["Au", "Ag"]), "model.type_map"),
    (lambda c: c["model"]["fitting_net"].update(neuron=[16, 16]), "model.fitting_net.neuron"),
])
def test_restart_refuses_changed_model_section(trained, tmp_path, capsys, edit, key):
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    cfg = small_input(30, save_freq=10, disp_freq=5)
    edit(cfg)
    path = write_input(tmp_path, cfg)
    ckpt = run / "model.ckpt-20.pt"
    code, _, err = run_cli(capsys, "train", str(path), "-o", str(run), "--restart", str(ckpt), "--no-progress")
    assert_one_line_error(code, err, key, "--allow-input-change")
    with pytest.warns(UserWarning, match=key.replace(".", "\\.")):
        code, out, _ = run_cli(capsys, "train", str(path), "-o", str(run), "--restart", str(ckpt), "--no-progress",
                               "--allow-input-change")
    assert code == 0 and "trained to step 30" in out
    recorded = json.loads((run / "out.json").read_text())["model"]
    original = json.loads((trained / "run" / "out.json").read_text())["model"]
    assert recorded == original  # out.json records the model that trained


def test_resume_truncates_lcurve_and_removes_stale_temporaries(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    (run / ".model.ckpt-20.pt.x1y2.tmp").write_bytes(b"")  # a write killed mid-way
    (run / ".out.json.abc.tmp").write_bytes(b"{")
    path = write_input(tmp_path, small_input(20, save_freq=10, disp_freq=5))
    code, _, _ = run_cli(capsys, "train", str(path), "-o", str(run), "--restart", str(run / "model.ckpt-10.pt"),
                         "--no-progress")
    assert code == 0
    steps = read_lcurve(run / "lcurve.out")["step"].tolist()
    assert steps == [1, 5, 10, 15, 20], steps  # rows 15 and 20 of the first run dropped, then re-written
    assert not list(run.glob(".*.tmp"))


# --- overlapping atoms and non-finite labels ------------------------------------------------
@pytest.mark.parametrize("edit, needles", [
    (_nan_energy, ["frame 3", "'energy'", "not finite"]),
    (_inf_force, ["frame 7", "'force'", "not finite"]),
    (_overlap, ["frame 2", "atoms 0 and 1", "apart"]),
])
@pytest.mark.parametrize("section", ["training_data", "validation_data"])
def test_bad_frames_in_data_name_system_frame_and_key(tmp_path, capsys, edit, needles, section):
    bad = _bad_system(tmp_path, edit)
    cfg = small_input(2)
    cfg["training"][section]["systems"] = [str(bad)]
    code, _, err = run_cli(capsys, "train", str(write_input(tmp_path, cfg)), "-o", str(tmp_path / "run"))
    assert_one_line_error(code, err, str(bad), *needles)


def test_overlapping_atoms_in_predict_and_calculator():
    from ase.build import molecule

    from mtzoo import MTZooCalculator, load_pretrained

    model = load_pretrained("hcno-mf-se-v1", head="pbe")
    atoms = molecule("H2O")
    atoms.positions[2] = atoms.positions[0] + [1e-3, 0.0, 0.0]
    with pytest.raises(ValueError, match="atoms 0 and 2 are 0.001 A apart"):
        model.predict(atoms)
    atoms.calc = MTZooCalculator(model)
    with pytest.raises(ValueError, match="atoms 0 and 2 are"):
        atoms.get_potential_energy()
    atoms.positions[2] = atoms.positions[0] + [0.0, 0.7, 0.0]  # close but not overlapping: a finite answer
    assert np.isfinite(atoms.get_potential_energy())


# --- model files ------------------------------------------------------------------------------
class _Payload:
    def __reduce__(self):
        return (print, ("this should never run",))


@pytest.mark.parametrize("content, needles", [
    (b"", ["empty.pth", "not a readable mtzoo model"]),
    (None, ["evil.pth", "pickled Python objects"]),
])
@pytest.mark.parametrize("command", ["test", "compress"])
def test_unreadable_model_files(tmp_path, capsys, content, needles, command):
    path = tmp_path / needles[0]
    if content is None:
        torch.save({"kind": "mtzoo-model", "payload": _Payload()}, path)
    else:
        path.write_bytes(content)
    argv = (["test", "-m", str(path), "-s", str(AGAU / "valid")] if command == "test"
            else ["compress", "-i", str(path), "-o", str(tmp_path / "c.pth")])
    code, out, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, *needles)
    assert "weights_only" not in err and "this should never run" not in out


@pytest.mark.parametrize("suffix, content", [(".dp", b"not hdf5"), (".yaml", b"model: [unclosed\n  - {")])
def test_malformed_deepmd_model_files(tmp_path, capsys, suffix, content):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    code, _, err = run_cli(capsys, "test", "-m", str(path), "-s", str(AGAU / "valid"))
    assert_one_line_error(code, err, f"model{suffix}", "DeePMD-kit")


def test_mistyped_zoo_name_lists_the_zoo(capsys):
    code, _, err = run_cli(capsys, "test", "-m", "hcno-mf-se-v2", "-s", str(WATER_MOL))
    assert_one_line_error(code, err, "hcno-mf-se-v2", "hcno-mf-se-v1", "agau-emt-d3-v1")


# --- numeric arguments and settings ---------------------------------------------------------------
@pytest.mark.parametrize("argv, needles", [
    (["--threads", "-2", "zoo", "list"], ["--threads", "-2"]),
    (["--threads", "0", "zoo", "list"], ["--threads", "0"]),
    (["test", "-m", "x.pth", "-s", "y", "-n", "-1"], ["--numb-test", "-1"]),
    (["test", "-m", "x.pth", "-s", "y", "-n", "0"], ["--numb-test", "0"]),
    (["test", "-m", "x.pth", "-s", "y", "--batch-size", "0"], ["--batch-size", "0"]),
    (["finetune", "-m", "x", "--train", "y", "--head", "h", "--steps", "0"], ["--steps", "0"]),
    (["finetune", "-m", "x", "--train", "y", "--head", "h", "--lr", "-1"], ["--lr", "-1"]),
    (["compress", "-i", "x", "--rmin", "0"], ["--rmin", "0"]),
])
def test_bad_numeric_arguments(capsys, argv, needles):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    _, err = capsys.readouterr()
    assert_one_line_error(exc.value.code, err, *needles)


def test_stop_lr_above_start_lr(tmp_path, capsys):
    cfg = small_input(2)
    cfg["learning_rate"].update(start_lr=1e-3, stop_lr=1e-2)
    code, _, err = run_cli(capsys, "train", str(write_input(tmp_path, cfg)), "-o", str(tmp_path / "run"))
    assert_one_line_error(code, err, "learning_rate.stop_lr", "grow")


def test_zero_steps_trains_nothing_cleanly(tmp_path, capsys):
    cfg = small_input(0)
    cfg["training"]["save_freq"] = 1
    code, out, err = run_cli(capsys, "train", str(write_input(tmp_path, cfg)), "-o", str(tmp_path / "run"),
                             "--no-progress")
    assert code == 0 and "no step taken" in out and "Traceback" not in err


def test_diverging_training_is_a_user_error(tmp_path, capsys, monkeypatch):
    """A NaN loss (labels are finite: checked at load) is one line naming the step and what to change."""
    from mtzoo.training.trainer import Trainer

    monkeypatch.setattr(Trainer, "_step", lambda self, items, lr: {"default": {"rmse": float("nan")}})
    cfg = small_input(40)
    code, _, err = run_cli(capsys, "train", str(write_input(tmp_path, cfg)), "-o", str(tmp_path / "run"),
                           "--no-progress")
    assert_one_line_error(code, err, "diverged", "start_lr")


def test_unsafe_pickle_never_runs_through_the_python_api(tmp_path):
    from mtzoo.zoo.frozen import load_model

    path = tmp_path / "evil.pth"
    torch.save({"kind": "mtzoo-model", "payload": _Payload()}, path)
    with pytest.raises(ValueError, match="pickled Python objects") as exc:
        load_model(path)
    assert "weights_only" not in str(exc.value)
    assert isinstance(exc.value.__cause__, (type(None), pickle.UnpicklingError))


def test_shared_layer_mismatch_names_the_difference():
    from mtzoo.model import build_model

    desc = {"type": "se_e2_a", "sel": [10, 10], "rcut": 4.0, "rcut_smth": 0.5, "neuron": [4, 8], "axis_neuron": 2}
    heads = {h: {"type": "ener", "neuron": [16, 16], "layer_name": [None, "s1", None], "resnet_dt": dt}
             for h, dt in (("a", True), ("b", False))}
    with pytest.raises(ValueError, match="layer 's1' is shared .* differs \\(layer 1\\) in resnet_dt \\(idt\\): True vs False"):
        build_model({"type_map": ["Ag", "Au"], "descriptor": desc, "heads": heads})


def test_bad_frames_drop_when_asked(tmp_path, capsys):
    """bad_frames "drop" in a data section: the frames with NaN/inf labels go, with a warning."""
    bad = _bad_system(tmp_path, lambda f: (_nan_energy(f), _inf_force(f)))
    from mtzoo.data.readers import load_systems

    with pytest.warns(UserWarning, match="dropped 2 of 40 frames .*frames \\[3, 7\\]"):
        (s,) = load_systems([str(bad)], bad_frames="drop")
    assert s.nframes == 38 and np.isfinite(s.labels["energy"]).all() and np.isfinite(s.labels["force"]).all()
    cfg = small_input(2)
    cfg["training"]["training_data"].update(systems=[str(bad)], bad_frames="drop")
    with pytest.warns(UserWarning, match="dropped 2 of 40"):
        code, out, _ = run_cli(capsys, "train", str(write_input(tmp_path, cfg)), "-o", str(tmp_path / "run"),
                               "--no-progress")
    assert code == 0 and "trained to step 2" in out


def test_non_path_arguments_name_the_function():
    import mtzoo

    for name, args in (("load_model", (123,)), ("load_pretrained", (1.5,)), ("freeze", (None,))):
        with pytest.raises(TypeError, match=f"{name}.*expected a path"):
            getattr(mtzoo, name)(*args)


def test_kill_9_then_restart_is_bit_identical(tmp_path):
    """``mtzoo train`` killed with SIGKILL after a checkpoint, resumed with --restart, ends with the
    weights of an uninterrupted run, bit for bit."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from mtzoo.training.checkpoint import load_checkpoint

    cfg = small_input(60, save_freq=10, disp_freq=10)
    path = write_input(tmp_path, cfg)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    main(["train", str(path), "-o", str(tmp_path / "ref"), "--no-progress"])
    proc = subprocess.Popen([sys.executable, "-m", "mtzoo", "train", str(path), "-o", str(tmp_path / "run"),
                             "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "run").glob("model.ckpt-2*.pt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpts = sorted((tmp_path / "run").glob("model.ckpt-*.pt"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    assert ckpts and int(ckpts[-1].stem.rsplit("-", 1)[1]) < 60, "the run finished before it was killed"
    newest = load_checkpoint(tmp_path / "run")  # whatever the kill interrupted, the newest named one loads
    assert main(["train", str(path), "-o", str(tmp_path / "run"), "--restart",
                 str(tmp_path / "run" / f"model.ckpt-{newest['step']}.pt"), "--no-progress"]) == 0
    a, b = load_checkpoint(tmp_path / "ref")["model"], load_checkpoint(tmp_path / "run")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = read_lcurve(tmp_path / "run" / "lcurve.out")["step"].tolist()
    assert steps == sorted(set(steps)) and steps[-1] == 60
