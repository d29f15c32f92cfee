"""Batched losses equal the weighted mean of per-frame ones; label shapes are checked, never broadcast.

The energy and virial terms of ``ener`` (and the global term of ``tensor``) are means over frames,
the force term (and the atomic tensor term) a mean over atoms, so for a batch of frames ``b``
with ``n_b`` atoms and per-frame values ``x_b``:

    energy / virial / global tensor:  x = sum_b m_b x_b / sum_b m_b
    forces / atomic tensor:           x = sum_b m_b n_b x_b / sum_b m_b n_b

(``m_b`` the frame's label mask).  Squared metrics (``rmse_*``) follow the same rule; the loss
is the sum of its terms.  Frames of different molecules (3 to 9 atoms) and energy-only frames
are mixed in.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mtzoo import keys as K
from mtzoo.config import EnerLossConfig
from mtzoo.data.graph import collate, system_graphs
from mtzoo.data.readers import load_systems
from mtzoo.training.loss import EnergyLoss, TensorLoss

REPO = Path(__file__).resolve().parents[1]
MOL = REPO / "examples" / "data" / "molecules"
TYPE_MAP = ["H", "C", "N", "O"]
START_LR = 1e-3


@pytest.fixture(scope="module")
def model():
    from mtzoo import load_pretrained

    return load_pretrained("hcno-mf-se-v1", dtype="float64")


def _graphs(level: str, molecules, per: int = 3):
    out = []
    for mol in molecules:
        (s,) = load_systems([str(MOL / level / mol / "train")])
        out.extend(system_graphs(s, TYPE_MAP, 5.0)[:per])
    return out


def _with_virial(graphs, seed=0):
    """Give every frame a random virial label (the molecules have none) to exercise the virial term."""
    rng = np.random.default_rng(seed)
    for g in graphs:
        g[K.VIRIAL] = torch.from_numpy(rng.normal(size=(1, 3, 3)))
        g[K.has(K.VIRIAL)] = torch.ones(1, dtype=torch.float64)
    return graphs


def _energy_only(graphs, which):
    for i in which:
        graphs[i][K.has(K.FORCES)] = torch.zeros(1, dtype=torch.float64)
    return graphs


def _loss(**prefs):
    cfg = EnerLossConfig(**{k: prefs.get(k, 0.0) for k in
                            ("start_pref_e", "limit_pref_e", "start_pref_f", "limit_pref_f", "start_pref_v", "limit_pref_v")})
    return EnergyLoss(cfg, START_LR)


TERMS = {  # name: (prefactors, metric, weighting, mask key)
    "energy": (dict(start_pref_e=0.3, limit_pref_e=2.0), "rmse_e", "frame", K.ENERGY),
    "force": (dict(start_pref_f=50.0, limit_pref_f=1.5), "rmse_f", "atom", K.FORCES),
    "virial": (dict(start_pref_v=0.7, limit_pref_v=0.2), "rmse_v", "frame", K.VIRIAL),
}


def _weighted(values, graphs, weighting, key):
    m = np.array([float(g[K.has(key)][0]) for g in graphs])
    n = np.array([g.num_nodes for g in graphs], dtype=float)
    w = m * (n if weighting == "atom" else 1.0)
    return float(np.sum(w * np.asarray(values)) / np.sum(w))


def _frame_mix(case):
    if case.startswith("B="):
        b = int(case[2:])
        return _graphs("dft", ["ethanol"], per=b)
    graphs = _graphs("dft", ["water", "ethanol", "methylamine", "acetamide"], per=2)  # 3, 9, 7, 9 atoms
    return _energy_only(graphs, [1, 4])


@pytest.mark.parametrize("case", ["B=1", "B=2", "B=5", "mixed"])
@pytest.mark.parametrize("lr", [START_LR, START_LR / 7])
def test_batched_ener_loss_is_weighted_mean_of_frames(model, case, lr):
    graphs = _with_virial(_frame_mix(case))
    batch = collate(graphs)
    assert batch[K.ENERGY].shape == (len(graphs),)
    pred = model(batch, head="pbe", forces=True, virial=True, create_graph=False)
    singles = [model(collate([g]), head="pbe", forces=True, virial=True, create_graph=False) for g in graphs]
    total = 0.0
    for name, (prefs, metric, weighting, key) in TERMS.items():
        loss = _loss(**prefs)
        got, mets = loss(pred, batch, lr)
        per = [loss(p, collate([g]), lr) for p, g in zip(singles, graphs)]
        # frames without the label contribute NaN metrics and zero loss; the weights drop them
        want = _weighted([float(lo.detach()) if not math.isnan(me[metric]) else 0.0 for lo, me in per], graphs, weighting, key)
        assert float(got) == pytest.approx(want, rel=1e-12), name
        want_m = math.sqrt(_weighted([0.0 if math.isnan(me[metric]) else me[metric] ** 2 for _, me in per],
                                     graphs, weighting, key))
        assert mets[metric] == pytest.approx(want_m, rel=1e-12), name
        total += float(got)
    every = {k: v for prefs, *_ in TERMS.values() for k, v in prefs.items()}
    got, mets = _loss(**every)(pred, batch, lr)
    assert float(got) == pytest.approx(total, rel=1e-12)
    assert mets["rmse"] == pytest.approx(math.sqrt(total), rel=1e-12)


@pytest.mark.parametrize("case", ["B=1", "B=2", "B=5", "mixed"])
@pytest.mark.parametrize("kind,head", [("dipole", "pbe_dipole"), ("polar", "pbe_polar")])
def test_batched_tensor_loss_is_weighted_mean_of_frames(model, case, kind, head):
    mols = ["ethanol"] if case.startswith("B=") else ["water", "ethanol", "methylamine"]
    per = int(case[2:]) if case.startswith("B=") else 2
    graphs = _graphs("dft_polar" if kind == "polar" else "dft", mols, per=per)
    key, atom_key = TensorLoss.KEYS[kind][:2]
    rng = np.random.default_rng(1)
    for g in graphs:  # atomic labels are not in the data: random ones exercise the atomic term
        g[atom_key] = torch.from_numpy(rng.normal(size=(g.num_nodes,) + K.ITEM_SHAPES[atom_key]))
        g[K.has(atom_key)] = torch.ones(1, dtype=torch.float64)
    if len(graphs) > 1:
        graphs[-1][K.has(key)] = torch.zeros(1, dtype=torch.float64)  # one frame without the global label
    batch = collate(graphs)
    assert batch[key].shape == (len(graphs),) + K.ITEM_SHAPES[key]
    pred = model(batch, head=head, create_graph=False)
    singles = [model(collate([g]), head=head, create_graph=False) for g in graphs]
    for pref, pref_atomic, metric, weighting, mkey in ((1.0, 0.0, f"rmse_global_{kind}", "frame", key),
                                                        (0.0, 1.0, f"rmse_local_{kind}", "atom", atom_key)):
        loss = TensorLoss(kind, pref, pref_atomic)
        got, mets = loss(pred, batch, 0.0)
        per_frame = [loss(p, collate([g]), 0.0) for p, g in zip(singles, graphs)]
        labelled = [not math.isnan(me[metric]) for _, me in per_frame]
        want = _weighted([float(lo.detach()) if ok else 0.0 for (lo, _), ok in zip(per_frame, labelled)], graphs, weighting, mkey)
        assert float(got) == pytest.approx(want, rel=1e-12), metric
        if weighting == "frame":  # rmse_global = sqrt(term) / mean atoms of the labelled frames
            n = np.array([g.num_nodes for g, ok in zip(graphs, labelled) if ok], dtype=float)
            assert mets[metric] == pytest.approx(math.sqrt(want) / n.mean(), rel=1e-12)
        else:
            assert mets[metric] == pytest.approx(math.sqrt(want), rel=1e-12)


@pytest.mark.parametrize("key", [K.ENERGY, K.VIRIAL, K.FORCES])
def test_misshaped_energy_labels_raise(model, key):
    graphs = _with_virial(_graphs("dft", ["ethanol"], per=3))
    batch = collate(graphs)
    pred = model(batch, head="pbe", forces=True, virial=True, create_graph=False)
    loss = _loss(start_pref_e=1.0, limit_pref_e=1.0, start_pref_f=1.0, limit_pref_f=1.0, start_pref_v=1.0, limit_pref_v=1.0)
    loss(pred, batch, START_LR)  # the layout as collated is right
    bad = {K.ENERGY: batch[K.ENERGY][:, None], K.VIRIAL: batch[K.VIRIAL].reshape(-1, 9),
           K.FORCES: batch[K.FORCES].reshape(-1)}[key]
    batch[key] = bad
    with pytest.raises(ValueError, match=f"label '{key}' has shape"):
        loss(pred, batch, START_LR)
    batch[key] = bad.reshape(pred[key].shape)
    pred = dict(pred, **{key: pred[key].unsqueeze(-1)})
    with pytest.raises(ValueError, match=f"prediction '{key}' has shape"):
        loss(pred, batch, START_LR)


def test_misshaped_tensor_label_raises(model):
    graphs = _graphs("dft", ["ethanol"], per=2)
    batch = collate(graphs)
    pred = model(batch, head="pbe_dipole", create_graph=False)
    batch[K.DIPOLE] = batch[K.DIPOLE].reshape(1, -1)
    with pytest.raises(ValueError, match="label 'dipole' has shape \\(1, 6\\), expected \\(2, 3\\)"):
        TensorLoss("dipole", 1.0, 0.0)(pred, batch, 0.0)


def test_term_needs_both_prefactors_as_in_deepmd():
    with pytest.warns(UserWarning, match="the f term is off"):
        loss = _loss(start_pref_e=0.02, limit_pref_e=1.0, start_pref_f=1000.0, limit_pref_f=0.0)
    assert loss.use_e and not loss.use_f and not loss.needs_forces() and not loss.use_v
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both = _loss(start_pref_e=0.02, limit_pref_e=1.0, start_pref_f=1000.0, limit_pref_f=1.0)
    assert both.use_e and both.use_f


def test_validation_weights_batches_by_atoms_per_frame(model, tmp_path):
    """Trainer validation: sum_k n_k m_k / sum_k n_k over batches (DeePMD-kit's weighting)."""
    from mtzoo.training.tasks import Task
    from mtzoo.training.trainer import Trainer

    class Fixed:
        def __init__(self, batches):
            self.batches, self.i = batches, 0

        def next(self):
            self.i += 1
            return self.batches[self.i - 1]

    batches = [collate(_graphs("dft", [m], per=2)) for m in ("water", "ethanol", "methylamine")]
    loss = _loss(start_pref_e=1.0, limit_pref_e=1.0, start_pref_f=1.0, limit_pref_f=1.0)
    tr = Trainer.__new__(Trainer)  # only _evaluate's collaborators: the model, its device and the loss
    tr.model, tr.device = model, torch.device("cpu")
    task = Task.__new__(Task)
    task.name, task.loss = "pbe", loss
    got = tr._evaluate(task, Fixed(batches), 3, START_LR)
    rows = [loss(model(b, head="pbe", forces=True, create_graph=False), b, START_LR)[1] for b in batches]
    n = np.array([3.0, 9.0, 7.0])
    for k in ("rmse_e", "rmse_f", "rmse"):
        assert got[k] == pytest.approx(float(np.sum(n * [r[k] for r in rows]) / n.sum()), rel=1e-12), k
        assert got[k] != pytest.approx(float(np.mean([r[k] for r in rows])), rel=1e-6), k
