"""Coffer's documented rules for data (docs/query-language.md): what a filter matches and how
a sort orders records, computed in plain Python, independently of api/query/. The oracle that
the list tests compare the API's answers with."""

import functools
import operator

RANGE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def kind(value) -> int:
    """The rank of a value's type in the order: numbers, strings, booleans, objects and
    arrays, null (a missing field)."""
    if value is None:
        return 4
    if isinstance(value, bool):
        return 2
    if isinstance(value, int | float):
        return 0
    return 1 if isinstance(value, str) else 3


def at(record: dict, field: str):
    """The value of `field` (`id`, `created_at`, `updated_at` or `data.…`); None if missing."""
    if field in ("created_at", "updated_at", "id"):
        return record[field]
    node = record["data"]
    for segment in field.split(".")[1:]:
        node = node.get(segment) if isinstance(node, dict) else None
    return node


def matches(value, op, operand) -> bool:
    if op == "in":
        return any(matches(value, "eq", item) for item in operand)
    if op == "eq":
        if operand is None:
            return value is None
        return kind(value) == kind(operand) and value == operand
    if op == "ne":
        if value is None:
            return False
        return operand is None or kind(value) != kind(operand) or value != operand
    return kind(value) == kind(operand) and RANGE[op](value, operand)


def ordered(records: list[dict], sort: str) -> list:
    """The ids of `records` in the order that `sort` (the `sort` parameter) gives them."""
    keys = [(k.lstrip("-"), k.startswith("-")) for k in sort.split(",")]
    if all(field != "id" for field, _ in keys):
        keys.append(("id", keys[-1][1]))

    def sort_value(record, field):
        value = at(record, field)
        if not field.startswith("data."):
            return value
        typed = value if kind(value) in (0, 1) else int(value) if kind(value) == 2 else 0
        return kind(value), typed

    def compare(a, b):
        for field, descending in keys:
            x, y = sort_value(a, field), sort_value(b, field)
            if x != y:
                return (-1 if x < y else 1) * (-1 if descending else 1)
        return 0

    return [r["id"] for r in sorted(records, key=functools.cmp_to_key(compare))]
