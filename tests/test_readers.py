"""Tests for mtzoo.data.readers: DeePMD-kit folders, ASE files, ase.Atoms, pymatgen."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from mtzoo import keys as K
from mtzoo.data.readers import from_atoms, from_pymatgen, load_systems, read_ase, read_deepmd
from mtzoo.data.system import DataError

REPO = Path(__file__).resolve().parents[1]
AGAU = REPO / "examples" / "data" / "agau_emt"
from conftest import SHARED  # noqa: E402  (MTZOO_NO_SHARED=1 hides it)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def _random_data(nf=5, natoms=4, seed=0):
    rng = np.random.default_rng(seed)
    box = np.tile(np.eye(3) * 6.0, (nf, 1, 1)) + rng.normal(0, 0.1, (nf, 3, 3))
    return {
        "coord": rng.uniform(0, 6, (nf, natoms, 3)),
        "box": box,
        "energy": rng.normal(size=nf),
        "force": rng.normal(size=(nf, natoms, 3)),
        "virial": rng.normal(size=(nf, 3, 3)),
    }


def _write_deepmd(folder: Path, types, data, type_map=None, sets=None, raw=False, nopbc=False, skip=()):
    """Write a DeePMD-kit system. ``sets``: frame counts per set; ``skip``: (set index, stem)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "type.raw").write_text("".join(f"{t}\n" for t in types))
    if type_map is not None:
        (folder / "type_map.raw").write_text("\n".join(type_map) + "\n")
    if nopbc:
        (folder / "nopbc").write_text("")
    nf = data["coord"].shape[0]
    stems = ["coord", "energy", "force", "virial"] + ([] if nopbc else ["box"])
    if raw:
        for stem in stems:
            np.savetxt(folder / f"{stem}.raw", data[stem].reshape(nf, -1))
        return folder
    sets = sets or [nf]
    start = 0
    for si, n in enumerate(sets):
        s = folder / f"set.{si:03d}"
        s.mkdir()
        for stem in stems:
            if (si, stem) not in skip:
                np.save(s / f"{stem}.npy", data[stem][start:start + n].reshape(n, -1))
        start += n
    return folder


def _labelled_atoms(symbols, seed, pbc=True, stress=True):
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    atoms = Atoms(symbols, cell=np.diag([5.0, 5.5, 6.0]) + rng.normal(0, 0.05, (3, 3)), pbc=pbc)
    n = len(atoms)
    atoms.positions = rng.uniform(0, 5, (n, 3))
    res = {"energy": float(rng.normal()), "forces": rng.normal(size=(n, 3))}
    if stress:
        res["stress"] = rng.normal(size=6) * 0.01
    atoms.calc = SinglePointCalculator(atoms, **res)
    return atoms


def _voigt_to_3x3(s):
    xx, yy, zz, yz, xz, xy = s
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


# --------------------------------------------------------------------------------------
# bundled Ag-Au EMT data
# --------------------------------------------------------------------------------------
def test_bundled_agau_train_and_valid():
    train = load_systems(AGAU / "train")
    assert [Path(s.name).name for s in train] == ["au08", "au16", "au24"]
    for s, n_au in zip(train, (8, 16, 24)):
        assert (s.nframes, s.natoms) == (40, 32)
        assert s.coord.shape == (40, 32, 3) and s.box.shape == (40, 3, 3)
        assert s.labels[K.ENERGY].shape == (40,)
        assert s.labels[K.FORCES].shape == (40, 32, 3)
        assert s.labels[K.VIRIAL].shape == (40, 3, 3)
        for key in K.LABEL_KEYS:
            assert s.masks[key].dtype == bool and s.masks[key].all()
        assert s.elements == ["Ag"] * (32 - n_au) + ["Au"] * n_au
        np.testing.assert_array_equal(s.model_types(["Ag", "Au"]), [0] * (32 - n_au) + [1] * n_au)
        np.testing.assert_array_equal(s.model_types(["Au", "Ag"]), [1] * (32 - n_au) + [0] * n_au)
        # EMT virials are symmetric; forces of a periodic cell sum to zero
        np.testing.assert_allclose(s.labels[K.VIRIAL], np.swapaxes(s.labels[K.VIRIAL], 1, 2), atol=1e-10)
        np.testing.assert_allclose(s.labels[K.FORCES].sum(axis=1), 0.0, atol=1e-8)
    valid = load_systems(AGAU / "valid")
    assert [(Path(s.name).name, s.nframes) for s in valid] == [("au12", 10), ("au20", 10)]
    both = load_systems([AGAU / "train", str(AGAU / "valid" / "au12")])
    assert len(both) == 4 and sum(s.nframes for s in both) == 130


def test_bundled_agau_matches_generator():
    """Frame 0 of train/au08 is reproduced by the generator script (seeded RNG + EMT)."""
    spec = importlib.util.spec_from_file_location("make_agau_emt", REPO / "examples/data/make_agau_emt.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    atoms, energy, forces, virial = mod.make_frame(np.random.default_rng(mod.SEED), 8)
    (s,) = read_deepmd(AGAU / "train" / "au08")
    np.testing.assert_allclose(s.coord[0], atoms.positions, atol=1e-12)
    np.testing.assert_allclose(s.box[0], atoms.cell[:], atol=1e-12)
    np.testing.assert_allclose(s.labels[K.ENERGY][0], energy, atol=1e-10)
    np.testing.assert_allclose(s.labels[K.FORCES][0], forces, atol=1e-10)
    np.testing.assert_allclose(s.labels[K.VIRIAL][0], virial, atol=1e-10)


def test_bundled_agau_matches_deepmd_kit():
    data_mod = pytest.importorskip("deepmd.utils.data")
    path = AGAU / "valid" / "au20"
    dd = data_mod.DeepmdData(str(path), type_map=["Ag", "Au"])
    dd.add("energy", 1, atomic=False, must=True, high_prec=True)
    dd.add("force", 3, atomic=True, must=True)
    dd.add("virial", 9, atomic=False, must=True)
    (s,) = read_deepmd(path)
    for i in (0, 7):
        f = dd.get_single_frame(i, 1)
        np.testing.assert_array_equal(f["type"], s.model_types(["Ag", "Au"]))
        np.testing.assert_allclose(f["coord"].reshape(-1, 3), s.coord[i])
        np.testing.assert_allclose(f["box"].reshape(3, 3), s.box[i])
        np.testing.assert_allclose(f["energy"][0], s.labels[K.ENERGY][i])
        np.testing.assert_allclose(f["force"].reshape(-1, 3), s.labels[K.FORCES][i])
        np.testing.assert_allclose(f["virial"].reshape(3, 3), s.labels[K.VIRIAL][i])


# --------------------------------------------------------------------------------------
# DeePMD-kit folders written here
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [False, True], ids=["npy", "raw"])
def test_deepmd_roundtrip(tmp_path, raw):
    data = _random_data(nf=5, natoms=4)
    path = _write_deepmd(tmp_path / "sys", [1, 0, 1, 1], data, type_map=["O", "H"],
                         sets=None if raw else [2, 3], raw=raw)
    (s,) = load_systems(path)
    assert s.name == str(path)
    assert s.elements == ["H", "O", "H", "H"]
    np.testing.assert_array_equal(s.types, [1, 0, 1, 1])
    np.testing.assert_array_equal(s.model_types(["H", "O"]), [0, 1, 0, 0])
    # (raw: np.savetxt writes '%.18e', so float64 values survive exactly)
    np.testing.assert_array_equal(s.coord, data["coord"])
    np.testing.assert_array_equal(s.box, data["box"])
    np.testing.assert_array_equal(s.labels[K.ENERGY], data["energy"])
    np.testing.assert_array_equal(s.labels[K.FORCES], data["force"])
    np.testing.assert_array_equal(s.labels[K.VIRIAL], data["virial"])
    assert all(s.masks[k].all() for k in K.LABEL_KEYS)


def test_deepmd_raw_single_frame(tmp_path):
    data = _random_data(nf=1, natoms=3)
    path = _write_deepmd(tmp_path / "one", [0, 0, 0], data, raw=True)
    (s,) = read_deepmd(path)
    assert s.nframes == 1 and s.elements is None
    np.testing.assert_array_equal(s.labels[K.ENERGY], data["energy"])
    np.testing.assert_array_equal(s.coord, data["coord"])


def test_deepmd_set_missing_force(tmp_path):
    data = _random_data(nf=6, natoms=3)
    path = _write_deepmd(tmp_path / "sys", [0, 1, 1], data, sets=[2, 4], skip={(1, "force"), (0, "virial")})
    (s,) = read_deepmd(path)
    np.testing.assert_array_equal(s.masks[K.FORCES], [True, True, False, False, False, False])
    np.testing.assert_array_equal(s.masks[K.VIRIAL], [False, False, True, True, True, True])
    assert s.masks[K.ENERGY].all()
    np.testing.assert_array_equal(s.labels[K.FORCES][:2], data["force"][:2])
    assert not s.labels[K.FORCES][2:].any()
    assert not s.labels[K.VIRIAL][:2].any()
    assert s.has_label(K.FORCES)
    # no set has a label -> not present at all
    path2 = _write_deepmd(tmp_path / "nolab", [0, 1, 1], data, skip={(0, "energy")})
    (s2,) = read_deepmd(path2)
    assert K.ENERGY not in s2.labels and not s2.has_label(K.ENERGY)


def test_deepmd_nopbc(tmp_path):
    data = _random_data(nf=3, natoms=2)
    path = _write_deepmd(tmp_path / "mol", [0, 1], data, type_map=["C", "O"], sets=[1, 2], nopbc=True)
    (s,) = read_deepmd(path)
    assert s.box is None and not s.periodic
    np.testing.assert_array_equal(s.coord, data["coord"])


def test_parent_folder_expands_sorted_and_nested(tmp_path):
    data = _random_data(nf=2, natoms=2)
    for name in ("b", "a", "deep/c"):
        _write_deepmd(tmp_path / "root" / name, [0, 0], data)
    systems = load_systems(tmp_path / "root")
    assert [Path(s.name).relative_to(tmp_path / "root").as_posix() for s in systems] == ["a", "b", "deep/c"]


# --------------------------------------------------------------------------------------
# bad DeePMD-kit input
# --------------------------------------------------------------------------------------
def test_missing_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=f"system folder not found: {re.escape(str(missing))}"):
        load_systems(missing)
    with pytest.raises(DataError, match="system folder not found"):
        read_deepmd(missing)


def test_folder_without_systems(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "empty")) + ".*type.raw"):
        load_systems(tmp_path / "empty")


def test_frame_count_mismatch(tmp_path):
    data = _random_data(nf=12, natoms=3)
    path = _write_deepmd(tmp_path / "sys", [0, 0, 0], data, sets=[2, 10], skip={(1, "energy")})
    np.save(path / "set.001" / "energy.npy", data["energy"][:9])
    msg = re.escape(f"{path / 'set.001'}: energy.npy has 9 frames but coord.npy has 10")
    with pytest.raises(DataError, match=msg):
        load_systems(path)


def test_box_frame_count_mismatch(tmp_path):
    data = _random_data(nf=4, natoms=3)
    path = _write_deepmd(tmp_path / "sys", [0, 0, 0], data, skip={(0, "box")})
    np.save(path / "set.000" / "box.npy", data["box"][:3].reshape(3, 9))
    msg = re.escape(f"{path / 'set.000'}: box.npy has 3 frames but coord.npy has 4")
    with pytest.raises(DataError, match=msg):
        read_deepmd(path)


def test_missing_box_without_nopbc(tmp_path):
    data = _random_data(nf=2, natoms=3)
    path = _write_deepmd(tmp_path / "sys", [0, 0, 0], data, skip={(0, "box")})
    with pytest.raises(DataError, match=re.escape(str(path / "set.000")) + ": box.npy not found.*nopbc"):
        read_deepmd(path)


def test_force_wrong_size(tmp_path):
    data = _random_data(nf=4, natoms=3)
    path = _write_deepmd(tmp_path / "sys", [0, 0, 0], data, skip={(0, "force")})
    np.save(path / "set.000" / "force.npy", np.zeros((4, 8)))  # natoms*3 = 9 expected
    with pytest.raises(DataError, match=re.escape(str(path / "set.000")) + r": force.npy has shape \(4, 8\)"):
        read_deepmd(path)


def test_coord_not_multiple_of_natoms(tmp_path):
    data = _random_data(nf=4, natoms=3)
    path = _write_deepmd(tmp_path / "sys", [0, 0, 0], data, skip={(0, "coord")})
    np.save(path / "set.000" / "coord.npy", np.zeros((4, 10)))
    with pytest.raises(DataError, match=re.escape(str(path / "set.000" / "coord.npy")) + ".*natoms\\*3 = 9"):
        read_deepmd(path)


def test_raw_count_mismatch(tmp_path):
    data = _random_data(nf=3, natoms=2)
    path = _write_deepmd(tmp_path / "sys", [0, 1], data, raw=True)
    np.savetxt(path / "energy.raw", data["energy"][:2])
    with pytest.raises(DataError, match=re.escape(f"{path}: energy.raw has 2 frames but coord.raw has 3")):
        read_deepmd(path)


def test_empty_type_raw(tmp_path):
    data = _random_data(nf=2, natoms=2)
    path = _write_deepmd(tmp_path / "sys", [0, 0], data)
    (path / "type.raw").write_text("\n")
    with pytest.raises(DataError, match=re.escape(str(path / "type.raw")) + " is empty"):
        load_systems(path)


def test_type_map_too_short(tmp_path):
    data = _random_data(nf=2, natoms=2)
    path = _write_deepmd(tmp_path / "sys", [0, 2], data, type_map=["O", "H"])
    with pytest.raises(DataError, match="type_map.raw names only 2 types"):
        read_deepmd(path)


def test_corrupt_npy(tmp_path):
    data = _random_data(nf=2, natoms=2)
    path = _write_deepmd(tmp_path / "sys", [0, 0], data)
    (path / "set.000" / "energy.npy").write_bytes(b"not a numpy file")
    with pytest.raises(DataError, match="cannot read " + re.escape(str(path / "set.000" / "energy.npy"))):
        read_deepmd(path)


def test_unknown_element_vs_type_map():
    (s,) = load_systems(AGAU / "valid" / "au12")
    with pytest.raises(DataError, match=r"\['Au'\] not in the model's type_map"):
        s.model_types(["Ag", "Cu"])
    (m,) = from_atoms(_labelled_atoms("H2O", 0, pbc=False, stress=False))
    with pytest.raises(DataError, match="'O'"):
        m.model_types(["H"])


# --------------------------------------------------------------------------------------
# ASE files and objects
# --------------------------------------------------------------------------------------
def test_extxyz_roundtrip_with_stress(tmp_path):
    import ase.io

    images = [_labelled_atoms("CuAu2", i) for i in range(3)] + [_labelled_atoms("Cu2Au", 10)]
    fname = tmp_path / "frames.extxyz"
    ase.io.write(fname, images, format="extxyz")
    systems = load_systems(fname)
    assert len(systems) == 2
    s, t = systems
    assert s.elements == ["Cu", "Au", "Au"] and s.nframes == 3
    assert t.elements == ["Cu", "Cu", "Au"] and t.nframes == 1
    assert str(fname) in s.name
    for i, atoms in enumerate(images[:3]):
        np.testing.assert_allclose(s.coord[i], atoms.positions, atol=1e-7)
        np.testing.assert_allclose(s.box[i], atoms.cell[:], atol=1e-7)
        np.testing.assert_allclose(s.labels[K.ENERGY][i], atoms.calc.results["energy"], rtol=1e-7)
        np.testing.assert_allclose(s.labels[K.FORCES][i], atoms.calc.results["forces"], atol=1e-7)
        expected = -_voigt_to_3x3(atoms.calc.results["stress"]) * atoms.get_volume()
        np.testing.assert_allclose(s.labels[K.VIRIAL][i], expected, atol=1e-8)
    assert all(s.masks[k].all() for k in K.LABEL_KEYS)


def test_ase_db(tmp_path):
    import ase.io

    images = [_labelled_atoms("Si2", i) for i in range(2)]
    images.append(_labelled_atoms("Si2", 5, stress=False))
    fname = tmp_path / "frames.db"
    ase.io.write(fname, images)
    (s,) = read_ase(fname)
    assert s.nframes == 3 and s.elements == ["Si", "Si"]
    np.testing.assert_array_equal(s.masks[K.VIRIAL], [True, True, False])
    assert not s.labels[K.VIRIAL][2].any()
    np.testing.assert_allclose(s.labels[K.FORCES][1], images[1].calc.results["forces"])
    (last,) = read_ase(fname, index=-1)
    assert last.nframes == 1


def test_from_atoms_info_arrays_and_grouping():
    from ase import Atoms
    from ase.calculators.emt import EMT

    a = Atoms("Cu2", positions=[[0, 0, 0], [1.2, 1.2, 0.5]], cell=np.eye(3) * 4, pbc=True)
    a.info["energy"] = -1.5
    a.arrays["forces"] = np.ones((2, 3))
    b = Atoms("Cu2", positions=[[0, 0, 0], [1.3, 1.2, 0.4]], cell=np.eye(3) * 4, pbc=True)  # no labels
    mol = Atoms("Cu2", positions=[[0, 0, 0], [2.4, 0, 0]])  # non-periodic
    mol.calc = EMT()
    e_mol = mol.get_potential_energy()  # stored results are used, never recomputed
    systems = from_atoms([a, b, mol], name="mine")
    assert len(systems) == 2
    per, np_ = systems
    assert per.periodic and per.nframes == 2 and per.name.startswith("mine")
    np.testing.assert_array_equal(per.labels[K.ENERGY], [-1.5, 0.0])
    np.testing.assert_array_equal(per.masks[K.ENERGY], [True, False])
    np.testing.assert_array_equal(per.masks[K.FORCES], [True, False])
    assert K.VIRIAL not in per.labels
    assert np_.box is None and np_.nframes == 1
    np.testing.assert_allclose(np_.labels[K.ENERGY], [e_mol])
    assert K.VIRIAL not in np_.labels  # no virial for non-periodic frames
    (single,) = from_atoms(a)
    assert single.nframes == 1 and single.name == "ase.Atoms"


def test_from_atoms_stale_calculator_is_ignored():
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", cubic=True)
    atoms.calc = EMT()
    atoms.get_potential_energy()
    atoms.positions[0] += 0.1  # results no longer belong to these positions
    (s,) = from_atoms(atoms)
    assert not s.has_label(K.ENERGY)


def test_mixed_pbc_rejected():
    atoms = _labelled_atoms("Cu2", 0, pbc=[True, True, False])
    with pytest.raises(DataError, match="mixed periodicity"):
        from_atoms([atoms], name="slab")


def test_load_systems_mixed_sources(tmp_path):
    atoms = [_labelled_atoms("Cu2", i) for i in range(2)]
    systems = load_systems([atoms[0], atoms[1], AGAU / "valid" / "au20"])
    assert [s.nframes for s in systems] == [2, 10]
    assert load_systems(atoms[0])[0].nframes == 1


def test_unreadable_file(tmp_path):
    bad = tmp_path / "garbage.xyz"
    bad.write_text("this is not\nan xyz file\n")
    with pytest.raises(DataError, match="cannot read " + re.escape(str(bad)) + " with ASE"):
        load_systems(bad)
    with pytest.raises(DataError, match="data file not found"):
        read_ase(tmp_path / "missing.extxyz")


def test_format_mismatch(tmp_path):
    f = tmp_path / "x.extxyz"
    f.write_text("")
    with pytest.raises(DataError, match="expects a DeePMD-kit system folder"):
        load_systems(f, fmt="deepmd")
    with pytest.raises(DataError, match="expected a path"):
        load_systems([3.0])


# --------------------------------------------------------------------------------------
# pymatgen
# --------------------------------------------------------------------------------------
def test_from_pymatgen_structure_and_molecule():
    from pymatgen.core import Lattice, Molecule, Structure

    lat = Lattice.cubic(4.08)
    st = Structure(lat, ["Au", "Ag"], [[0, 0, 0], [0.5, 0.5, 0.5]],
                   site_properties={"forces": [[0.1, 0, 0], [-0.1, 0, 0]]})
    st.properties["energy"] = -5.0
    (s,) = from_pymatgen(st)
    assert s.periodic and s.elements == ["Au", "Ag"]
    np.testing.assert_allclose(s.box[0], lat.matrix)
    np.testing.assert_allclose(s.coord[0], st.cart_coords)
    np.testing.assert_allclose(s.labels[K.ENERGY], [-5.0])
    np.testing.assert_allclose(s.labels[K.FORCES][0], [[0.1, 0, 0], [-0.1, 0, 0]])
    np.testing.assert_array_equal(s.model_types(["Ag", "Au"]), [1, 0])

    mol = Molecule(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    systems = load_systems([mol, st])  # mixed list: grouped into two systems
    assert len(systems) == 2
    m = systems[0] if systems[0].box is None else systems[1]
    assert m.box is None and m.elements == ["O", "H", "H"] and not m.labels
    np.testing.assert_allclose(m.coord[0], mol.cart_coords)


# --------------------------------------------------------------------------------------
# shared DeePMD-kit example data (optional)
# --------------------------------------------------------------------------------------
def test_shared_water_data_1():
    path = SHARED / "examples" / "water" / "data" / "data_1"
    if not path.is_dir():
        pytest.skip(f"shared DeePMD-kit example data not present at {SHARED}")
    (s,) = load_systems(path)
    assert (s.nframes, s.natoms) == (160, 192)
    assert s.box.shape == (160, 3, 3)
    assert s.elements[:64] == ["O"] * 64 and s.elements[64:] == ["H"] * 128
    np.testing.assert_array_equal(s.model_types(["O", "H"]), [0] * 64 + [1] * 128)
    assert s.masks[K.ENERGY].all() and s.masks[K.FORCES].all()
    assert K.VIRIAL not in s.labels
    # the two sets are concatenated in order
    first = np.load(path / "set.000" / "energy.npy")
    np.testing.assert_array_equal(s.labels[K.ENERGY][: first.size], first)


def test_extxyz_virial_in_info(tmp_path):
    """extxyz files from other tools may carry a DeePMD-sign ``virial`` instead of stress."""
    f = tmp_path / "v.xyz"
    f.write_text('2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 energy=-1.0 '
                 'virial="1 0 0 0 2 0 0 0 3" pbc="T T T"\nCu 0 0 0\nCu 2 2 0\n')
    (s,) = read_ase(f)
    np.testing.assert_array_equal(s.labels[K.VIRIAL][0], np.diag([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(s.labels[K.ENERGY], [-1.0])
    assert K.FORCES not in s.labels


# --------------------------------------------------------------------------------------
# tensor labels: dipole / polarizability (global and atomic)
# --------------------------------------------------------------------------------------
WATER_TENSOR = SHARED / "examples" / "water_tensor"


@pytest.mark.parametrize("kind", ["dipole", "polar"])
def test_shared_water_tensor_systems(kind):
    base = WATER_TENSOR / kind / "training_data_reformat"
    if not base.is_dir():
        pytest.skip(f"shared DeePMD-kit water_tensor data not present at {SHARED}")
    atomic, glob = load_systems([base / "atomic_system", base / "global_system"])
    gkey, akey, comp = ((K.DIPOLE, K.ATOM_DIPOLE, (3,)) if kind == "dipole"
                        else (K.POLARIZABILITY, K.ATOM_POLARIZABILITY, (3, 3)))
    # the dipole systems have a 'nopbc' file (their box.npy is ignored), the polar ones do not
    assert atomic.periodic == glob.periodic == (kind == "polar")
    nf_a = np.load(base / "atomic_system" / "set.000" / "coord.npy").shape[0]
    nf_g = np.load(base / "global_system" / "set.000" / "coord.npy").shape[0]
    assert atomic.natoms == glob.natoms == 192
    assert set(atomic.labels) == {akey} and set(glob.labels) == {gkey}
    assert atomic.labels[akey].shape == (nf_a, 192, *comp) and atomic.masks[akey].shape == (nf_a,)
    assert glob.labels[gkey].shape == (nf_g, *comp) and glob.masks[gkey].all() and atomic.masks[akey].all()
    raw = np.load(base / "atomic_system" / "set.000" / f"{'atomic_dipole' if kind == 'dipole' else 'atomic_polarizability'}.npy")
    np.testing.assert_array_equal(atomic.labels[akey].reshape(nf_a, -1), raw)
    h = np.asarray(atomic.elements) == "H"
    assert not atomic.labels[akey][:, h].any() and atomic.labels[akey][:, ~h].any()  # only O carries the label
    # graphs carry the tensor labels of their system only, with masks
    from mtzoo.data.graph import collate, system_graphs

    ga = collate(system_graphs(atomic, ["O", "H"], 2.0)[:2])
    assert tuple(ga[akey].shape) == (2 * 192, *comp) and ga[K.has(akey)].tolist() == [1.0, 1.0]
    assert gkey not in ga and K.has(gkey) not in ga
    gg = collate(system_graphs(glob, ["O", "H"], 2.0)[:2])
    assert tuple(gg[gkey].shape) == (2, *comp) and akey not in gg
    np.testing.assert_array_equal(gg[gkey].numpy(), glob.labels[gkey][:2])


@pytest.mark.parametrize("raw", [False, True], ids=["npy", "raw"])
def test_deepmd_tensor_labels_roundtrip(tmp_path, raw):
    rng = np.random.default_rng(3)
    nf, natoms = 4, 3
    data = _random_data(nf=nf, natoms=natoms)
    path = _write_deepmd(tmp_path / "t", [0, 1, 1], data, sets=None if raw else [1, 3], raw=raw)
    tensors = {"dipole": rng.normal(size=(nf, 3)), "atomic_dipole": rng.normal(size=(nf, natoms * 3)),
               "polarizability": rng.normal(size=(nf, 9)), "atomic_polarizability": rng.normal(size=(nf, natoms * 9))}
    for stem, arr in tensors.items():
        if raw:
            np.savetxt(path / f"{stem}.raw", arr)
        elif stem == "dipole":  # only the second set has global dipoles
            np.save(path / "set.001" / "dipole.npy", arr[1:])
        else:
            np.save(path / "set.000" / f"{stem}.npy", arr[:1])
            np.save(path / "set.001" / f"{stem}.npy", arr[1:])
    (s,) = read_deepmd(path)
    if raw:
        np.testing.assert_array_equal(s.labels[K.DIPOLE], tensors["dipole"])
        assert s.masks[K.DIPOLE].all()
    else:
        np.testing.assert_array_equal(s.masks[K.DIPOLE], [False, True, True, True])
        np.testing.assert_array_equal(s.labels[K.DIPOLE][1:], tensors["dipole"][1:])
        assert not s.labels[K.DIPOLE][0].any()
    np.testing.assert_array_equal(s.labels[K.ATOM_DIPOLE], tensors["atomic_dipole"].reshape(nf, natoms, 3))
    np.testing.assert_array_equal(s.labels[K.POLARIZABILITY], tensors["polarizability"].reshape(nf, 3, 3))
    np.testing.assert_array_equal(s.labels[K.ATOM_POLARIZABILITY],
                                  tensors["atomic_polarizability"].reshape(nf, natoms, 3, 3))
    assert s.masks[K.ATOM_POLARIZABILITY].all()


@pytest.mark.parametrize("stem,comp", [("atomic_dipole", 3), ("atomic_polarizability", 9)])
def test_atomic_tensor_wrong_size(tmp_path, stem, comp):
    nf, natoms = 3, 6
    data = _random_data(nf=nf, natoms=natoms)
    path = _write_deepmd(tmp_path / "old", [0, 1, 1, 0, 1, 1], data)
    # the older DeePMD-kit layout: only the 2 sel_type atoms (type 0) per frame
    np.save(path / "set.000" / f"{stem}.npy", np.zeros((nf, 2 * comp)))
    with pytest.raises(DataError, match=rf"{stem}\.npy.*expected natoms\*{comp} = {natoms * comp}.*sel_type"):
        read_deepmd(path)
    np.save(path / "set.000" / f"{stem}.npy", np.zeros((nf, natoms * comp + 1)))
    with pytest.raises(DataError, match=rf"{stem}\.npy.*expected natoms\*{comp} = {natoms * comp}"):
        read_deepmd(path)


def test_global_tensor_wrong_size(tmp_path):
    data = _random_data(nf=3, natoms=2)
    path = _write_deepmd(tmp_path / "g", [0, 1], data)
    np.save(path / "set.000" / "polarizability.npy", np.zeros((3, 6)))
    with pytest.raises(DataError, match=r"polarizability\.npy"):
        read_deepmd(path)


def test_from_atoms_tensor_labels():
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    a = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    a.info["polarizability"] = np.arange(9.0)
    a.arrays["atomic_dipole"] = np.arange(9.0).reshape(3, 3)
    a.calc = SinglePointCalculator(a, energy=-1.0, dipole=np.array([0.1, 0.2, 0.3]))
    b = Atoms("OH2", positions=[[0, 0, 0], [0.95, 0, 0], [-0.25, 0.93, 0]])
    b.info["dipole"] = [1.0, 2.0, 3.0]
    (s,) = from_atoms([a, b])
    np.testing.assert_array_equal(s.labels[K.DIPOLE], [[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(s.masks[K.POLARIZABILITY], [True, False])
    np.testing.assert_array_equal(s.labels[K.POLARIZABILITY][0], np.arange(9.0).reshape(3, 3))
    np.testing.assert_array_equal(s.labels[K.ATOM_DIPOLE][0], np.arange(9.0).reshape(3, 3))
    np.testing.assert_array_equal(s.masks[K.ATOM_DIPOLE], [True, False])
    c = b.copy()
    c.info["dipole"] = [1.0, 2.0]
    with pytest.raises(DataError, match="dipole"):
        from_atoms([c])
