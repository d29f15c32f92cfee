"""Typed schema of mtzoo's input files (DeePMD-kit ``input.json`` key names and aliases).

>>> from mtzoo.config import load_input
>>> cfg = load_input("input.json")                      # doctest: +SKIP
>>> cfg.model.descriptor.rcut, cfg.training.numb_steps  # doctest: +SKIP
(6.0, 1000000)

Every section is a dataclass; ``to_dict()`` returns the completed input (all defaults
filled, DeePMD-kit names, no aliases), and ``parse_input(cfg.to_dict()) == cfg``.  Invalid
inputs raise :class:`ConfigError` with a one-line message naming the file and key path::

    input.json: model.descriptor.rcut_smth: must be < rcut (6.0), got 6.5
    input.json: training.training_data.batchsize: unknown key (did you mean 'batch_size'?)

Modules: :mod:`~mtzoo.config.base` (machinery), :mod:`~mtzoo.config.model` (model,
descriptor, fitting), :mod:`~mtzoo.config.train` (learning rate, optimizer, loss, training,
data), :mod:`~mtzoo.config.input` (the whole file).
"""

from mtzoo.config.base import ConfigError, Registry, Section, Variant
from mtzoo.config.input import MULTI_TASK_KEYS, InputConfig, load_input, parse_input
from mtzoo.config.model import (
    DESCRIPTORS,
    FITTINGS,
    MODELS,
    DescriptorConfig,
    EnerFittingConfig,
    FittingConfig,
    ModelConfig,
    SeE2AConfig,
)
from mtzoo.config.train import (
    LEARNING_RATES,
    LOSSES,
    OPTIMIZERS,
    AdamConfig,
    DataConfig,
    EnerLossConfig,
    ExpLearningRateConfig,
    LearningRateConfig,
    LossConfig,
    OptimizerConfig,
    TrainingConfig,
    ValidationDataConfig,
)

__all__ = [
    "DESCRIPTORS",
    "FITTINGS",
    "LEARNING_RATES",
    "LOSSES",
    "MODELS",
    "MULTI_TASK_KEYS",
    "OPTIMIZERS",
    "AdamConfig",
    "ConfigError",
    "DataConfig",
    "DescriptorConfig",
    "EnerFittingConfig",
    "EnerLossConfig",
    "ExpLearningRateConfig",
    "FittingConfig",
    "InputConfig",
    "LearningRateConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "Registry",
    "SeE2AConfig",
    "Section",
    "TrainingConfig",
    "ValidationDataConfig",
    "Variant",
    "load_input",
    "parse_input",
]
