"""Sphinx configuration of mtzoo's reference site.

Build (what ``tests/test_docs_site.py`` runs, with warnings as errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The pages are the Markdown files of ``docs/`` (MyST), the API reference from the numpy-style
docstrings (``api.rst``: autodoc + napoleon) and the command-line reference generated from
``mtzoo.cli.main.build_parser`` (``cli.rst``, the local extension ``_ext/mtzoo_cli.py``).  No
network is used at build time (no intersphinx); notebooks are not executed.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # a source tree without `pip install -e .` still builds

import mtzoo  # noqa: E402

project = "mtzoo"
author = "mtzoo developers"
copyright = "mtzoo developers"
version = release = mtzoo.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    "mtzoo_cli",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext"]

# numpy-style docstrings; "Shapes" is the house section for tensor shapes (HOUSE_STYLE 15)
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# "Attributes" as :ivar: fields: no second entry beside the attributes autodoc finds (NamedTuple fields)
napoleon_use_ivar = True
napoleon_custom_sections = [("Shapes", "notes_style")]

autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
# an override without a docstring of its own shows none (not torch.nn.Module.forward's text)
autodoc_inherit_docstrings = False

# nitpicky cross-references stay off: with no intersphinx (no network at build time) every torch,
# numpy, pathlib and ase type in a signature is an unresolved reference, and many docstrings of
# mtzoo/ put prose in their numpy type fields ("str, optional, see ..."); list them with
# `python -m sphinx -n -b html docs /tmp/site` before turning it on.
nitpicky = False

myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# option names such as --restart stay two hyphens (no en dash) in the CLI reference and the guides
smartquotes = False

html_theme = "alabaster"
html_title = f"mtzoo {release}"
html_static_path: list[str] = []
