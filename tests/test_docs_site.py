"""The reference site (docs/): it builds with Sphinx with warnings as errors, and it is complete.

* ``python -m sphinx -W --keep-going -j 1 -b html docs OUT`` exits 0: every docstring autodoc
  imports is valid reST/numpy style, every cross-reference between the Markdown pages resolves,
  every page is in a toctree.  Run in a subprocess (Sphinx's logging and warning filters stay out
  of this interpreter); about 15 s on one core.
* docs/api.rst documents every public module of ``mtzoo`` (a new module fails
  :func:`test_api_reference_lists_every_module` until it is added) and every name of
  ``mtzoo.__all__``.
* The generated command-line reference holds every command and every option of
  :func:`mtzoo.cli.main.build_parser`.

Skipped, with the reason, when Sphinx or MyST-Parser is not installed (both are in the ``test``
extra, so CI builds the site).
"""

from __future__ import annotations

import argparse
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

DOCS = REPO / "docs"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
#: modules the API page need not document: the package entry point and its CLI wrapper
NOT_IN_API = {"mtzoo.__main__"}


def _missing_builder() -> str | None:
    for module in ("sphinx", "myst_parser"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} not installed (pip install -e '.[test]' installs it)"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The HTML site built from docs/ with warnings as errors; the failure message holds the warnings."""
    reason = _missing_builder()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-j", "1", "-q", "-b", "html",
           "-d", str(out / "doctrees"), str(DOCS), str(out / "html")]
    r = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (f"the docs build failed (exit {r.returncode}); its warnings:\n{r.stderr[-6000:]}"
                               f"\n--- stdout\n{r.stdout[-2000:]}")
    return out / "html"


def _text(page: Path) -> str:
    """The text of an HTML page, tags removed and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_site_builds_without_warnings(site: Path):
    for page in ("index", "api", "cli", "choosing-a-descriptor", "performance", "descriptors", "installation"):
        assert (site / f"{page}.html").is_file(), page
    # every Markdown page of docs/ is part of the site
    for md in DOCS.glob("*.md"):
        assert (site / f"{md.stem}.html").is_file(), f"{md.name} is not built"


def _public_modules() -> list[str]:
    names = []
    for path in sorted((REPO / "mtzoo").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts[1:]):
            continue
        names.append(".".join(parts))
    return names


def test_api_reference_lists_every_module():
    api = (DOCS / "api.rst").read_text()
    documented = set(re.findall(r"^\.\. automodule:: (\S+)", api, flags=re.M))
    # subpackages whose __init__ is empty need no entry of their own
    missing = [m for m in _public_modules()
               if m not in documented and m not in NOT_IN_API
               and not ((REPO / Path(*m.split("."))).is_dir()
                        and not (REPO / Path(*m.split(".")) / "__init__.py").read_text().strip())]
    assert not missing, f"docs/api.rst has no automodule for: {missing}"
    import mtzoo

    missing = [n for n in mtzoo.__all__ if f"``mtzoo.{n}``" not in api]
    assert not missing, f"docs/api.rst's top-level table lacks: {missing}"


def test_api_page_documents_the_top_level_api(site: Path):
    import mtzoo

    text = (site / "api.html").read_text()
    for name in mtzoo.__all__:
        obj = getattr(mtzoo, name)
        anchor = f'id="{obj.__module__}.{obj.__qualname__}"'
        assert anchor in text, f"mtzoo.{name} ({obj.__module__}.{obj.__qualname__}) is not documented"


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_cli_reference_is_generated_from_the_parser(site: Path):
    from mtzoo.cli.main import build_parser

    text = _text(site / "cli.html")
    parsers = list(_parsers(build_parser()))
    assert len(parsers) > 8
    for p in parsers:
        assert p.prog in text, p.prog
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            for opt in action.option_strings:
                assert opt in text, f"{p.prog} {opt}"
            if action.help and "%(default)" not in action.help:
                assert " ".join(action.help.split()) in " ".join(text.split()), f"{p.prog} {action.dest}"
    assert "–" not in text  # option names keep their two hyphens (no smart dashes)
