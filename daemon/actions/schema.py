"""The JSON Schema subset action and trigger parameters are declared in, and its validator.

A small validator rather than the `jsonschema` package: the daemon must also *extract*
every argument from a player's words, and it can only extract what it understands. So the
subset is exactly what extraction supports, checked when the character file loads (a
keyword outside it is refused there, not ignored at run time):

    {"type": "object",
     "properties": {"price": {"type": "integer", "minimum": 1, "maximum": 500},
                    "destination": {"type": "string", "enum": ["mill", "bridge"],
                                    "x-aliases": {"mill": ["old mill"]}}},
     "required": ["price"]}

Property types: string, integer, number, boolean; `enum`, `minimum`, `maximum`,
`minLength`, `maxLength`, `description`, and `x-aliases` (more words for an enum value).
Objects never take properties they do not declare (`additionalProperties` is false).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

SCALAR_TYPES = ("string", "integer", "number", "boolean")
_PROPERTY_KEYS = frozenset(
    {"type", "enum", "minimum", "maximum", "minLength", "maxLength", "description", "x-aliases"}
)
_OBJECT_KEYS = frozenset({"type", "properties", "required", "additionalProperties", "description"})


class SchemaError(ValueError):
    """A declared schema outside the supported subset."""


def check_schema(schema: Mapping[str, Any], where: str, *, extractable: bool = True) -> None:
    """Raise SchemaError when `schema` is not an object schema of the supported subset.
    `extractable`: every string needs an enum (an action's arguments come from the
    player's words); a trigger's come from the game and may be free text."""
    if not isinstance(schema, Mapping):
        raise SchemaError(f"{where}: parameters must be a JSON Schema object")
    if not schema:
        return  # no parameters
    unknown = set(schema) - _OBJECT_KEYS
    if unknown:
        raise SchemaError(f"{where}: unsupported schema keyword {sorted(unknown)[0]!r}")
    if schema.get("type", "object") != "object":
        raise SchemaError(f"{where}: parameters must have type 'object'")
    if schema.get("additionalProperties", False) is not False:
        raise SchemaError(f"{where}: additionalProperties must be false (or left out)")
    props = schema.get("properties", {})
    if not isinstance(props, Mapping):
        raise SchemaError(f"{where}: properties must be a mapping")
    for name, prop in props.items():
        _check_property(prop, f"{where}.{name}", extractable)
    required = schema.get("required", [])
    if not isinstance(required, list) or any(r not in props for r in required):
        raise SchemaError(f"{where}: required must list declared properties")


def _check_property(prop: Any, where: str, extractable: bool) -> None:
    if not isinstance(prop, Mapping):
        raise SchemaError(f"{where}: a property must be a mapping")
    unknown = set(prop) - _PROPERTY_KEYS
    if unknown:
        raise SchemaError(f"{where}: unsupported schema keyword {sorted(unknown)[0]!r}")
    kind = prop.get("type")
    if kind not in SCALAR_TYPES:
        raise SchemaError(f"{where}: type must be one of {', '.join(SCALAR_TYPES)}")
    enum = prop.get("enum")
    if enum is not None:
        if not isinstance(enum, list) or not enum:
            raise SchemaError(f"{where}: enum must be a non-empty list")
        for value in enum:
            problem = _type_problem(value, kind)
            if problem:
                raise SchemaError(f"{where}: enum value {value!r} {problem}")
    aliases = prop.get("x-aliases", {})
    if not isinstance(aliases, Mapping) or any(k not in (enum or []) for k in aliases):
        raise SchemaError(f"{where}: x-aliases must map enum values to lists of words")
    for words in aliases.values():
        if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words):
            raise SchemaError(f"{where}: x-aliases must map enum values to lists of words")
    if extractable and kind == "string" and enum is None:
        # free text cannot be taken from the player's words without inventing it
        raise SchemaError(f"{where}: a string parameter needs an enum of the values it may take")


def _type_problem(value: Any, kind: str) -> str | None:
    if kind == "boolean":
        return None if isinstance(value, bool) else "is not a boolean"
    if kind == "string":
        return None if isinstance(value, str) else "is not a string"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"is not {'an integer' if kind == 'integer' else 'a number'}"
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number"
    if kind == "integer" and not float(value).is_integer():
        return "is not an integer"
    return None


def validate(schema: Mapping[str, Any], values: Any) -> str | None:
    """None when `values` satisfies `schema`; else what is wrong, naming the property."""
    if not isinstance(values, Mapping):
        return "parameters must be an object"
    props: Mapping[str, Any] = schema.get("properties", {})
    for name in values:
        if name not in props:
            known = ", ".join(sorted(props)) or "none"
            return f"unknown parameter {name!r} (declared: {known})"
    for name in schema.get("required", []):
        if name not in values:
            return f"missing required parameter {name!r}"
    for name, value in values.items():
        problem = _value_problem(props[name], value)
        if problem:
            return f"parameter {name!r} {problem}"
    return None


def _value_problem(prop: Mapping[str, Any], value: Any) -> str | None:
    kind = prop["type"]
    problem = _type_problem(value, kind)
    if problem:
        return problem
    enum = prop.get("enum")
    if enum is not None and value not in enum:
        return f"must be one of {', '.join(map(str, enum))}"
    if kind in ("integer", "number"):
        if "minimum" in prop and value < prop["minimum"]:
            return f"must be at least {prop['minimum']}"
        if "maximum" in prop and value > prop["maximum"]:
            return f"must be at most {prop['maximum']}"
    if kind == "string":
        if "minLength" in prop and len(value) < prop["minLength"]:
            return f"must be at least {prop['minLength']} characters"
        if "maxLength" in prop and len(value) > prop["maxLength"]:
            return f"must be at most {prop['maxLength']} characters"
    return None
