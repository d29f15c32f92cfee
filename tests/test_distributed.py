"""Data-parallel training (torchrun + DistributedDataParallel, gloo on the CPU).

Two processes with ``batch_size`` B take the same optimizer steps as one process with 2B (the
gradient all-reduce averages the per-rank gradients of per-frame mean losses; the samplers draw one
global batch and split it), a checkpoint of the two-process run resumes in one process, and only
rank 0 writes the run's files.  ``prob_uniform`` keeps the system choice independent of B.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import AGAU, REPO
from mtzoo.training.data import BatchSampler, GraphSet
from mtzoo.data.readers import read_deepmd
from mtzoo.training.trainer import Trainer

STEPS = 20


def _input(batch_size: int, multitask: bool = False) -> dict:
    cfg = json.loads((REPO / "examples" / "agau_emt" / "input.json").read_text())
    cfg["model"]["descriptor"].update(neuron=[8, 16], axis_neuron=4, seed=1)
    cfg["model"]["fitting_net"].update(neuron=[16, 16], seed=2)
    data = {"systems": [str(AGAU / "train")], "batch_size": batch_size, "auto_prob": "prob_uniform"}
    valid = {"systems": [str(AGAU / "valid")], "batch_size": 1, "numb_btch": 1}
    cfg["training"].update({"numb_steps": STEPS, "disp_freq": 5, "save_freq": 10, "seed": 3,
                            "training_data": data, "validation_data": valid})
    cfg["learning_rate"].update(start_lr=3e-3, decay_steps=5)
    if multitask:  # two heads on the same data: each step trains one, the other gets no gradient
        fit = cfg["model"].pop("fitting_net")
        cfg["model"]["fitting_net_dict"] = {"a": fit, "b": {**fit, "seed": 5}}
        loss = cfg.pop("loss")
        cfg["loss_dict"] = {"a": loss, "b": loss}
        tr = cfg["training"]
        tr["data_dict"] = {h: {"training_data": tr.pop("training_data") if h == "a" else data,
                               "validation_data": tr.pop("validation_data") if h == "a" else valid} for h in "ab"}
        tr["fitting_weight"] = {"a": 1, "b": 1}
    return cfg


def _torchrun(tmp_path, cfg: dict, nproc: int = 2) -> subprocess.CompletedProcess:
    (tmp_path / "input.json").write_text(json.dumps(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "mtzoo", "train", "input.json", "--no-progress", "--device", "cpu"]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _weights(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def _assert_same_weights(a: dict, b: dict, rtol: float = 1e-8) -> None:
    assert list(a) == list(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=rtol, atol=rtol * 1e-2, msg=k)


def test_sampler_ranks_split_the_global_batch():
    systems = [read_deepmd(AGAU / "train" / n)[0] for n in ("au08", "au16")]
    probs = np.array([0.5, 0.5])
    one = BatchSampler(GraphSet(systems, ["Ag", "Au"], 4.0, 4, "t"), probs, 7)
    ranks = [BatchSampler(GraphSet(systems, ["Ag", "Au"], 4.0, 2, "t"), probs, 7, rank=r, world_size=2)
             for r in range(2)]
    for _ in range(25):  # crosses the end of a pass (40 frames / 4 per step): reshuffles agree too
        full = one.next()
        parts = [s.next() for s in ranks]
        pos = torch.cat([p.pos for p in parts])
        assert torch.equal(pos, full.pos)
    assert ranks[0].state_dict() == ranks[1].state_dict() == one.state_dict()


def test_sampler_refuses_a_system_smaller_than_the_global_batch():
    from mtzoo.config import ConfigError

    s = [read_deepmd(AGAU / "train" / "au08")[0]]
    with pytest.raises(ConfigError, match="fewer than batch_size 30 x 2 processes"):
        BatchSampler(GraphSet(s, ["Ag", "Au"], 4.0, 30, "training.training_data"), np.array([1.0]), 0,
                     rank=1, world_size=2)


@pytest.mark.parametrize("multitask", [False, True], ids=["single", "multitask"])
def test_two_processes_equal_one_with_the_doubled_batch(tmp_path, multitask):
    one = Trainer(_input(2, multitask), tmp_path / "one", progress=False, log=lambda *a: None)
    result = one.run()
    ddp = tmp_path / "ddp"
    ddp.mkdir()
    r = _torchrun(ddp, _input(1, multitask))
    assert r.stdout.count("trained to step 20") == 1  # one report, from rank 0
    _assert_same_weights(_weights(tmp_path / "one" / "model.ckpt-20.pt"), _weights(ddp / "model.ckpt-20.pt"))
    lc_one = (tmp_path / "one" / "lcurve.out").read_text().splitlines()
    lc_ddp = (ddp / "lcurve.out").read_text().splitlines()
    assert len(lc_ddp) == len(lc_one)  # written once; its training columns are rank 0's half batch
    # the loss fell: first vs last lcurve row's validation rmse (measured about 9x; require 2x)
    rows = [line.split() for line in lc_one if not line.startswith("#")]
    assert float(rows[-1][1]) < float(rows[0][1]) / 2, (rows[0], rows[-1])
    assert result["step"] == STEPS


def test_a_two_process_checkpoint_resumes_in_one_process(tmp_path):
    one = Trainer(_input(2), tmp_path / "one", progress=False, log=lambda *a: None)
    one.run()
    ddp = tmp_path / "ddp"
    ddp.mkdir()
    _torchrun(ddp, _input(1))
    resumed = Trainer(_input(2), tmp_path / "resumed", restart=ddp / "model.ckpt-10.pt", progress=False,
                      log=lambda *a: None)
    assert resumed.step == 10
    resumed.run()
    _assert_same_weights(_weights(tmp_path / "one" / "model.ckpt-20.pt"),
                         _weights(tmp_path / "resumed" / "model.ckpt-20.pt"))
