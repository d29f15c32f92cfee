r"""Physics checks for any mtzoo model: derivatives, symmetry, cutoff smoothness, batching, precision.

Descriptor-agnostic test helpers in the spirit of NequIP's ``utils/unittests`` and e3nn's
``assert_equivariant``, shipped with the package so that a descriptor or head written outside
the repository can be checked the same way as mtzoo's own (its test suite runs every check over
the descriptor and head registries, ``tests/test_physics.py``)::

    from mtzoo.testing import check_forces_fd, check_invariance
    check_forces_fd(model, atoms, "default")       # raises AssertionError with the numbers
    check_invariance(model, atoms, "default", rtol=1e-10)

Every check takes a built :class:`mtzoo.model.Model` (float64 unless said otherwise), a head
name and geometries given as ``ase.Atoms``, :class:`~mtzoo.data.system.System` (frame 0), a
``(system, iframe)`` tuple or a :class:`Frame`; nothing is read from disk.  Neighbour graphs are
rebuilt for every geometry (neighbours change when atoms move).  A failed check raises
``AssertionError`` naming the quantity, the worst component and both values; a passed one
returns the largest relative error it saw.

Conventions checked (:mod:`mtzoo.keys`, :mod:`mtzoo.model`):

* forces :math:`F = -\partial E/\partial x` (:func:`check_forces_fd`);
* virial :math:`W_{ab} = -\partial E/\partial \varepsilon_{ab}` for ``pos' = pos (I + eps)``,
  ``cell' = cell (I + eps)``; stress :math:`-W/V`; for a finite frame
  :math:`W = \sum_i x_i \otimes F_i` (:func:`check_virial_fd`);
* :math:`E(x R^T + t) = E(x)` with forces and virial rotating along, permutations, periodic
  images (:func:`check_invariance`); :math:`\mu(x R^T) = R \mu`, :math:`\alpha(x R^T) = R \alpha R^T`
  (:func:`check_tensor_equivariance`);
* :math:`C^1` at the cutoffs and no effect beyond ``rcut`` (:func:`check_cutoff_smoothness`,
  :func:`check_isolated_atom`);
* batches equal single frames (:func:`check_batch_independence`); float32 close to float64
  (:func:`check_dtype_float32`).
"""

from mtzoo.testing._checks import (check_batch_independence, check_cutoff_smoothness, check_dtype_float32,
                                   check_forces_fd, check_invariance, check_isolated_atom, check_virial_fd)
from mtzoo.testing._frames import (Frame, as_frame, assert_close, energies, energy, equivalent_frames, evaluate,
                                   float32_copy, frame_graph, random_rotation, relative_error, strained)
from mtzoo.testing._tensor import check_tensor_equivariance

__all__ = ["Frame", "as_frame", "assert_close", "check_batch_independence", "check_cutoff_smoothness",
           "check_dtype_float32", "check_forces_fd", "check_invariance", "check_isolated_atom",
           "check_tensor_equivariance", "check_virial_fd", "energies", "energy", "equivalent_frames", "evaluate",
           "float32_copy", "frame_graph", "random_rotation", "relative_error", "strained"]
