"""PostgreSQL's planner statistics on data keys: `flask data-index add data.<key>` creates them on
the expressions that filters on the key compare, so that a filtered page of a large collection
walks the sort's index for its 21 rows instead of sorting every matching record."""

import random
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from helpers import API
from sql_capture import captured_statements
from uuid6 import uuid7

from api import indexes
from api.extensions import db
from api.models import Record

RECORDS = 10_000
LISTING = "data.status=eq.open&sort=-data.priority&limit=20"


@pytest.fixture
def postgresql(app):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("planner statistics on expressions are PostgreSQL's (TEST_DATABASE_URL)")


@pytest.fixture
def cli(app, postgresql):
    """Runs `flask data-index …`; the data-key indexes and statistics are dropped after."""
    runner = app.test_cli_runner()
    yield lambda *args: runner.invoke(args=["data-index", *args])
    with app.app_context(), db.engine.connect() as conn:
        for name in statistics_in_catalog(conn):
            conn.exec_driver_sql(f"DROP STATISTICS IF EXISTS {name}")
        for name in conn.scalars(
            sa.text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND indexname LIKE :prefix"
            ),
            {"prefix": indexes.PREFIX + "%"},
        ).all():
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
        conn.commit()


def statistics_in_catalog(conn) -> list[str]:
    return list(
        conn.scalars(
            sa.text(
                "SELECT stxname FROM pg_statistic_ext "
                "WHERE stxnamespace = to_regnamespace(current_schema()) ORDER BY stxname"
            )
        )
    )


def seed(app, owner_id: str) -> None:
    """A collection of 10k tasks: 70% open, the rest spread over 40 other states; priorities
    1-9 in random order (so that walking their index reads the table in no useful order)."""
    rng = random.Random(18)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(RECORDS):
        status = "open" if rng.random() < 0.7 else f"state-{rng.randrange(40)}"
        stamp = start + timedelta(milliseconds=i)
        rows.append(
            {
                "id": uuid7(),
                "owner_id": uuid.UUID(owner_id),
                "collection": "tasks",
                "data": {"status": status, "priority": rng.randint(1, 9), "n": i},
                "version": 1,
                "created_at": stamp,
                "updated_at": stamp,
            }
        )
    with app.app_context():
        with db.engine.connect() as conn:  # no dead rows of earlier tests to scan past
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM FULL records"
            )
        db.session.execute(sa.insert(Record), rows)
        db.session.commit()
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE records")
            conn.commit()


def listing_statement(app, client, user) -> tuple[str, dict]:
    """The statement the listing runs, as sent, with its parameters."""
    with captured_statements(app) as statements:
        response = client.get(f"{API}/data/tasks?{LISTING}", headers=user.headers)
    assert response.status_code == 200
    assert len(response.get_json()["items"]) == 20
    (statement,) = [s for s in statements if "FROM records" in s[0]]
    return statement


def custom_plan(app, statement: str, parameters: dict) -> str:
    """The plan for these parameter values (an unnamed statement's, and a prepared one's
    first five)."""
    with app.app_context(), db.engine.connect() as conn:
        return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))


def plans_chosen(app, statement: str, parameters: dict, runs: int = 12) -> tuple[int, int]:
    """Runs the statement prepared, as psycopg runs a statement from its fifth use on, and
    says how many custom and generic plans PostgreSQL chose for it."""
    with app.app_context(), db.engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        for _ in range(runs):
            cursor.execute(statement, parameters, prepare=True)
            assert len(cursor.fetchall()) == 21
        cursor.execute("SELECT custom_plans, generic_plans FROM pg_prepared_statements")
        ((custom, generic),) = cursor.fetchall()
        return custom, generic


def walks_the_index(plan: str, index: str) -> bool:
    return index in plan and "Sort" not in plan and "Seq Scan" not in plan


def test_a_filter_on_a_common_value_walks_the_sort_index_once_the_key_is_declared(
    app, client, user, cli
):
    seed(app, user.id)
    assert cli("add", "data.priority").exit_code == 0
    with app.app_context():
        priority = indexes.index_name("data.priority", db.engine.dialect)
    statement, parameters = listing_statement(app, client, user)
    # Without statistics on data.status, `eq.open` is guessed at 0.5% of the collection: too
    # few to find 21 of them soon by walking the index, so every open task is read and sorted.
    plan = custom_plan(app, statement, parameters)
    assert f"rows={RECORDS // 200} " in plan and not walks_the_index(plan, priority), plan

    result = cli("add", "data.status")
    assert result.exit_code == 0, result.output
    statement, parameters = listing_statement(app, client, user)
    plan = custom_plan(app, statement, parameters)
    assert walks_the_index(plan, priority) and "Limit" in plan, plan
    (estimate,) = re.findall(r"Index Scan Backward .* rows=(\d+) ", plan)
    assert 0.65 * RECORDS < int(estimate) < 0.75 * RECORDS  # the open tasks, as they are
    # Filters bind the key's path: only a custom plan, made for the values at hand, sees the
    # expression the statistics are on. PostgreSQL keeps making custom plans for the prepared
    # statement, the cheap index walk (a generic plan would be costed without statistics).
    assert plans_chosen(app, statement, parameters) == (12, 0)


def test_the_statistics_hold_the_common_values_of_the_filter_expressions(app, user, cli):
    seed(app, user.id)
    assert cli("add", "data.status").exit_code == 0
    with app.app_context(), db.engine.connect() as conn:
        name = indexes.statistics_name(indexes.index_name("data.status", db.engine.dialect))
        assert statistics_in_catalog(conn) == [name]
        rows = conn.execute(
            sa.text(
                "SELECT expr, most_common_vals::text::text[] AS vals, most_common_freqs "
                "FROM pg_stats_ext_exprs WHERE statistics_name = :name "
                "AND statistics_schemaname = current_schema()"
            ),
            {"name": name},
        ).all()
    assert len(rows) == 4  # the type rank, and the number, string and boolean values
    (string,) = [row for row in rows if "->>" in row.expr]
    assert string.vals[0] == "open" and 0.65 < string.most_common_freqs[0] < 0.75


def test_drop_removes_the_statistics_with_the_index(app, cli):
    assert cli("add", "data.status").exit_code == 0
    assert cli("add", "data.priority").exit_code == 0
    with app.app_context(), db.engine.connect() as conn:
        assert len(statistics_in_catalog(conn)) == 2
    assert cli("drop", "data.status").exit_code == 0
    with app.app_context(), db.engine.connect() as conn:
        priority = indexes.index_name("data.priority", db.engine.dialect)
        assert statistics_in_catalog(conn) == [indexes.statistics_name(priority)]


def test_statistics_dropped_behind_the_commands_back_are_made_again_by_add(app, cli):
    assert cli("add", "data.status").exit_code == 0
    with app.app_context(), db.engine.connect() as conn:
        (name,) = statistics_in_catalog(conn)
        conn.exec_driver_sql(f"DROP STATISTICS {name}")
        conn.commit()
    result = cli("add", "data.status")
    assert result.exit_code == 0 and "already indexed" not in result.output
    with app.app_context(), db.engine.connect() as conn:
        assert statistics_in_catalog(conn) == [name]
    assert "already indexed" in cli("add", "data.status").output
