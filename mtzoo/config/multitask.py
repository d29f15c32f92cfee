"""Multi-task inputs (DeePMD-kit's documented v2 scheme): named heads on one descriptor.

The scheme is chosen from the keys: an input whose ``model`` has ``fitting_net_dict`` is
multi-task, and then uses

* ``model.fitting_net_dict``: head name -> fitting net (``ener``, ``dipole``, ``polar``);
* ``loss_dict`` (top level): head name -> loss; a head left out gets the default loss of
  its fitting type (``ener`` -> ``ener`` loss, ``dipole``/``polar`` -> ``tensor`` loss);
* ``training.data_dict``: head name -> ``{training_data, validation_data}``, one entry per
  head;
* ``training.fitting_weight`` (optional): head name -> weight >= 0, the probability weight
  of the task.  Absent: every head has weight 1.  A head it leaves out has weight 0 and is
  not trained (:meth:`~mtzoo.config.TrainingConfig.untrained_heads`; the trainer warns);
* ``training.task_schedule`` (mtzoo extension): how tasks are picked at each step,
  see :data:`TASK_SCHEDULES`.

Single-task keys (``model.fitting_net``, ``loss``, ``training.training_data`` and
``training.validation_data``) are errors in a multi-task input and the other way round.
DeePMD-kit v3's ``model_dict``/``shared_dict`` scheme is not supported yet.

:meth:`mtzoo.config.InputConfig.tasks` gives both schemes as a list of
:class:`TaskConfig`; a single-task input is one task named :data:`DEFAULT_HEAD`.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mtzoo.config.base import ConfigError, join_path, show

if TYPE_CHECKING:
    from mtzoo.config.model import DescriptorConfig, FittingConfig
    from mtzoo.config.train import DataConfig, LossConfig, ValidationDataConfig

__all__ = [
    "DEFAULT_HEAD",
    "TASK_SCHEDULES",
    "TaskConfig",
    "check_head_names",
    "check_name_match",
    "check_shared_layers",
]

#: Name of the one task of a single-task input.
DEFAULT_HEAD = "default"

#: Values of ``training.task_schedule`` (mtzoo extension; only tasks with weight > 0 take
#: part):
#:
#: * ``"stochastic"`` (default, as DeePMD-kit): each step trains one task, drawn with
#:   probability ``w_i / sum_j w_j``;
#: * ``"round_robin"``: each step trains one task, taking turns in ``fitting_net_dict``
#:   order (the weights only decide which tasks take part);
#: * ``"joint"``: each step takes one batch of every task and minimises the weighted sum
#:   ``sum_i w_i L_i / sum_j w_j`` of their losses (the expected loss of ``"stochastic"``).
TASK_SCHEDULES = ("stochastic", "round_robin", "joint")


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """One task of an input: a head, its loss, its data and its weight.

    Attributes
    ----------
    name : str
        Head name (``"default"`` for a single-task input).
    fitting : FittingConfig
        The head's fitting net.
    loss : LossConfig
        Its loss (matching the fitting type).
    training_data : DataConfig
        Its training data.
    validation_data : ValidationDataConfig or None
        Its validation data.
    weight : float
        Its ``fitting_weight`` (1.0 when there is none; 0.0 for a head that
        ``fitting_weight`` leaves out: such a head is not trained).
    """

    name: str
    fitting: FittingConfig
    loss: LossConfig
    training_data: DataConfig
    validation_data: ValidationDataConfig | None
    weight: float

    @property
    def trained(self) -> bool:
        """Whether the task takes part in training (``weight > 0``)."""
        return self.weight > 0


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def check_head_names(heads: Mapping[str, Any], path: str) -> None:
    """Head names are non-empty, without ``"."`` or whitespace; at least one head."""
    if not heads:
        raise ConfigError("must name at least one head", path)
    for name in heads:
        if not name or "." in name or any(c.isspace() for c in name):
            raise ConfigError(
                f"head name {show(name)} must be non-empty, without '.' or whitespace", path
            )


def check_name_match(
    heads: Iterable[str], given: Iterable[str], path: str, *, missing_ok: bool = False
) -> None:
    """Keys ``given`` at ``path`` must be head names (all of them unless ``missing_ok``).

    The message lists what is missing and what is unknown, with a suggestion::

        training.data_dict: missing 'water_ener'; unknown 'water_enr' (did you mean 'water_ener'?)
    """
    heads, given = list(heads), list(given)
    missing = [] if missing_ok else [h for h in heads if h not in given]
    unknown = [g for g in given if g not in heads]
    if not missing and not unknown:
        return
    parts = [f"missing {_names(missing)}"] if missing else []
    if unknown:
        text = f"unknown {_names(unknown)}"
        close = difflib.get_close_matches(unknown[0], missing or heads, n=1, cutoff=0.6)
        text += f" (did you mean '{close[0]}'?)" if close else f" (heads: {_names(heads)})"
        parts.append(text)
    raise ConfigError("; ".join(parts), path)


# --------------------------------------------------------------------------- shared layers


class _Unknown(str):
    """A width the config does not tell, as a symbol: ``"D"`` (descriptor width), ``"M"``
    (embedding width), ``"M*M"``."""


def _layer(fitting: FittingConfig, k: int, dim_in: int | None, emb: int | None) -> dict[str, Any]:
    """What must agree between layers sharing a name: layer ``k`` of ``fitting``."""
    nhidden = len(fitting.neuron)
    out = fitting.neuron[k] if k < nhidden else fitting.output_width(emb)
    return {
        "input width": (dim_in if dim_in is not None else _Unknown("D")) if k == 0 else fitting.neuron[k - 1],
        "output width": _Unknown(out) if isinstance(out, str) else out,
        "activation": fitting.activation_function if k < nhidden else "linear (output layer)",
        "precision": fitting.dtype_name,
        "trainable": fitting.trainable_layers[k],
    }


def _differs(a: Any, b: Any) -> bool:
    """Known to differ (a number and an unknown width may be equal)."""
    if a == b:
        return False
    return isinstance(a, _Unknown) == isinstance(b, _Unknown)


def check_shared_layers(
    heads: Mapping[str, FittingConfig], descriptor: DescriptorConfig, path_of: Callable[[str], str]
) -> None:
    """Layers named alike (``layer_name``) must be able to share their parameters.

    For every pair of layers with the same name (in two heads, or twice in one head) the
    input and output widths, the activation (the output layer is linear), the precision
    and the ``trainable`` flag must agree.  Widths that depend on the descriptor use its
    ``dim_out``/``embedding_width`` when the config tells them; otherwise only what is
    known is compared (the model builder checks the rest).  ``path_of(head)`` is the key
    path of a head's fitting net.
    """
    dim_in, emb = descriptor.dim_out, descriptor.embedding_width
    seen: dict[str, tuple[str, int, dict[str, Any]]] = {}
    for head, fitting in heads.items():
        for k, lname in enumerate(fitting.layer_name or []):
            if lname is None:
                continue
            mine = _layer(fitting, k, dim_in, emb)
            if lname not in seen:
                seen[lname] = (head, k, mine)
                continue
            other, j, theirs = seen[lname]
            for what, value in mine.items():
                if _differs(value, theirs[what]):
                    raise ConfigError(
                        f"layer name {show(lname)} is shared by head '{other}' (layer {j}) and head "
                        f"'{head}' (layer {k}), but their {what} differs: {show(theirs[what])} vs "
                        f"{show(value)}",
                        f"{join_path(path_of(head), 'layer_name')}[{k}]",
                    )
