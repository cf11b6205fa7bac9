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
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Self, TypeVar

from services.shared.api import timefmt

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


@dataclass(frozen=True, kw_only=True)
class WireObject:
    """Base of every API type: JSON conversion plus the unmodelled keys of this level."""

    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """Keys of this JSON object that no attribute models, written back unchanged by `to_dict`."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Parse the JSON object (as returned by the apiserver) into this type.

        Raises:
            InvalidObjectError: a required field is missing or a value has the wrong type.
        """
        return _decode_object(cls, data, path="")

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


def _decode_object(cls: type[_T], data: Any, path: str) -> _T:
    """Build `cls` from a JSON object; unknown keys go to `extra`."""
    if not isinstance(data, Mapping):
        raise InvalidObjectError(path, f"expected an object, got {_json_type(data)}")
    values: dict[str, Any] = {}
    known: set[str] = set()
    for wire_field in wire_fields(cls):
        known.add(wire_field.json_name)
        raw = data.get(wire_field.json_name)
        field_path = f"{path}.{wire_field.json_name}" if path else wire_field.json_name
        if raw is None:
            if wire_field.required:
                raise InvalidObjectError(field_path, "required field is missing")
            continue
        values[wire_field.attribute] = _decode(wire_field.annotation, raw, field_path)
    extra = {key: copy.deepcopy(value) for key, value in data.items() if key not in known}
    return cls(**values, extra=extra)


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


def _decode(annotation: Any, value: Any, path: str) -> Any:
    """Convert one JSON value to the Python value its annotation asks for."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return copy.deepcopy(value)
    if origin in (typing.Union, types.UnionType):
        return _decode_union(typing.get_args(annotation), value, path)
    if origin is tuple:
        return _decode_list(typing.get_args(annotation)[0], value, path)
    if origin is Mapping:
        return _decode_map(typing.get_args(annotation)[1], value, path)
    if annotation is datetime:
        return _decode_time(value, path)
    if isinstance(annotation, type) and issubclass(annotation, WireObject):
        return _decode_object(annotation, value, path)
    if annotation in (str, int, bool):
        return _check_scalar(annotation, value, path)
    raise TypeError(f"{path}: annotation {annotation!r} is not supported by the wire codec")


def _decode_union(members: tuple[Any, ...], value: Any, path: str) -> Any:
    """`X | None` decodes as X; `int | str` (IntOrString) keeps whichever of the two it gets."""
    if value is None and type(None) in members:
        return None
    choices = [member for member in members if member is not type(None)]
    if len(choices) == 1:
        return _decode(choices[0], value, path)
    if all(choice in (str, int) for choice in choices):
        if isinstance(value, str) or _is_int(value):
            return value
        raise InvalidObjectError(path, f"expected an integer or a string, got {_json_type(value)}")
    raise TypeError(f"{path}: union {members!r} is not supported by the wire codec")


def _decode_list(item: Any, value: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise InvalidObjectError(path, f"expected a list, got {_json_type(value)}")
    return tuple(_decode(item, element, f"{path}[{index}]") for index, element in enumerate(value))


def _decode_map(item: Any, value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidObjectError(path, f"expected an object, got {_json_type(value)}")
    return {key: _decode(item, element, f"{path}[{key!r}]") for key, element in value.items()}


def _decode_time(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidObjectError(path, f"expected an RFC 3339 timestamp, got {_json_type(value)}")
    try:
        return timefmt.parse_time(value)
    except ValueError as error:
        raise InvalidObjectError(path, str(error)) from error


def _check_scalar(expected: type, value: Any, path: str) -> Any:
    matches = _is_int(value) if expected is int else isinstance(value, expected)
    if not matches:
        raise InvalidObjectError(path, f"expected {_JSON_TYPE_NAMES[expected]}, got {_json_type(value)}")
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
