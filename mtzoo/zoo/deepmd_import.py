"""Build mtzoo models from DeePMD-kit models: serialized dicts, ``.dp`` (HDF5) and ``.yaml`` files.

DeePMD-kit's backend-independent form is the dict returned by ``serialize()`` of its
``deepmd.dpmodel`` objects; ``dp convert-backend model.pth model.dp`` (or ``.yaml``) writes the
same dict to a file, wrapped as ``{"model": ..., "software": ..., "version": ...}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mtzoo.model import Model, build_model

SUPPORTED_DESCRIPTORS = ("se_e2_a", "se_e2_r", "se_e3", "se_atten", "se_atten_v2", "hybrid")
#: DeePMD-kit's serialized ``type`` of each descriptor -> mtzoo registry name
_DESCRIPTOR_NAMES = {"se_e2_a": "se_e2_a", "se_a": "se_e2_a", "se_e2_r": "se_e2_r", "se_r": "se_e2_r",
                     "se_e3": "se_e3", "se_at": "se_e3", "se_t": "se_e3", "se_a_3be": "se_e3",
                     "dpa1": "se_atten", "se_atten": "se_atten", "se_atten_v2": "se_atten_v2"}
#: keys of DeePMD's serialized dpa1 / se_atten_v2 dicts passed on to mtzoo's se_atten constructor
_ATTEN_KEYS = ("sel", "rcut", "rcut_smth", "neuron", "axis_neuron", "tebd_dim", "resnet_dt", "type_one_side", "attn",
               "attn_layer", "attn_dotr", "env_protection", "set_davg_zero", "activation_function", "precision",
               "scaling_factor", "normalize", "temperature", "trainable_ln", "ln_eps", "concat_output_tebd",
               "use_tebd_bias")
SUPPORTED_FITTINGS = ("ener", "dipole", "polar")
TENSOR_FITTINGS = ("dipole", "polar")


def _resolve_variables(node, lookup):
    """Replace DeePMD's variable references (datasets / ndarray dicts) under ``@variables``."""
    if isinstance(node, dict):
        if node.get("@class") == "np.ndarray" or node.get("@is_variable"):
            return lookup(node)
        return {k: (_resolve_variables(v, lookup) if k != "@variables" else
                    {kk: (None if vv is None else lookup(vv)) for kk, vv in v.items()}) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_variables(v, lookup) for v in node]
    return node


def _read_deepmd_file(path: Path, suffix: str) -> dict:
    if suffix in (".dp", ".hlo"):
        import h5py

        with h5py.File(path, "r") as f:
            data = json.loads(f.attrs["json"])
            return _resolve_variables(data, lambda ref: np.array(f[ref][()]))
    import yaml

    with open(path) as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise ValueError(str(exc).splitlines()[0] if str(exc) else "malformed YAML") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a mapping at the top, got {type(data).__name__}")
    return _resolve_variables(data, lambda d: np.asarray(d["value"], dtype=np.dtype(d["dtype"]))
                              if isinstance(d, dict) else np.asarray(d))


def load_deepmd_file(path: str | Path) -> dict:
    """Read a DeePMD-kit ``.dp`` (HDF5) or ``.yaml`` model file into its serialized dict."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"DeePMD-kit model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".dp", ".hlo", ".yaml", ".yml"):
        try:
            return _read_deepmd_file(path, suffix)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # h5py's OSError (not HDF5), yaml's errors (ValueError subclasses), missing keys
            lines = str(exc).strip().splitlines()
            raise ValueError(f"{path}: not a readable DeePMD-kit {suffix} model ({exc.__class__.__name__}"
                             f"{': ' + lines[0][:200] if lines else ''})") from None
    raise ValueError(f"{path}: expected a DeePMD-kit .dp or .yaml file (convert a .pth/.pb with `dp convert-backend`)")


def _descriptor_config(d: dict) -> dict:
    if d.get("type") == "hybrid":  # members in order; DeePMD's hybrid has no keys of its own
        return {"type": "hybrid", "list": [_descriptor_config(m) for m in d["list"]]}
    kind = _DESCRIPTOR_NAMES.get(d.get("type"))
    if kind is None:
        raise ValueError(f"DeePMD descriptor '{d.get('type')}' cannot be imported yet (supported: {SUPPORTED_DESCRIPTORS})")
    if d.get("spin") is not None:
        raise ValueError("DeePMD descriptors with spin cannot be imported yet")
    if kind in ("se_atten", "se_atten_v2"):
        if d.get("compress"):
            raise ValueError("compressed DeePMD se_atten descriptors cannot be imported")
        for key, ok in (("lmax", 1), ("use_econf_tebd", False), ("attn_mask", False)):
            if d.get(key, ok) != ok:
                raise ValueError(f"DeePMD se_atten with {key}={d[key]} cannot be imported yet")
        cfg = {"type": kind, **{k: d[k] for k in _ATTEN_KEYS if k in d},
               "exclude_types": [list(p) for p in d.get("exclude_types", [])], "trainable": bool(d.get("trainable", True))}
        cfg["sel"] = int(sum(cfg["sel"])) if isinstance(cfg["sel"], (list, tuple)) else int(cfg["sel"])
        strip_smooth = kind == "se_atten_v2" or (d["tebd_input_mode"] == "strip" and d["smooth_type_embedding"])
        if kind == "se_atten":
            cfg.update(tebd_input_mode=d["tebd_input_mode"], smooth_type_embedding=d["smooth_type_embedding"])
        if not strip_smooth:  # DeePMD's empty slots see the first atom's type: exact only with davg = 0
            if np.any(np.asarray(d["@variables"]["davg"]) != 0):
                raise ValueError("DeePMD se_atten with a non-zero davg and tebd_input_mode 'concat' (or 'strip' without "
                                 "smooth_type_embedding) cannot be imported: its empty neighbour slots depend on the "
                                 "first atom of the frame")
            cfg["set_davg_zero"] = True  # davg is zero: the same model, and statistics keep it so
        return cfg
    cfg = {"type": kind, "sel": list(d["sel"]), "rcut": d["rcut"], "rcut_smth": d["rcut_smth"],
           "neuron": list(d["neuron"]), "resnet_dt": d["resnet_dt"],
           "exclude_types": [list(p) for p in d.get("exclude_types", [])],
           "env_protection": d.get("env_protection", 0.0), "set_davg_zero": d.get("set_davg_zero", False),
           "activation_function": d["activation_function"], "precision": d["precision"],
           "trainable": bool(d.get("trainable", True))}
    if kind == "se_e2_a":
        cfg["axis_neuron"] = d["axis_neuron"]
    if kind in ("se_e2_a", "se_e2_r"):
        cfg["type_one_side"] = d.get("type_one_side", kind == "se_e2_r")
    return cfg


def _fitting_config(f: dict, atom_exclude_types=()) -> dict:
    kind = f.get("type")
    if kind not in SUPPORTED_FITTINGS:
        raise ValueError(f"DeePMD fitting '{kind}' cannot be imported yet (supported: {SUPPORTED_FITTINGS})")
    for key in ("numb_fparam", "numb_aparam", "dim_case_embd"):
        if f.get(key, 0):
            raise ValueError(f"DeePMD fitting with {key}={f[key]} cannot be imported yet")
    trainable = f.get("trainable", True)
    cfg = {"type": kind, "neuron": list(f["neuron"]), "resnet_dt": f["resnet_dt"],
           "activation_function": f["activation_function"], "precision": f["precision"],
           "trainable": trainable if isinstance(trainable, bool) else list(trainable)}
    if kind == "ener":
        return {**cfg, "rcond": f.get("rcond")}
    # DeePMD's atomic model copies atom_exclude_types into the fitting's exclude_types; both zero the output
    cfg["exclude_types"] = sorted({int(t) for t in list(f.get("exclude_types", [])) + list(atom_exclude_types)})
    if f.get("layer_name") is not None:
        cfg["layer_name"] = list(f["layer_name"])
    if kind == "polar":
        scale = np.asarray(f["@variables"]["scale"], dtype=np.float64).ravel()
        cfg.update(fit_diag=bool(f.get("fit_diag", True)), shift_diag=bool(f.get("shift_diag", True)),
                   scale=scale.tolist())
    return cfg


def model_from_deepmd(data: dict | str | Path, head: str = "default") -> Model:
    """mtzoo model equal to a DeePMD-kit standard model (:data:`SUPPORTED_DESCRIPTORS`, :data:`SUPPORTED_FITTINGS`).

    Descriptors: se_e2_a (``se_a``), se_e2_r (``se_r``), se_e3 (``se_at``, ``se_t``, ``se_a_3be``),
    se_atten (``dpa1``), se_atten_v2, and hybrid of these; fittings: ``ener``, ``dipole`` and
    ``polar``.  Not imported (a ``ValueError`` saying what): spin, ``pair_exclude_types``,
    ``atom_exclude_types`` on an energy model, fittings with ``numb_fparam``, ``numb_aparam`` or
    ``dim_case_embd``, compressed se_atten, se_atten with ``lmax`` != 1, ``use_econf_tebd`` or
    ``attn_mask``, and se_atten with a non-zero ``davg`` unless ``tebd_input_mode`` is
    ``"strip"`` with ``smooth_type_embedding`` (always so for se_atten_v2).

    Parameters
    ----------
    data : dict, str or Path
        ``EnergyModel``/``DipoleModel``/``PolarModel`` ``.serialize()`` dict, a file dict with a
        ``"model"`` entry, or a ``.dp``/``.yaml`` path.
    head : str
        Name of the head in the mtzoo model.

    Notes
    -----
    Dipole and polar models may carry ``atom_exclude_types`` (the types without the tensor, the
    complement of TF's ``sel_type``): they become the head's ``exclude_types``.  The atomic
    model's ``out_bias`` enters the polar head's diagonal shift (ignored for dipoles, as in DeePMD).
    """
    if not isinstance(data, dict):
        data = load_deepmd_file(data)
    if "model" in data and "@class" not in data:
        data = data["model"]
    if data.get("@class") != "Model" or data.get("type") != "standard":
        raise ValueError(f"expected a DeePMD-kit standard model dict, got @class={data.get('@class')} type={data.get('type')}")
    dd, ff = data["descriptor"], data["fitting"]
    tensor = ff.get("type") in TENSOR_FITTINGS
    if data.get("pair_exclude_types") or (data.get("atom_exclude_types") and not tensor):
        raise ValueError("DeePMD models with pair_exclude_types (or atom_exclude_types on an energy model) "
                         "cannot be imported yet")
    type_map = list(data["type_map"])
    atom_exclude = list(data.get("atom_exclude_types") or [])
    model = build_model({"type_map": type_map, "descriptor": _descriptor_config(dd),
                         "heads": {head: _fitting_config(ff, atom_exclude)}})
    model.descriptor.load_deepmd(dd)
    variables = data.get("@variables", {})
    if tensor:
        model.heads[head].load_deepmd(ff, variables.get("out_bias"), variables.get("out_std"))
    else:
        model.heads[head].load_deepmd(ff, variables.get("out_bias"))
    return model
