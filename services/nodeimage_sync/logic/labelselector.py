"""Kubernetes label selectors in their string form (`kubectl get -l`), parsed and matched without the apiserver.

NodeInventory answers selector queries from its cache, so it must read selectors exactly as the apiserver
does (`k8s.io/apimachinery/pkg/labels`): requirements separated by commas, all of which must hold::

    key=value   key==value   key!=value   key in (v1,v2)   key notin (v1,v2)   key   !key

`!=` and `notin` also match objects without the key, as in Kubernetes. Keys and values are checked for the
characters Kubernetes allows, so a selector the apiserver would refuse is refused here too, with a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["InvalidSelector", "Requirement", "Selector", "parse"]

_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|[^\s(),=!]+)")
_SET_OPERATORS = ("in", "notin")
_MAX_VALUE_LENGTH = 63


class InvalidSelector(ValueError):  # noqa: N818 -- reads as the condition, like the apiserver's wording
    """The text is not a valid label selector; the message says where."""


@dataclass(frozen=True)
class Requirement:
    """One requirement: `operator` is one of =, !=, in, notin, exists, !exists."""

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy this requirement."""
        present = self.key in labels
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        if self.operator in ("!=", "notin"):
            return not present or labels[self.key] not in self.values
        return present if self.operator == "exists" else not present


@dataclass(frozen=True)
class Selector:
    """All requirements must hold; no requirements matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy every requirement."""
        return all(requirement.matches(labels) for requirement in self.requirements)


def parse(text: str) -> Selector:
    """Parse a selector in `kubectl -l` syntax; "" selects everything.

    Raises:
        InvalidSelector: the text is not a valid selector.
    """
    tokens = _tokenize(text)
    requirements: list[Requirement] = []
    position = 0
    while position < len(tokens):
        requirement, position = _requirement(tokens, position, text)
        requirements.append(requirement)
        if position < len(tokens):
            if tokens[position] != ",":
                raise InvalidSelector(f"invalid selector {text!r}: expected ',' before {tokens[position]!r}")
            position += 1
            if position == len(tokens):
                raise InvalidSelector(f"invalid selector {text!r}: ends with ','")
    return Selector(tuple(requirements))


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:  # pragma: no cover -- the token pattern accepts every non-space character
            raise InvalidSelector(f"invalid selector {text!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _requirement(tokens: list[str], position: int, text: str) -> tuple[Requirement, int]:
    if tokens[position] == "!":
        key = _key(tokens, position + 1, text)
        return Requirement(key, "!exists"), position + 2
    key = _key(tokens, position, text)
    position += 1
    if position == len(tokens) or tokens[position] == ",":
        return Requirement(key, "exists"), position
    operator = tokens[position]
    if operator in ("=", "==", "!="):
        value = tokens[position + 1] if position + 1 < len(tokens) and tokens[position + 1] not in ",()" else ""
        step = 2 if value else 1
        return Requirement(key, "!=" if operator == "!=" else "=", frozenset({_value(value, text)})), position + step
    if operator in _SET_OPERATORS:
        values, position = _value_set(tokens, position + 1, text)
        return Requirement(key, operator, values), position
    raise InvalidSelector(f"invalid selector {text!r}: unknown operator {operator!r} after {key!r}")


def _key(tokens: list[str], position: int, text: str) -> str:
    key = tokens[position] if position < len(tokens) else ""
    if not _KEY.fullmatch(key) or len(key.rpartition("/")[2]) > _MAX_VALUE_LENGTH:
        raise InvalidSelector(f"invalid selector {text!r}: {key!r} is not a valid label key")
    return key


def _value(value: str, text: str) -> str:
    if not _VALUE.fullmatch(value) or len(value) > _MAX_VALUE_LENGTH:
        raise InvalidSelector(f"invalid selector {text!r}: {value!r} is not a valid label value")
    return value


def _value_set(tokens: list[str], position: int, text: str) -> tuple[frozenset[str], int]:
    if position >= len(tokens) or tokens[position] != "(":
        raise InvalidSelector(f"invalid selector {text!r}: expected '(' after a set operator")
    values: set[str] = set()
    position += 1
    expect_value = True
    while position < len(tokens) and tokens[position] != ")":
        token = tokens[position]
        if token == ",":
            if expect_value:
                values.add("")
            expect_value = True
        else:
            values.add(_value(token, text))
            expect_value = False
        position += 1
    if position >= len(tokens):
        raise InvalidSelector(f"invalid selector {text!r}: missing ')'")
    if expect_value and values:
        values.add("")
    if not values:
        raise InvalidSelector(f"invalid selector {text!r}: a set needs at least one value")
    return frozenset(values), position + 1
