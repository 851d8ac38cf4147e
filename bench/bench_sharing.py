"""How the time of a page of shared records grows with the collection.

A reader belongs to 20 groups; collections of 1k, 10k and 100k records belong to 50 other
users (1 record in 100 to the reader), and one record in 10 carries a grant: to the reader, to
one of its groups, to another user or to another group (10k grants at 100k). Times
`GET /api/v1/data/{collection}?scope=…` (a page of 20, through the whole Flask stack) and the
page's query alone for each size, interleaving the sizes within every round, and prints each
time as a ratio to the 1k time, like bench_list.py. The reader may read about 6% of every
collection, so a page walks the (collection, created_at|updated_at, id) index over about 330
records, probing the grant and membership indexes for each: flat in the collection's size.
Exits 1 if one of those grows by more than LINEAR_ALARM at 100x the records.

The last two queries are the case that does grow: a collection of which the reader may read
only 40 records, wherever they are, makes a page (in `scope=all` or `scope=shared`) walk the
index until it has found 20 (or reached the end).

    .venv/bin/python bench/bench_sharing.py            # SQLite, in a temporary file
    DATABASE_URL=postgresql+psycopg://… .venv/bin/python bench/bench_sharing.py
    .venv/bin/python bench/bench_sharing.py --sizes 1000,10000 --rounds 3   # a short run

On PostgreSQL it works in a schema of its own, dropped at the end.
"""

import argparse
import math
import pathlib
import statistics
import sys
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa
from bench_list import START, database_url, drop_schema
from flask_migrate import upgrade
from uuid6 import uuid7

from api.extensions import db
from api.models import Group, GroupMember, Record, RecordGrant, Session, User, utcnow
from api.passwords import hash_password
from api.tokens import issue_access_token
from coffer import create_app

SIZES = (1_000, 10_000, 100_000)
ROUNDS = 7
CALLS = 20
LINEAR_ALARM = 10.0  # a 100k/1k ratio above this is growth, not noise
OWNERS, READER_GROUPS, OTHER_GROUPS = 50, 20, 100
SPARSE_READABLE = 40
# (label, collection prefix, query parameters, page at the middle?, must stay flat)
QUERIES = [
    ("scope=all, -created_at", "c", "scope=all&limit=20", False, True),
    ("… page at the middle", "c", "scope=all&limit=20", True, True),
    (
        "scope=all, status=open, -updated_at",
        "c",
        "scope=all&data.status=eq.open&sort=-updated_at",
        False,
        True,
    ),
    ("scope=shared, -created_at", "c", "scope=shared&limit=20", False, True),
    ("scope=shared, id, page at the middle", "c", "scope=shared&sort=id&limit=20", True, True),
    ("scope=own, -created_at", "c", "scope=own&limit=20", False, True),
    ("scope=all, 40 readable (sparse)", "s", "scope=all&limit=20", False, False),
    ("scope=shared, 40 readable (sparse)", "s", "scope=shared&limit=20", False, False),
]


def user(email: str) -> uuid.UUID:
    row = User(email=email, password_hash="x")
    db.session.add(row)
    db.session.flush()
    return row.id


def make_world() -> tuple[uuid.UUID, dict, list[uuid.UUID], list[uuid.UUID], list[uuid.UUID]]:
    """The reader (with a token), the other owners, the reader's groups and other groups."""
    reader = User(email="reader@example.com", password_hash=hash_password("x" * 16))
    db.session.add(reader)
    db.session.flush()
    session = Session(user_id=reader.id, expires_at=utcnow() + timedelta(days=1))
    db.session.add(session)
    owners = [user(f"owner{n}@example.com") for n in range(OWNERS)]
    mine, others = [], []
    for n in range(READER_GROUPS + OTHER_GROUPS):
        group = Group(id=uuid7(), name=f"g{n}", owner_id=owners[n % OWNERS])
        db.session.add(group)
        members = {owners[n % OWNERS], owners[(n + 1) % OWNERS]}
        if n < READER_GROUPS:
            members.add(reader.id)
        db.session.add_all(GroupMember(group_id=group.id, user_id=m) for m in members)
        (mine if n < READER_GROUPS else others).append(group.id)
    db.session.commit()
    token, _ = issue_access_token(reader, session)
    return reader.id, {"Authorization": f"Bearer {token}"}, owners, mine, others


def grantee(i: int, reader, owners, mine, others) -> dict:
    """Who record i's grant goes to: the reader, one of its groups, another user or group."""
    kind = (i // 10) % 4
    if kind == 0:
        return {"user_id": reader}
    if kind == 1:
        return {"group_id": mine[(i // 40) % len(mine)]}
    if kind == 2:
        return {"user_id": owners[(i + 1) % len(owners)]}
    return {"group_id": others[(i // 40) % len(others)]}


def fill(collection: str, size: int, world, *, sparse: bool) -> None:
    """`size` records one millisecond apart and their grants, in batches. Sparse: only
    SPARSE_READABLE records, spread evenly, are granted to the reader, and none is its own."""
    reader, _, owners, mine, others = world
    spread = max(1, size // SPARSE_READABLE)
    for low in range(0, size, 5_000):
        records, grants = [], []
        for i in range(low, min(size, low + 5_000)):
            stamp = START + timedelta(milliseconds=i)
            own = not sparse and i % 100 == 7
            record_id = uuid7()
            records.append(
                {
                    "id": record_id,
                    "owner_id": reader if own else owners[i % len(owners)],
                    "collection": collection,
                    "data": {"status": ("open", "done", "archived")[i % 3], "n": i},
                    "version": 1,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
            if sparse and i % spread == 0:
                grants.append({"record_id": record_id, "user_id": reader, "access": "read"})
            elif not sparse and i % 10 == 0:
                access = ("read", "write")[(i // 20) % 2]
                who = grantee(i, reader, owners, mine, others)
                grants.append({"record_id": record_id, "access": access, **who})
        db.session.execute(sa.insert(Record), records)
        if grants:
            stamp = utcnow()
            db.session.execute(
                sa.insert(RecordGrant),
                [{"id": uuid7(), "created_at": stamp, **g} for g in grants],
            )
        db.session.commit()


def collection_of(prefix: str, size: int) -> str:
    return f"{prefix}{size}"


def url_of(prefix: str, size: int, params: str) -> str:
    return f"/api/v1/data/{collection_of(prefix, size)}?{params}"


def middle_url(client, url: str, headers: dict) -> str:
    """The URL of the page a client reaches half-way through the listing, by its cursors."""
    cursor, cursors = None, []
    while True:
        page = client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=headers)
        cursor = page.get_json()["next_cursor"]
        if cursor is None:
            break
        cursors.append(cursor)
    return url + f"&cursor={cursors[len(cursors) // 2]}"


def sql_capture():
    """tests/sql_capture.py: what the tests see of a request's statements, at the DB-API level
    (a page's query runs on the raw cursor, which SQLAlchemy's events never see)."""
    tests = str(pathlib.Path(__file__).resolve().parent.parent / "tests")
    if tests not in sys.path:
        sys.path.append(tests)
    import sql_capture

    return sql_capture


def captured(app, client, url: str, headers: dict) -> tuple[str, object]:
    """The SQL and parameters of the one query that a page runs (besides authentication), as
    the DB-API cursor got them: on SQLite with the values written in, on PostgreSQL with
    placeholders and parameters."""
    capture = sql_capture()
    with capture.captured_statements(app) as statements:
        assert client.get(url, headers=headers).status_code == 200
    ran = capture.beyond_authentication(statements)
    if len(ran) != 1:
        print(f"{url}: {len(ran)} statements, not 1:", *ran, sep="\n  ", file=sys.stderr)
    [(sql, parameters)] = [(sql, p) for sql, p in ran if "FROM records" in sql]
    return sql, parameters or ()


def timed(call, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e3


def measure(app, headers: dict, sizes, rounds: int, calls: int) -> tuple[dict, dict]:
    """Per (query, size): the median over `rounds` of the mean page time, whole request and
    statement alone, in milliseconds."""
    client = app.test_client()
    urls = {}
    for index, (_label, prefix, params, middle, _flat) in enumerate(QUERIES):
        for size in sizes:
            url = url_of(prefix, size, params)
            urls[index, size] = middle_url(client, url, headers) if middle else url
    statements = {key: captured(app, client, url, headers) for key, url in urls.items()}
    http = {key: [] for key in urls}
    alone = {key: [] for key in urls}
    with app.app_context(), db.engine.connect() as conn:
        for _ in range(rounds):
            for key, url in urls.items():
                http[key].append(timed(lambda url=url: client.get(url, headers=headers), calls))
                sql, parameters = statements[key]
                run = lambda sql=sql, p=parameters: conn.exec_driver_sql(sql, p).all()  # noqa: E731
                alone[key].append(timed(run, calls))
    return (
        {key: statistics.median(samples) for key, samples in http.items()},
        {key: statistics.median(samples) for key, samples in alone.items()},
    )


def size_name(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def report(engine_name: str, title: str, results: dict, sizes) -> bool:
    """Print the table; False if a listing that must stay flat grew past LINEAR_ALARM over a
    100-fold growth of the collection (past √growth, at least 2x, over another range)."""
    first = size_name(sizes[0])
    print(f"\n{title} on {engine_name}: median ms, ratio to {first}")
    header = f"{'query':40}" + "".join(f"{size_name(n) + ' ms':>10}" for n in sizes)
    print(header + "".join(f"{f'{size_name(n)}/{first}':>10}" for n in sizes[1:]))
    # LINEAR_ALARM at 100x the records; over a shorter range, as much on a log scale (√growth).
    growth = sizes[-1] / sizes[0]
    alarm = max(2.0, LINEAR_ALARM ** (math.log(growth) / math.log(100)))
    flat = True
    for index, (label, _prefix, _params, _middle, must_be_flat) in enumerate(QUERIES):
        base = results[index, sizes[0]]
        ratios = [results[index, n] / base for n in sizes[1:]]
        line = f"{label:40}" + "".join(f"{results[index, n]:10.3f}" for n in sizes)
        print(line + "".join(f"{ratio:9.2f}x" for ratio in ratios))
        if must_be_flat and ratios and ratios[-1] > alarm:
            flat = False
    return flat


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=",".join(str(n) for n in SIZES),
        help="collection sizes, comma-separated, smallest first (default: %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="default: %(default)s")
    parser.add_argument(
        "--calls", type=int, default=CALLS, help="pages per round and size (default: %(default)s)"
    )
    args = parser.parse_args()
    args.sizes = tuple(int(n) for n in args.sizes.split(","))
    if len(args.sizes) < 2 or list(args.sizes) != sorted(args.sizes):
        parser.error("--sizes takes two sizes or more, smallest first")
    return args


def main() -> int:
    args = arguments()
    url, schema = database_url()
    try:
        app = create_app({"DATABASE_URL": url, "COFFER_RATE_LIMIT_API": "100000000/minute"})
        with app.app_context():
            upgrade()
            world = make_world()
            start = time.perf_counter()
            for size in args.sizes:
                fill(collection_of("c", size), size, world, sparse=False)
                fill(collection_of("s", size), size, world, sparse=True)
            grants = db.session.scalar(sa.select(sa.func.count()).select_from(RecordGrant))
            print(
                f"filled {2 * sum(args.sizes)} records and {grants} grants "
                f"in {time.perf_counter() - start:.1f} s; measuring",
                file=sys.stderr,
            )
            if db.engine.dialect.name == "postgresql":
                db.session.execute(sa.text("ANALYZE"))
                db.session.commit()
            engine_name = f"{db.engine.dialect.name} {db.engine.dialect.server_version_info}"
        http, alone = measure(app, world[1], args.sizes, args.rounds, args.calls)
        title = "A page of 20 through the whole Flask stack"
        flat = report(engine_name, title, http, args.sizes)
        flat &= report(engine_name, "The page's query alone", alone, args.sizes)
        growth = args.sizes[-1] / args.sizes[0]
        verdict = "flat (sublinear)" if flat else "GROWING with the collection"
        print(
            f"\nShared listings at {growth:g}x the records: {verdict}; "
            f"linear growth would be {growth:g}x."
        )
        return 0 if flat else 1
    finally:
        if schema:
            drop_schema(schema)


if __name__ == "__main__":
    sys.exit(main())
