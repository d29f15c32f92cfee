"""mtzoo: multi-fidelity machine-learned interatomic potentials.

One shared descriptor, one head per level of theory or property, trained together.
DeePMD-kit input files and data systems are read as they are.

>>> import mtzoo
>>> mtzoo.train("input.json", workdir="run")          # doctest: +SKIP
>>> mtzoo.freeze("run", "model.pth")                  # doctest: +SKIP
>>> model = mtzoo.load_model("model.pth")             # doctest: +SKIP
>>> model.predict(atoms)["forces"]                    # doctest: +SKIP
"""

from mtzoo._version import __version__  # noqa: F401  (mtzoo.__version__)

__all__ = ["MTZooCalculator", "Model", "build_model", "compress", "evaluate", "finetune", "freeze", "list_pretrained",
           "load_model", "load_pretrained", "load_systems", "model_from_deepmd", "save_model", "train"]


#: public name -> (module, attribute), imported on first use: importing mtzoo stays cheap (torch,
#: PyG and ASE load when a name is first used)
_LAZY = {
    "Model": ("mtzoo.model", "Model"),
    "build_model": ("mtzoo.model", "build_model"),
    "MTZooCalculator": ("mtzoo.calculator", "MTZooCalculator"),
    "train": ("mtzoo.training.trainer", "train"),
    "freeze": ("mtzoo.zoo.frozen", "freeze"),
    "load_model": ("mtzoo.zoo.frozen", "load_model"),
    "save_model": ("mtzoo.zoo.frozen", "save_model"),
    "load_pretrained": ("mtzoo.zoo.registry", "load_pretrained"),
    "list_pretrained": ("mtzoo.zoo.registry", "list_pretrained"),
    "finetune": ("mtzoo.zoo.finetune", "finetune"),
    "compress": ("mtzoo.zoo.compress", "compress"),
    "evaluate": ("mtzoo.evaluation", "evaluate"),
    "load_systems": ("mtzoo.data.readers", "load_systems"),
    "model_from_deepmd": ("mtzoo.zoo.deepmd_import", "model_from_deepmd"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'mtzoo' has no attribute '{name}'")
    import importlib

    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)
