"""The list language on its own: parsing, and SQL compiled with bound parameters only."""

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.dialects import postgresql, sqlite
from werkzeug.datastructures import MultiDict

from api import query
from api.errors import InvalidRequest
from api.models import Record
from api.query import dialects, parsing

DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.psycopg.dialect()}


def parse(*pairs, sort=None):
    return query.parse(MultiDict(pairs), sort=sort)


def values_of(text, field="data.x"):
    (flt,) = parse((field, text)).filters
    return flt.values


def rejected(*pairs, sort=None) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse(*pairs, sort=sort)
    return caught.value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("eq.3", 3),
        ("eq.3.5", 3.5),
        ("eq.true", True),
        ("eq.null", None),
        ('eq."3"', "3"),
        ("eq.open", "open"),
        ("eq.", ""),
        ("eq.two words", "two words"),
        ('eq."quoted, with comma"', "quoted, with comma"),
        ("eq.Zürich", "Zürich"),
        ("eq.99999999999999999999", 1e20),  # beyond int64: compared as a float
    ],
)
def test_a_value_is_json_when_it_parses_else_plain_text(text, value):
    assert values_of(text) == (value,)
    assert type(values_of(text)[0]) is type(value)


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("in.(a,b)", ("a", "b")),
        ("in.(1,2.5,true,null)", (1, 2.5, True, None)),
        ('in.("a,b",c)', ("a,b", "c")),
        ('in.("say \\"hi\\", then go",x)', ('say "hi", then go', "x")),
        ('in.("3",3)', ("3", 3)),
        ('in.(q"t,c)', ('q"t', "c")),
        ('in.(say "hi, there",x)', ('say "hi', ' there"', "x")),
        ('in.("a"b,c)', ('"a"b', "c")),
        ('in.("a\\\\",b)', ("a\\", "b")),
        ("in.(a, b)", ("a", " b")),  # no trimming: spaces belong to the item
        ("in.()", ()),
        ('in.("")', ("",)),
        ("in.(,)", ("", "")),
    ],
)
def test_in_lists_split_on_commas_outside_double_quotes(text, items):
    assert values_of(text) == items


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("data.x", "like.a"),
        ("data.x", "open"),
        ("data.x", "EQ.3"),
        ("data.x", "in.a,b"),
        ("data.x", 'in.("a,b)'),
        ("data.x", "gt.true"),
        ("data.x", "lte.null"),
        ("data.x", "gte.[1]"),
        ("data.x", 'eq.{"a":1}'),
        ("data.x", "in.([1],2)"),
        ("data.x", "eq.a\x00b"),
        ("data.x..y", "eq.1"),
        ("data.", "eq.1"),
        ("data.a b", "eq.1"),
        ("data.a$", "eq.1"),
        ("data." + "x" * 65, "eq.1"),
        ("data." + ".".join("k" * 9), "eq.1"),
        ("created_at", "gt.yesterday"),
        ("created_at", "gt.2026-01-01T00:00:00"),  # no time zone
        ("created_at", "eq.null"),
        ("updated_at", "in.(2026-01-01T00:00:00Z,1)"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(field, text):
    problem = rejected((field, text))
    assert field in problem.errors
    assert problem.detail


def test_filters_allow_nine_levels_minus_one():
    field = "data." + ".".join("k" * parsing.MAX_DEPTH)
    assert parse((field, "eq.1")).filters[0].field == field


def test_timestamps_are_read_in_utc():
    (flt,) = parse(("created_at", "gte.2026-01-01T02:00:00+02:00")).filters
    assert flt.values[0].isoformat() == "2026-01-01T00:00:00+00:00"


def test_the_same_field_may_repeat_and_filters_are_anded():
    listing = parse(("data.p", "gte.1"), ("data.p", "lte.5"))
    assert [(f.op, f.values) for f in listing.filters] == [("gte", (1,)), ("lte", (5,))]


def test_other_parameters_may_not_repeat():
    assert "limit" in rejected(("limit", "1"), ("limit", "2")).errors


def test_too_many_filters_are_refused():
    rejected(*[("data.x", f"ne.{i}") for i in range(parsing.MAX_FILTERS + 1)])


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        (None, [("created_at", True), ("id", True)]),
        ("data.a,-updated_at", [("data.a", False), ("updated_at", True), ("id", True)]),
        ("-data.a.b,created_at", [("data.a.b", True), ("created_at", False), ("id", False)]),
        ("-id", [("id", True)]),
        ("id,data.a", [("id", False), ("data.a", False)]),
    ],
)
def test_sorts_end_with_id_in_the_direction_of_the_last_key(text, keys):
    assert [(k.field, k.descending) for k in query.parse_sort(text)] == keys


@pytest.mark.parametrize(
    "text", ["", "name", "data", "data.", "-", "created_at,", "+id", "id,id", "a,b,c,d,e"]
)
def test_bad_sorts_are_400(text):
    assert "sort" in rejected(sort=text).errors


def test_five_sort_keys_are_too_many():
    rejected(sort="data.a,data.b,data.c,data.d,data.e")


@pytest.mark.parametrize(
    ("data", "path", "value"),
    [
        ({"a": {"b": 1}}, ("a", "b"), 1),
        ({"a": [10, 20]}, ("a", "0"), None),  # keys only, never array indexes
        ({"a": {"0": 5}}, ("a", "0"), 5),
        ({"a": "text"}, ("a", "b"), None),
        ({}, ("a",), None),
    ],
)
def test_lookup_follows_object_keys_only(data, path, value):
    assert query.lookup(data, path) == value


@pytest.mark.parametrize(
    ("value", "rank"),
    [(3, 0), (2.5, 0), ("3", 1), (False, 2), (True, 2), ({}, 3), ([], 3), (None, 4)],
)
def test_type_ranks_order_numbers_strings_booleans_containers_then_null(value, rank):
    assert query.rank_of(value) == rank


@pytest.mark.parametrize("dialect", DIALECTS)
def test_filter_values_and_paths_are_bound_never_inlined(dialect):
    listing = parse(
        ("data.secret_path", "eq.needle-value"),
        ("data.n", 'in.("it\'s",42)'),
        ("created_at", "gte.2026-01-01T00:00:00Z"),
        sort="-data.sorted_path,updated_at",
    )
    stmt = query.Compiler(dialect).apply(sa.select(Record.id), listing)
    sql = str(stmt.compile(dialect=DIALECTS[dialect]))
    for literal in ("needle-value", "secret_path", "it's", "2026"):
        assert literal not in sql
    assert "sorted_path" in sql  # sorts are inlined, so that an index on them can serve them


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sort_terms_are_sql_literals_with_no_bound_parameter(dialect):
    listing = parse(sort="data.a.b-c_D9,-data.x")
    stmt = sa.select(Record.id).order_by(*query.Compiler(dialect)._order_by(listing))
    compiled = stmt.compile(dialect=DIALECTS[dialect])
    assert compiled.params == {}
    assert "a" in str(compiled) and "b-c_D9" in str(compiled)


@pytest.mark.parametrize("value", ["it's", "a\\b", "a;b", "a b", "é", "a\x00", 1.5, True, None])
def test_only_path_and_type_name_characters_are_ever_inlined(value):
    with pytest.raises((TypeError, ValueError)):
        dialects._inline(value)


@pytest.mark.parametrize("segment", ["it's", "a\\b", "a;b", "a b", "é", 'a"b', ""])
def test_sort_paths_with_other_characters_never_reach_the_sql(segment):
    with pytest.raises(InvalidRequest):
        query.Compiler("sqlite").sort_terms(f"data.{segment}")


def test_postgresql_reads_keys_with_arrows_and_compares_text_in_code_point_order():
    listing = parse(("data.a.b", "gt.x"), sort="data.a.b")
    stmt = query.Compiler("postgresql").apply(sa.select(Record.id), listing)
    sql = str(stmt.compile(dialect=DIALECTS["postgresql"]))
    assert "jsonb_typeof((records.data -> " in sql
    assert 'COLLATE "C"' in sql
    assert "#>" not in sql and "[" not in sql  # those would index into arrays


def test_unsupported_databases_are_refused_loudly():
    with pytest.raises(NotImplementedError):
        query.Compiler("mysql")


# --- the spec's description of the filters ---------------------------------------------------


def spec_filters(path: str = "/api/v1/data/{collection}") -> dict:
    """The schema of the `filters` parameter of a list route in the committed openapi.yaml."""
    spec = yaml.safe_load((Path(__file__).resolve().parent.parent / "openapi.yaml").read_text())
    (found,) = (p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "filters")
    return found["schema"]


@pytest.mark.parametrize("path", ["/api/v1/data/{collection}", "/api/v1/data/{collection}/changes"])
def test_the_specs_filter_operators_are_the_parsers(path):
    pattern = spec_filters(path)["additionalProperties"]["pattern"]
    operators = re.fullmatch(r"\^\((.*)\)\\\.\.\*\$", pattern)[1].split("|")
    assert operators == list(parsing.OPERATORS)
    for op in operators:  # each one the spec names, the parser takes
        assert parse(("data.x", f"{op}.(1)" if op == "in" else f"{op}.1")).filters[0].op == op
    for op in ("like", "is", "neq", "cs"):  # and one that it does not name, the parser refuses
        assert not re.fullmatch(pattern, f"{op}.1")
        rejected(("data.x", f"{op}.1"))


@pytest.mark.parametrize(
    "field",
    [
        "data.status",
        "data.a-b.c_d.0",
        "data." + ".".join("k" * parsing.MAX_DEPTH),
        "data." + "k" * 64,
        "created_at",
        "updated_at",
        "data." + ".".join("k" * (parsing.MAX_DEPTH + 1)),
        "data." + "k" * 65,
        "data.",
        "data.a..b",
        "data.a b",
        "id",
    ],
)
def test_the_spec_names_exactly_the_fields_that_the_parser_filters_on(field):
    named = re.fullmatch(spec_filters()["propertyNames"]["pattern"], field) is not None
    value = "eq.2026-01-01T00:00:00Z" if field.endswith("_at") else "eq.1"
    try:
        filtered = bool(parse((field, value)).filters)  # a name that is no filter is ignored
    except InvalidRequest:
        filtered = False
    assert named == filtered, field
    assert spec_filters()["maxProperties"] == parsing.MAX_FILTERS
