"""Property: for any records, filters and sort, walking the API's pages gives exactly what the
documented rules give when computed in plain Python (docs/query-language.md is the spec)."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import orjson
from data_rules import RANGE, at, matches, ordered
from helpers import walk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uuid6 import uuid7

from api.extensions import db
from api.models import Record

FIELDS = ("data.a", "data.b", "data.c.x", "data.zz")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
STAMPS = [EPOCH + timedelta(milliseconds=n) for n in (0, 1, 1, 7, 250)]  # ties on purpose
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


def walk_ids(client, account, collection, params) -> list[uuid.UUID]:
    return [uuid.UUID(record["id"]) for record in walk(client, account, params, collection)]


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
    assert walk_ids(client, user, collection, params) == ordered(records, sort)


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
    assert walk_ids(client, user, collection, params) == ordered(kept, sort)
