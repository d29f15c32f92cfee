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
AVX2 kernel of the per-atom tail's backward (tests run both).  If that build fails (a compiler
without the vector intrinsics), a second one with the portable loops alone is tried (:data:`BUILDS`).

The kernels inside the model's forward and backward are **registered torch operators**
(``torch.ops.mtzoo.*``, declared with their schemas in ``ext_module.cpp``, CPU kernels there, and
the fake (meta) kernels below, which give each output's shape and dtype from the inputs'), so
``torch.compile`` and ``torch.export`` trace through them without graph breaks; :func:`ops` returns
them once the library is loaded.  The helpers used outside the model (the neighbour list on numpy
arrays, weight packing, CPU feature probes) stay plain functions of the module :func:`compiled` returns.

Without a C++ compiler, after a failed build (one warning), or with ``MTZOO_EXTENSIONS=0``,
:func:`compiled` and :func:`ops` return None and every caller runs the same arithmetic with torch
ops (and the neighbour list with vesin); both paths are tested against each other.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import warnings
from pathlib import Path

import torch

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

#: The builds tried in order: the fast kernels (x86 vector paths where the compiler has them), then,
#: if that build fails, the portable loops alone (``-DMTZOO_PORTABLE``: no clones, no AVX-512/AVX2
#: kernels, no libmvec tanh), under their own name so that a later fixed toolchain still gets both.
BUILDS = ((NAME, CFLAGS), (NAME + "_portable", ["-O3", "-DMTZOO_PORTABLE"]))

_EXT: list = []  # [module or None] once tried


def _build(name: str, cflags: list[str]):
    from torch.utils.cpp_extension import get_default_build_root, load

    here = Path(__file__).parent
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())
    built = [so.stat().st_mtime for so in root.glob(f"**/{name}/{name}*.so")]
    if not built or max(built) < max((here / s).stat().st_mtime for s in SOURCES + HEADERS):  # none yet, or stale
        print("mtzoo: compiling the C++ kernels (first use only, up to a minute) ...", file=sys.stderr, flush=True)
    return load(name=name, sources=[str(here / s) for s in SOURCES], extra_cflags=cflags, verbose=False)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0][:200] if text else ''}"


def compiled():
    """The compiled extension module, or None (no compiler, failed builds, ``MTZOO_EXTENSIONS=0``)."""
    if os.environ.get("MTZOO_EXTENSIONS", "1") == "0":
        return None
    if not _EXT:
        failed = []
        for name, cflags in BUILDS:
            try:
                module = _build(name, cflags)
            except Exception as exc:  # noqa: BLE001 - any build failure: the next build, at last torch ops
                failed.append(_first_line(exc))
                continue
            if failed:
                warnings.warn(f"mtzoo: the fast kernels failed to build ({failed[0]}); using the portable loops",
                              stacklevel=2)
            _register_fakes()
            _EXT.append(module)
            break
        else:
            warnings.warn(f"mtzoo: compiled kernels unavailable ({failed[-1]}); using torch ops and vesin", stacklevel=2)
            _EXT.append(None)
    return _EXT[0]


def ops():
    """``torch.ops.mtzoo`` (the registered kernels) when the extension is built, else None."""
    return None if compiled() is None else torch.ops.mtzoo


# The extension's CPU-feature probes, asked at every call (``MTZOO_NO_MVEC`` / ``MTZOO_NO_AVX512`` set
# later in the process take effect) and read by torch.compile as constants of the traced graph.
@torch.compiler.assume_constant_result
def tanh_vectorised() -> bool:
    """Whether the extension's vectorised tanh runs here (``fast_tanh_vectorised``)."""
    ext = compiled()
    return bool(ext is not None and ext.fast_tanh_vectorised())


@torch.compiler.assume_constant_result
def gemm_packed() -> bool:
    """Whether the packed AVX-512 matrix product of the fitting nets runs here (``gemm_packed_available``)."""
    ext = compiled()
    return bool(ext is not None and ext.gemm_packed_available())


def _register_fakes() -> None:
    """Fake kernels of the registered operators: output shapes and dtypes from the inputs, no data
    (what torch.compile, torch.export and ``torch.library.opcheck`` run on fake tensors)."""
    fake = torch.library.register_fake

    @fake("mtzoo::tabulate_forward")
    def _tabulate_forward(vec, edge_index, atom_type, scale, shift, slot, knots, knot_start, bin_offset, coef, rs, rc,
                          prot):
        n_edges, n_atoms, nt = vec.shape[0], atom_type.shape[0], math.isqrt(slot.numel())
        return [vec.new_empty(n_atoms, 4, coef.shape[1]), vec.new_empty(n_edges, 4), vec.new_empty(n_edges),
                edge_index.new_empty(n_edges), edge_index.new_empty(n_edges, dtype=torch.bool),
                vec.new_empty(n_atoms, nt)]

    @fake("mtzoo::tabulate_backward")
    def _tabulate_backward(gT, vec, *rest):
        return vec.new_empty(vec.shape[0], 3)

    @fake("mtzoo::se_a_tail_forward")
    def _se_a_tail_forward(T, pad, rows, atom_type, inv_nnei, m2, folded=False):
        n_atoms, m = T.shape[0], T.shape[2]
        return [T.new_empty(n_atoms, 4, m), T.new_empty(n_atoms, m * m2 - (m2 * (m2 - 1) // 2 if folded else 0))]

    @fake("mtzoo::se_a_tail_backward")
    def _se_a_tail_backward(X, gD, gX, inv_nnei, m2, folded=False):
        return X.new_empty(X.shape)

    @fake("mtzoo::edge_contract")
    def _edge_contract(R, G, row, dst, n_atoms):
        return R.new_empty(n_atoms, 4, G[0].shape[1])

    @fake("mtzoo::edge_contract_dr")
    def _edge_contract_dr(T, G, row, dst):
        return T.new_empty(row.shape[0], 4)

    @fake("mtzoo::edge_contract_dg")
    def _edge_contract_dg(T, R, row, dst, n_rows):
        return [T.new_empty(n, T.shape[2]) for n in n_rows]

    @fake("mtzoo::tanh")
    def _tanh(x):
        return torch.empty_like(x)

    @fake("mtzoo::tanh_")
    def _tanh_(x):
        return None

    @fake("mtzoo::mlp_value_and_grad")
    def _mlp_value_and_grad(x, weights, biases, idts, skips, y_out, g_out, packed):
        return None

    @fake("mtzoo::edge_vectors")
    def _edge_vectors(pos, edge_index, shift, cell, batch):
        return pos.new_empty(edge_index.shape[1], 3)

    @fake("mtzoo::edge_forces")
    def _edge_forces(g, edge_index, n_atoms):
        return g.new_empty(n_atoms, 3)
