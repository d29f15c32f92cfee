"""Documentation a user can trust: the README's code, the examples, the CLI help, the version and CITATION.cff.

* Every fenced ``python`` block of README.md runs, in a fresh interpreter in a temporary folder,
  after every ``mtzoo`` submodule has been imported (the documented functions ``mtzoo.train`` and
  ``mtzoo.evaluate`` once shared their names with modules and broke with import order).  The
  placeholders a block leaves to the reader (``atoms``, ``data/sys0``, ``model.pth`` ...) are
  provided by :data:`BLOCKS`; settings that would run for minutes are made small there by
  substitutions that must match the block's text, so a changed block fails here instead of
  running long.  After the block, checks on its variables run in the same interpreter.
* Every script under examples/ runs with small settings and its printed results are checked;
  :data:`EXAMPLE_TESTS` must name every script (a new one fails :func:`test_every_example_script_is_tested`).
* ``mtzoo --version``, CITATION.cff, the help text of every CLI option, docs/installation.md's
  generated table of the DeePMD-kit keys mtzoo does not read.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

README = REPO / "README.md"
EXAMPLES = REPO / "examples"
DATA = EXAMPLES / "data"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

FLOAT = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)"


def run_python(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python ARGS`` in ``cwd`` with one thread; the failure message holds the output's end."""
    r = subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"exit {r.returncode}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
    return r


def number(pattern: str, text: str) -> float:
    """The float captured by ``pattern`` (with :data:`FLOAT` as ``{x}``) in ``text``; fails if absent."""
    m = re.search(pattern.format(x=FLOAT), text)
    assert m, f"no match for {pattern!r} in:\n{text[-2000:]}"
    return float(m.group(1))


# ----------------------------------------------------------------------------- README blocks


def readme_python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def _small_agau_input(tmp: Path) -> None:
    """``examples/agau_emt/input.json`` as the block names it, 200 steps (of 1000), absolute data paths."""
    src = EXAMPLES / "agau_emt" / "input.json"
    cfg = json.loads(src.read_text())
    tr = cfg["training"]
    for key in ("training_data", "validation_data"):
        tr[key]["systems"] = [str((src.parent / p).resolve()) for p in tr[key]["systems"]]
    tr.update(numb_steps=200, disp_freq=100, save_freq=200)
    cfg["learning_rate"]["decay_steps"] = 40
    dst = tmp / "examples" / "agau_emt" / "input.json"
    dst.parent.mkdir(parents=True)
    dst.write_text(json.dumps(cfg))


def _setup_python_block(tmp: Path) -> None:
    _small_agau_input(tmp)
    shutil.copytree(DATA / "agau_emt" / "valid" / "au12", tmp / "data" / "sys0")
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    src = DATA / "agau_emt" / "valid" / "au20"
    tmap = (src / "type_map.raw").read_text().split()
    symbols = [tmap[int(t)] for t in (src / "type.raw").read_text().split()]
    arrays = {k: np.load(src / "set.000" / f"{k}.npy")[:3] for k in ("coord", "box", "energy", "force")}
    frames = []
    for c, b, e, f in zip(*(arrays[k] for k in ("coord", "box", "energy", "force"))):
        atoms = Atoms(symbols, positions=c.reshape(-1, 3), cell=b.reshape(3, 3), pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=float(e), forces=f.reshape(-1, 3))
        frames.append(atoms)
    write(tmp / "frames.extxyz", frames)


def _setup_finetune_block(tmp: Path) -> None:
    shutil.copytree(DATA / "molecules" / "ccsdt" / "ethanol" / "train", tmp / "my_ccsdt" / "train")


def _setup_md_block(tmp: Path) -> None:
    from mtzoo.zoo.registry import MODELS_DIR, get_entry

    shutil.copy(MODELS_DIR / get_entry("agau-emt-d3-v1")["file"], tmp / "model.pth")


AGAU_ATOMS = """
from ase.build import bulk
atoms = bulk("Ag", "fcc", a=4.09, cubic=True).repeat((2, 2, 2))
atoms.symbols[::3] = "Au"
atoms.rattle(0.05, seed=1)
"""

#: README block (found by a line it contains) -> setup(tmp), code run before it (its
#: placeholders), [(text, smaller text)] substitutions, checks run after it.
BLOCKS = {
    'mtzoo.train("examples/agau_emt/input.json", workdir="run")': dict(
        id="python",
        setup=_setup_python_block,
        before=AGAU_ATOMS,
        checks="""
import numpy as np
assert Path("run/lcurve.out").is_file() and Path("model.pth").is_file()
assert np.isfinite(result["energy"]) and result["forces"].shape == (len(atoms), 3), result
assert result["stress"].shape == (3, 3) and np.isfinite(result["stress"]).all()
assert sum(s.nframes for s in systems) == 10 + 3, [s.nframes for s in systems]
total = mtzoo.evaluate(model, systems)["total"]
zero_force = np.sqrt(np.mean(np.concatenate([s.labels["force"].ravel() for s in systems]) ** 2))
# 200 steps: measured energy RMSE 0.041 eV/atom (1.16 at step 20), force RMSE 0.507 eV/A (0.89x zero force)
assert total["energy_per_atom"]["rmse"] < 0.1 and total["force"]["rmse"] < 0.95 * zero_force, (total, zero_force)
""",
    ),
    'mtzoo.finetune("hcno-mf-se-v1", ["my_ccsdt/train"]': dict(
        id="pretrained-and-finetuning",
        setup=_setup_finetune_block,
        before='from ase.build import molecule\natoms = molecule("CH3CH2OH")\n',
        checks="""
import numpy as np
names = {e["name"] for e in mtzoo.list_pretrained()}
assert {"hcno-mf-se-v1", "hcno-mf-e3nn-v1", "agau-emt-d3-v1"} <= names, names
assert pbe.head_names() == ["pbe"] and str(pbe.dtype) == "torch.float32"
assert model.predict(atoms, head="pbe_dipole")["dipole"].shape == (3,)
assert Path(path).is_file() and Path("ccsdt.pth").is_file()
ft = mtzoo.load_model(path)
assert "ccsdt" in ft.head_names() and "pbe" in ft.head_names()
valid = mtzoo.load_systems([str(REPO / "examples/data/molecules/ccsdt/ethanol/valid")])
mae = mtzoo.evaluate(ft, valid, head="ccsdt")["total"]["energy_per_atom"]["mae"]
mae_pbe = mtzoo.evaluate(ft, valid, head="pbe")["total"]["energy_per_atom"]["mae"]
# ridge fit on the 20 ethanol frames: measured 15.9 meV/atom on its 5 held-out frames; pbe (another level) 288
assert mae < 0.03 and mae < mae_pbe / 10, (mae, mae_pbe)
""",
    ),
    'calc = mtzoo.load_model("model.pth").calculator(head="emt_d3bj")': dict(
        id="md-with-ase",
        setup=_setup_md_block,
        before=AGAU_ATOMS,
        subs=[(".run(5000)", ".run(20)")],
        checks="""
import numpy as np
assert calc.head == "emt_d3bj" and calc.nl_builds >= 1, (calc.head, calc.nl_builds)
assert np.isfinite(atoms.get_potential_energy()) and 0 < atoms.get_temperature() < 2000
""",
    ),
}

#: imported before every block: every submodule of mtzoo (as any user code may do)
IMPORT_EVERYTHING = """
import importlib, pkgutil
from pathlib import Path
import mtzoo
for _info in pkgutil.walk_packages(mtzoo.__path__, "mtzoo."):
    if not _info.name.endswith("__main__"):
        importlib.import_module(_info.name)
REPO = Path({repo!r})
"""


def _block_id(block: str) -> str:
    return next((v["id"] for k, v in BLOCKS.items() if k in block), block.strip().splitlines()[0][:40])


@pytest.mark.parametrize("block", readme_python_blocks(), ids=_block_id)
def test_readme_python_block_runs(block, tmp_path):
    spec = next((v for k, v in BLOCKS.items() if k in block), {})
    for old, new in spec.get("subs", []):
        assert old in block, f"substitution {old!r} no longer matches the README block:\n{block}"
        block = block.replace(old, new)
    if "setup" in spec:
        spec["setup"](tmp_path)
    script = "\n".join([IMPORT_EVERYTHING.format(repo=str(REPO)), spec.get("before", ""), block,
                        textwrap.dedent(spec.get("checks", "")), 'print("block ok")'])
    (tmp_path / "block.py").write_text(script)
    r = run_python(["block.py"], tmp_path)
    assert r.stdout.rstrip().endswith("block ok")


def test_every_readme_block_is_known():
    """Each entry of BLOCKS matches one README block (a README block without an entry runs as it is)."""
    blocks = readme_python_blocks()
    assert len(blocks) >= 3
    for key in BLOCKS:
        assert sum(key in b for b in blocks) == 1, f"README block with {key!r} missing or duplicated"


def test_readme_links_installation_page():
    assert "docs/installation.md" in README.read_text()
    assert (REPO / "docs" / "installation.md").is_file()


# ----------------------------------------------------------------------------- examples


def test_quickstart(tmp_path):
    """``examples/quickstart.py``: fine-tune a CCSD(T) head, evaluate it, run MD (20 steps here)."""
    r = run_python([str(EXAMPLES / "quickstart.py"), "--out", str(tmp_path / "qs"), "--md-steps", "20"], REPO)
    out = r.stdout
    assert (tmp_path / "qs" / "hcno-ccsdt.pth").is_file()
    mae_cc = number(r"energy MAE per atom: head 'ccsdt' {x} meV/atom", out)
    mae_pbe = number(r"head 'pbe' \(other level\) {x} meV/atom", out)
    # README and CHANGELOG: 11.08 meV/atom (11.37 before the block scaling of the ridge features, 2026-12-06) on the 47 held-out frames (ridge fit, deterministic)
    assert 5 < mae_cc < 15, out
    assert mae_pbe > 10 * mae_cc, out
    assert number(r"ALL\s+47\s+\S+ / {x}", out) == pytest.approx(mae_cc / 1000, rel=1e-3)
    assert "20 steps of 0.5 fs" in out and number(r"= {x} ns/day", out) > 0
    epot = [float(x) for x in re.search(r"Epot (\S+) -> (\S+) eV", out).groups()]
    assert all(math.isfinite(e) for e in epot) and abs(epot[1] - epot[0]) < 1.0, epot


def _md_rows(out: str) -> np.ndarray:
    rows = [line.split() for line in out.splitlines() if re.match(r"^\s+\d+\s+-?\d", line)]
    return np.array(rows, dtype=float)


def test_run_md_trains_a_demo_model(tmp_path):
    """``examples/md/run_md.py`` without --model: a 20-step Ag-Au model, 20 MD steps of 108 atoms."""
    r = run_python([str(EXAMPLES / "md" / "run_md.py"), "--train-steps", "20", "--steps", "20", "--print-every",
                    "10"], tmp_path)
    out = r.stdout
    assert "trained 20 steps in" in out, out
    assert "108 atoms, head 'default'" in out
    rows = _md_rows(out)
    assert rows[:, 0].tolist() == [0, 10, 20], out
    assert np.isfinite(rows).all()
    np.testing.assert_allclose(rows[:, 3], rows[:, 1] + rows[:, 2], atol=1e-4)  # Etot = Epot + Ekin (printed to 1e-4)
    assert (rows[:, 4] > 50).all() and (rows[:, 4] < 1000).all(), rows  # started at 300 K
    assert number(r"neighbour list: {x} builds", out) >= 1
    assert number(r"ms/step, {x} ns/day", out) > 0


def test_run_md_with_a_zoo_model_on_a_molecule(tmp_path):
    """``run_md.py --model hcno-mf-se-v1 --head pbe --molecule CH3CH2OH --timestep 0.5 --compress`` (10 steps)."""
    r = run_python([str(EXAMPLES / "md" / "run_md.py"), "--model", "hcno-mf-se-v1", "--head", "pbe", "--molecule",
                    "CH3CH2OH", "--timestep", "0.5", "--steps", "10", "--print-every", "5", "--compress"], tmp_path)
    out = r.stdout
    assert "9 atoms, head 'pbe'" in out, out
    rows = _md_rows(out)
    assert rows[:, 0].tolist() == [0, 5, 10] and np.isfinite(rows).all(), out
    assert abs(rows[-1, 1] - rows[0, 1]) < 1.0, rows  # eV: 5 fs of MD at 300 K


def _compare_systems(made: Path, shipped: Path, rtol: float = 0.0) -> int:
    """Every array of the systems under ``made`` equals the shipped one; returns how many were compared."""
    files = sorted(p.relative_to(made) for p in made.rglob("*") if p.suffix in (".npy", ".raw"))
    for rel in files:
        if rel.suffix == ".raw":
            assert (made / rel).read_text().split() == (shipped / rel).read_text().split(), rel
        else:
            np.testing.assert_allclose(np.load(made / rel), np.load(shipped / rel), rtol=rtol, atol=0, err_msg=str(rel))
    return len(files)


def test_make_agau_emt_regenerates_the_bundled_data(tmp_path):
    """``examples/data/make_agau_emt.py`` (seeded ASE EMT) writes the bundled Ag-Au data again."""
    r = run_python([str(DATA / "make_agau_emt.py"), "--out", str(tmp_path / "agau_emt")], tmp_path)
    assert "sel (+20%) [42, 41]" in r.stdout, r.stdout  # the sel of examples/agau_emt/input.json
    assert number(r"max \|dF\| = {x} eV/A", r.stdout) < 1e-6
    # exact on this machine; 1e-10 leaves room for another ASE/numpy's rounding
    assert _compare_systems(tmp_path / "agau_emt", DATA / "agau_emt", rtol=1e-10) == 5 * 7


def test_make_agau_d3_regenerates_the_bundled_data(tmp_path):
    """``examples/data/make_agau_d3.py`` (EMT + DFT-D3, the ``data`` extra's dftd3) relabels the same frames."""
    pytest.importorskip("dftd3.ase", reason="dftd3 not installed (pip install -e '.[data]')")
    run_python([str(DATA / "make_agau_d3.py"), "--out", str(tmp_path)], tmp_path)
    assert _compare_systems(tmp_path / "agau_d3bj", DATA / "agau_d3bj", rtol=1e-8) == 5 * 7
    assert _compare_systems(tmp_path / "agau_d3zero", DATA / "agau_d3zero", rtol=1e-8) == 2 * 7


def test_make_molecules_smoke(tmp_path):
    """``examples/data/make_molecules.py --smoke`` (xTB MD, PBE, polarizability, CCSD(T) on a few frames)."""
    pytest.importorskip("tblite.ase", reason="tblite not installed")
    pytest.importorskip("pyscf", reason="pyscf not installed")
    r = run_python([str(DATA / "make_molecules.py"), "--smoke", "--out", str(tmp_path)], tmp_path, timeout=600)
    assert "wrote" in r.stdout
    from mtzoo.data.readers import load_systems

    for level, key in (("xtb", "force"), ("dft", "dipole"), ("dft_polar", "polarizability"), ("ccsdt", "energy")):
        systems = load_systems([str(tmp_path / level)])
        assert systems and all(s.has_label(key) and np.isfinite(s.labels[key]).all() for s in systems), level


def test_make_peer_sets_assembles_the_bundled_sets(tmp_path):
    """``examples/data/make_peer_sets.py --assemble`` rebuilds the shipped peer sets from the shipped label cache.

    Labelling anew needs tblite and PySCF and takes hours (the labellers are those of
    make_molecules.py, run by :func:`test_make_molecules_smoke`).
    """
    for name in ("finetune", "accuracy"):
        (tmp_path / name).mkdir()
        (tmp_path / name / ".cache").symlink_to(DATA / "peers" / name / ".cache")
    r = run_python([str(DATA / "make_peer_sets.py"), "--sets", "finetune", "accuracy", "--assemble", "--out",
                    str(tmp_path)], tmp_path)
    counts = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert {k for c in counts for k in c} == {"finetune", "accuracy"}, r.stdout
    for name in ("finetune", "accuracy"):
        assert _compare_systems(tmp_path / name, DATA / "peers" / name) >= 8


def test_lammps_make_data(tmp_path):
    """``examples/lammps/make_data.py`` writes the shipped LAMMPS data file and the ML-IAP model of ``in.nve``.

    Running ``in.nve`` needs a LAMMPS built with ML-IAP Python support (``tests/test_lammps.py``).
    """
    work = tmp_path / "examples" / "lammps"
    work.mkdir(parents=True)
    shutil.copy(EXAMPLES / "lammps" / "make_data.py", work)  # it writes beside itself
    (tmp_path / "benchmarks").symlink_to(REPO / "benchmarks")  # it imports benchmarks/lammps_nve.py
    r = run_python([str(work / "make_data.py")], tmp_path)
    assert "(28 atoms)" in r.stdout and "pair_coeff * * H C N O" in r.stdout, r.stdout
    assert (work / "molecules.data").read_text() == (EXAMPLES / "lammps" / "molecules.data").read_text()
    import pickle

    with open(work / "pbe.mliap.pkl", "rb") as fh:
        mliap = pickle.load(fh)
    assert mliap.head == "pbe" and list(mliap.element_types) == ["H", "C", "N", "O"]


#: every script under examples/ -> the tests above that run it
EXAMPLE_TESTS = {
    "quickstart.py": [test_quickstart],
    "md/run_md.py": [test_run_md_trains_a_demo_model, test_run_md_with_a_zoo_model_on_a_molecule],
    "data/make_agau_emt.py": [test_make_agau_emt_regenerates_the_bundled_data],
    "data/make_agau_d3.py": [test_make_agau_d3_regenerates_the_bundled_data],
    "data/make_molecules.py": [test_make_molecules_smoke],
    "data/make_peer_sets.py": [test_make_peer_sets_assembles_the_bundled_sets],
    "lammps/make_data.py": [test_lammps_make_data],
    # tests/test_zoo_v2_data.py (split, label cache round trip, --assemble equals the shipped set, --smoke)
    "data/make_zoo_v2.py": ["test_zoo_v2_data.py"],
    # tests/test_simplify.py::test_example_runs_end_to_end (tiny settings: two iterations, EMT + D3 labels)
    "simplify/run.py": ["test_simplify.py"],
}


def test_every_example_script_is_tested_and_described():
    scripts = {str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.py")}
    assert scripts == set(EXAMPLE_TESTS), scripts ^ set(EXAMPLE_TESTS)
    guide = (EXAMPLES / "README.md").read_text()
    for script in scripts:
        assert f"examples/{script}" in guide, f"examples/README.md does not describe examples/{script}"
    for inp in EXAMPLES.rglob("*.json"):  # the inputs too (run by tests/test_cli.py and test_multitask_flow.py)
        assert str(inp.relative_to(REPO)) in guide, inp


# ----------------------------------------------------------------------------- version, citation


def test_version_comes_from_the_package_metadata(capsys):
    from importlib.metadata import version

    import mtzoo
    from mtzoo.cli.main import main

    assert mtzoo.__version__ == version("mtzoo") == PYPROJECT["project"]["version"]
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"mtzoo {mtzoo.__version__}"


def test_citation_cff():
    yaml = pytest.importorskip("yaml")
    import mtzoo

    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "version", "date-released", "license"):
        assert cff.get(key), key
    assert str(cff["version"]) == mtzoo.__version__
    assert isinstance(cff["date-released"], datetime.date)
    assert cff["license"] == PYPROJECT["project"]["license"]["text"]
    assert all(a.get("name") or a.get("family-names") for a in cff["authors"])
    text = (REPO / "CITATION.cff").read_text().lower()
    assert not any(w in text for w in ("example.com", "todo", "xxx", "placeholder")), "placeholder in CITATION.cff"
    for ref in cff["references"]:
        assert ref.get("type") and ref.get("title") and ref.get("authors") and ref.get("year"), ref
    titles = " | ".join(r["title"] for r in cff["references"])
    # what the model cards ask users to cite with mtzoo: DeePMD-kit and se_e2_a, e3nn, NequIP, MACE, multi-task
    for needle in ("DeePMD-kit", "Symmetry Preserving", "e3nn", "E(3)-equivariant", "MACE", "multi-task"):
        assert needle in titles, needle


# ----------------------------------------------------------------------------- CLI help


def _subparsers(parser: argparse.ArgumentParser, prefix: tuple = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _subparsers(sub, (*prefix, name))


def test_every_cli_option_has_help_that_states_its_default():
    from mtzoo.cli.main import build_parser

    parser = build_parser()
    bad = []
    for words, sub in [((), parser), *_subparsers(parser)]:
        for a in sub._actions:
            if isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            name = " ".join(("mtzoo", *words, a.option_strings[-1] if a.option_strings else a.dest))
            text = (a.help or "").lower()
            if not text.strip() or a.help == argparse.SUPPRESS:
                bad.append(f"{name}: no help")
            elif a.option_strings and a.required and "required" not in text:
                bad.append(f"{name}: help does not say it is required")
            elif a.option_strings and not a.required and "default" not in text:
                bad.append(f"{name}: help does not state the default ({a.default!r})")
    assert not bad, "\n".join(bad)


def test_every_subcommand_help_prints(capsys):
    from mtzoo.cli.main import build_parser, main

    commands = [words for words, _ in _subparsers(build_parser())]
    assert {("train",), ("freeze",), ("compress",), ("test",), ("finetune",), ("zoo", "show")} <= set(commands)
    for words in commands:
        with pytest.raises(SystemExit) as exc:
            main([*words, "--help"])
        assert exc.value.code == 0
        assert f"usage: mtzoo {' '.join(words)}" in capsys.readouterr().out


# ----------------------------------------------------------------------------- docstrings, installation page


def test_model_from_deepmd_docstring_names_every_supported_type():
    from mtzoo.zoo import deepmd_import

    doc = deepmd_import.model_from_deepmd.__doc__
    for name in (*deepmd_import.SUPPORTED_DESCRIPTORS, *deepmd_import.SUPPORTED_FITTINGS, "dpa1"):
        assert name in doc, name


def test_installation_page_lists_what_the_config_rejects():
    from mtzoo.config.compat import BEGIN, END, markdown_table

    page = (REPO / "docs" / "installation.md").read_text()
    block = page.split(BEGIN)[1].split(END)[0].strip()
    assert block == markdown_table(), "run: python -m mtzoo.config.compat --write docs/installation.md"


@pytest.mark.parametrize("where,value", [
    ("model.model_dict", {}), ("model.shared_dict", {}), ("model.type_embedding", {"neuron": [8]}),
    ("model.spin", {"use_spin": [True, False]}), ("model.use_srtab", "table.txt"),
    ("model.pair_exclude_types", [[0, 1]]), ("training.zero_stage", 1), ("model.descriptor.type", "dpa2"),
])
def test_keys_named_on_the_installation_page_are_rejected(where, value):
    from mtzoo.config import ConfigError, parse_input

    cfg = json.loads((EXAMPLES / "agau_emt" / "input.json").read_text())
    node, *path = cfg, *where.split(".")
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=re.escape(where)):
        parse_input(cfg)
    assert (value if path[-1] == "type" else where.split(".")[-1]) in (REPO / "docs" / "installation.md").read_text()
