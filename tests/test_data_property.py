"""Property: for any records, filters and sort, walking the API's pages gives exactly what the
documented rules give when computed in plain Python (docs/query-language.md is the spec)."""

import functools
import itertools
import operator
import uuid
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uuid6 import uuid7

from api.extensions import db
from api.models import Record

FIELDS = ("data.a", "data.b", "data.c.x", "data.zz")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
STAMPS = [EPOCH + timedelta(milliseconds=n) for n in (0, 1, 1, 7, 250)]  # ties on purpose
RANGE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
_collections = itertools.count()

# Values are drawn type first, from pools that collide across types (1, 1.0, "1", true, …),
# so that one field often mixes every type; then arbitrary numbers and text.
NUMBERS = [0, 1, -1, 1.0, 1.5, -0.0, 2**53 + 1, float(2**53), 2**63 - 1, -(2**63)]
STRINGS = ["", "a", "B", "b", "é", "1", "null", "x,y", 'q"t', "(a)", "😀", "\uffff"]
text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=6)
numbers = st.integers(-(2**63), 2**63 - 1) | st.floats(
    min_value=-1e18, max_value=1e18, allow_nan=False, allow_infinity=False
)
orderables = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(STRINGS), numbers, text)
pooled = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(STRINGS), st.booleans(), st.none())
scalars = st.one_of(pooled, pooled, pooled, numbers, text)
values = st.one_of(
    scalars,
    scalars,
    scalars,
    st.dictionaries(st.sampled_from(["x", "y"]), scalars, max_size=2),
    st.lists(scalars, max_size=2),
)
datas = st.fixed_dictionaries({"a": values}, optional={"b": values, "c": values})
rows = st.tuples(datas, st.sampled_from(STAMPS), st.sampled_from(STAMPS))


@st.composite
def operands(draw, op):
    if op in RANGE:
        return draw(orderables)
    if op == "in":
        return draw(st.lists(scalars, max_size=3))
    return draw(scalars)


@st.composite
def filters(draw):
    field = draw(st.sampled_from((*FIELDS, "created_at", "updated_at")))
    op = draw(st.sampled_from(("eq", "ne", *RANGE, "in")))
    if field.startswith("data."):
        return field, op, draw(operands(op))
    if op == "in":
        return field, op, draw(st.lists(st.sampled_from(STAMPS), min_size=1, max_size=2))
    return field, op, draw(st.sampled_from(STAMPS))


@st.composite
def sorts(draw):
    fields = draw(
        st.lists(
            st.sampled_from(("data.a", "data.a", "data.a", *FIELDS, "created_at", "id")),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    return ",".join(("-" if draw(st.booleans()) else "") + field for field in fields)


# --- the query string, written the way a client would --------------------------------------


def encoded(value, plain: bool) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, str) and plain and _plain_safe(value):
        return value
    return orjson.dumps(value).decode() if not isinstance(value, float) else repr(value)


def _plain_safe(value: str) -> bool:
    """A string a client may send unquoted: it must not parse as JSON nor hold a comma."""
    try:
        orjson.loads(value)
        return False
    except orjson.JSONDecodeError:
        return "," not in value and not value.startswith('"')


def query_string(flt, plain: bool) -> tuple[str, str]:
    field, op, operand = flt
    if op == "in":
        return field, "in.(" + ",".join(encoded(v, plain) for v in operand) + ")"
    return field, f"{op}.{encoded(operand, plain)}"


# --- the rules, in plain Python -------------------------------------------------------------


def kind(value) -> int:
    if value is None:
        return 4
    if isinstance(value, bool):
        return 2
    if isinstance(value, int | float):
        return 0
    return 1 if isinstance(value, str) else 3


def at(record: dict, field: str):
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


def ordered(records: list[dict], sort: str) -> list[uuid.UUID]:
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


# --- the property ---------------------------------------------------------------------------


def insert(app, owner_id: str, collection: str, drawn) -> list[dict]:
    records = [
        {"id": uuid7(), "data": data, "created_at": created, "updated_at": updated}
        for data, created, updated in drawn
    ]
    with app.app_context():
        db.session.add_all(
            Record(owner_id=uuid.UUID(owner_id), collection=collection, **record)
            for record in records
        )
        db.session.commit()
    return records


def walk(client, account, collection, params) -> list[uuid.UUID]:
    found, cursor = [], None
    for _ in range(100):
        query = params + ([("cursor", cursor)] if cursor else [])
        response = client.get(
            f"/api/v1/data/{collection}", query_string=query, headers=account.headers
        )
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        found.extend(uuid.UUID(item["id"]) for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found
    raise AssertionError("paging did not end")


PROPERTY = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(
    drawn=st.lists(rows, min_size=8, max_size=30),
    sort=sorts(),
    limit=st.sampled_from([2, 3, 7, 100]),
)
def test_every_sort_pages_through_every_record_in_the_documented_order(
    app, client, user, drawn, sort, limit
):
    collection = f"prop{next(_collections)}"
    records = insert(app, user.id, collection, drawn)
    params = [("sort", sort), ("limit", str(limit))]
    assert walk(client, user, collection, params) == ordered(records, sort)


@PROPERTY
@given(
    drawn=st.lists(rows, min_size=4, max_size=25),
    chosen=st.lists(filters(), min_size=1, max_size=2),
    sort=sorts(),
    limit=st.sampled_from([2, 5, 100]),
    plain=st.booleans(),
)
def test_filters_keep_exactly_the_records_the_documented_rules_select(
    app, client, user, drawn, chosen, sort, limit, plain
):
    collection = f"prop{next(_collections)}"
    records = insert(app, user.id, collection, drawn)
    params = [query_string(flt, plain) for flt in chosen]
    params += [("sort", sort), ("limit", str(limit))]
    kept = [r for r in records if all(matches(at(r, f), op, v) for f, op, v in chosen)]
    assert walk(client, user, collection, params) == ordered(kept, sort)
