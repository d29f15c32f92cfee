"""Device handling: ``training.device`` / ``--device``, batches and models on the training device.

The CPU parts run everywhere; the ``cuda`` tests run where torch sees a GPU and skip otherwise
(``pytest -m cuda``).  Measured on an H200: ``benchmarks/gpu.py``, docs/performance.md.
"""

from __future__ import annotations

import pytest
import torch

from mtzoo.config import ConfigError
from mtzoo.training.trainer import Trainer, training_device
from test_train import small_input

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_training_device_default_and_errors():
    assert training_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert training_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="training.device.*no CUDA device"):
            training_device("cuda")


def test_bad_device_name_is_a_config_error(tmp_path):
    cfg = small_input(2)
    cfg["training"]["device"] = "gpu0"
    with pytest.raises(ConfigError, match="training.device.*not a torch device"):
        Trainer(cfg, tmp_path, progress=False, log=lambda *a: None)


def test_explicit_cpu_device_trains_and_records_it(tmp_path):
    cfg = small_input(4)
    cfg["training"]["device"] = "cpu"
    tr = Trainer(cfg, tmp_path, progress=False, log=lambda *a: None)
    tr.run()
    assert tr.device.type == "cpu" and all(p.device.type == "cpu" for p in tr.model.parameters())
    import json

    assert json.loads((tmp_path / "out.json").read_text())["training"]["device"] == "cpu"


@pytest.mark.cuda
@CUDA
def test_cuda_training_matches_cpu_first_step(tmp_path):
    """One step on CUDA and on the CPU from the same weights and batch: same loss to 1e-10."""
    cfg = small_input(1)
    losses = {}
    for dev in ("cpu", "cuda"):
        cfg["training"]["device"] = dev
        tr = Trainer(cfg, tmp_path / dev, progress=False, log=lambda *a: None)
        task = next(iter(tr.tasks.values()))
        losses[dev] = tr.train_step(task.sampler.next(), tr.lr(0), task.name)["rmse"]
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-10)


@pytest.mark.cuda
@CUDA
def test_compressed_calculator_on_cuda_equals_cpu():
    from ase.build import molecule

    from mtzoo import MTZooCalculator, load_pretrained

    model = load_pretrained("hcno-mf-se-v1", head="pbe")
    a, b = molecule("CH3CH2OH"), molecule("CH3CH2OH")
    a.calc = MTZooCalculator(model, compress=True)
    b.calc = MTZooCalculator(load_pretrained("hcno-mf-se-v1", head="pbe"), compress=True, device="cuda")
    assert b.get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-9)
    assert abs(b.get_forces() - a.get_forces()).max() < 1e-9
