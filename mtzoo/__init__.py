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


def __getattr__(name: str):
    # lazy: importing mtzoo stays cheap (torch, PyG and ASE load on first use)
    if name in ("Model", "build_model"):
        from mtzoo import model

        return getattr(model, name)
    if name == "MTZooCalculator":
        from mtzoo.calculator import MTZooCalculator

        return MTZooCalculator
    if name == "train":
        from mtzoo.training.trainer import train

        return train
    if name in ("freeze", "load_model", "save_model"):
        from mtzoo.zoo import frozen

        return getattr(frozen, name)
    if name in ("load_pretrained", "list_pretrained"):
        from mtzoo.zoo import registry

        return getattr(registry, name)
    if name == "finetune":
        from mtzoo.zoo.finetune import finetune

        return finetune
    if name == "compress":
        from mtzoo.zoo.compress import compress

        return compress
    if name == "evaluate":
        from mtzoo.evaluation import evaluate

        return evaluate
    if name == "load_systems":
        from mtzoo.data.readers import load_systems

        return load_systems
    if name == "model_from_deepmd":
        from mtzoo.zoo.deepmd_import import model_from_deepmd

        return model_from_deepmd
    raise AttributeError(f"module 'mtzoo' has no attribute '{name}'")
