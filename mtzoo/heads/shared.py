"""Hard parameter sharing between heads: DeePMD-kit's ``layer_name``.

Each fitting net may name its layers (hidden layers plus the output layer; ``None`` =
private).  All heads that give layer :math:`k` the same name use one module object for it
(one per atom type when the heads keep one net per type), so its parameters receive the
gradients of every task that uses it (fairchem HydraModel style: the same module under
several names, no gather by head index).
"""

from __future__ import annotations

from collections.abc import Mapping

from mtzoo.heads.base import Head


_SIGNATURE_FIELDS = ("inputs", "outputs", "bias", "resnet_dt (idt)", "activation", "skip", "precision")


def _signature(layer) -> tuple:
    return (layer.n_in, layer.n_out, layer.bias is not None, layer.idt is not None, layer.activation_name, layer.skip,
            layer.weight.dtype)


def _signature_difference(a, b) -> str:
    """``field: x vs y`` for every field in which two layers' signatures differ."""
    return "; ".join(f"{name}: {x} vs {y}" for name, x, y in zip(_SIGNATURE_FIELDS, _signature(a), _signature(b))
                     if x != y)


def share_named_layers(heads: Mapping[str, Head]) -> dict[str, list[str]]:
    """Tie the layers that several heads name alike; returns ``{layer_name: [head, ...]}``.

    Raises
    ------
    ValueError
        When layers sharing a name differ in shape, activation, precision or trainability
        (names both heads and the layer), or when ``layer_name`` has the wrong length.
    """
    owners: dict[str, tuple[str, list]] = {}
    users: dict[str, list[str]] = {}
    for hname, head in heads.items():
        names = getattr(head, "layer_name", None)
        if not names:
            continue
        nets = head.nets
        n_layers = len(nets[0].layers)
        if len(names) != n_layers:
            raise ValueError(f"head '{hname}': layer_name has {len(names)} entries, expected {n_layers} "
                             "(one per hidden layer plus the output layer)")
        for k, lname in enumerate(names):
            if lname is None:
                continue
            layers = [net.layers[k] for net in nets]
            if lname not in owners:
                owners[lname] = (hname, layers)
                users[lname] = [hname]
                continue
            oname, olayers = owners[lname]
            if len(olayers) != len(layers):
                raise ValueError(f"layer '{lname}': head '{oname}' has {len(olayers)} nets (one per type) but head "
                                 f"'{hname}' has {len(layers)}")
            for t, (mine, theirs) in enumerate(zip(layers, olayers)):
                if _signature(mine) != _signature(theirs):
                    raise ValueError(
                        f"layer '{lname}' is shared by heads '{oname}' and '{hname}' but differs (layer {k}) in "
                        f"{_signature_difference(theirs, mine)} ('{oname}' vs '{hname}')")
                if mine.trainable != theirs.trainable:
                    raise ValueError(f"layer '{lname}' is shared by heads '{oname}' and '{hname}' but is trainable "
                                     f"in one and frozen in the other")
                nets[t].layers[k] = theirs
            users[lname].append(hname)
    return users
