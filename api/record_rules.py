"""What a record's `data` may be: storable identically on SQLite and PostgreSQL, and within
COFFER_MAX_RECORD_BYTES. Request schemas check a body with these; the record statements check
what a merge patch makes. And what a collection may be named, and which parameters of a
record list are filters (the list language, api/query, reads those)."""

import re

import orjson
from flask import current_app
from marshmallow import ValidationError

MAX_NESTING = 64
COLLECTION_PATTERN = "^[a-z][a-z0-9_-]{0,63}$"
COLLECTION_NAME = re.compile(COLLECTION_PATTERN)
TIMESTAMPS = ("created_at", "updated_at")  # a record's columns that a list may filter on
# Stored numbers lie in [-2^63, 2^63): SQLite's integers, exact on both databases.
_INT64 = 2**63


def in_int64(number: int | float) -> bool:
    """Whether a number lies in the range of 64-bit integers, which records may store."""
    return -_INT64 <= number < _INT64


def is_filter(name: str) -> bool:
    """Whether a query parameter of a record list names a filter (the list schema validates
    the others; docs/query-language.md)."""
    return name in TIMESTAMPS or name.startswith("data.")


def content_problem(value: object) -> str | None:
    """Why a JSON value cannot be stored identically on SQLite and PostgreSQL, or None.

    PostgreSQL's JSONB refuses U+0000 in strings; numbers beyond 64 bits are exact on one
    database and rounded on the other; deep nesting overflows the JSON encoders.
    """
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            return f"Must not nest objects and arrays more than {MAX_NESTING} levels deep."
        if isinstance(node, dict):
            if any("\x00" in key for key in node):
                return "Keys must not contain U+0000."
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
        elif isinstance(node, str) and "\x00" in node:
            return "Strings must not contain U+0000."
        elif isinstance(node, int | float) and not isinstance(node, bool):
            if not in_int64(node):
                return "Numbers must lie between -2^63 and 2^63."
    return None


def size_problem(data: dict) -> str | None:
    """Why `data` is too large (its compact JSON is over COFFER_MAX_RECORD_BYTES), or None."""
    limit = current_app.config["COFFER_MAX_RECORD_BYTES"]
    if len(orjson.dumps(data)) > limit:
        return f"Must be at most {limit} bytes as compact JSON."
    return None


def check_record_size(data: dict) -> None:
    """422 on `data` when it is too large (a merge patch's result, say)."""
    problem = size_problem(data)
    if problem:
        raise ValidationError({"data": [problem]})
