"""The package version, read once from the installed distribution (no other mtzoo import: every
layer may use it)."""

from __future__ import annotations


def _version() -> str:
    """The installed distribution's version (``pyproject.toml``'s ``version``, the one source)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mtzoo")
    except PackageNotFoundError:  # a source tree on sys.path without `pip install`: read pyproject.toml
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"


__version__: str = _version()
