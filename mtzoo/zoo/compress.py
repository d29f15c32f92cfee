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

from mtzoo.model import Model

#: Descriptors that can be tabulated (and hybrids of them: their members that are compressible).
COMPRESSIBLE = ("se_e2_a", "se_e2_r")


def compress_model(model: Model, rmin: float = 0.5, tol: float = 1e-10, max_bins: int = 20000) -> dict:
    """Tabulate the embedding nets of ``model``'s descriptor in place.

    Parameters
    ----------
    model : Model
        A trained model whose descriptor is one of :data:`COMPRESSIBLE`, or a hybrid with such
        members (those are compressed; the others stay exact).
    rmin : float
        Shortest neighbour distance (Angstrom) covered by the tables; closer pairs are evaluated
        by the nets themselves (exact), so this only trades table size against speed.
    tol : float
        Largest deviation of a table from its net per embedding channel (checked at seven
        interior points of every bin).
    max_bins : int
        Limit on bins per net.

    Returns
    -------
    dict
        ``descriptor``, ``compressed`` (the descriptors tabulated), ``bins`` per net,
        ``max_deviation``, ``rmin``, ``tol``.
    """
    desc = model.descriptor
    name = getattr(desc, "type_name", type(desc).__name__)
    members = list(desc.descrpt_list) if name == "hybrid" else [desc]
    todo = [d for d in members if getattr(d, "type_name", "") in COMPRESSIBLE]
    if not todo:
        kinds = [getattr(d, "type_name", type(d).__name__) for d in members]
        raise ValueError(f"compression is implemented for {list(COMPRESSIBLE)} descriptors (and hybrids holding "
                         f"them); this model's is '{name}'" + (f" with members {kinds}" if name == "hybrid" else ""))
    infos = [d.enable_compression(rmin=rmin, tol=tol, max_bins=max_bins) for d in todo]
    return {"descriptor": name, "compressed": [d.type_name for d in todo],
            "bins": [b for i in infos for b in i["bins"]], "max_deviation": max(i["max_deviation"] for i in infos),
            "rmin": rmin, "tol": tol}


def compress(model_path: str | Path, output: str | Path, rmin: float = 0.5, tol: float = 1e-10,
             max_bins: int = 20000) -> dict:
    """Compress a model file (or zoo name) into ``output``; returns :func:`compress_model`'s dict plus ``output``."""
    from mtzoo.zoo.finetune import resolve_model_path
    from mtzoo.training.checkpoint import safe_load
    from mtzoo.zoo.frozen import load_model, save_model

    path = resolve_model_path(model_path, what="model")  # zoo name (checksum verified) or file
    model = load_model(path)
    info = compress_model(model, rmin=rmin, tol=tol, max_bins=max_bins)
    state = safe_load(path, "mtzoo model")
    meta = dict(state.get("metadata") or {}) if isinstance(state, dict) else {}
    meta.pop("versions", None)
    save_model(model, output, metadata={**meta, "compressed_from": str(model_path), "compress": info})
    return {**info, "output": str(output)}
