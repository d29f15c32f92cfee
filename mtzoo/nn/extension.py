"""The optional compiled extension: per-edge kernels of se_e2_a (exact and compressed), tanh and the neighbour list.

Sources: ``tabulate_ext.cpp`` (:class:`mtzoo.nn.tabulate.FusedSeA`), ``se_tail_ext.cpp``
(:class:`mtzoo.nn.tabulate.SeATail`), ``contract_ext.cpp`` (:mod:`mtzoo.nn.contract`: the exact
se_e2_a's edge contraction and its derivatives), ``activation_ext.cpp``
(:func:`mtzoo.nn.common.fast_tanh`), ``fitting_ext.cpp`` (:meth:`mtzoo.nn.mlp.FittingNet.value_and_input_grad`
of tanh nets in one call) with ``gemm_ext.cpp`` (its matrix products on AVX-512 CPUs), ``neighbors_ext.cpp`` (:func:`mtzoo.data.graph.neighbor_list`,
and the edge vectors and forces of :meth:`mtzoo.model.Model.forward`), the shared header
``ext_common.h`` and ``ext_module.cpp`` (bindings), built together on
first use by ``torch.utils.cpp_extension`` (40-80 s on 2 cores, once; torch caches the library under
``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``, and rebuilds it when a source
changes).  The hot loops are compiled for AVX-512, AVX2+FMA and baseline x86-64 and the best one
is picked when the library loads, so a cache shared between machines stays valid.  On CPUs with
AVX-512 the table kernels use register-blocked versions (``T`` and ``dE/dT`` of a centre kept in
registers over its edges), the fitting nets' inference pass its own packed matrix product
(``gemm_ext.cpp``; MKL's otherwise) and tanh runs on 8 lanes (``simd_tanh.h``);
``MTZOO_NO_AVX512=1`` selects the portable loops, MKL and the 4-lane tanh instead; likewise ``MTZOO_NO_AVX2=1`` for the
AVX2 kernel of the per-atom tail's backward (tests run both).

Without a C++ compiler, after a failed build (one warning), or with ``MTZOO_EXTENSIONS=0``,
:func:`compiled` returns None and every caller runs the same arithmetic with torch ops (and the
neighbour list with vesin); both paths are tested against each other.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from pathlib import Path

NAME = "mtzoo_ext"
SOURCES = ("ext_module.cpp", "tabulate_ext.cpp", "se_tail_ext.cpp", "contract_ext.cpp", "activation_ext.cpp",
           "fitting_ext.cpp", "gemm_ext.cpp", "neighbors_ext.cpp")
HEADERS = ("ext_common.h", "gemm_ext.h", "simd_tanh.h")  # included by the sources: their changes also mark the build stale
#: ``-mprefer-vector-width=512`` (x86-64 only: other targets' compilers refuse it): the AVX-512
#: clones use 512-bit vectors (measured 1.2x on the table kernels over GCC's default of 256 bits
#: for AVX-512 targets).  The sources guard their x86 code (``ext_common.h``), so elsewhere the
#: portable loops build for the compiler's default target.
X86_64 = platform.machine().lower() in ("x86_64", "amd64")
CFLAGS = ["-O3", "-fopenmp-simd"] + (["-mprefer-vector-width=512"] if X86_64 else [])

_EXT: list = []  # [module or None] once tried


def compiled():
    """The compiled extension module, or None (no compiler, failed build, ``MTZOO_EXTENSIONS=0``)."""
    if os.environ.get("MTZOO_EXTENSIONS", "1") == "0":
        return None
    if not _EXT:
        try:
            from torch.utils.cpp_extension import get_default_build_root, load

            here = Path(__file__).parent
            sources = [here / s for s in SOURCES]
            root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())
            built = [so.stat().st_mtime for so in root.glob(f"**/{NAME}/{NAME}*.so")]
            if not built or max(built) < max((here / s).stat().st_mtime for s in SOURCES + HEADERS):  # none yet, or stale
                print("mtzoo: compiling the C++ kernels (first use only, up to a minute) ...", file=sys.stderr, flush=True)
            _EXT.append(load(name=NAME, sources=[str(s) for s in sources], extra_cflags=CFLAGS, verbose=False))
        except Exception as exc:  # noqa: BLE001 - any build failure falls back to torch ops
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            warnings.warn(f"mtzoo: compiled kernels unavailable ({exc.__class__.__name__}: {first}); "
                          "using torch ops and vesin", stacklevel=2)
            _EXT.append(None)
    return _EXT[0]
