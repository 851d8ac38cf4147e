"""Parsing: query parameters into a Listing of filters and sort keys (docs/query-language.md)."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from werkzeug.datastructures import MultiDict

from api.errors import InvalidRequest
from api.query.dialects import CONTAINER, NUMBER, STRING, int64_or_float, rank_of
from api.record_rules import TIMESTAMPS, is_filter

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in")
RANGE_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})
COLUMNS = (*TIMESTAMPS, "id")
DEFAULT_SORT = "-created_at"
SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_DEPTH = 8
MAX_FILTERS = 20
MAX_IN_ITEMS = 100
MAX_SORT_KEYS = 4


@dataclass(frozen=True)
class Filter:
    field: str  # "created_at", "updated_at" or "data.<path>"
    op: str
    values: tuple  # the operand; every item of `in`


@dataclass(frozen=True)
class SortKey:
    field: str  # "created_at", "updated_at", "id" or "data.<path>"
    descending: bool


@dataclass(frozen=True)
class Listing:
    filters: tuple[Filter, ...]
    sort: tuple[SortKey, ...]  # always includes id, the final tie-breaker


def bad_parameter(param: str, message: str) -> InvalidRequest:
    """A 400 that names the query parameter at fault."""
    return InvalidRequest(message, errors={param: [message]})


def parse(args: MultiDict, *, sort: str | None) -> Listing:
    """The filters among `args` (other parameters are the list schema's) and the sort."""
    filters = []
    for name, texts in args.lists():
        if not is_filter(name):
            if len(texts) > 1:
                raise bad_parameter(name, f"{name} may be given only once.")
            continue
        filters.extend(_parse_filter(name, text) for text in texts)
    if len(filters) > MAX_FILTERS:
        raise bad_parameter("data", f"At most {MAX_FILTERS} filters are allowed.")
    return Listing(filters=tuple(filters), sort=parse_sort(sort))


def path_of(field: str, param: str) -> tuple[str, ...]:
    """The key segments of a `data.<path>` field; 400 when the path is not valid."""
    segments = tuple(field.split(".")[1:])
    if not 0 < len(segments) <= MAX_DEPTH or not all(SEGMENT.fullmatch(s) for s in segments):
        raise bad_parameter(
            param,
            f"{field!r} is not a valid field path: data.<key>[.<key>…], up to {MAX_DEPTH} keys "
            "of 1-64 characters among A-Z a-z 0-9 _ -.",
        )
    return segments


def _parse_filter(name: str, text: str) -> Filter:
    if name.startswith("data."):
        path_of(name, name)
    op, dot, operand = text.partition(".")
    if not dot or op not in OPERATORS:
        raise bad_parameter(
            name,
            f"Filter {name}={text!r} needs <operator>.<value> with an operator among "
            f"{', '.join(OPERATORS)}.",
        )
    values = _items(name, operand) if op == "in" else (_scalar(name, operand),)
    if name in TIMESTAMPS:
        values = tuple(_timestamp(name, value) for value in values)
    else:
        _check_types(name, op, values)
    return Filter(field=name, op=op, values=values)


def _scalar(param: str, text: str) -> object:
    """A filter value: JSON when it parses, else the text itself."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    if "\x00" in text or (isinstance(value, str) and "\x00" in value):
        raise bad_parameter(param, "Filter values must not contain U+0000.")
    return int64_or_float(value)  # beyond every stored integer either way


def _items(param: str, operand: str) -> tuple:
    """The items of `in.(…)`: split on commas, except inside an item that opens with `"`."""
    if len(operand) < 2 or operand[0] != "(" or operand[-1] != ")":
        raise bad_parameter(
            param, f"The in operator takes a list in parentheses: {param}=in.(a,b)."
        )
    inner = operand[1:-1]
    if not inner:
        return ()
    items, start, quoted, escaped = [], 0, False, False
    for index, char in enumerate(inner):
        if escaped:
            escaped = False
        elif quoted:
            escaped, quoted = char == "\\", char != '"'
        elif char == '"' and index == start:
            quoted = True
        elif char == ",":
            items.append(inner[start:index])
            start = index + 1
    if quoted:
        raise bad_parameter(param, f"Unterminated double quote in {param}=in.{operand}.")
    items.append(inner[start:])
    if len(items) > MAX_IN_ITEMS:
        raise bad_parameter(param, f"The in operator takes at most {MAX_IN_ITEMS} items.")
    return tuple(_scalar(param, item) for item in items)


def _timestamp(param: str, value: object) -> datetime:
    message = (
        f"{param} filters take RFC 3339 timestamps with a time zone, e.g. 2026-01-01T00:00:00Z."
    )
    if not isinstance(value, str):
        raise bad_parameter(param, message)
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise bad_parameter(param, message) from None


def _check_types(param: str, op: str, values: tuple) -> None:
    for value in values:
        if rank_of(value) == CONTAINER:
            raise bad_parameter(
                param, "Objects and arrays cannot be compared; filter on a key inside them."
            )
        if op in RANGE_OPERATORS and rank_of(value) not in (NUMBER, STRING):
            raise bad_parameter(param, f"The {op} operator compares numbers or strings only.")


def parse_sort(text: str | None) -> tuple[SortKey, ...]:
    """`?sort=` as keys, completed by a tie-breaker on id in the direction of the last key."""
    keys: list[SortKey] = []
    for item in (DEFAULT_SORT if text is None else text).split(","):
        descending = item.startswith("-")
        field = item[1:] if descending else item
        if field.startswith("data."):
            path_of(field, "sort")
        elif field not in COLUMNS:
            raise bad_parameter(
                "sort",
                f"Unknown sort key {item!r}: sort by created_at, updated_at, id or data.<path>, "
                "with - for descending.",
            )
        if any(key.field == field for key in keys):
            raise bad_parameter("sort", f"The sort key {field} is given twice.")
        keys.append(SortKey(field, descending))
    if len(keys) > MAX_SORT_KEYS:
        raise bad_parameter("sort", f"At most {MAX_SORT_KEYS} sort keys are allowed.")
    if all(key.field != "id" for key in keys):
        keys.append(SortKey("id", keys[-1].descending))
    return tuple(keys)
