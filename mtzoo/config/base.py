"""Schema machinery for mtzoo's DeePMD-kit-style input files.

A config section is a dataclass deriving from :class:`Section`.  Its fields are the keys
of the JSON object, under DeePMD-kit's names; each field is declared with :func:`option`,
which records the doc string, the aliases, a value check and whether only the default
value is accepted for now.  :func:`parse_section` turns a JSON object into such a
dataclass:

1. keys starting with ``"_comment"`` are dropped;
2. aliases are mapped to their canonical names (giving a key and its alias together is an
   error);
3. unknown keys are rejected with their full path and a ``difflib`` suggestion;
4. every field is type-checked against its annotation (``bool`` is never an ``int``, an
   ``int`` is accepted where a ``float`` is expected and stored as ``float``), converted,
   checked, and filled with its default when absent;
5. keys that DeePMD-kit knows but mtzoo does not implement yet (``Section._unsupported``)
   are accepted only at their DeePMD default;
6. the section's :meth:`Section.validate` hook runs the cross-field checks.

Sections with a ``"type"`` key that selects one of several schemas (descriptor, fitting,
loss, learning rate, optimizer, model) derive from :class:`Variant` and are dispatched by
a :class:`Registry`.  Adding a schema is one dataclass plus one ``@registry.register``.
A field annotated ``dict[str, X]`` with ``X`` a section (``model.fitting_net_dict``) is an
object of named sections, each parsed at ``path.NAME``.

Every error is a :class:`ConfigError` whose one-line message names the file (when known)
and the key path, e.g. ``input.json: model.descriptor.rcut: must be > 0, got -1.0``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import numbers
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal, Union

__all__ = [
    "COMMENT_PREFIX",
    "ConfigError",
    "Registry",
    "Section",
    "Variant",
    "join_path",
    "option",
    "parse_section",
    "show",
]

#: Keys starting with this prefix are ignored at every level.
COMMENT_PREFIX = "_comment"

Check = Callable[[Any], "str | None"]
"""A value check: returns ``None`` when the value is fine, else the reason (one line)."""


class ConfigError(ValueError):
    """An invalid input file or dict.

    The message is one line: ``"<source>: <key.path>: <reason>"``, where the source (the
    file name) and the key path are left out when unknown.

    Parameters
    ----------
    reason : str
        What is wrong, e.g. ``"must be > 0, got -1.0"``.
    path : str, optional
        Dotted key path of the offending key, e.g. ``"model.descriptor.rcut"``; list items
        are written ``systems[1]``.
    source : str, optional
        Name of the file the input came from.

    Attributes
    ----------
    reason, path, source : str
        The parts of the message.
    """

    def __init__(self, reason: str, path: str = "", source: str | None = None) -> None:
        self.reason = " ".join(str(reason).split())
        self.path = path
        self.source = source
        super().__init__(": ".join([p for p in (source, path) if p] + [self.reason]))

    def with_source(self, source: str | None) -> ConfigError:
        """Return this error with ``source`` as its file name (unless it has one)."""
        if self.source or not source:
            return self
        return ConfigError(self.reason, self.path, source)


def join_path(path: str, key: str | int) -> str:
    """Extend a key path: ``join_path("model", "descriptor")`` -> ``"model.descriptor"``.

    Integer keys are list indices: ``join_path("a.sel", 1)`` -> ``"a.sel[1]"``.
    """
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def show(value: Any, limit: int = 60) -> str:
    """Render a value as JSON for an error message, truncated to ``limit`` characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- types


class _Mismatch(Exception):
    """Raised internally when a value does not match a type annotation."""


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _describe_element(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return "lists of " + _describe_element(typing.get_args(tp)[0])
    if _is_union(tp):
        return "(" + describe_type(tp) + ")"
    return describe_type(tp)


def describe_type(tp: Any) -> str:
    """Human-readable name of a type annotation, e.g. ``list[int]`` -> ``"a list of int"``."""
    if tp is type(None) or tp is None:
        return "null"
    if tp in (bool, int, float, str):
        return tp.__name__
    if tp is Any:
        return "any value"
    origin = typing.get_origin(tp)
    if origin is list:
        return "a list of " + _describe_element(typing.get_args(tp)[0])
    if tp is dict or origin is dict or (isinstance(tp, type) and issubclass(tp, Section)):
        return "an object"
    if origin is Literal:
        return "one of " + ", ".join(show(a) for a in typing.get_args(tp))
    if _is_union(tp):  # scalars first: "str or a list of str"
        members = sorted(typing.get_args(tp), key=lambda a: typing.get_origin(a) is list)
        return " or ".join(describe_type(a) for a in members)
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp`` and return a converted copy.

    ``bool`` is not accepted as ``int``/``float``; an ``int`` is accepted as ``float`` and
    converted; a tuple is accepted as a list.  Raises ``_Mismatch`` on failure.
    """
    if tp is Any:
        return copy.deepcopy(value)
    if tp is type(None) or tp is None:
        if value is None:
            return None
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    origin = typing.get_origin(tp)
    if origin is list:
        if isinstance(value, (list, tuple)):
            (item,) = typing.get_args(tp)
            return [coerce(v, item) for v in value]
        raise _Mismatch
    if tp is dict or origin is dict:
        if isinstance(value, Mapping):
            return copy.deepcopy(dict(value))
        raise _Mismatch
    if origin is Literal:
        for allowed in typing.get_args(tp):
            if value == allowed and type(value) is type(allowed):
                return value
        raise _Mismatch
    if _is_union(tp):
        for member in typing.get_args(tp):
            try:
                return coerce(value, member)
            except _Mismatch:
                continue
        raise _Mismatch
    raise TypeError(f"mtzoo.config: unsupported annotation {tp!r}")  # programming error


# --------------------------------------------------------------------------- fields


def option(
    default: Any = dataclasses.MISSING,
    *,
    doc: str = "",
    aliases: Iterable[str] = (),
    check: Check | None = None,
    convert: Callable[[Any], Any] | None = None,
    only_default: bool = False,
    omit_none: bool = False,
    omit_default: bool = False,
    accept: Any = None,
) -> Any:
    """Declare a config field (a ``dataclasses.field`` with schema metadata).

    Parameters
    ----------
    default : optional
        Default value; the key is required when left out.  Mutable defaults (lists,
        dicts) are copied for each instance.
    doc : str
        What the key means (shown by documentation tools).
    aliases : iterable of str
        Other accepted names of the key (DeePMD-kit's aliases).
    check : callable, optional
        ``check(value) -> reason | None``, run on the converted value unless it is None.
    convert : callable, optional
        Applied to the type-checked value before ``check`` (e.g. lower-casing).
    only_default : bool
        The key is recognised, but mtzoo accepts only its default value for now; any
        other value gives ``"not supported by mtzoo yet"``.
    omit_none : bool
        Leave the key out of :meth:`Section.to_dict` while its value is None (for keys
        that DeePMD-kit types without ``null``).
    omit_default : bool
        Leave the key out of :meth:`Section.to_dict` while it has its default (mtzoo
        extensions in DeePMD-kit sections: DeePMD-kit checks ``out.json`` strictly).
    accept : type annotation, optional
        Type accepted in the input when wider than the field's annotation (``convert``
        then maps it to the annotation), e.g. ``list[str] | str`` for ``list[str]``.
    """
    metadata = {
        "doc": doc,
        "aliases": tuple(aliases),
        "check": check,
        "convert": convert,
        "only_default": only_default,
        "omit_none": omit_none,
        "omit_default": omit_default,
        "accept": accept,
    }
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata)
    if type(default).__hash__ is None:  # mutable (list, dict, section): copy per instance
        return dataclasses.field(
            default_factory=lambda: copy.deepcopy(default), metadata=metadata
        )
    return dataclasses.field(default=default, metadata=metadata)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _not_supported(value: Any, default: Any) -> str:
    return f"not supported by mtzoo yet (only {show(default)} is accepted, got {show(value)})"


def strip_comments(data: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``data`` without the keys starting with ``"_comment"``."""
    return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith(COMMENT_PREFIX))}


def as_object(data: Any, path: str) -> dict[str, Any]:
    """Check that ``data`` is a JSON object and return it without comment keys."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected an object, got {show(data)}", path)
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"keys must be strings, got {show(key)}", path)
    return strip_comments(data)


def _unknown_key(key: str, candidates: Iterable[str], path: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"unknown key{hint}", join_path(path, key))


# --------------------------------------------------------------------------- sections


class Section:
    """Base class of config dataclasses.

    Attributes
    ----------
    _unsupported : dict
        DeePMD-kit keys that mtzoo recognises but does not implement yet, mapped to their
        accepted value (DeePMD's default; ``None`` also stands for "absent") or to a
        predicate ``value -> bool``.  They are not stored and not written by
        :meth:`to_dict`.
    type_name : str or None
        For :class:`Variant` schemas: the canonical ``"type"`` written by :meth:`to_dict`.
    """

    _unsupported: ClassVar[dict[str, Any]] = {}
    type_name: ClassVar[str | None] = None

    @classmethod
    def parse(cls, data: Any, path: str = "") -> Any:
        """Parse a JSON object (a dict) found at key path ``path`` into this schema."""
        return parse_section(cls, data, path)

    def validate(self, path: str) -> None:
        """Cross-field checks; raise :class:`ConfigError` naming ``join_path(path, key)``."""

    def to_dict(self) -> dict[str, Any]:
        """The completed section: every key with its value (defaults filled), DeePMD names."""
        out: dict[str, Any] = {}
        if self.type_name is not None:
            out["type"] = self.type_name
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            if f.metadata.get("omit_default") and value == _default_of(f):
                continue
            out[f.name] = _dump(value)
        return out


def _dump(value: Any) -> Any:
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _section_class(tp: Any) -> type[Section] | None:
    """The Section subclass in ``tp`` (``X`` or ``X | None``), else None."""
    if isinstance(tp, type) and issubclass(tp, Section):
        return tp
    if _is_union(tp):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], Section):
            return members[0]
    return None


def _section_dict_class(tp: Any) -> type[Section] | None:
    """The Section subclass ``X`` of ``dict[str, X]`` (or ``dict[str, X] | None``), else None."""
    members = [a for a in typing.get_args(tp) if a is not type(None)] if _is_union(tp) else [tp]
    args = typing.get_args(members[0]) if len(members) == 1 and typing.get_origin(members[0]) is dict else ()
    return _section_class(args[1]) if len(args) == 2 else None


def _parse_value(f: dataclasses.Field, tp: Any, value: Any, path: str) -> Any:
    sub = _section_class(tp)
    if sub is not None:
        if value is None and sub is not tp:  # an optional section given as null
            return None
        return sub.parse(value, path)
    item = _section_dict_class(tp)
    if item is not None:  # an object of named sections (e.g. model.fitting_net_dict)
        if value is None and _is_union(tp):
            return None
        return {k: item.parse(v, join_path(path, k)) for k, v in as_object(value, path).items()}
    try:
        value = coerce(value, tp)
    except _Mismatch:
        raise ConfigError(f"expected {describe_type(tp)}, got {show(value)}", path) from None
    if value is not None:
        if f.metadata.get("convert") is not None:
            value = f.metadata["convert"](value)
        check = f.metadata.get("check")
        reason = check(value) if check is not None else None
        if reason:
            raise ConfigError(reason, path)
    return value


def _accepts(spec: Any, value: Any) -> bool:
    if callable(spec):
        return bool(spec(value))
    if spec is None:
        return value is None
    if isinstance(spec, float) and isinstance(value, int) and not isinstance(value, bool):
        return value == spec  # JSON 0 for a 0.0 default
    return type(value) is type(spec) and value == spec


def parse_section(cls: type, data: Any, path: str = "") -> Any:
    """Parse the JSON object ``data`` (found at key path ``path``) into dataclass ``cls``.

    See the module docstring for the steps.  Raises :class:`ConfigError`.
    """
    data = as_object(data, path)
    fields = dataclasses.fields(cls)
    hints = _type_hints(cls)
    canonical: dict[str, str] = {}
    for f in fields:
        canonical[f.name] = f.name
        for alias in f.metadata.get("aliases", ()):
            canonical[alias] = f.name
    unsupported = cls._unsupported

    given: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in data.items():
        if key in unsupported:
            continue
        name = canonical.get(key)
        if name is None:
            raise _unknown_key(key, [*canonical, *unsupported], path)
        if name in given:
            raise ConfigError(
                f"given twice, as '{spelled[name]}' and as '{key}' (aliases of one key)",
                join_path(path, name),
            )
        given[name] = value
        spelled[name] = key

    kwargs: dict[str, Any] = {}
    for f in fields:
        key_path = join_path(path, spelled.get(f.name, f.name))  # as written in the input
        default = _default_of(f)
        if f.name in given:
            tp = f.metadata.get("accept") or hints[f.name]
            value = _parse_value(f, tp, given[f.name], key_path)
            if f.metadata.get("only_default") and not _accepts(default, value):
                raise ConfigError(_not_supported(value, default), key_path)
        elif default is dataclasses.MISSING:
            raise ConfigError("missing required key", key_path)
        else:
            value = default
        kwargs[f.name] = value

    for key, spec in unsupported.items():
        if key in data and not _accepts(spec, data[key]):
            reason = (
                f"not supported by mtzoo yet (got {show(data[key])})"
                if callable(spec)
                else _not_supported(data[key], spec)
            )
            raise ConfigError(reason, join_path(path, key))

    obj = cls(**kwargs)
    obj.validate(path)
    return obj


# --------------------------------------------------------------------------- variants


class Registry:
    """Schemas selected by a ``"type"`` key, with DeePMD-kit's names and aliases.

    Parameters
    ----------
    what : str
        What is selected, for messages (e.g. ``"descriptor"``).
    default : str, optional
        Type used when the ``"type"`` key is absent; required when None.
    unimplemented : dict of str to tuple of str
        DeePMD-kit types (canonical name -> aliases) that mtzoo does not implement yet;
        they give ``"'se_e3' is not implemented yet (available: se_e2_a)"``.
    """

    def __init__(
        self,
        what: str,
        default: str | None = None,
        unimplemented: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.what = what
        self.default = default
        self.classes: dict[str, type[Variant]] = {}
        self._names: dict[str, str] = {}
        self._unimplemented: dict[str, str] = {}
        for name, aliases in (unimplemented or {}).items():
            for n in (name, *aliases):
                self._unimplemented[n] = name

    def register(self, name: str, aliases: Iterable[str] = ()) -> Callable[[type], type]:
        """Class decorator registering a :class:`Variant` dataclass under ``name``."""

        def decorator(cls: type) -> type:
            cls.type_name = name
            self.classes[name] = cls
            for n in (name, *aliases):
                self._names[n] = name
                self._unimplemented.pop(n, None)
            return cls

        return decorator

    @property
    def available(self) -> list[str]:
        """Canonical names of the implemented types."""
        return list(self.classes)

    def canonical(self, name: str) -> str | None:
        """The canonical name of type ``name`` (itself or a DeePMD-kit alias), None if unknown."""
        return self._names.get(name)

    def lookup(self, name: str, path: str) -> type[Variant]:
        """The schema for type ``name`` (an alias is fine); ``path`` is the ``type`` key's."""
        avail = ", ".join(self.available)
        if name in self._names:
            return self.classes[self._names[name]]
        if name in self._unimplemented:
            raise ConfigError(f"'{name}' is not implemented yet (available: {avail})", path)
        known = [*self._names, *self._unimplemented]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown {self.what} type '{name}' (available: {avail}{hint})", path)

    def parse(self, data: Any, path: str, expect: type | None = None) -> Variant:
        """Parse the object ``data`` at ``path``: pick the schema by its ``"type"``."""
        body = as_object(data, path)
        type_path = join_path(path, "type")
        if "type" in body:
            name = body.pop("type")
        elif expect is not None and expect.type_name is not None:
            name = expect.type_name
        elif self.default is not None:
            name = self.default
        else:
            raise ConfigError("missing required key", type_path)
        if not isinstance(name, str):
            raise ConfigError(f"expected str, got {show(name)}", type_path)
        cls = self.lookup(name, type_path)
        if expect is not None and not issubclass(cls, expect):
            raise ConfigError(f"expected type '{expect.type_name}', got '{name}'", type_path)
        return parse_section(cls, body, path)


class Variant(Section):
    """A section whose ``"type"`` key selects the schema through ``registry``."""

    registry: ClassVar[Registry]

    @classmethod
    def parse(cls, data: Any, path: str = "") -> Any:
        """Parse ``data``; on a registered subclass the type may be left out."""
        return cls.registry.parse(data, path, expect=cls)

    @property
    def type(self) -> str:
        """The canonical type name (DeePMD-kit's, e.g. ``"se_e2_a"``)."""
        return str(self.type_name)


# --------------------------------------------------------------------------- checks


def ge(bound: float) -> Check:
    """Check ``value >= bound``."""
    return lambda v: None if v >= bound else f"must be >= {bound}, got {show(v)}"


def gt(bound: float) -> Check:
    """Check ``value > bound``."""
    return lambda v: None if v > bound else f"must be > {bound}, got {show(v)}"


def in_range(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Check:
    """Check ``lo <= value <= hi`` (strict at an open end)."""
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"

    def check(v: Any) -> str | None:
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        return None if ok else f"must be in {left}{lo}, {hi}{right}, got {show(v)}"

    return check


def one_of(*choices: Any) -> Check:
    """Check that the value is one of ``choices``."""
    listed = ", ".join(show(c) for c in choices)
    return lambda v: None if v in choices else f"must be one of {listed}, got {show(v)}"


def each(check: Check, *, nonempty: bool = False) -> Check:
    """Apply ``check`` to every item of a list (optionally requiring a non-empty list)."""

    def run(values: list) -> str | None:
        if nonempty and not values:
            return "must not be empty"
        for i, v in enumerate(values):
            reason = check(v)
            if reason:
                return f"item {i} {reason}"
        return None

    return run

