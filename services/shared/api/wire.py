"""The JSON wire form of our API objects: one codec shared by every frozen dataclass in this package.

Each API type is a frozen, keyword-only dataclass deriving from `WireObject`. The codec reads the field
annotations and turns the apiserver's JSON (camelCase keys) into typed values and back, so the per-kind
modules declare fields and nothing else. Rules, chosen to mirror the Go types (and their `json` tags)
that OpenKruise clients use, so that what a Go client writes round-trips unchanged:

* JSON name: the attribute in camelCase (`ttl_seconds_after_finished` → `ttlSecondsAfterFinished`), or the
  name given with `field(metadata=renamed("imageID"))` where Go's spelling differs.
* Required (no default): must be present; missing or `null` raises `InvalidObjectError`. Always written.
* Optional, default `None` (Go pointers, slices and maps): absent stays `None` and is not written, so
  "unset" and "set to the default value" stay distinguishable, and so do an absent list and `[]`.
* Default `""`/`0`/`False` (Go non-pointer `omitempty` scalars, like a tag's `version`): absent reads as
  the zero value, and the zero value is not written, exactly like Go. Mark a field `ALWAYS_WRITTEN`
  for Go fields without `omitempty` (`status.active`).
* `null` counts as absent (the apiserver prunes nulls from CRD objects anyway).
* Keys we do not model are kept in `extra` at every level and written back on output, so a newer
  schema (or another controller's field) survives a read-modify-write by an older binary.
* Timestamps are `datetime`s (see `timefmt`); lists are tuples and maps are read-only mappings.
  `from_dict` and `to_dict` copy, so neither side shares mutable state with the other. Values compare by
  content; those holding a mapping are not hashable (key sets by name or UID instead).

Supported annotations: `str`, `int`, `bool`, `datetime`, `WireObject` subclasses, `tuple[X, ...]`,
`Mapping[str, X]`, `int | str` (IntOrString), `Any` (raw JSON) and `X | None`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Final, Self, TypeVar

from services.shared.api import timefmt
from services.shared.canonical import Canonical

__all__ = [
    "ALWAYS_WRITTEN",
    "InvalidObjectError",
    "WireField",
    "WireObject",
    "renamed",
    "wire_fields",
]

_JSON_NAME: Final = "json_name"
_ALWAYS: Final = "always_written"

ALWAYS_WRITTEN: Final[Mapping[str, Any]] = types.MappingProxyType({_ALWAYS: True})
"""Field metadata for a zero-default scalar that Go writes even when zero (no `omitempty`)."""

_T = TypeVar("_T", bound="WireObject")


class InvalidObjectError(ValueError):
    """The JSON does not fit our types; `path` says where (e.g. `spec.images['ubuntu'].tags[0].tag`)."""

    def __init__(self, path: str, problem: str) -> None:
        """Record where the object is wrong and how."""
        super().__init__(f"{path or '<object>'}: {problem}")
        self.path = path
        self.problem = problem


def renamed(json_name: str) -> Mapping[str, Any]:
    """Field metadata giving the JSON name when it is not the camelCase of the attribute."""
    return types.MappingProxyType({_JSON_NAME: json_name})


@dataclass(frozen=True)
class WireField:
    """How one dataclass attribute appears in JSON; also what the CRD contract test walks."""

    attribute: str
    json_name: str
    annotation: Any
    required: bool
    omit_empty: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class WireObject:
    """Base of every API type: JSON conversion plus the unmodelled keys of this level."""

    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """Keys of this JSON object that no attribute models, written back unchanged by `to_dict`."""

    SHARED: ClassVar[bool] = False
    """Decoded values of this type are shared: equal ones decode to one object (`canonical`). Set on
    small value types that repeat across objects (a job's owner reference is on every node's NodeImage)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Parse the JSON object (as returned by the apiserver) into this type.

        Raises:
            InvalidObjectError: a required field is missing or a value has the wrong type.
        """
        try:
            return _decode_object(cls, data)
        except _DecodeError as invalid:
            raise InvalidObjectError(invalid.where.removeprefix("."), invalid.problem) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object for this value, with `extra` keys merged back in."""
        return _encode_object(self)


_FIELDS_BY_TYPE: dict[type[WireObject], tuple[WireField, ...]] = {}


def wire_fields(cls: type[WireObject]) -> tuple[WireField, ...]:
    """The JSON-visible fields of an API type, in declaration order (`extra` excluded); computed once per type."""
    cached = _FIELDS_BY_TYPE.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls)
        cached = tuple(_wire_field(f, hints[f.name]) for f in dataclasses.fields(cls) if f.name != "extra")
        _FIELDS_BY_TYPE[cls] = cached
    return cached


def _wire_field(dc_field: dataclasses.Field[Any], annotation: Any) -> WireField:
    required = dc_field.default is dataclasses.MISSING and dc_field.default_factory is dataclasses.MISSING
    zero_default = not required and dc_field.default is not None and dc_field.default is not dataclasses.MISSING
    return WireField(
        attribute=dc_field.name,
        json_name=dc_field.metadata.get(_JSON_NAME, _camel_case(dc_field.name)),
        annotation=annotation,
        required=required,
        omit_empty=zero_default and not dc_field.default and not dc_field.metadata.get(_ALWAYS, False),
    )


def _camel_case(attribute: str) -> str:
    first, *rest = attribute.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _encode_object(obj: WireObject) -> dict[str, Any]:
    """The JSON object for `obj`: set fields first, then `extra` keys that no field claims."""
    out: dict[str, Any] = {}
    known: set[str] = set()
    for wire_field in wire_fields(type(obj)):
        known.add(wire_field.json_name)
        value = getattr(obj, wire_field.attribute)
        if value is None or (wire_field.omit_empty and not value):
            continue
        out[wire_field.json_name] = _encode(value)
    out.update({key: copy.deepcopy(value) for key, value in obj.extra.items() if key not in known})
    return out


class _DecodeError(Exception):
    """A decoding failure on its way up: `where` grows a step at each level, so the happy path builds no paths."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem

    def under(self, step: str) -> _DecodeError:
        """The same failure seen one level up, from where `step` (`.name`, `[0]`, `['key']`) leads down to it."""
        return _DecodeError(step + self.where, self.problem)


_Decoder = Callable[[Any], Any]
"""Turns one JSON value into its Python value; raises `_DecodeError` with the path below it."""

_DECODERS: dict[Any, _Decoder] = {}
_PLANS: dict[type[WireObject], tuple[tuple[str, str, bool, _Decoder], ...]] = {}
_NO_EXTRA: Final[Mapping[str, Any]] = types.MappingProxyType({})
"""Shared by every decoded object without unmodelled keys: thousands of cached objects need no empty dict each."""


_SHARED: Final[Canonical[tuple[Any, ...], Any]] = Canonical()
"""Decoded values of the `SHARED` types, keyed by type and fields, and tuples of them, keyed by their items'
identities (shared items, so equal tuples hold the same objects)."""


def _decoder(annotation: Any) -> _Decoder:
    """The decoder for an annotation, built once: a NodeImage with hundreds of tags is decoded field by field
    on every change, and re-reading the annotations each time was most of the cost."""
    decoder = _DECODERS.get(annotation)
    if decoder is None:
        decoder = _build_decoder(annotation)
        _DECODERS[annotation] = decoder
    return decoder


def _build_decoder(annotation: Any) -> _Decoder:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return copy.deepcopy
    if origin in (typing.Union, types.UnionType):
        return _union_decoder(typing.get_args(annotation))
    if origin is tuple:
        return _list_decoder(typing.get_args(annotation)[0])
    if origin is Mapping:
        return _map_decoder(typing.get_args(annotation)[1])
    if annotation is datetime:
        return _decode_time
    if isinstance(annotation, type) and issubclass(annotation, WireObject):
        return functools.partial(_decode_object, annotation)
    if annotation is str:
        return _decode_str
    if annotation in (int, bool):
        return functools.partial(_check_scalar, annotation)
    raise TypeError(f"annotation {annotation!r} is not supported by the wire codec")


def _decode_object(cls: type[_T], data: Any) -> _T:
    """Build `cls` from a JSON object; unknown keys go to `extra`."""
    if not isinstance(data, Mapping):
        raise _DecodeError("", f"expected an object, got {_json_type(data)}")
    values: dict[str, Any] = {}
    for attribute, json_name, required, decode in _plan(cls):
        raw = data.get(json_name)
        if raw is None:
            if required:
                raise _DecodeError("." + json_name, "required field is missing")
            continue
        try:
            values[attribute] = decode(raw)
        except _DecodeError as invalid:
            raise invalid.under("." + json_name) from None
    if len(values) == len(data):
        if cls.SHARED:
            return _SHARED.get((cls, *values.items()), lambda: cls(**values, extra=_NO_EXTRA))  # type: ignore[no-any-return]
        return cls(**values, extra=_NO_EXTRA)
    known = _known_names(cls)
    extra = {key: copy.deepcopy(value) for key, value in data.items() if key not in known}
    return cls(**values, extra=extra or _NO_EXTRA)


def _plan(cls: type[WireObject]) -> tuple[tuple[str, str, bool, _Decoder], ...]:
    """(attribute, JSON name, required, decoder) per field of `cls`, computed once per type."""
    plan = _PLANS.get(cls)
    if plan is None:
        plan = tuple((f.attribute, f.json_name, f.required, _decoder(f.annotation)) for f in wire_fields(cls))
        _PLANS[cls] = plan
    return plan


def _known_names(cls: type[WireObject]) -> frozenset[str]:
    return frozenset(json_name for _, json_name, _, _ in _plan(cls))


def _union_decoder(members: tuple[Any, ...]) -> _Decoder:
    """`X | None` decodes as X; `int | str` (IntOrString) keeps whichever of the two it gets."""
    choices = [member for member in members if member is not type(None)]
    if len(choices) == 1:
        return _decoder(choices[0])
    if all(choice in (str, int) for choice in choices):
        return _decode_int_or_string
    raise TypeError(f"union {members!r} is not supported by the wire codec")


def _decode_int_or_string(value: Any) -> Any:
    if isinstance(value, str) or _is_int(value):
        return value
    raise _DecodeError("", f"expected an integer or a string, got {_json_type(value)}")


def _list_decoder(item: Any) -> _Decoder:
    decode_item = _decoder(item)

    def decode_list(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise _DecodeError("", f"expected a list, got {_json_type(value)}")
        decoded = []
        for index, element in enumerate(value):
            try:
                decoded.append(decode_item(element))
            except _DecodeError as invalid:
                raise invalid.under(f"[{index}]") from None
        if shares:
            return _SHARED.get((tuple, *map(id, decoded)), lambda: tuple(decoded))  # type: ignore[no-any-return]
        return tuple(decoded)

    shares = isinstance(item, type) and issubclass(item, WireObject) and item.SHARED
    return decode_list


def _map_decoder(item: Any) -> _Decoder:
    decode_item = _decoder(item)

    def decode_map(value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise _DecodeError("", f"expected an object, got {_json_type(value)}")
        decoded = {}
        for key, element in value.items():
            try:
                decoded[sys.intern(key) if type(key) is str else key] = decode_item(element)
            except _DecodeError as invalid:
                raise invalid.under(f"[{key!r}]") from None
        return decoded

    return decode_map


def _decode_str(value: Any) -> str:
    """Strings are interned: image names, tags, phases and owners repeat on every node's NodeImage, and a
    scheduler caching thousands of them keeps one copy of each."""
    if not isinstance(value, str):
        raise _DecodeError("", f"expected {_JSON_TYPE_NAMES[str]}, got {_json_type(value)}")
    return sys.intern(value) if type(value) is str else value


def _decode_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _DecodeError("", f"expected an RFC 3339 timestamp, got {_json_type(value)}")
    try:
        return _parse_time(value)
    except ValueError as error:
        raise _DecodeError("", str(error)) from error


@functools.lru_cache(maxsize=4096)
def _parse_time(text: str) -> datetime:
    """Timestamps repeat (a round started on many nodes in the same second); datetimes are immutable."""
    return timefmt.parse_time(text)


def _check_scalar(expected: type, value: Any) -> Any:
    matches = _is_int(value) if expected is int else isinstance(value, expected)
    if not matches:
        raise _DecodeError("", f"expected {_JSON_TYPE_NAMES[expected]}, got {_json_type(value)}")
    return value


def _is_int(value: Any) -> bool:
    """JSON integers only: `True` is a bool, not 1, and `1.5` is not an integer."""
    return isinstance(value, int) and not isinstance(value, bool)


def _encode(value: Any) -> Any:
    """Convert one Python value back to JSON."""
    if isinstance(value, WireObject):
        return _encode_object(value)
    if isinstance(value, datetime):
        return timefmt.format_time(value)
    if isinstance(value, list | tuple):
        return [_encode(element) for element in value]
    if isinstance(value, Mapping):
        return {key: _encode(element) for key, element in value.items()}
    return copy.deepcopy(value)


_JSON_TYPE_NAMES: Final[Mapping[type, str]] = {
    str: "a string",
    int: "an integer",
    bool: "a boolean",
    float: "a number",
    list: "a list",
    tuple: "a list",
    dict: "an object",
    type(None): "null",
}


def _json_type(value: Any) -> str:
    """How to name the JSON type of a value in an error message."""
    for python_type, name in _JSON_TYPE_NAMES.items():
        if isinstance(value, python_type) and not (python_type is int and isinstance(value, bool)):
            return name
    return type(value).__name__
