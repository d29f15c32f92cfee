"""``training_data.mixed_batch`` (mtzoo extension): batches drawn from all systems' frames together.

The sampler makes one seeded permutation of every frame of every system per pass and cuts it into
batches of ``batch_size``, so a batch mixes systems of different sizes, each frame is drawn once per
pass, ranks of a data-parallel run split the global batch, and the state resumes exactly; training
with it runs and its loss falls; a non-integer ``batch_size`` is a one-line error naming the key.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import AGAU, REPO
from mtzoo import keys as K
from mtzoo.config import ConfigError
from mtzoo.data.readers import read_deepmd
from mtzoo.training.data import BatchSampler, GraphSet
from mtzoo.training.trainer import Trainer

NAMES = ("au08", "au16", "au24")  # 32 atoms each, of which 8, 16 and 24 Au


def _set(batch_size) -> GraphSet:
    systems = [read_deepmd(AGAU / "train" / n)[0] for n in NAMES]
    return GraphSet(systems, ["Ag", "Au"], 4.0, batch_size, "training.training_data")


def _key(batch) -> list[tuple[int, float]]:
    """(Au atoms, first x coordinate) of every frame of a batch: identifies a frame of these systems."""
    au = torch.bincount(batch.batch, weights=(batch[K.ATOM_TYPE] == 1).double(), minlength=batch.num_graphs)
    starts = np.cumsum([0] + batch.natoms.tolist()[:-1])
    return [(int(n), round(float(batch.pos[s, 0]), 10)) for n, s in zip(au.tolist(), starts)]


def test_one_pass_draws_every_frame_once_and_batches_mix_systems():
    data = _set(4)
    total = sum(s.nframes for s in data.systems)
    sampler = BatchSampler(data, np.full(3, 1 / 3), seed=5, mixed=True)
    seen = [k for _ in range(total // 4) for k in _key(sampler.next())]
    assert len(seen) == len(set(seen)) == total // 4 * 4  # no frame twice in a pass
    assert {n for n, _ in seen} == {8, 16, 24}
    mixed = [len({n for n, _ in _key(sampler.next())}) > 1 for _ in range(total // 4)]
    assert sum(mixed) > len(mixed) // 2  # most batches hold frames of more than one system


def test_state_resumes_and_ranks_split_the_global_batch():
    data = _set(2)
    a = BatchSampler(data, np.full(3, 1 / 3), seed=1, mixed=True)
    for _ in range(7):
        a.next()
    b = BatchSampler(data, np.full(3, 1 / 3), seed=99, mixed=True)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert [_key(a.next()) for _ in range(30)] == [_key(b.next()) for _ in range(30)]
    one = BatchSampler(_set(4), np.full(3, 1 / 3), seed=3, mixed=True)
    ranks = [BatchSampler(data, np.full(3, 1 / 3), seed=3, rank=r, world_size=2, mixed=True) for r in range(2)]
    for _ in range(40):
        assert _key(one.next()) == _key(ranks[0].next()) + _key(ranks[1].next())


def test_a_per_system_batch_size_is_refused():
    with pytest.raises(ConfigError, match=r"training.training_data.mixed_batch: needs one integer batch_size"):
        BatchSampler(_set([1, 2, 1]), np.full(3, 1 / 3), seed=1, mixed=True)


def test_a_checkpoint_of_the_other_mode_is_refused():
    state = BatchSampler(_set(2), np.full(3, 1 / 3), seed=1).state_dict()
    with pytest.raises(ConfigError, match="mixed_batch or the systems changed"):
        BatchSampler(_set(2), np.full(3, 1 / 3), seed=1, mixed=True).load_state_dict(state)


def test_training_with_mixed_batches_lowers_the_loss(tmp_path):
    cfg = json.loads((REPO / "examples" / "agau_emt" / "input.json").read_text())
    cfg["model"]["descriptor"].update(neuron=[8, 16], axis_neuron=4, seed=1)
    cfg["model"]["fitting_net"].update(neuron=[16, 16], seed=2)
    cfg["training"].update({"numb_steps": 60, "disp_freq": 20, "save_freq": 60, "seed": 3,
                            "training_data": {"systems": [str(AGAU / "train")], "batch_size": 3, "mixed_batch": True},
                            "validation_data": {"systems": [str(AGAU / "valid")], "batch_size": 1, "numb_btch": 3}})
    cfg["learning_rate"].update(start_lr=3e-3, decay_steps=20)
    torch.manual_seed(0)
    Trainer(cfg, tmp_path, progress=False, log=lambda *a: None).run()
    rows = [line.split() for line in (tmp_path / "lcurve.out").read_text().splitlines() if not line.startswith("#")]
    # validation rmse, first vs last lcurve row (measured 19.7 -> 4.7, about 4x; require 2x)
    assert float(rows[-1][1]) < float(rows[0][1]) / 2, (rows[0], rows[-1])
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["training"]["training_data"]["mixed_batch"] is True
