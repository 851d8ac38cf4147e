"""Listing records: every filter operator and type rule, sorts, keyset pages, cursors, errors,
and the cost of a page (one query, on the owner+collection indexes)."""

import random
import uuid

import pytest
import sqlalchemy as sa
from data_rules import ordered
from helpers import walk
from sql_capture import captured_statements, explain
from uuid6 import uuid7

from api.extensions import db
from api.models import Record

BASE = "/api/v1/data"

ROWS = [
    {"name": "int3", "n": 3, "s": "b", "flag": True, "address": {"city": "Paris"}},
    {"name": "float3", "n": 3.0, "s": "a"},
    {"name": "float35", "n": 3.5, "s": "B", "flag": False, "address": {"city": "Lyon"}},
    {"name": "str3", "n": "3", "s": "ä"},
    {"name": "str4", "n": "4", "s": "b,c"},
    {"name": "neg", "n": -1, "s": ""},
    {"name": "null", "n": None, "s": None, "address": None},
    {"name": "missing"},
    {"name": "obj", "n": {"x": 1}, "s": ["a"], "address": "Paris"},
    {"name": "true", "n": True, "address": {"city": {"name": "Paris"}}},
]
ALL = {row["name"] for row in ROWS}


def create(client, account, data, collection="tasks"):
    response = client.post(f"{BASE}/{collection}", json={"data": data}, headers=account.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def fetch(client, account, params, collection="tasks"):
    response = client.get(f"{BASE}/{collection}", query_string=params, headers=account.headers)
    assert response.status_code == 200, response.get_json()
    return response


def names(client, account, params) -> list[str]:
    return [item["data"].get("name") for item in walk(client, account, params)]


@pytest.fixture
def rows(client, user):
    return [create(client, user, row) for row in ROWS]


# --- filters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("data.n", "eq.3")], {"int3", "float3"}),
        ([("data.n", "eq.3.0")], {"int3", "float3"}),
        ([("data.n", 'eq."3"')], {"str3"}),
        ([("data.n", "gt.3")], {"float35"}),
        ([("data.n", "gte.3")], {"int3", "float3", "float35"}),
        ([("data.n", "lt.3")], {"neg"}),
        ([("data.n", "lte.3")], {"neg", "int3", "float3"}),
        ([("data.n", 'gt."3"')], {"str4"}),
        ([("data.n", "lt.3.25"), ("data.n", "gt.-1")], {"int3", "float3"}),
        ([("data.n", "ne.3")], {"float35", "str3", "str4", "neg", "obj", "true"}),
        ([("data.n", "ne.null")], ALL - {"null", "missing"}),
        ([("data.n", "eq.null")], {"null", "missing"}),
        ([("data.n", 'in.(3,"4",null)')], {"int3", "float3", "str4", "null", "missing"}),
        ([("data.n", "in.(true,-1)")], {"true", "neg"}),
        ([("data.n", "in.()")], set()),
        ([("data.n", "eq.true")], {"true"}),
        ([("data.n", "eq.1")], set()),
        ([("data.flag", "eq.false")], {"float35"}),
        ([("data.flag", "ne.true")], {"float35"}),
        ([("data.flag", "ne.false")], {"int3"}),
        ([("data.flag", "eq.null")], ALL - {"int3", "float35"}),
        ([("data.s", "gt.a")], {"int3", "str3", "str4"}),
        ([("data.s", "gte.a")], {"int3", "str3", "str4", "float3"}),
        ([("data.s", "lt.b")], {"float3", "float35", "neg"}),
        ([("data.s", "lte.b")], {"float3", "float35", "neg", "int3"}),
        ([("data.s", "eq.")], {"neg"}),
        ([("data.s", "eq.B")], {"float35"}),
        ([("data.s", "eq.ä")], {"str3"}),
        ([("data.s", 'in.("b,c",a)')], {"str4", "float3"}),
        ([("data.s", "ne.b")], {"float3", "float35", "str3", "str4", "neg", "obj"}),
        ([("data.address.city", "eq.Paris")], {"int3"}),
        ([("data.address.city", "ne.Paris")], {"float35", "true"}),
        ([("data.address.city.name", "eq.Paris")], {"true"}),
        ([("data.address.city", "eq.null")], ALL - {"int3", "float35", "true"}),
        ([("data.address", "eq.Paris")], {"obj"}),
        ([("data.n", "gte.3"), ("data.s", "eq.a")], {"float3"}),
        ([("data.nothing", "eq.null")], ALL),
        ([("data.nothing", "ne.null")], set()),
        ([("data.nothing", "gt.0")], set()),
    ],
)
def test_filters_compare_only_values_of_the_same_json_type(client, user, rows, params, expected):
    assert set(names(client, user, params)) == expected


def test_filters_on_arrays_never_index_into_them(client, user):
    create(client, user, {"name": "list", "tags": ["a", "b"]})
    create(client, user, {"name": "map", "tags": {"0": "a"}})
    assert names(client, user, [("data.tags.0", "eq.a")]) == ["map"]


def test_timestamp_filters_take_every_operator(client, user):
    records = [create(client, user, {"i": i}) for i in range(4)]
    stamps = [r["created_at"] for r in records]
    pivot = stamps[2]

    def matching(op, value):
        found = walk(client, user, [("created_at", f"{op}.{value}"), ("sort", "id")])
        return {r["data"]["i"] for r in found}

    assert matching("eq", pivot) == {i for i, t in enumerate(stamps) if t == pivot}
    assert matching("ne", pivot) == {i for i, t in enumerate(stamps) if t != pivot}
    assert matching("gt", pivot) == {i for i, t in enumerate(stamps) if t > pivot}
    assert matching("gte", pivot) == {i for i, t in enumerate(stamps) if t >= pivot}
    assert matching("lt", pivot) == {i for i, t in enumerate(stamps) if t < pivot}
    assert matching("lte", pivot) == {i for i, t in enumerate(stamps) if t <= pivot}
    assert matching("in", f"({stamps[0]},{stamps[3]})") == {
        i for i, t in enumerate(stamps) if t in (stamps[0], stamps[3])
    }
    assert matching("gte", "2000-01-01T01:00:00+01:00") == {0, 1, 2, 3}
    assert matching("lt", "2000-01-01T00:00:00Z") == set()


def test_updated_at_filters_see_the_latest_write(client, user):
    first = create(client, user, {"name": "old"})
    second = create(client, user, {"name": "touched"})
    patched = client.patch(
        f"{BASE}/tasks/{second['id']}", json={"data": {"x": 1}}, headers=user.headers
    ).get_json()
    later = [("updated_at", f"gte.{patched['updated_at']}")]
    assert "touched" in names(client, user, later)
    if patched["updated_at"] > first["updated_at"]:
        assert "old" not in names(client, user, later)


# --- sorting --------------------------------------------------------------------------------


def test_sorting_on_a_data_key_orders_by_type_then_value_with_null_last(client, user, rows):
    expected = ["neg", "int3", "float3", "float35", "str3", "str4", "true", "obj"]
    expected += ["null", "missing"]
    assert names(client, user, [("sort", "data.n")]) == expected


def test_descending_reverses_the_whole_order_so_null_comes_first(client, user, rows):
    expected = ["neg", "int3", "float3", "float35", "str3", "str4", "true", "obj"]
    expected += ["null", "missing"]
    assert names(client, user, [("sort", "-data.n")]) == expected[::-1]


def test_strings_sort_by_code_point(client, user, rows):
    expected = ["neg", "float35", "float3", "int3", "str4", "str3", "obj"]
    expected += ["null", "missing", "true"]
    assert names(client, user, [("sort", "data.s")]) == expected


def test_booleans_sort_false_before_true(client, user, rows):
    assert names(client, user, [("sort", "data.flag"), ("data.flag", "ne.null")]) == [
        "float35",
        "int3",
    ]


def test_the_default_sort_is_newest_first(client, user):
    created = [create(client, user, {"i": i})["id"] for i in range(5)]
    assert [r["id"] for r in walk(client, user, [])] == created[::-1]


@pytest.fixture
def mixed(client, user):
    """Records whose sort keys mix types, repeat, nest and go missing."""
    rng = random.Random(7)
    g_values = [1, 2, 2.5, "x", "y", "Y", True, False, None, {"o": 1}, [1], "missing"]
    records = []
    for i in range(31):
        data = {"i": i, "h": rng.choice([1, 2, 3, "3", None]), "deep": {"k": rng.randint(0, 3)}}
        g = rng.choice(g_values)
        if g != "missing":
            data["g"] = g
        records.append(create(client, user, data))
    return records


@pytest.mark.parametrize(
    "sort",
    [
        "data.g,-data.h",
        "-data.g,data.h",
        "data.h,-data.g,data.deep.k",
        "-data.deep.k,created_at",
        "data.h,-created_at",
        "-updated_at,data.g",
        "id",
        "-id",
        "created_at",
        "-created_at",
    ],
)
def test_every_sort_pages_through_every_record_once_in_order(client, user, mixed, sort):
    expected = ordered(mixed, sort)
    for limit in (1, 7, 100):
        found = walk(client, user, [("sort", sort), ("limit", str(limit))])
        assert [r["id"] for r in found] == expected, f"limit={limit}"


def test_sort_and_filters_combine_with_pages(client, user, mixed):
    params = [("sort", "-data.g"), ("data.h", "in.(1,3,null)"), ("limit", "3")]
    found = walk(client, user, params)
    kept = [r for r in mixed if r["data"]["h"] in (1, 3, None)]
    assert [r["id"] for r in found] == ordered(kept, "-data.g")


# --- keyset pagination ----------------------------------------------------------------------


def test_pages_carry_next_cursor_and_a_link_until_the_last(client, user):
    for i in range(5):
        create(client, user, {"i": i})
    first = fetch(client, user, [("limit", "2"), ("sort", "data.i")])
    body = first.get_json()
    assert [r["data"]["i"] for r in body["items"]] == [0, 1]
    link = first.headers["Link"]
    assert link.endswith('>; rel="next"') and f"cursor={body['next_cursor']}" in link
    assert "sort=data.i" in link and "limit=2" in link
    last = fetch(
        client, user, [("limit", "3"), ("sort", "data.i"), ("cursor", body["next_cursor"])]
    )
    assert [r["data"]["i"] for r in last.get_json()["items"]] == [2, 3, 4]
    assert last.get_json()["next_cursor"] is None and "Link" not in last.headers


def test_an_exactly_full_last_page_has_no_next_cursor(client, user):
    for i in range(4):
        create(client, user, {"i": i})
    assert fetch(client, user, [("limit", "4")]).get_json()["next_cursor"] is None


def test_the_default_limit_is_20(client, user):
    for i in range(21):
        create(client, user, {"i": i})
    body = fetch(client, user, []).get_json()
    assert len(body["items"]) == 20 and body["next_cursor"]


def test_an_empty_or_unknown_collection_is_an_empty_page(client, user):
    assert fetch(client, user, [], "nothing").get_json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("sort", ["-created_at", "created_at", "data.n", "-data.n,created_at"])
def test_paging_while_records_are_added_never_repeats_or_skips_one(client, user, sort):
    existing = {create(client, user, {"n": i % 5})["id"] for i in range(12)}
    seen, cursor = [], None
    for _ in range(60):
        query = [("sort", sort), ("limit", "5")] + ([("cursor", cursor)] if cursor else [])
        body = fetch(client, user, query).get_json()
        seen.extend(r["id"] for r in body["items"])
        for value in (-100, 2, 100, "z", None):  # before, among and after the position
            create(client, user, {"n": value})
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert existing <= set(seen)


def test_a_tampered_cursor_is_400(client, user):
    for i in range(3):
        create(client, user, {"i": i})
    cursor = fetch(client, user, [("limit", "1")]).get_json()["next_cursor"]
    middle = len(cursor) // 2
    flipped = cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]
    for bad in (flipped, cursor[:-3], "garbage", "@@@", cursor + "AAAA"):
        response = client.get(f"{BASE}/tasks?limit=1&cursor={bad}", headers=user.headers)
        assert response.status_code == 400, bad
        assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "changed",
    [
        [("sort", "created_at")],
        [("data.i", "gte.0")],
        [("created_at", "gte.2000-01-01T00:00:00Z")],
    ],
)
def test_a_cursor_from_another_query_is_400(client, user, changed):
    for i in range(3):
        create(client, user, {"i": i})
    cursor = fetch(client, user, [("limit", "1")]).get_json()["next_cursor"]
    response = client.get(
        f"{BASE}/tasks",
        query_string=[("limit", "1"), ("cursor", cursor), *changed],
        headers=user.headers,
    )
    assert response.status_code == 400
    assert "cursor" in response.get_json()["detail"]


def test_a_cursor_from_another_collection_or_owner_is_400(client, user, admin):
    for i in range(3):
        create(client, user, {"i": i})
        create(client, user, {"i": i}, collection="other")
    cursor = fetch(client, user, [("limit", "1")]).get_json()["next_cursor"]
    response = client.get(f"{BASE}/other?limit=1&cursor={cursor}", headers=user.headers)
    assert response.status_code == 400
    as_admin = client.get(f"{BASE}/tasks?limit=1&cursor={cursor}", headers=admin.headers)
    assert as_admin.status_code == 400
    on_behalf = client.get(
        f"{BASE}/tasks?limit=1&owner_id={user.id}&cursor={cursor}", headers=admin.headers
    )
    assert on_behalf.status_code == 200


def test_the_limit_may_change_from_page_to_page(client, user):
    created = [create(client, user, {"i": i})["id"] for i in range(6)]
    first = fetch(client, user, [("limit", "2")]).get_json()
    rest = fetch(client, user, [("limit", "10"), ("cursor", first["next_cursor"])]).get_json()
    assert [r["id"] for r in first["items"] + rest["items"]] == created[::-1]


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("foo=1", "foo"),
        ("data=eq.1", "data"),
        ("id=eq.1", "id"),
        ("data.n=xx.1", "data.n"),
        ("data.n=3", "data.n"),
        ("data.a..b=eq.1", "data.a..b"),
        ("data.a%20b=eq.1", "data.a b"),
        ("data.n=gt.true", "data.n"),
        ("data.n=lt.null", "data.n"),
        ("data.n=eq.%5B1%5D", "data.n"),
        ("data.n=in.1,2", "data.n"),
        ("created_at=gt.soon", "created_at"),
        ("sort=nope", "sort"),
        ("sort=data.", "sort"),
        ("sort=-", "sort"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=5&limit=6", "limit"),
    ],
)
def test_malformed_query_parameters_are_400_naming_the_parameter(client, user, query, named):
    response = client.get(f"{BASE}/tasks?{query}", headers=user.headers)
    assert response.status_code == 400
    body = response.get_json()
    assert body["detail"] and named in body["errors"]


@pytest.mark.parametrize("limit", ["0", "101", "-1"])
def test_a_limit_out_of_range_is_422(client, user, limit):
    response = client.get(f"{BASE}/tasks?limit={limit}", headers=user.headers)
    assert response.status_code == 422
    assert "limit" in response.get_json()["errors"]


@pytest.mark.parametrize("limit", ["1", "100"])
def test_limits_of_1_and_100_are_fine(client, user, limit):
    assert client.get(f"{BASE}/tasks?limit={limit}", headers=user.headers).status_code == 200


# --- the cost of a page ---------------------------------------------------------------------


def list_statement(app, client, user, query) -> tuple:
    with captured_statements(app) as statements:
        response = client.get(f"{BASE}/tasks?{query}", headers=user.headers)
    assert response.status_code == 200
    on_records = [s for s in statements if "FROM records" in s[0]]
    assert len(on_records) == 1, "a page must be one query"
    return on_records[0]


def test_a_page_is_one_query_whatever_its_size(app, client, user):
    for i in range(25):
        create(client, user, {"n": i, "nested": {"a": [i]}})
    with captured_statements(app) as statements:
        body = client.get(f"{BASE}/tasks?limit=25&sort=data.n", headers=user.headers).get_json()
    assert len(body["items"]) == 25
    assert len([s for s in statements if "records" in s[0]]) == 1


def others_records(app, owners: list[uuid.UUID], each: int) -> None:
    """Other users' records in the same collection, as a real table has them, and fresh
    statistics (what autovacuum keeps): the planner then knows that an index across owners
    reads more rows than the owner's index."""
    with app.app_context():
        rows = [
            {"id": uuid7(), "owner_id": owner, "collection": "tasks", "data": {"status": "open"}}
            for owner in owners
            for _ in range(each)
        ]
        db.session.execute(sa.insert(Record), rows)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text("ANALYZE records"))
            db.session.commit()


@pytest.mark.parametrize(
    ("sort", "index"),
    [
        ("-created_at", "ix_records_owner_collection_created"),
        ("created_at", "ix_records_owner_collection_created"),
        ("-updated_at", "ix_records_owner_collection_updated"),
        ("id", "ix_records_owner_collection_id"),
    ],
)
def test_pages_sorted_by_a_column_walk_the_owner_collection_index(
    app, client, user, accounts, sort, index
):
    for i in range(30):
        create(client, user, {"status": ["open", "done"][i % 2]})
        create(client, user, {"status": "open"}, collection="elsewhere")
    others_records(app, [uuid.UUID(accounts.create().id) for _ in range(10)], 30)
    query = f"sort={sort}&limit=5&data.status=eq.open"
    cursor = client.get(f"{BASE}/tasks?{query}", headers=user.headers).get_json()["next_cursor"]
    for page_query in (query, f"{query}&cursor={cursor}"):
        plan = explain(app, *list_statement(app, client, user, page_query))
        assert index in plan, plan
        assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan


def test_unrelated_owners_share_no_rows(client, user, accounts):
    other = accounts.create()
    mine = {create(client, user, {"i": i})["id"] for i in range(3)}
    create(client, other, {"i": 0})
    assert {r["id"] for r in walk(client, user, [("limit", "1")])} == mine
