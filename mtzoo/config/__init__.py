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

Single-task and multi-task inputs (DeePMD-kit's v2 scheme: ``model.fitting_net_dict``,
``loss_dict``, ``training.data_dict``, ``training.fitting_weight``) are both read;
``cfg.tasks()`` gives either as a list of :class:`TaskConfig`::

    >>> [(t.name, t.fitting.type, t.loss.type, t.weight) for t in cfg.tasks()]  # doctest: +SKIP
    [('water_dipole', 'dipole', 'tensor', 10.0), ('water_ener', 'ener', 'ener', 20.0)]

:func:`complete_input` fills an input from the input of a frozen model
(``--init-frz-model``).

Modules: :mod:`~mtzoo.config.base` (machinery), :mod:`~mtzoo.config.model` (model,
descriptor, ener fitting), :mod:`~mtzoo.config.tensor` (dipole and polar fittings, tensor
loss), :mod:`~mtzoo.config.optim` (learning rate, optimizer), :mod:`~mtzoo.config.train`
(loss, training),
:mod:`~mtzoo.config.data` (data sections), :mod:`~mtzoo.config.multitask` (tasks, head
checks), :mod:`~mtzoo.config.input` (the whole file), :mod:`~mtzoo.config.complete`
(completion from a frozen model).
"""

from mtzoo.config.base import ConfigError, Registry, Section, Variant
from mtzoo.config import descriptors as _descriptors  # noqa: F401  (registers the other descriptor schemas)
from mtzoo.config.data import DataConfig, TaskDataConfig, ValidationDataConfig
from mtzoo.config.input import (
    DEEPMD_V3_MULTI_TASK_KEYS,
    MULTI_TASK_KEYS,
    InputConfig,
    load_input,
    parse_input,
)
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
from mtzoo.config.multitask import DEFAULT_HEAD, TASK_SCHEDULES, TaskConfig
from mtzoo.config.tensor import (
    DipoleFittingConfig,
    PolarFittingConfig,
    TensorFittingConfig,
    TensorLossConfig,
)
from mtzoo.config.train import (
    LEARNING_RATES,
    LOSSES,
    OPTIMIZERS,
    AdamConfig,
    AdamWConfig,
    CosineLearningRateConfig,
    EnerLossConfig,
    ExpLearningRateConfig,
    LearningRateConfig,
    LossConfig,
    OptimizerConfig,
    PlateauLearningRateConfig,
    TrainingConfig,
)
from mtzoo.config.complete import Completion, complete_input  # noqa: E402  (needs the registrations)

__all__ = [
    "DEEPMD_V3_MULTI_TASK_KEYS",
    "DEFAULT_HEAD",
    "DESCRIPTORS",
    "FITTINGS",
    "LEARNING_RATES",
    "LOSSES",
    "MODELS",
    "MULTI_TASK_KEYS",
    "OPTIMIZERS",
    "TASK_SCHEDULES",
    "AdamConfig",
    "AdamWConfig",
    "Completion",
    "CosineLearningRateConfig",
    "ConfigError",
    "DataConfig",
    "DescriptorConfig",
    "DipoleFittingConfig",
    "EnerFittingConfig",
    "EnerLossConfig",
    "ExpLearningRateConfig",
    "FittingConfig",
    "InputConfig",
    "LearningRateConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "PlateauLearningRateConfig",
    "PolarFittingConfig",
    "Registry",
    "SeE2AConfig",
    "Section",
    "TaskConfig",
    "TaskDataConfig",
    "TensorFittingConfig",
    "TensorLossConfig",
    "TrainingConfig",
    "ValidationDataConfig",
    "Variant",
    "complete_input",
    "load_input",
    "parse_input",
]
