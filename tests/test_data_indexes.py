"""Data-key indexes (`flask data-index …`): sorts on a data key become index scans, with the same
results as without the index; the commands' unhappy paths; `flask db check` stays clean."""

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa
from flask_migrate.cli import db as db_commands
from helpers import walk
from sql_capture import captured_statements
from sqlalchemy.dialects import postgresql
from uuid6 import uuid7
from werkzeug.datastructures import MultiDict

from api import indexes, query
from api.extensions import db
from api.models import Record
from api.query.dialects import NUMBER

BASE = "/api/v1/data"
PRIORITIES = [3, 1, 2.5, "b", "a", "B", True, False, None, {"x": 1}, [1], 0, -4, "é", 2**53 + 1]


@pytest.fixture
def cli(app):
    """Runs `flask data-index …`; every data-key index is dropped after the test."""
    runner = app.test_cli_runner()

    def invoke(*args):
        return runner.invoke(args=["data-index", *args])

    yield invoke
    with app.app_context(), db.engine.connect() as conn:
        for name in catalog(conn):
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
        if conn.dialect.name == "postgresql":  # and the statistics made with them
            for name in conn.scalars(sa.text("SELECT stxname FROM pg_statistic_ext")).all():
                if name.startswith(indexes.STATISTICS_PREFIX):
                    conn.exec_driver_sql(f"DROP STATISTICS IF EXISTS {name}")
        conn.commit()


def catalog(conn) -> list[str]:
    """The names of the data-key indexes the database has."""
    if conn.dialect.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE :prefix"
    else:
        sql = (
            "SELECT indexname FROM pg_indexes "
            "WHERE schemaname = current_schema() AND indexname LIKE :prefix"
        )
    return list(conn.execute(sa.text(sql), {"prefix": indexes.PREFIX + "%"}).scalars())


def indexes_in_catalog(app) -> list[str]:
    with app.app_context(), db.engine.connect() as conn:
        return catalog(conn)


def expected_name(app, field: str) -> str:
    with app.app_context():
        return indexes.index_name(field, db.engine.dialect)


def fill(app, owner_id: str, count: int) -> None:
    """Records of mixed priority types with many ties, in two collections, then ANALYZE.

    Plans need a couple of thousand: on a few hundred rows PostgreSQL rightly prefers reading
    the whole table and sorting what the filters keep.
    """
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(count):
        data = {"status": ("open", "done")[i % 2], "n": i}
        if i % 11:  # every eleventh record has no priority at all
            data["priority"] = PRIORITIES[i % len(PRIORITIES)]
        for collection in ("tasks", "elsewhere"):
            stamp = start + timedelta(milliseconds=i)
            rows.append(
                {
                    "id": uuid7(),
                    "owner_id": uuid.UUID(owner_id),
                    "collection": collection,
                    "data": data,
                    "version": 1,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
    with app.app_context():
        db.session.execute(sa.insert(Record), rows)
        db.session.commit()
        analyze()


def analyze() -> None:
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE records")
        conn.commit()


def walk_ids(client, account, params) -> list[str]:
    """The ids of a whole listing, page after page."""
    return [record["id"] for record in walk(client, account, params)]


# --- the plans ------------------------------------------------------------------------------


def page(app, client, account, query: str) -> tuple[dict, tuple]:
    """A page of tasks, and the one statement that read it from records."""
    with captured_statements(app) as statements:
        response = client.get(f"{BASE}/tasks?{query}", headers=account.headers)
    assert response.status_code == 200, response.get_json()
    (statement,) = [s for s in statements if "FROM records" in s[0]]
    return response.get_json(), statement


def explain(app, statement, parameters) -> str:
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            return "\n".join(row[-1] for row in rows)
        rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters)
        return "\n".join(row[0] for row in rows)


def plans(app, client, account, query: str) -> tuple[str, str]:
    """The plans of a listing's first page and of the page after its cursor."""
    body, first = page(app, client, account, query)
    assert body["next_cursor"], "the listing needs a second page"
    _, second = page(app, client, account, f"{query}&cursor={body['next_cursor']}")
    return explain(app, *first), explain(app, *second)


def sorts_in_memory(plan: str) -> bool:
    return "TEMP B-TREE" in plan or "Sort" in plan


def seeks(plan: str) -> bool:
    """Whether the index scan starts at the cursor (SQLite: a range on the sort term;
    PostgreSQL: the row comparison as an index condition)."""
    if "SEARCH records USING INDEX" in plan:
        return "<expr><" in plan or "<expr>>" in plan
    return any("Index Cond" in line and "ROW(" in line for line in plan.splitlines())


QUERIES = [
    "data.status=eq.open&sort=-data.priority&limit=5",
    "sort=data.priority&limit=5",
    "sort=-data.priority&limit=5",
    "data.n=gte.10&sort=data.priority&limit=5",
]


@pytest.mark.parametrize("query", QUERIES)
def test_a_declared_index_serves_the_sort_and_the_cursor_with_no_sort_step(
    app, client, user, cli, query
):
    fill(app, user.id, count=2000)
    assert cli("add", "data.priority").exit_code == 0
    with app.app_context():
        analyze()
    name = expected_name(app, "data.priority")
    for plan in plans(app, client, user, query):
        assert name in plan and not sorts_in_memory(plan), plan
    assert seeks(plans(app, client, user, query)[1])


@pytest.mark.parametrize("query", QUERIES[:2])
def test_without_the_index_the_same_listing_sorts(app, client, user, cli, query):
    fill(app, user.id, count=2000)
    first, _ = plans(app, client, user, query)
    assert sorts_in_memory(first), first


def test_a_nested_key_is_indexed_too(app, client, user, cli):
    for i in range(40):
        client.post(f"{BASE}/tasks", json={"data": {"a": {"b-c": i % 7}}}, headers=user.headers)
    assert cli("add", "data.a.b-c").exit_code == 0
    with app.app_context():
        analyze()
    name = expected_name(app, "data.a.b-c")
    for plan in plans(app, client, user, "sort=-data.a.b-c&limit=3"):
        assert name in plan and not sorts_in_memory(plan), plan


def generic_plan(app, stmt: sa.Select) -> str:
    """PostgreSQL's generic plan of `stmt` (the kind a prepared statement ends up with)."""
    compiled = stmt.compile(dialect=postgresql.psycopg.dialect(paramstyle="numeric_dollar"))
    values = [compiled.params[name] for name in compiled.positiontup]
    with app.app_context(), db.engine.connect() as conn:
        cursor = psycopg.ClientCursor(conn.connection.driver_connection)
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE listing AS {compiled}")
        try:
            cursor.execute(f"EXPLAIN EXECUTE listing({', '.join(['%s'] * len(values))})", values)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE listing")
            cursor.execute("RESET plan_cache_mode")


def test_generic_plans_on_postgresql_use_the_index_too(app, user, cli):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite has no generic plans; its plans are the ones tested above")
    fill(app, user.id, count=2000)
    assert cli("add", "data.priority").exit_code == 0
    with app.app_context():
        analyze()
    listing = query.parse(MultiDict([("data.status", "eq.open")]), sort="-data.priority")
    mine = sa.select(Record).where(
        Record.owner_id == uuid.UUID(user.id), Record.collection == "tasks"
    )
    compiler = query.Compiler("postgresql")
    for position in (None, [[NUMBER, 2], uuid7()]):
        plan = generic_plan(app, compiler.apply(mine, listing, position).limit(21))
        assert "$1" in plan, plan  # generic: the owner is still a parameter
        assert expected_name(app, "data.priority") in plan and "Sort" not in plan, plan


@pytest.fixture
def prefer_indexes(app):
    """On PostgreSQL, plans that read through an index even on a small table (else a sequential
    scan would make "the same results with the index" say nothing)."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        yield
        return

    def configure(dbapi_connection, _record):
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
        dbapi_connection.commit()

    sa.event.listen(engine, "connect", configure)
    engine.dispose()
    yield
    sa.event.remove(engine, "connect", configure)
    engine.dispose()


@pytest.mark.parametrize(
    "params",
    [
        [("sort", "data.priority")],
        [("sort", "-data.priority")],
        [("sort", "-data.priority"), ("data.status", "eq.open")],
        [("sort", "data.priority,-created_at")],  # mixed directions: no seek, same results
        [("sort", "-data.priority,data.n")],
        [("sort", "data.priority"), ("data.priority", "gte.1")],
    ],
)
def test_pages_are_the_same_with_and_without_the_index(
    app, client, user, cli, prefer_indexes, params
):
    fill(app, user.id, count=120)
    params = [*params, ("limit", "7")]
    before = walk_ids(client, user, params)
    assert len(before) == len(set(before))
    assert cli("add", "data.priority").exit_code == 0
    sort = dict(params)["sort"]
    if "," not in sort:  # the index serves this sort: check that it really is read
        query = "&".join(f"{name}={value}" for name, value in params)
        for plan in plans(app, client, user, query):
            assert expected_name(app, "data.priority") in plan, plan
    assert walk_ids(client, user, params) == before
    assert cli("drop", "data.priority").exit_code == 0
    assert walk_ids(client, user, params) == before


# --- the commands ---------------------------------------------------------------------------


def test_add_declares_and_builds_the_index_and_list_shows_it(app, cli):
    result = cli("add", "data.priority")
    name = expected_name(app, "data.priority")
    assert result.exit_code == 0 and name in result.output
    assert indexes_in_catalog(app) == [name]
    listed = cli("list")
    assert listed.exit_code == 0
    assert listed.output.splitlines()[1].split() == ["data.priority", name, "ready"]


def test_adding_twice_changes_nothing(app, cli):
    assert cli("add", "data.priority").exit_code == 0
    again = cli("add", "data.priority")
    assert again.exit_code == 0 and "already indexed" in again.output
    assert indexes_in_catalog(app) == [expected_name(app, "data.priority")]
    assert len(cli("list").output.splitlines()) == 2


@pytest.mark.parametrize(
    "field",
    [
        "priority",
        "created_at",
        "data",
        "data.",
        "data.a..b",
        "data.a b",
        "data.a'b",
        'data.a"b',
        "data.é",
        "data." + "x" * 65,
        "data." + ".".join("k" * 9),
    ],
)
def test_bad_paths_are_refused(app, cli, field):
    for command in ("add", "drop"):
        result = cli(command, field)
        assert result.exit_code == 1
        assert "Error:" in result.output and "data." in result.output
    assert indexes_in_catalog(app) == []


def test_dropping_an_undeclared_key_fails(app, cli):
    result = cli("drop", "data.priority")
    assert result.exit_code == 1 and "data.priority is not indexed" in result.output


def test_drop_removes_the_index_and_its_declaration(app, cli):
    assert cli("add", "data.priority").exit_code == 0
    assert cli("add", "data.status").exit_code == 0
    result = cli("drop", "data.priority")
    assert result.exit_code == 0
    assert indexes_in_catalog(app) == [expected_name(app, "data.status")]
    assert "data.priority" not in cli("list").output
    assert cli("drop", "data.priority").exit_code == 1


def test_list_says_when_nothing_is_indexed(cli):
    result = cli("list")
    assert result.exit_code == 0 and result.output == "no data key is indexed\n"


def test_an_index_dropped_behind_the_commands_back_is_missing_until_added_again(app, cli):
    assert cli("add", "data.priority").exit_code == 0
    name = expected_name(app, "data.priority")
    with app.app_context(), db.engine.connect() as conn:
        conn.exec_driver_sql(f"DROP INDEX {name}")
        conn.commit()
    assert cli("list").output.split()[-1] == "missing"
    assert cli("add", "data.priority").exit_code == 0
    assert cli("list").output.split()[-1] == "ready"
    assert indexes_in_catalog(app) == [name]


def test_an_index_built_for_older_sort_terms_is_stale_and_add_replaces_it(app, cli):
    old = indexes.PREFIX + "0" * 20
    with app.app_context():
        with db.engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE INDEX {old} ON records (owner_id, collection, id)")
            conn.commit()
        db.session.add(indexes.DataIndex(field="data.priority", index_name=old))
        db.session.commit()
    assert cli("list").output.splitlines()[1].split() == ["data.priority", old, "stale"]
    assert cli("add", "data.priority").exit_code == 0
    assert indexes_in_catalog(app) == [expected_name(app, "data.priority")]
    assert cli("list").output.split()[-1] == "ready"


def test_index_names_fit_postgresql_whatever_the_path(app, cli):
    longest = "data." + ".".join(c * 64 for c in "abcdefgh")
    longer_still = "data." + ".".join(c * 64 for c in "abcdefgi")
    names = {expected_name(app, field) for field in (longest, longer_still, "data.a")}
    assert len(names) == 3
    assert all(len(name) <= 63 and name.startswith(indexes.PREFIX) for name in names)
    assert cli("add", longest).exit_code == 0
    assert indexes_in_catalog(app) == [expected_name(app, longest)]


def test_an_index_left_invalid_by_a_failed_concurrent_build_is_built_again(app, user, cli):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("only PostgreSQL builds indexes concurrently")
    fill(app, user.id, count=4)
    name = expected_name(app, "data.priority")
    with app.app_context(), db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(sa.exc.IntegrityError):  # every record has the same owner
            conn.exec_driver_sql(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON records (owner_id)")
    with app.app_context():
        db.session.add(indexes.DataIndex(field="data.priority", index_name=name))
        db.session.commit()
    assert cli("list").output.split()[-1] == "invalid"
    assert cli("add", "data.priority").exit_code == 0
    assert cli("list").output.split()[-1] == "ready"


def test_db_check_does_not_report_data_indexes_as_drift(app, cli):
    assert cli("add", "data.priority").exit_code == 0
    result = app.test_cli_runner().invoke(db_commands, ["check"])
    assert result.exit_code == 0, result.output
