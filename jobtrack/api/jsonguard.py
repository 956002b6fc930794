"""Checks that keep hostile JSON out: nesting depth (on the raw body, before anything
parses it) and values the database and the wire cannot hold (after parsing).

Python's JSON parser accepts what jobtrack cannot store or send back: numbers beyond
64 bits, ``NaN``, strings with unpaired surrogates or NUL characters. Each becomes a 422
naming the field here, instead of a failure while writing. An integer too long for the
parser itself to read (more than ``sys.get_int_max_str_digits()`` digits) is refused
before parsing, as too large, not as unreadable.

The nesting of a body is bounded before parsing: 64 levels for a value (a job's data),
and a flow's tree more, since each of its levels is two levels of JSON (the job, its
``children``): :func:`body_depth_limit` follows ``JOBTRACK_FLOW_MAX_DEPTH``.
"""

import math
import re
import sys
from typing import Any, Final

#: deepest nesting of arrays and objects accepted in a value (a job's data, a result)
MAX_JSON_DEPTH: Final = 64
#: deepest request body, whatever the flow depth: as deep as the answers can be (orjson
#: writes at most 254 levels), well within what the parser and validators handle
MAX_BODY_DEPTH: Final = 254
_INT64: Final = 2**63

_DELETE_ALL_BUT_STRUCTURE: Final = bytes(b for b in range(256) if b not in b'"[]{}')
_STRING: Final = re.compile(rb'"[^"]*"')
_OPEN: Final = frozenset(b"[{")


def body_depth_limit(flow_max_depth: int) -> int:
    """Deepest request body accepted: a flow ``flow_max_depth`` levels deep (two JSON
    levels each) whose deepest job carries data nested ``MAX_JSON_DEPTH`` levels, at
    most ``MAX_BODY_DEPTH``."""
    return min(MAX_BODY_DEPTH, 2 * flow_max_depth + MAX_JSON_DEPTH)


_NUMBER: Final = re.compile(rb"-?\d+(\.\d+)?([eE][+-]?\d+)?")


def unreadable_integer(body: bytes) -> int | None:
    """The digit count of an integer in ``body`` (JSON text) too long for Python's parser
    to read, or None. Digits in strings, fractions and exponents do not count."""
    limit = sys.get_int_max_str_digits()
    if not limit or len(body) <= limit:
        return None
    if re.search(rb"\d{%d}" % (limit + 1), body) is None:  # the common case, in C
        return None
    text = _STRING.sub(b'""', body.replace(b"\\\\", b"").replace(b'\\"', b""))
    for number in _NUMBER.finditer(text):
        if number.group(1) is None and number.group(2) is None:
            digits = len(number.group()) - number.group().startswith(b"-")
            if digits > limit:
                return digits
    return None


def too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``body`` (JSON text) nests arrays/objects more than ``limit`` deep.

    Brackets inside strings do not count. Runs in C for the most part; a body with no
    more than ``limit`` opening brackets is passed without a scan.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    # drop escaped backslashes, then escaped quotes: every '"' left delimits a string
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    text = text.translate(None, _DELETE_ALL_BUT_STRUCTURE)
    text = _STRING.sub(b"", text)
    depth = 0
    for byte in text:
        if byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif byte != 0x22:
            depth -= 1
    return False


def problem(value: Any, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why a parsed JSON value cannot be stored, or None when it can."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            bad = text_problem(item)
            if bad:
                return bad
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -_INT64 <= item < _INT64:
                return "integers must fit in 64 bits"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "numbers must be finite (no NaN or Infinity)"
        elif isinstance(item, dict | list):
            if depth > limit:
                return f"JSON nests deeper than {limit} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    stack.append((key, depth))
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        else:
            return f"unsupported JSON value of type {type(item).__name__}"
    return None


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored (NUL, unpaired surrogates), or None."""
    if "\x00" in value:
        return "text must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "text must be valid Unicode (no unpaired surrogates)"
    return None
