"""How the time of one page of a filtered, sorted record list grows with the collection.

Times `GET /api/v1/data/{collection}` (a page of 20, through the whole Flask stack) on one
user's collections of 1k, 10k and 100k records (all in the same table), and prints each time as
a ratio to the 1k time. The sizes are interleaved within every round, so that a busy machine
slows them alike. Keyset pages on the (owner_id, collection, created_at|updated_at|id, …)
indexes should stay flat; linear growth would be 10x and 100x. Exits 1 if an indexed listing
grows by more than LINEAR_ALARM at 100x the records.

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
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask_migrate import upgrade
from uuid6 import uuid7
from werkzeug.datastructures import MultiDict

from api import create_app, query
from api.auth import hash_password, issue_access_token
from api.extensions import db
from api.models import Record, Session, User, utcnow

SIZES = (1_000, 10_000, 100_000)
ROUNDS = 7
LINEAR_ALARM = 10.0  # a 100k/1k ratio above this is growth, not noise
# (label, query parameters, calls per round, whether it must stay flat)
QUERIES = [
    ("status=open, -created_at", "data.status=eq.open&sort=-created_at&limit=20", 20, True),
    ("… page at the middle", "data.status=eq.open&sort=-created_at&limit=20", 20, True),
    ("priority>=3, updated_at", "data.priority=gte.3&sort=updated_at&limit=20", 20, True),
    ("priority in (1,4), -id", "data.priority=in.(1,4)&sort=-id&limit=20", 20, True),
    ("sort -data.priority (unindexed)", "sort=-data.priority&limit=20", 2, False),
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


def middle_cursor(owner_id: uuid.UUID, params: str, size: int) -> str:
    """The cursor a client would hold half-way through the listing."""
    args = MultiDict([tuple(pair.split("=", 1)) for pair in params.split("&")])
    listing = query.parse(args, sort=args.get("sort"))
    record = db.session.scalars(
        sa.select(Record)
        .where(Record.owner_id == owner_id, Record.collection == collection_of(size))
        .order_by(Record.created_at.desc())
        .offset(size // 2)
        .limit(1)
    ).one()
    return query.encode_cursor(listing, (str(owner_id), collection_of(size)), record)


def urls(app, owner_id: uuid.UUID) -> dict[tuple[int, int], str]:
    """(query index, size) -> the URL of its page."""
    found = {}
    for index, (label, params, _calls, _flat) in enumerate(QUERIES):
        for size in SIZES:
            url = f"/api/v1/data/{collection_of(size)}?{params}"
            if label.startswith("…"):
                with app.app_context():
                    url += f"&cursor={middle_cursor(owner_id, params, size)}"
            found[index, size] = url
    return found


def mean_time(client, url: str, headers: dict, calls: int) -> float:
    """The mean time of one request over `calls`, in milliseconds."""
    start = time.perf_counter()
    for _ in range(calls):
        response = client.get(url, headers=headers)
    elapsed = (time.perf_counter() - start) / calls * 1e3
    assert response.status_code == 200 and len(response.get_json()["items"]) == 20
    return elapsed


def measure(app, owner_id: uuid.UUID, headers: dict) -> dict[int, list[float]]:
    """size -> per query, the median over ROUNDS of the mean request time (ms)."""
    client, pages = app.test_client(), urls(app, owner_id)
    samples: dict[tuple[int, int], list[float]] = {key: [] for key in pages}
    for url in pages.values():  # warm up
        mean_time(client, url, headers, 2)
    for _ in range(ROUNDS):
        for (index, size), url in pages.items():
            samples[index, size].append(mean_time(client, url, headers, QUERIES[index][2]))
    return {
        size: [statistics.median(samples[index, size]) for index in range(len(QUERIES))]
        for size in SIZES
    }


def report(engine_name: str, results: dict[int, list[float]]) -> bool:
    base = results[SIZES[0]]
    print(f"\nCoffer list page of 20 on {engine_name}: median ms per request, ratio to 1k")
    header = f"{'query':34}" + "".join(f"{f'{n // 1000}k ms':>10}" for n in SIZES)
    print(header + "".join(f"{f'{n // 1000}k/1k':>9}" for n in SIZES[1:]))
    flat = True
    for index, (label, _params, _calls, must_be_flat) in enumerate(QUERIES):
        ratios = [results[n][index] / base[index] for n in SIZES[1:]]
        line = f"{label:34}" + "".join(f"{results[n][index]:10.2f}" for n in SIZES)
        print(line + "".join(f"{ratio:8.2f}x" for ratio in ratios))
        if must_be_flat and ratios[-1] > LINEAR_ALARM:
            flat = False
    verdict = "flat (sublinear)" if flat else "GROWING with the collection"
    print(f"\nIndexed listings at 100x the records: {verdict}; linear growth would be 100x.")
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
            if db.engine.dialect.name == "postgresql":
                db.session.execute(sa.text("ANALYZE records"))
                db.session.commit()
            engine_name = f"{db.engine.dialect.name} {db.engine.dialect.server_version_info}"
        print(f"filled {sum(SIZES)} records; measuring", file=sys.stderr)
        return 0 if report(engine_name, measure(app, owner_id, headers)) else 1
    finally:
        if schema:
            drop_schema(schema)


if __name__ == "__main__":
    sys.exit(main())
