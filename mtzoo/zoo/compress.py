"""Model compression: tabulate the embedding nets of a trained model (DeePMD-kit's ``dp compress``)
for se_e2_a and se_e2_r descriptors and those members of a hybrid.

A compressed model gives the same energies, forces and virials as the model it came from to
about the table tolerance (``tol`` bounds each embedding channel; measured on DeePMD's water
example: 1.5e-11 eV total energy and 1.4e-11 eV/A forces at the default ``tol = 1e-10``) and
is faster because no embedding net runs per edge (:mod:`mtzoo.nn.tabulate`).  The file keeps the
weights and a ``compress`` entry in the descriptor config; the tables are rebuilt from the
weights when the model is loaded (a fraction of a second), so the file does not grow.

Compressed descriptors are for inference: training or fine-tuning starts from the
uncompressed file (or call ``model.descriptor.disable_compression()``).
"""

from __future__ import annotations

from pathlib import Path

from mtzoo.model import COMPRESSIBLE, compress_model  # noqa: F401  (re-exported: the model-level step)

def compress(model_path: str | Path, output: str | Path, rmin: float = 0.5, tol: float = 1e-10,
             max_bins: int = 20000) -> dict:
    """Compress a model file (or zoo name) into ``output``; returns :func:`compress_model`'s dict plus ``output``."""
    from mtzoo.training.checkpoint import read_model_file
    from mtzoo.zoo.frozen import model_from_state, save_model
    from mtzoo.zoo.registry import resolve_model_path

    path = resolve_model_path(model_path, what="model")  # zoo name (checksum verified) or file
    state = read_model_file(path, accept_checkpoint=True)
    model = model_from_state(state)
    info = compress_model(model, rmin=rmin, tol=tol, max_bins=max_bins)
    meta = dict(state.get("metadata") or {})
    meta.pop("versions", None)
    save_model(model, output, metadata={**meta, "compressed_from": str(model_path), "compress": info})
    return {**info, "output": str(output)}
