"""The package's layering: the import contracts of ``.importlinter`` (docs/architecture.md, "Layers").

``lint-imports`` (import-linter, in the ``test`` extra) reads every module's imports, including
those inside functions, and fails on an import from a lower layer to a higher one or on a cycle
between the modules of a package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    here = Path(sys.executable).parent / "lint-imports"
    exe = str(here) if here.exists() else shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    return exe


def test_import_contracts_hold():
    proc = subprocess.run([_lint_imports(), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "2 kept, 0 broken" in out, out[-2000:]


def test_a_violation_is_caught(tmp_path):
    """The checker is live: an upward import added to a copy of the package breaks the layers contract."""
    copy = tmp_path / "src"
    shutil.copytree(REPO / "mtzoo", copy / "mtzoo", ignore=shutil.ignore_patterns("__pycache__", "*.pth", "*.so"))
    shutil.copy(REPO / ".importlinter", copy / ".importlinter")
    keys = copy / "mtzoo" / "keys.py"
    keys.write_text(keys.read_text() + "\n\ndef _upward():\n    from mtzoo.model import Model  # noqa: F401\n")
    proc = subprocess.run([_lint_imports(), "--no-cache"], cwd=copy, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert "mtzoo.keys is not allowed to import mtzoo.model" in out, out[-2000:]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
@pytest.mark.parametrize(("value", "applied"), [(None, "False"), ("0", "False"), ("1", "True")])
def test_allocator_settings_are_opt_in(value, applied):
    """Process-wide malloc settings only when asked (``MTZOO_MALLOC_TUNING=1``; the ``mtzoo`` command
    sets it for its own process): importing mtzoo into a user's script leaves the allocator alone."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "MTZOO_MALLOC_TUNING"}
    if value is not None:
        env["MTZOO_MALLOC_TUNING"] = value
    code = "from mtzoo.nn.common import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == applied


def test_the_command_opts_in_to_the_allocator_settings(monkeypatch):
    import os

    from mtzoo.cli import main as cli

    monkeypatch.delenv("MTZOO_MALLOC_TUNING", raising=False)
    seen = {}
    monkeypatch.setattr(cli, "build_parser", lambda: _Parser(seen))
    assert cli.main([]) == 0
    assert seen["env"] == "1"
    os.environ.pop("MTZOO_MALLOC_TUNING", None)


class _Parser:
    """Stands in for the argument parser: a command that records the variable it ran under."""

    def __init__(self, seen: dict) -> None:
        self.seen = seen

    def parse_args(self, argv):
        import argparse
        import os

        return argparse.Namespace(threads=None, debug=False,
                                  func=lambda args: self.seen.update(env=os.environ.get("MTZOO_MALLOC_TUNING")))


def test_descriptor_names_have_one_source():
    """Every implemented descriptor has a schema and every schema an implementation; DeePMD-kit's
    aliases are declared once (with the schema) and resolve to the same class on both sides."""
    from mtzoo.config import DESCRIPTORS
    from mtzoo.descriptors.base import REGISTRY, canonical_name

    assert set(REGISTRY) == set(DESCRIPTORS.available)
    for alias, name in [("se_a", "se_e2_a"), ("se_r", "se_e2_r"), ("se_at", "se_e3"), ("se_t", "se_e3"),
                        ("se_a_3be", "se_e3"), ("dpa1", "se_atten")]:
        assert DESCRIPTORS.canonical(alias) == name
        assert canonical_name(alias) == name


#: constructor defaults that differ from the schema's on purpose: the schema's value is resolved
#: before the constructor sees it (null -> from the heads, "auto" -> from the data, null -> the
#: descriptor's precision, [] -> no per-type energies, 1.0 -> one scale per type)
RESOLVED_BY_THE_SCHEMA = {("e3nn_mace", "scalar_last_layer"), ("se_atten", "sel"), ("se_atten", "ln_eps"),
                          ("ener", "atom_ener"), ("polar", "scale")}


def _schema_defaults(cls) -> dict:
    import dataclasses

    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def test_constructor_defaults_agree_with_the_schema():
    """A model built in Python with a class's defaults is the model an input file with the key left
    out gives: the defaults of the descriptor and head constructors equal the input schema's."""
    import inspect

    from mtzoo.config import DESCRIPTORS, FITTINGS
    from mtzoo.descriptors.base import REGISTRY
    from mtzoo.heads import HEADS

    drift = []
    for registry, impls in ((DESCRIPTORS, REGISTRY), (FITTINGS, HEADS)):
        for name, impl in impls.items():
            schema = _schema_defaults(registry.classes[name])
            for key, par in inspect.signature(impl.__init__).parameters.items():
                if par.default is inspect.Parameter.empty or key not in schema or (name, key) in RESOLVED_BY_THE_SCHEMA:
                    continue
                value = list(par.default) if isinstance(par.default, tuple) else par.default
                if value != schema[key]:
                    drift.append(f"{name}.{key}: constructor {par.default!r}, schema {schema[key]!r}")
    assert not drift, drift
