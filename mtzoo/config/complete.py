"""Completing an input from a frozen model (``mtzoo train input.json --init-frz-model MODEL``).

:func:`complete_input` takes the raw new input and the completed input the frozen model was
trained from (what :meth:`~mtzoo.config.InputConfig.to_dict` wrote) and returns the raw new
input with the parts it leaves to the model filled in:

* ``model.type_map`` omitted -> the frozen model's (given: it must be the same);
* ``model.descriptor`` omitted or ``{}`` -> the frozen model's; given in full, it must
  equal the frozen one except for ``trainable`` (the architecture must match);
  ``{"trainable": false}`` is the frozen one with that change;
* heads: an entry ``{}`` of ``model.fitting_net_dict`` names a head of the frozen model and
  takes its fitting net (``{"trainable": false}``: with that change; an old head given in
  full must match it except for ``trainable``); a name the frozen model lacks is a new head
  and needs a full fitting net, its own ``training.data_dict`` entry and its own
  ``loss_dict`` entry.  A single-task
  input's ``fitting_net`` is the head ``"default"`` (omitted or ``{}``: the frozen
  model's head ``"default"``).  With neither ``fitting_net`` nor ``fitting_net_dict``
  every head of the frozen model is kept, in its layout;
* the loss of an old head left out (``loss_dict`` entry, or ``loss``) is the frozen
  model's loss of that head.

Data, weights and training options are never inherited.  The result still goes through
:func:`~mtzoo.config.parse_input`.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

from mtzoo.config.base import ConfigError, as_object, show, strip_comments
from mtzoo.config.input import DEEPMD_V3_MULTI_TASK_KEYS, V3_NOT_SUPPORTED, find_multi_task_key, parse_input
from mtzoo.config.model import DescriptorConfig, FittingConfig
from mtzoo.config.multitask import DEFAULT_HEAD

__all__ = ["Completion", "complete_input"]

#: The one key of the descriptor and of an old head that may differ from the frozen model.
MAY_DIFFER = ("trainable",)


class Completion(NamedTuple):
    """Result of :func:`complete_input`: unpacks as ``(input, new_heads)``.

    Attributes
    ----------
    input : dict
        The completed raw input (to be parsed with :func:`~mtzoo.config.parse_input`).
    new_heads : list of str
        Heads that the frozen model lacks (trained from scratch), in input order.
    """

    input: dict[str, Any]
    new_heads: list[str]

    @property
    def heads(self) -> list[str]:
        """All heads of the completed input, in order."""
        model = self.input.get("model", {})
        if "fitting_net_dict" in model:
            return [h for h in model["fitting_net_dict"] if not h.startswith("_comment")]
        return [DEFAULT_HEAD]

    @property
    def old_heads(self) -> list[str]:
        """Heads taken from the frozen model (their weights are loaded), in input order."""
        return [h for h in self.heads if h not in self.new_heads]


def _is_empty(value: Any) -> bool:
    """``{}`` (comments and the keys that may differ aside): take the frozen model's."""
    return isinstance(value, dict) and not [k for k in strip_comments(value) if k not in MAY_DIFFER]


def _inherit(value: dict[str, Any], frozen: dict[str, Any]) -> dict[str, Any]:
    """The frozen model's section with the keys that may differ taken from ``value``."""
    return {**frozen, **{k: v for k, v in value.items() if k in MAY_DIFFER}}


def _first_difference(ours: dict[str, Any], theirs: dict[str, Any]) -> str | None:
    for key in [*ours, *(k for k in theirs if k not in ours)]:
        if key not in MAY_DIFFER and ours.get(key) != theirs.get(key):
            return f"'{key}' is {show(ours.get(key))}, the frozen model's is {show(theirs.get(key))}"
    return None


def _check_same(ours: dict[str, Any], theirs: dict[str, Any], what: str, path: str) -> None:
    diff = _first_difference(ours, theirs)
    if diff is not None:
        raise ConfigError(
            f"differs from the frozen model's {what}: {diff}; the architecture must match (only "
            f"{', '.join(MAY_DIFFER)} may differ), or give {{}} to take it from the model",
            path,
        )


def _node(data: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """``data[key]`` as an object (created empty when absent)."""
    value = data.setdefault(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"expected an object, got {show(value)}", path)
    return value


def complete_input(raw: dict[str, Any], frozen_input: dict[str, Any], source: str = "<dict>") -> Completion:
    """Complete the raw input ``raw`` from the input of a frozen model.

    Parameters
    ----------
    raw : dict
        The new input, as loaded from JSON; it is not modified.
    frozen_input : dict
        The completed input the frozen model was trained from (its ``out.json``).
    source : str
        Name of the new input in error messages.

    Returns
    -------
    Completion
        ``(input, new_heads)``: the completed raw input and the heads the frozen model lacks
        (``.old_heads`` gives the others).

    Raises
    ------
    ConfigError
        One-line message naming the key, e.g. ``"input.json: loss_dict: missing entry for new
        head 'water_polar' (not in the frozen model, so its loss cannot be inherited)"``; an
        invalid ``frozen_input`` is reported with source ``"<frozen model input>"``.
    """
    frozen = parse_input(frozen_input, source="<frozen model input>")
    try:
        data = copy.deepcopy(as_object(raw, ""))
        where = find_multi_task_key(data, DEEPMD_V3_MULTI_TASK_KEYS)
        if where is not None:
            raise ConfigError(V3_NOT_SUPPORTED, where)
        new_heads = _complete(data, frozen)
    except ConfigError as err:
        raise err.with_source(source) from None
    return Completion(data, new_heads)


def _complete(data: dict[str, Any], frozen: Any) -> list[str]:
    """Fill ``data`` in place from the parsed frozen input; return the new heads."""
    model = _node(data, "model", "model")
    fmodel = frozen.model
    if "type_map" not in model:
        model["type_map"] = list(fmodel.type_map)
    elif model["type_map"] != fmodel.type_map:
        raise ConfigError(
            f"differs from the frozen model's type_map {show(fmodel.type_map)}; omit it to take the model's",
            "model.type_map",
        )
    desc = model.get("descriptor")
    if desc is None or _is_empty(desc):
        model["descriptor"] = _inherit(desc or {}, fmodel.descriptor.to_dict())
    else:
        ours = DescriptorConfig.parse(desc, "model.descriptor").to_dict()
        _check_same(ours, fmodel.descriptor.to_dict(), "descriptor", "model.descriptor")

    old_fittings, old_losses = fmodel.heads, frozen.losses
    listing = ", ".join(f"'{h}'" for h in old_fittings)
    training = data.get("training") if isinstance(data.get("training"), dict) else {}

    if "fitting_net" not in model and "fitting_net_dict" not in model:  # keep every head
        if fmodel.multi_task:
            model["fitting_net_dict"] = {h: {} for h in old_fittings}
        else:
            model["fitting_net"] = {}

    if "fitting_net_dict" in model:
        fittings = _node(model, "fitting_net_dict", "model.fitting_net_dict")
        new = _complete_heads(fittings, old_fittings, "model.fitting_net_dict.", listing)
        if "loss" in data:  # a single-task key: the parser reports the mix
            return new
        losses = data.get("loss_dict", {})
        if not isinstance(losses, dict):
            return new  # reported by the parser
        datasets = training.get("data_dict", {})
        for name in fittings:
            if name.startswith("_comment"):
                continue
            if name in new:
                if name not in losses:
                    raise ConfigError(
                        f"missing entry for new head '{name}' (not in the frozen model, so its loss "
                        "cannot be inherited)", "loss_dict",
                    )
                if not isinstance(datasets, dict) or name not in datasets:
                    raise ConfigError(f"missing entry for new head '{name}'", "training.data_dict")
            elif name not in losses:
                losses[name] = old_losses[name].to_dict()
        if losses:
            data["loss_dict"] = losses
        return new

    slot = {DEFAULT_HEAD: model["fitting_net"]}
    new = _complete_heads(slot, old_fittings, "model.fitting_net", listing, single=True)
    model["fitting_net"] = slot[DEFAULT_HEAD]
    if new:
        if "loss" not in data:
            raise ConfigError(
                f"missing required key for the new head '{DEFAULT_HEAD}' (the frozen model has no head "
                f"'{DEFAULT_HEAD}', so its loss cannot be inherited)", "loss",
            )
    elif "loss" not in data and "loss_dict" not in data:
        data["loss"] = old_losses[DEFAULT_HEAD].to_dict()
    return new


def _complete_heads(
    fittings: dict[str, Any], old: dict[str, FittingConfig], prefix: str, listing: str, single: bool = False
) -> list[str]:
    """Replace ``{}`` entries by the frozen model's fitting nets; return the new heads."""
    new = []
    for name, entry in list(fittings.items()):
        if name.startswith("_comment"):
            continue
        path = prefix if single else prefix + name
        if _is_empty(entry):
            if name not in old:
                raise ConfigError(
                    f"{{}} takes the fitting net of head '{name}' of the frozen model, but it has no such "
                    f"head (its heads: {listing}); a new head needs a full fitting net",
                    path,
                )
            fittings[name] = _inherit(entry, old[name].to_dict())
        elif name in old:
            ours = FittingConfig.parse(entry, path).to_dict()
            _check_same(ours, old[name].to_dict(), f"fitting net of head '{name}'", path)
        else:
            new.append(name)
    return new
