"""ASE calculator: finite-difference forces and stress, Verlet-list reuse, NVE energy conservation,
head validation, tensor heads, dtype, errors, the atom-type cache, and ASE integrators / optimizers.

Models: small se_e2_a nets with statistics from compute_stats (untrained: smooth, random).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

import physics
from conftest import molecule_system
from mtzoo.calculator import MTZooCalculator
from mtzoo.data.graph import atoms_to_graph
from mtzoo.model import build_model

# |E_tot(end) - E_tot(start)| / natoms over NVE_STEPS VelocityVerlet steps of 1 fs, float64, head
# "lda" of the untrained model (its surface stays bound at 300 K; head "pbe" heats up after ~300 fs):
# measured 1.2e-8 eV/atom (max deviation 2e-8) on the 32-atom Ag-Au cell; bound with margin.
NVE_STEPS = 400
NVE_DRIFT_BOUND = 1e-6


def agau_cell(rep=(2, 2, 2), seed=0, rattle=0.05, a=4.07) -> Atoms:
    atoms = bulk("Ag", "fcc", a=a, cubic=True).repeat(rep)
    rng = np.random.default_rng(seed)
    sym = np.array(atoms.get_chemical_symbols())
    sym[rng.permutation(len(atoms))[: len(atoms) // 2]] = "Au"
    atoms.set_chemical_symbols(sym.tolist())
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    return atoms


def thermalize(atoms: Atoms, temperature_K: float, seed: int) -> None:
    import ase.md.velocitydistribution as vd

    # thermalize_momenta (ASE >= 3.28) replaces MaxwellBoltzmannDistribution
    (getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution)(
        atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))


def ethanol() -> Atoms:
    s = molecule_system()
    return Atoms(s.elements, positions=s.coord[0])


@functools.lru_cache(maxsize=None)
def agau_model():
    desc = {"type": "se_e2_a", "sel": [30, 30], "rcut": 4.5, "rcut_smth": 1.5, "neuron": [4, 8], "axis_neuron": 2,
            "type_one_side": True, "seed": 1}
    model = build_model({"type_map": ["Ag", "Au"], "descriptor": desc, "heads": {
        "pbe": {"type": "ener", "neuron": [16, 16], "seed": 2},
        "lda": {"type": "ener", "neuron": [8], "seed": 3}}})
    with torch.no_grad():
        model.descriptor.compute_stats([atoms_to_graph(agau_cell(seed=s), model.type_map, model.rcut) for s in range(3)])
    return model.eval()


@functools.lru_cache(maxsize=None)
def molecule_model():
    desc = {"type": "se_e2_a", "sel": [10, 10, 10], "rcut": 4.0, "rcut_smth": 0.5, "neuron": [6, 12],
            "axis_neuron": 4, "seed": 1}
    model = build_model({"type_map": ["C", "H", "O"], "descriptor": desc, "heads": {
        "energy": {"type": "ener", "neuron": [12, 12], "seed": 2},
        "dipole": {"type": "dipole", "neuron": [12, 12], "seed": 3},
        "polar": {"type": "polar", "neuron": [12, 12], "seed": 4, "fit_diag": False}}})
    rng = np.random.default_rng(3)
    with torch.no_grad():
        model.descriptor.compute_stats([atoms_to_graph(ethanol(), model.type_map, model.rcut)])
        for name in ("dipole", "polar"):
            b = model.heads[name].bias_atom_e
            b.copy_(torch.as_tensor(rng.normal(size=b.shape)))
    return model.eval()


# ------------------------------------------------------------------------------------------
# derivatives through ASE
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("system", ["agau", "ethanol"])
def test_forces_equal_finite_differences(system):
    if system == "agau":
        atoms, calc = agau_cell(), MTZooCalculator(agau_model(), head="pbe")
        idx = [0, 5, 17, 31]
    else:
        atoms, calc = ethanol(), MTZooCalculator(molecule_model(), head="energy")
        idx = None
    atoms.calc = calc
    forces = atoms.get_forces()
    fd = calculate_numerical_forces(atoms, eps=1e-5, iatoms=idx)
    sel = forces if idx is None else forces[idx]
    scale = np.abs(forces).max()
    assert scale > 1e-3
    err = np.abs(sel - fd).max() / scale
    assert err < 1e-6, f"forces vs FD: relative error {err:.2e}"
    # the displaced geometries reused the Verlet list (displacements << skin/2)
    assert calc.nl_reuses > 0
    assert calc.nl_builds == 1


def test_stress_equals_finite_differences():
    atoms = agau_cell(seed=1)
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + np.array([[0.02, 0.01, 0.0], [0.0, -0.01, 0.015], [0.0, 0.0, 0.01]])),
                   scale_atoms=True)
    atoms.calc = MTZooCalculator(agau_model(), head="lda")
    stress = atoms.get_stress()
    fd = calculate_numerical_stress(atoms, eps=1e-5)
    scale = np.abs(stress).max()
    assert scale > 1e-4
    err = np.abs(stress - fd).max() / scale
    assert err < 1e-6, f"stress vs FD: relative error {err:.2e} ({stress} vs {fd})"
    # and the calculator matches the model's own prediction
    ref = agau_model().predict(atoms, head="lda")
    s = ref["stress"]
    np.testing.assert_allclose(stress, [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]], rtol=1e-12, atol=1e-14)
    assert atoms.get_potential_energy() == pytest.approx(ref["energy"], rel=1e-13)
    np.testing.assert_allclose(atoms.get_potential_energies(), ref["energies"], rtol=1e-12, atol=1e-14)
    assert atoms.get_potential_energy() == pytest.approx(atoms.get_potential_energies().sum(), rel=1e-12)


def test_non_periodic_has_no_stress():
    atoms = ethanol()
    atoms.calc = MTZooCalculator(molecule_model(), head="energy")
    atoms.get_potential_energy()
    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        atoms.get_stress()


# ------------------------------------------------------------------------------------------
# Verlet list reuse
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("wrap", [False, True])
def test_neighbor_list_reuse_equals_fresh_list(wrap):
    from ase.md.langevin import Langevin
    model = agau_model()
    atoms = agau_cell(seed=2)
    thermalize(atoms, 600, seed=0)
    calc = MTZooCalculator(model, head="pbe", skin=1.0)
    fresh = MTZooCalculator(model, head="pbe", skin=0.0)
    atoms.calc = calc
    dyn = Langevin(atoms, timestep=2 * units.fs, temperature_K=600, friction=0.02, fixcm=False, rng=np.random.default_rng(1))
    n_steps, worst, wrapped = 40, 0.0, 0
    for step in range(n_steps):
        dyn.run(1)
        if wrap:  # ASE wraps atoms back into the cell: positions jump by lattice vectors
            before = atoms.positions.copy()
            atoms.wrap()
            wrapped += int(np.abs(atoms.positions - before).max() > 1.0)
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        probe = atoms.copy()
        probe.calc = fresh
        e0, f0 = probe.get_potential_energy(), probe.get_forces()
        assert abs(e - e0) <= 1e-12 * abs(e0)
        worst = max(worst, np.abs(f - f0).max())
        np.testing.assert_allclose(atoms.get_stress(), probe.get_stress(), rtol=0, atol=1e-12)
    assert worst < 1e-12
    assert fresh.nl_builds >= n_steps  # a fresh list every time
    assert calc.nl_builds < n_steps / 4, (calc.nl_builds, calc.nl_reuses)
    assert calc.nl_builds >= 1 and calc.nl_reuses > 0
    print(f"wrap={wrap}: {n_steps} steps, {calc.nl_builds} builds, {calc.nl_reuses} reuses, {wrapped} wrapping steps")
    if wrap:  # the wraps really moved atoms by lattice vectors, and the list survived them
        assert wrapped >= 2


def test_rebuild_when_an_atom_moves_more_than_half_the_skin():
    atoms = agau_cell()
    calc = MTZooCalculator(agau_model(), head="pbe", skin=0.4)
    atoms.calc = calc
    atoms.get_potential_energy()
    atoms.positions[3] += [0.15, 0.0, 0.0]
    atoms.get_potential_energy()
    assert (calc.nl_builds, calc.nl_reuses) == (1, 1)
    atoms.positions[3] += [0.1, 0.0, 0.0]  # 0.25 > skin/2 from the build positions
    e = atoms.get_potential_energy()
    assert (calc.nl_builds, calc.nl_reuses) == (2, 1)
    atoms.set_cell(atoms.cell[:] * 1.001, scale_atoms=True)  # a new cell always rebuilds
    atoms.get_potential_energy()
    assert calc.nl_builds == 3
    ref = agau_model().predict(atoms, head="pbe")
    assert atoms.get_potential_energy() == pytest.approx(ref["energy"], rel=1e-13)
    assert e != atoms.get_potential_energy()


# ------------------------------------------------------------------------------------------
# molecular dynamics and optimizers
# ------------------------------------------------------------------------------------------
def test_nve_energy_conservation():
    from ase.md.velocitydistribution import Stationary
    from ase.md.verlet import VelocityVerlet

    atoms = agau_cell(seed=3, rattle=0.0)
    thermalize(atoms, 300, seed=4)
    Stationary(atoms)
    atoms.calc = MTZooCalculator(agau_model(), head="lda")
    dyn = VelocityVerlet(atoms, timestep=1 * units.fs)
    e0 = atoms.get_total_energy()
    totals = []
    for _ in range(NVE_STEPS // 50):
        dyn.run(50)
        totals.append(atoms.get_total_energy())
    drift = abs(totals[-1] - e0) / len(atoms)
    fluct = np.abs(np.array(totals) - e0).max() / len(atoms)
    print(f"NVE: {NVE_STEPS} steps of 1 fs, {len(atoms)} atoms: drift {drift:.2e} eV/atom, "
          f"max deviation {fluct:.2e} eV/atom, neighbour-list builds {atoms.calc.nl_builds}")
    assert 100 < atoms.get_temperature() < 600  # the atoms really moved, and stayed a warm solid
    assert drift < NVE_DRIFT_BOUND and fluct < 5 * NVE_DRIFT_BOUND


@pytest.mark.parametrize("optimizer", ["BFGS", "FIRE"])
def test_optimizers_lower_the_energy(optimizer):
    """The untrained model has no physical minimum near fcc: a few short steps, energy down, results fresh."""
    import ase.optimize

    atoms = agau_cell(seed=5, rattle=0.1)
    calc = agau_model().calculator(head="pbe")
    atoms.calc = calc
    energies = [atoms.get_potential_energy()]
    opt = getattr(ase.optimize, optimizer)(atoms, logfile=None, maxstep=0.02)
    for _ in range(8):
        opt.run(fmax=1e-4, steps=1)
        energies.append(atoms.get_potential_energy())
    assert energies[-1] < energies[0] - 1e-3, energies
    assert calc.nl_reuses > 0
    ref = agau_model().predict(atoms, head="pbe")
    assert energies[-1] == pytest.approx(ref["energy"], rel=1e-13)
    np.testing.assert_allclose(atoms.get_forces(), ref["forces"], rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------
# heads, tensor properties, validation
# ------------------------------------------------------------------------------------------
def test_head_validation_lists_heads():
    with pytest.raises(KeyError, match=r"'pbe0' not in this model \(available: \['pbe', 'lda'\]\)"):
        MTZooCalculator(agau_model(), head="pbe0")
    with pytest.raises(ValueError, match="several heads"):
        MTZooCalculator(agau_model())
    with pytest.raises(KeyError, match="available"):
        agau_model().calculator(head="PBE")
    # heads differ: each calculator really evaluates its own head
    atoms = agau_cell()
    e = {h: MTZooCalculator(agau_model(), head=h).get_potential_energy(atoms) for h in ("pbe", "lda")}
    assert e["pbe"] != e["lda"]


def test_implemented_properties_follow_the_head():
    m = molecule_model()
    assert set(m.calculator(head="energy").implemented_properties) == {"energy", "free_energy", "energies", "forces",
                                                                       "stress"}
    assert m.calculator(head="dipole").implemented_properties == ["dipole"]
    assert m.calculator(head="polar").implemented_properties == ["polarizability"]
    atoms = ethanol()
    atoms.calc = m.calculator(head="dipole")
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_potential_energy()


def test_dipole_and_polarizability_rotate_with_the_atoms():
    rng = np.random.default_rng(7)
    rot = physics.random_rotation(rng)
    atoms = ethanol()
    turned = atoms.copy()
    turned.positions = atoms.positions @ rot.T + [1.0, -2.0, 0.5]
    dip = MTZooCalculator(molecule_model(), head="dipole")
    d, d_rot = dip.get_property("dipole", atoms), dip.get_property("dipole", turned)
    assert d.shape == (3,) and np.linalg.norm(d) > 1e-3
    np.testing.assert_allclose(d_rot, rot @ d, rtol=0, atol=1e-12 * np.abs(d).max())
    atoms.calc = dip
    np.testing.assert_allclose(atoms.get_dipole_moment(), d, rtol=1e-14)
    pol = MTZooCalculator(molecule_model(), head="polar")
    a, a_rot = pol.get_property("polarizability", atoms), pol.get_property("polarizability", turned)
    assert a.shape == (3, 3) and np.abs(a).max() > 1e-3
    np.testing.assert_allclose(a, a.T, atol=1e-12 * np.abs(a).max())
    np.testing.assert_allclose(a_rot, rot @ a @ rot.T, rtol=0, atol=1e-12 * np.abs(a).max())


def test_predict_gives_tensor_heads_global_and_atomic_values():
    m, atoms = molecule_model(), ethanol()
    d = m.predict(atoms, head="dipole")
    assert set(d) == {"dipole", "atomic_dipole"} and d["atomic_dipole"].shape == (len(atoms), 3)
    np.testing.assert_allclose(d["dipole"], d["atomic_dipole"].sum(0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d["dipole"], MTZooCalculator(m, head="dipole").get_property("dipole", atoms), rtol=1e-13)
    a = m.predict(atoms, head="polar")
    assert a["polarizability"].shape == (3, 3) and a["atomic_polarizability"].shape == (len(atoms), 3, 3)
    np.testing.assert_allclose(a["polarizability"], a["atomic_polarizability"].sum(0), rtol=1e-12, atol=1e-14)


def test_changed_elements_are_not_served_from_the_type_cache():
    """The calculator keeps the atom types while the atomic numbers stay the same; swapping the
    elements of two atoms in place (same positions, same count) must give the fresh answer."""
    calc = MTZooCalculator(agau_model(), head="pbe")
    atoms = agau_cell()
    calc.get_potential_energy(atoms)
    sym = atoms.get_chemical_symbols()
    i, j = sym.index("Ag"), sym.index("Au")
    atoms.symbols[[i, j]] = [sym[j], sym[i]]
    swapped = calc.get_potential_energy(atoms)
    fresh = MTZooCalculator(agau_model(), head="pbe").get_potential_energy(atoms.copy())
    assert swapped == pytest.approx(fresh, rel=1e-12, abs=1e-12)
    before = MTZooCalculator(agau_model(), head="pbe").get_potential_energy(agau_cell())
    assert abs(swapped - before) > 1e-6  # the swap changed the energy: the test can tell


def test_errors_mixed_pbc_and_unknown_elements():
    calc = MTZooCalculator(agau_model(), head="pbe")
    atoms = agau_cell()
    atoms.pbc = [True, True, False]
    with pytest.raises(ValueError, match="mixed periodicity"):
        calc.get_potential_energy(atoms)
    atoms = agau_cell()
    atoms.symbols[[0, 3]] = ["Cu", "Pt"]
    with pytest.raises(ValueError, match=r"elements \['Cu', 'Pt'\] are not in this model's type_map \['Ag', 'Au'\]"):
        calc.get_potential_energy(atoms)
    with pytest.raises(ValueError, match="dtype"):
        MTZooCalculator(agau_model(), head="pbe", dtype="float16")


def test_dtype_and_model_path(tmp_path):
    from mtzoo.zoo.frozen import save_model

    path = save_model(agau_model(), tmp_path / "model.pth")
    atoms = agau_cell()
    c64 = MTZooCalculator(str(path), head="pbe", dtype="float64")
    c32 = MTZooCalculator(path, head="pbe", dtype=torch.float32)
    assert c32.model.dtype == torch.float32 and c64.model.dtype == torch.float64
    assert agau_model().dtype == torch.float64  # the caller's model is left alone
    e64, f64 = c64.get_potential_energy(atoms), c64.get_forces(atoms)
    assert e64 == pytest.approx(agau_model().predict(atoms, head="pbe")["energy"], rel=1e-13)
    e32, f32 = c32.get_potential_energy(atoms), c32.get_forces(atoms)
    assert e32 == pytest.approx(e64, rel=1e-5)
    assert np.abs(f32 - f64).max() < 1e-3 * np.abs(f64).max()
    with pytest.raises(FileNotFoundError):
        MTZooCalculator(tmp_path / "missing.pth", head="pbe")
