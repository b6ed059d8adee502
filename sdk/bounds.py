"""The one bound on numbers and nesting for everything a client sends.

    data = loads_json(text)          # BoundsError or ValueError, never anything else
    check(msgpack.unpackb(frame))    # the same bounds on an already decoded value

Applied once at each decoding boundary: the WebSocket framings (`framing.py`, JSON and
msgpack alike) and the daemon's REST bodies. Past it, no handler meets an integer of
thousands of digits (Python refuses to parse those with a ValueError of its own), an
infinite float (`1e400`), an offset of 10^30 that overflows a C integer, or nesting deep
enough to exhaust the stack in a validator.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: integers and floats beyond this magnitude are refused: the largest integer a
#: JavaScript client can hold exactly, and far past any offset, count or id in the protocol
MAX_NUMBER = 2**53 - 1
#: containers (objects, arrays, maps) inside one another; events use fewer than 8
MAX_DEPTH = 32
_MAX_INT_CHARS = len(str(MAX_NUMBER)) + 1  # sign


class BoundsError(ValueError):
    """A value past the bounds. `code`: `number_out_of_range` or `too_deep`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _out_of_range(text: str) -> BoundsError:
    shown = text if len(text) <= 24 else f"{text[:12]}...({len(text)} characters)"
    return BoundsError(
        "number_out_of_range", f"number {shown} is out of range (at most ±{MAX_NUMBER})"
    )


def _parse_int(text: str) -> int:
    # checked on the text: int() of a 100,000-digit string is itself the attack
    if len(text) > _MAX_INT_CHARS or abs(value := int(text)) > MAX_NUMBER:
        raise _out_of_range(text)
    return value


def _parse_float(text: str) -> float:
    value = float(text[:64]) if len(text) <= 64 else math.inf
    if not math.isfinite(value) or abs(value) > MAX_NUMBER:
        raise _out_of_range(text)
    return value


def _refuse_constant(name: str) -> Any:
    raise BoundsError("number_out_of_range", f"{name} is not a number the protocol accepts")


def loads_json(text: str | bytes) -> Any:
    """`json.loads` with the bounds. Raises BoundsError, or ValueError for bad JSON."""
    try:
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except RecursionError:
        raise BoundsError("too_deep", f"nesting deeper than {MAX_DEPTH} levels") from None
    check_depth(value)
    return value


def check(value: Any) -> Any:
    """Numbers and depth of a decoded value (msgpack's); returns it unchanged."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            if abs(item) > MAX_NUMBER:
                raise _out_of_range(str(item))
        elif isinstance(item, float):
            if not math.isfinite(item) or abs(item) > MAX_NUMBER:
                raise _out_of_range(repr(item))
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_DEPTH:
                raise BoundsError("too_deep", f"nesting deeper than {MAX_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return value


def check_depth(value: Any) -> None:
    """The depth bound alone (numbers parsed by `loads_json` are already bounded)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise BoundsError("too_deep", f"nesting deeper than {MAX_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
