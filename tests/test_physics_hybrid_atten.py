"""The hybrid descriptor (se_e2_a short cutoff + se_e2_r long cutoff): build-time contract, config
round trip and the per-member neighbour counts.  Its physics checks (smooth across both cutoffs)
are in tests/test_physics.py; the model is physics.hybrid_model."""

from __future__ import annotations

import numpy as np

import physics
from conftest import AGAU, molecule_system
from mtzoo import keys as K
from mtzoo.data.graph import system_graphs
from mtzoo.data.readers import read_deepmd
from mtzoo.model import build_model

HEAD = physics.HEAD


def test_hybrid_contract():
    model = physics.hybrid_model("molecule")
    d = model.descriptor
    assert d.rcut == 4.0 and d.dim_out == 8 * 4 + 8 and d.dim_rot == 8 and not d.mixed_types
    assert d.get_config()["type"] == "hybrid" and len(d.get_config()["list"]) == 2
    again = build_model({"type_map": model.type_map, "descriptor": d.get_config(),
                         "heads": {HEAD: model.heads[HEAD].get_config()}})
    again.load_state_dict(model.state_dict())
    frame = physics.as_frame(molecule_system())
    np.testing.assert_array_equal(physics.evaluate(again, frame, HEAD)[K.ENERGY],
                                  physics.evaluate(model, frame, HEAD)[K.ENERGY])


def test_neighbor_counts_per_member_cutoff():
    from mtzoo.data.graph import count_neighbors
    from mtzoo.descriptors.hybrid import neighbor_counts

    s = read_deepmd(AGAU / "train" / "au16")[0]
    big = system_graphs(s, ["Ag", "Au"], 4.5)[:1]
    small = system_graphs(s, ["Ag", "Au"], 3.2)[:1]
    np.testing.assert_array_equal(neighbor_counts(big, 2, 3.2), count_neighbors(small, 2))
    assert (count_neighbors(big, 2) >= neighbor_counts(big, 2, 3.2)).all()
