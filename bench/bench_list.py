"""How the time of one page of a filtered, sorted record list grows with the collection.

Times `GET /api/v1/data/{collection}` (a page of 20, through the whole Flask stack), and the
page's query alone, on one user's collections of 1k, 10k and 100k records (all in the same
table), and prints each time as a ratio to the 1k time. The sizes are interleaved within every
round, so that a busy machine slows them alike. Keyset pages on the (owner_id, collection,
created_at|updated_at|id, …) indexes, and on the data-key indexes declared for data.priority
and data.n (`flask data-index add`), should stay flat; linear growth would be 10x and 100x.
Exits 1 if an indexed listing grows by more than LINEAR_ALARM at 100x the records.

    .venv/bin/python bench/bench_list.py            # SQLite, in a temporary file
    DATABASE_URL=postgresql+psycopg://… .venv/bin/python bench/bench_list.py

On PostgreSQL it works in a schema of its own, dropped at the end.
"""

import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask_migrate import upgrade
from uuid6 import uuid7
from werkzeug.datastructures import MultiDict

from api import indexes, query
from api.extensions import db
from api.models import Record, Session, User, utcnow
from api.passwords import hash_password
from api.tokens import issue_access_token
from coffer import create_app

SIZES = (1_000, 10_000, 100_000)
ROUNDS = 7
LINEAR_ALARM = 10.0  # a 100k/1k ratio above this is growth, not noise
INDEXED = ("data.priority", "data.n")  # as `flask data-index add …` declares them
ANY, POSTGRESQL, NEVER = ("sqlite", "postgresql"), ("postgresql",), ()
# (label, query parameters, calls per round, the databases on which it must stay flat)
QUERIES = [
    ("status=open, -created_at", "data.status=eq.open&sort=-created_at&limit=20", 20, ANY),
    ("… page at the middle", "data.status=eq.open&sort=-created_at&limit=20", 20, ANY),
    ("priority>=3, updated_at", "data.priority=gte.3&sort=updated_at&limit=20", 20, ANY),
    ("priority in (1,4), -id", "data.priority=in.(1,4)&sort=-id&limit=20", 20, ANY),
    ("status=open, -data.priority", "data.status=eq.open&sort=-data.priority&limit=20", 20, ANY),
    # SQLite seeks to the cursor's priority, then steps over the records tied with it (a fifth
    # of the collection here); PostgreSQL seeks to the cursor's very row.
    ("… page at the middle", "data.status=eq.open&sort=-data.priority&limit=20", 20, POSTGRESQL),
    ("data.priority", "sort=data.priority&limit=20", 20, ANY),
    ("… -data.n (distinct), at the middle", "sort=-data.n&limit=20", 20, ANY),
    ("-data.status (a data key with no index)", "sort=-data.status&limit=20", 2, NEVER),
]
START = datetime(2026, 1, 1, tzinfo=UTC)


def postgres_url() -> str:
    url = os.environ["DATABASE_URL"]
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def database_url() -> tuple[str, str | None]:
    """The URL to benchmark on, and the PostgreSQL schema made for the run (None on SQLite)."""
    if not os.environ.get("DATABASE_URL"):
        return f"sqlite:///{tempfile.mkdtemp()}/bench.db", None
    url = postgres_url()
    schema = f"coffer_bench_list_{os.getpid()}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str) -> None:
    engine = sa.create_engine(postgres_url())
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def make_user() -> tuple[uuid.UUID, dict]:
    user = User(
        email=f"bench-{uuid.uuid4().hex}@example.com", password_hash=hash_password("x" * 16)
    )
    db.session.add(user)
    db.session.flush()
    session = Session(user_id=user.id, expires_at=utcnow() + timedelta(days=1))
    db.session.add(session)
    db.session.commit()
    token, _ = issue_access_token(user, session)
    return user.id, {"Authorization": f"Bearer {token}"}


def collection_of(size: int) -> str:
    return f"c{size // 1000}k"


def fill(owner_id: uuid.UUID, size: int) -> None:
    """`size` records one millisecond apart, in batches."""
    for low in range(0, size, 5_000):
        rows = []
        for i in range(low, min(size, low + 5_000)):
            stamp = START + timedelta(milliseconds=i)
            data = {"status": ("open", "done", "archived")[i % 3], "priority": i % 5, "n": i}
            rows.append(
                {
                    "id": uuid7(),
                    "owner_id": owner_id,
                    "collection": collection_of(size),
                    "data": data,
                    "version": 1,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
        db.session.execute(sa.insert(Record), rows)
        db.session.commit()


def listing_of(params: str) -> query.Listing:
    args = MultiDict([tuple(pair.split("=", 1)) for pair in params.split("&")])
    return query.parse(args, sort=args.get("sort"))


def mine(owner_id: uuid.UUID, size: int) -> sa.Select:
    return sa.select(Record).where(
        Record.owner_id == owner_id, Record.collection == collection_of(size)
    )


def middle_cursor(owner_id: uuid.UUID, params: str, size: int) -> str:
    """The cursor a client would hold half-way through the listing."""
    listing = listing_of(params)
    ordered = query.Compiler(db.engine.dialect.name).apply(mine(owner_id, size), listing)
    count = db.session.scalar(sa.select(sa.func.count()).select_from(ordered.subquery()))
    record = db.session.scalars(ordered.offset(count // 2).limit(1)).one()
    return query.encode_cursor(listing, (str(owner_id), collection_of(size)), record)


@dataclass(frozen=True)
class Page:
    url: str
    statement: sa.Select  # the one query the request runs (resources/data.py, _page_of)


def pages(owner_id: uuid.UUID) -> dict[tuple[int, int], Page]:
    """(query index, size) -> its page."""
    found = {}
    for index, (label, params, _calls, _flat) in enumerate(QUERIES):
        for size in SIZES:
            url, listing = f"/api/v1/data/{collection_of(size)}?{params}", listing_of(params)
            position = None
            if label.startswith("…"):
                cursor = middle_cursor(owner_id, params, size)
                url += f"&cursor={cursor}"
                scope = (str(owner_id), collection_of(size))
                position = query.decode_cursor(cursor, listing, scope)
            compiler = query.Compiler(db.engine.dialect.name)
            statement = compiler.apply(mine(owner_id, size), listing, position).limit(21)
            found[index, size] = Page(url, statement)
    return found


def mean_time(client, url: str, headers: dict, calls: int) -> float:
    """The mean time of one request over `calls`, in milliseconds."""
    start = time.perf_counter()
    for _ in range(calls):
        response = client.get(url, headers=headers)
    elapsed = (time.perf_counter() - start) / calls * 1e3
    assert response.status_code == 200 and len(response.get_json()["items"]) == 20
    return elapsed


def statement_time(conn: sa.Connection, statement: sa.Select, calls: int) -> float:
    """The mean time of the page's query alone (execute, fetch 21 rows), in milliseconds."""
    start = time.perf_counter()
    for _ in range(calls):
        rows = conn.execute(statement).all()
    elapsed = (time.perf_counter() - start) / calls * 1e3
    assert len(rows) == 21
    return elapsed


Results = dict[int, list[float]]  # size -> per query, the median over ROUNDS of a mean (ms)


def measure(app, owner_id: uuid.UUID, headers: dict) -> tuple[Results, Results]:
    """The time of each page through the whole Flask stack, and of its query alone."""
    client = app.test_client()
    with app.app_context():
        found = pages(owner_id)
    http = {key: [] for key in found}
    alone = {key: [] for key in found}
    with app.app_context(), db.engine.connect() as conn:
        for page in found.values():  # warm up
            mean_time(client, page.url, headers, 2)
            statement_time(conn, page.statement, 2)
        for _ in range(ROUNDS):
            for (index, size), page in found.items():
                calls = QUERIES[index][2]
                http[index, size].append(mean_time(client, page.url, headers, calls))
                alone[index, size].append(statement_time(conn, page.statement, calls))
    return tuple(
        {size: [statistics.median(samples[i, size]) for i in range(len(QUERIES))] for size in SIZES}
        for samples in (http, alone)
    )


def report(engine_name: str, title: str, results: Results) -> bool:
    base = results[SIZES[0]]
    print(f"\n{title} on {engine_name}: median ms, ratio to 1k")
    header = f"{'query':40}" + "".join(f"{f'{n // 1000}k ms':>10}" for n in SIZES)
    print(header + "".join(f"{f'{n // 1000}k/1k':>9}" for n in SIZES[1:]))
    flat = True
    for index, (label, _params, _calls, flat_on) in enumerate(QUERIES):
        ratios = [results[n][index] / base[index] for n in SIZES[1:]]
        line = f"{label:40}" + "".join(f"{results[n][index]:10.3f}" for n in SIZES)
        print(line + "".join(f"{ratio:8.2f}x" for ratio in ratios))
        if engine_name.split()[0] in flat_on and ratios[-1] > LINEAR_ALARM:
            flat = False
    return flat


def main() -> int:
    url, schema = database_url()
    try:
        app = create_app({"DATABASE_URL": url, "COFFER_RATE_LIMIT_API": "100000000/minute"})
        with app.app_context():
            upgrade()
            owner_id, headers = make_user()
            for size in SIZES:
                fill(owner_id, size)
            for field in INDEXED:
                start = time.perf_counter()
                done = indexes.add(field)
                print(f"{done} in {time.perf_counter() - start:.2f} s", file=sys.stderr)
            if db.engine.dialect.name == "postgresql":
                db.session.execute(sa.text("ANALYZE records"))
                db.session.commit()
            engine_name = f"{db.engine.dialect.name} {db.engine.dialect.server_version_info}"
        print(f"filled {sum(SIZES)} records; measuring", file=sys.stderr)
        http, alone = measure(app, owner_id, headers)
        flat = report(engine_name, "A list page of 20 through the whole Flask stack", http)
        flat &= report(engine_name, "The page's query alone (SQLAlchemy Core)", alone)
        verdict = "flat (sublinear)" if flat else "GROWING with the collection"
        print(f"\nIndexed listings at 100x the records: {verdict}; linear growth would be 100x.")
        return 0 if flat else 1
    finally:
        if schema:
            drop_schema(schema)


if __name__ == "__main__":
    sys.exit(main())
