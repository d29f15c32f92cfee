"""The documented top-level API works whatever was imported first.

``mtzoo.train`` and ``mtzoo.evaluate`` are functions; before 2026-12-04 they shared their names
with the subpackage ``mtzoo.train`` and the module ``mtzoo.evaluate``, so importing either (e.g.
through ``mtzoo.calculator``) replaced the function by a module. The subpackage is now
``mtzoo.training`` and the module ``mtzoo.evaluation``.
"""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import importlib, inspect, pkgutil, types
import mtzoo
for info in pkgutil.walk_packages(mtzoo.__path__, "mtzoo."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)  # every submodule first
bad = [n for n in mtzoo.__all__ if isinstance(getattr(mtzoo, n), types.ModuleType)
       or not callable(getattr(mtzoo, n))]
assert not bad, f"not callable after importing every submodule: {bad}"
print("ok", len(mtzoo.__all__))
"""


def test_every_exported_name_is_callable_after_importing_every_submodule():
    r = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("ok")


def test_no_submodule_shadows_an_exported_name():
    import pkgutil

    import mtzoo

    submodules = {info.name.split(".")[1] for info in pkgutil.iter_modules(mtzoo.__path__, "mtzoo.")}
    assert not submodules & set(mtzoo.__all__), submodules & set(mtzoo.__all__)
