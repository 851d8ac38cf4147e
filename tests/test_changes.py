"""The change feed (API.md: Change feed): streams of created/updated/deleted events in commit
order, filtered by the list filters and by what the caller may read, resumable from the log."""

import threading
import time
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from helpers import API, UNKNOWN_ID, assert_problem, create, watch
from sse import Stream

from api import changes, database
from api.extensions import db
from api.models import Change, Record, utcnow


def set_policy(client, admin, collection, read):
    body = {"read": read, "create": "users"}
    response = client.put(f"{API}/collections/{collection}", json=body, headers=admin.headers)
    assert response.status_code == 200, response.get_json()


def patch(client, account, record, data, collection="tasks") -> dict:
    url = f"{API}/data/{collection}/{record['id']}"
    response = client.patch(url, json={"data": data}, headers=account.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def delete(client, account, record, collection="tasks") -> None:
    url = f"{API}/data/{collection}/{record['id']}"
    assert client.delete(url, headers=account.headers).status_code == 204


def test_created_updated_deleted_arrive_in_commit_order_with_increasing_ids(client, user):
    stream = watch(client, user)
    first = create(client, user, {"title": "milk"})
    second = create(client, user, {"title": "eggs"})
    patched = patch(client, user, first, {"done": True})
    replaced = client.put(
        f"{API}/data/tasks/{second['id']}", json={"data": {"n": 1}}, headers=user.headers
    ).get_json()
    delete(client, user, first)

    events = stream.events(5)
    assert [e["event"] for e in events] == ["created", "created", "updated", "updated", "deleted"]
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert events[0]["data"] == {
        "collection": "tasks",
        "record": {**first, "access": "owner"},
        "matches": True,
    }
    assert events[2]["data"]["record"] == {**patched, "access": "owner"}
    assert events[3]["data"]["record"] == {**replaced, "access": "owner"}
    assert events[4]["data"] == {
        "collection": "tasks",
        "record": {"id": first["id"]},
        "matches": False,
    }


def test_a_stream_sends_only_its_collection(client, user):
    stream = watch(client, user, "tasks")
    create(client, user, {"n": 1}, collection="notes")
    shown = create(client, user, {"n": 2}, collection="tasks")
    assert stream.event()["data"]["record"]["id"] == shown["id"]


def test_a_filtered_stream_sends_what_matched_before_or_matches_after(client, user):
    stream = watch(client, user, query="data.status=eq.open")
    a = create(client, user, {"status": "open"})  # matches after
    patch(client, user, a, {"status": "closed"})  # matched before: leaves the view
    patch(client, user, a, {"note": "x"})  # neither: not sent
    b = create(client, user, {"status": "closed"})  # neither
    patch(client, user, b, {"status": "open"})  # enters the view
    delete(client, user, a)  # did not match before: not sent
    delete(client, user, b)  # matched before

    events = stream.events(4)
    seen = [(e["event"], e["data"]["record"]["id"], e["data"]["matches"]) for e in events]
    assert seen == [
        ("created", a["id"], True),
        ("updated", a["id"], False),
        ("updated", b["id"], True),
        ("deleted", b["id"], False),
    ]


def test_another_users_records_never_appear(client, accounts):
    alice, bob = accounts.create(), accounts.create()
    stream = watch(client, alice)
    create(client, bob, {"secret": 1})
    bobs = create(client, bob, {"secret": 2})
    patch(client, bob, bobs, {"secret": 3})
    delete(client, bob, bobs)
    own = create(client, alice, {"mine": True})
    event = stream.event()  # the first event is alice's own, after all of bob's changes
    assert event["data"]["record"]["id"] == own["id"]


def test_an_admin_sees_everyones_changes_in_scope_all_with_write_access(client, accounts):
    admin, user = accounts.create(role="admin"), accounts.create()
    everything = watch(client, admin, query="scope=all")
    own_only = watch(client, admin)
    theirs = create(client, user, {"n": 1})
    mine = create(client, admin, {"n": 2})
    first, second = everything.events(2)
    assert first["data"]["record"]["id"] == theirs["id"]
    assert first["data"]["record"]["access"] == "write"
    assert second["data"]["record"]["access"] == "owner"
    assert own_only.event()["data"]["record"]["id"] == mine["id"]


def test_a_users_scope_all_is_what_it_may_read_its_own_records(client, accounts):
    alice, bob = accounts.create(), accounts.create()
    everything = watch(client, alice, query="scope=all")
    create(client, bob, {"n": 1})
    own = create(client, alice, {"n": 2})
    assert everything.event()["data"]["record"]["id"] == own["id"]


def test_deleting_a_collection_sends_a_deleted_event_per_record(client, user):
    records = [create(client, user, {"n": n}) for n in range(3)]
    stream = watch(client, user)
    assert client.delete(f"{API}/data/tasks", headers=user.headers).status_code == 204
    events = stream.events(3)
    assert {e["data"]["record"]["id"] for e in events} == {r["id"] for r in records}
    assert {e["event"] for e in events} == {"deleted"}


def test_deleting_an_account_sends_the_deletion_of_its_records(client, accounts):
    admin, user = accounts.create(role="admin"), accounts.create()
    record = create(client, user, {"n": 1})
    stream = watch(client, admin, query="scope=all")
    assert client.delete(f"{API}/users/{user.id}", headers=admin.headers).status_code == 204
    event = stream.event()
    assert (event["event"], event["data"]["record"]) == ("deleted", {"id": record["id"]})


def test_a_failed_write_logs_no_change(app, client, user):
    record = create(client, user, {"n": 1})
    url = f"{API}/data/tasks/{record['id']}"
    stale = client.put(url, json={"data": {}}, headers={**user.headers, "If-Match": '"x.9"'})
    assert stale.status_code == 412
    with app.app_context():
        kinds = db.session.scalars(sa.select(Change.kind).order_by(Change.id)).all()
    assert kinds == ["created"]


# --- resume -----------------------------------------------------------------------------------


def test_a_reconnect_with_last_event_id_gets_exactly_the_changes_it_missed(client, user):
    stream = watch(client, user)
    record = create(client, user, {"n": 0})
    last = stream.event()["id"]
    stream.close()  # disconnected
    for n in range(1, 51):
        patch(client, user, record, {"n": n})

    resumed = watch(client, user, headers={"Last-Event-ID": last})
    events = resumed.events(50)
    assert [e["data"]["record"]["data"]["n"] for e in events] == list(range(1, 51))
    assert len({e["id"] for e in events}) == 50
    # None repeated, nothing more: the next event is the next change.
    patch(client, user, record, {"n": 51})
    assert resumed.event()["data"]["record"]["data"]["n"] == 51


def test_a_browser_resumes_with_the_last_event_id_parameter(client, user):
    stream = watch(client, user)
    create(client, user, {"n": 0})
    last = stream.event()["id"]
    create(client, user, {"n": 1})
    resumed = watch(client, user, query=f"last_event_id={last}")
    assert resumed.event()["data"]["record"]["data"] == {"n": 1}


@pytest.mark.parametrize("last_event_id", ["abc", "-1", "99999999", "1e3", "١٢"])
def test_an_id_that_cannot_be_resumed_gets_a_reset_with_the_current_position(
    client, user, last_event_id
):
    create(client, user, {"n": 0})
    stream = watch(client, user, headers={"Last-Event-ID": last_event_id})
    reset = stream.event()
    assert reset["event"] == "reset" and reset["data"] == {}
    # The reset's id is the current position: the stream follows on from there.
    after = create(client, user, {"n": 1})
    event = stream.event()
    assert event["data"]["record"]["id"] == after["id"] and int(event["id"]) > int(reset["id"])


def test_an_id_older_than_the_retention_gets_a_reset(make_app, accounts_for, frozen_clock):
    app = make_app(COFFER_CHANGES_RETENTION=3600, COFFER_ACCESS_TOKEN_TTL=86400)
    client, user = app.test_client(), accounts_for(app).create()
    stream = watch(client, user)
    create(client, user, {"n": 0})
    old = stream.event()["id"]
    frozen_clock.advance(3599)
    create(client, user, {"n": 1})
    within = watch(client, user, headers={"Last-Event-ID": old})
    assert within.event()["data"]["record"]["data"] == {"n": 1}  # still resumable
    frozen_clock.advance(2)
    beyond = watch(client, user, headers={"Last-Event-ID": old})
    reset = beyond.event()
    assert reset["event"] == "reset"
    # Once pruned (here, or by the app's own pruning, whichever comes first), the ids gone
    # are refused for what they are.
    frozen_clock.advance(3600)
    with app.app_context():
        changes.prune(db.session.connection(), 3600)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Change)) == 0
    gone = watch(client, user, headers={"Last-Event-ID": old})
    assert gone.event()["event"] == "reset"


# --- what a stream takes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["sort=-created_at", "limit=5", "cursor=abc", "scope=everything", f"owner_id={UNKNOWN_ID}"],
)
def test_list_paging_an_unknown_scope_or_owner_id_is_400(client, admin, query):
    response = client.get(f"{API}/data/tasks/changes?{query}", headers=admin.headers)
    assert_problem(response, 400)


def test_a_bad_filter_or_collection_name_is_400(client, user):
    bad = client.get(f"{API}/data/tasks/changes?data.x=like.1", headers=user.headers)
    assert_problem(bad, 400)
    assert_problem(client.get(f"{API}/data/Tasks/changes", headers=user.headers), 400)


def test_a_stream_needs_a_token(client):
    assert_problem(client.get(f"{API}/data/tasks/changes"), 401)
    assert_problem(client.get(f"{API}/changes?collections=a"), 401)


def test_one_stream_watches_several_collections(client, user):
    stream = Stream(
        client.get(f"{API}/changes?collections=tasks,notes", headers=user.headers, buffered=False)
    )
    create(client, user, {"n": 1}, collection="other")
    task = create(client, user, {"n": 2}, collection="tasks")
    note = create(client, user, {"n": 3}, collection="notes")
    events = stream.events(2)
    assert [(e["data"]["collection"], e["data"]["record"]["id"]) for e in events] == [
        ("tasks", task["id"]),
        ("notes", note["id"]),
    ]


@pytest.mark.parametrize(
    "query, status",
    [
        ("", 400),
        ("collections=", 400),
        ("collections=a,Bad", 400),
        ("collections=" + ",".join(f"c{n}" for n in range(21)), 422),
        ("collections=a&data.x=eq.1", 400),
    ],
)
def test_the_collections_of_a_stream_are_checked(client, user, query, status):
    assert_problem(client.get(f"{API}/changes?{query}", headers=user.headers), status)


def test_twenty_collections_are_allowed(client, user):
    names = ",".join(f"c{n}" for n in range(20))
    url = f"{API}/changes?collections={names}"
    Stream(client.get(url, headers=user.headers, buffered=False)).close()


# --- tickets ----------------------------------------------------------------------------------


def ticket_for(client, account) -> str:
    response = client.post(f"{API}/stream-tickets", headers=account.headers)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["expires_in"] == 30 and len(body["ticket"]) >= 40
    return body["ticket"]


def test_a_ticket_opens_one_stream_without_a_header(client, user):
    ticket = ticket_for(client, user)
    stream = Stream(client.get(f"{API}/data/tasks/changes?ticket={ticket}", buffered=False))
    record = create(client, user, {"n": 1})
    assert stream.event()["data"]["record"]["id"] == record["id"]
    reused = client.get(f"{API}/data/tasks/changes?ticket={ticket}")
    assert_problem(reused, 401)


def test_a_ticket_is_no_token(client, user):
    ticket = ticket_for(client, user)
    as_bearer = client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {ticket}"})
    assert_problem(as_bearer, 401)
    assert_problem(client.get(f"{API}/data/tasks?ticket={ticket}"), 401)


def test_an_expired_ticket_opens_nothing(make_app, accounts_for, frozen_clock):
    app = make_app()
    client, user = app.test_client(), accounts_for(app).create()
    ticket = ticket_for(client, user)
    frozen_clock.advance(31)
    assert_problem(client.get(f"{API}/changes?collections=a&ticket={ticket}"), 401)


def test_a_ticket_of_a_revoked_session_opens_nothing(client, user):
    ticket = ticket_for(client, user)
    assert client.delete(f"{API}/sessions/current", headers=user.headers).status_code == 204
    assert_problem(client.get(f"{API}/changes?collections=a&ticket={ticket}"), 401)


# --- the end of a stream -----------------------------------------------------------------------


def test_a_stream_ends_within_5_seconds_of_its_session_being_revoked(client, user):
    stream = watch(client, user)
    assert client.delete(f"{API}/sessions/current", headers=user.headers).status_code == 204
    stream.end_within(5)


def test_a_ticket_stream_ends_with_its_session(client, user):
    ticket = ticket_for(client, user)
    stream = Stream(client.get(f"{API}/changes?collections=a&ticket={ticket}", buffered=False))
    assert client.delete(f"{API}/sessions/current", headers=user.headers).status_code == 204
    stream.end_within(5)


def test_a_stream_ends_within_5_seconds_of_its_user_being_deactivated(client, accounts):
    admin, user = accounts.create(role="admin"), accounts.create()
    stream = watch(client, user)
    off = client.patch(f"{API}/users/{user.id}", json={"is_active": False}, headers=admin.headers)
    assert off.status_code == 200
    stream.end_within(5)


def test_a_stream_ends_within_5_seconds_of_its_user_being_deleted(client, accounts):
    admin, user = accounts.create(role="admin"), accounts.create()
    stream = watch(client, user)
    assert client.delete(f"{API}/users/{user.id}", headers=admin.headers).status_code == 204
    stream.end_within(5)


def test_a_stream_outlives_its_access_token_and_ends_with_its_session(
    make_app, accounts_for, frozen_clock
):
    """API.md: a stream lives as long as its session, not its access token."""
    app = make_app(COFFER_ACCESS_TOKEN_TTL=60, COFFER_REFRESH_TOKEN_TTL=3600)
    writer_app = make_app(COFFER_ACCESS_TOKEN_TTL=86400)  # the same database, long tokens
    client = app.test_client()
    user = accounts_for(app).create()
    writer = accounts_for(writer_app).create()
    stream = watch(client, user, "board", query="scope=all")
    admin = accounts_for(writer_app).create(role="admin")
    set_policy(writer_app.test_client(), admin, "board", read="users")
    frozen_clock.advance(120)  # the access token has expired (60 s + 30 s of leeway)
    assert_problem(client.get(f"{API}/users/me", headers=user.headers), 401)
    record = create(writer_app.test_client(), writer, {"n": 1}, "board")
    assert stream.event()["data"]["record"]["id"] == record["id"]  # the stream goes on
    frozen_clock.advance(3600)  # the session has expired
    stream.end_within(5)


def test_a_policy_change_stops_a_non_owners_events_at_once(client, accounts):
    admin, owner, reader = (accounts.create(role="admin"), accounts.create(), accounts.create())
    set_policy(client, admin, "board", read="users")
    stream = watch(client, reader, "board", query="scope=all")
    shown = create(client, owner, {"n": 1}, "board")
    assert stream.event()["data"]["record"]["id"] == shown["id"]
    set_policy(client, admin, "board", read="owner")
    create(client, owner, {"n": 2}, "board")  # no longer the reader's to see
    patch(client, owner, shown, {"n": 3}, "board")
    own = create(client, reader, {"n": 4}, "board")
    assert stream.event()["data"]["record"]["id"] == own["id"]  # the next one is its own


def test_an_idle_stream_gets_a_keep_alive_comment_every_interval(app, client, user):
    app.extensions["coffer_feed"].heartbeat = 0.3  # 15 s in production
    stream = watch(client, user)
    start = time.monotonic()
    blocks = [stream.block() for _ in range(3)]
    elapsed = time.monotonic() - start
    assert blocks == [{"comments": ["keep-alive"]}] * 3
    assert 0.9 <= elapsed < 10  # one per interval (not a flood, nor every 15 s)


def test_shutdown_ends_every_stream(app, client, user):
    stream = watch(client, user)
    threading.Timer(0.2, app.extensions["coffer_feed"].stop).start()
    stream.end_within(3)


def test_beyond_max_streams_is_503_with_retry_after(make_app, accounts_for):
    app = make_app(COFFER_MAX_STREAMS=2)
    client, user = app.test_client(), accounts_for(app).create()
    streams = [watch(client, user) for _ in range(2)]
    refused = client.get(f"{API}/data/tasks/changes", headers=user.headers)
    assert_problem(refused, 503)
    assert int(refused.headers["Retry-After"]) > 0
    streams[0].close()  # a slot is free again
    watch(client, user).close()


# --- the log's order --------------------------------------------------------------------------


def _entry(n: int) -> dict:
    from api.models import utcnow

    now = utcnow()
    record = {
        "id": uuid.uuid4(),
        "collection": "tasks",
        "owner_id": uuid.uuid4(),
        "data": {"n": n},
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    return changes.created(record)


def _postgres_engine(app):
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: a change gets its position as it commits")
    return engine


def _positions(conn, after: int = 0) -> list[tuple[int, int]]:
    """(position, data.n) of the numbered changes after `after`, in order."""
    stmt = sa.select(Change.position, Change.data).where(Change.position > after)
    rows = conn.execute(stmt.order_by(Change.position)).all()
    conn.commit()
    return [(row.position, row.data["n"]) for row in rows]


def test_a_change_that_commits_later_comes_later_whatever_its_id(app):
    """Writers log in parallel; a change gets its position once committed, so one that commits
    after another comes after it even with the smaller id, and a reader that has read through
    a position never meets a smaller one later."""
    engine = _postgres_engine(app)
    with engine.connect() as first, engine.connect() as second, engine.connect() as sequencer:
        changes.append(first, [_entry(1)])  # its id is drawn; not committed yet
        logged = threading.Event()

        def later() -> None:
            changes.append(second, [_entry(2)])
            second.commit()
            logged.set()

        thread = threading.Thread(target=later)
        thread.start()
        assert logged.wait(5), "a writer waited for another writer's commit"
        thread.join()
        assert changes.number(sequencer) == 1  # the committed one only
        [(read_through, n)] = _positions(sequencer)
        assert n == 2
        first.commit()
        assert changes.number(sequencer) == 1
        assert [n for _, n in _positions(sequencer, read_through)] == [1]
        ids = dict(sequencer.execute(sa.select(Change.data["n"].as_integer(), Change.id)).all())
    assert ids[1] < ids[2]


def test_after_the_whole_log_is_pruned_positions_go_on_after_the_last_one_given(app):
    """An empty log (everything pruned): the sequencer numbers after the pruned positions, so
    a client that resumes from one it held never gets a position it has already passed."""
    engine = _postgres_engine(app)
    with engine.connect() as conn:
        for n in (1, 2):
            changes.append(conn, [_entry(n)])
            conn.commit()
        changes.number(conn)
        passed = changes.head(conn)
        conn.execute(sa.update(Change).values(occurred_at=utcnow() - timedelta(days=2)))
        conn.commit()
        assert changes.prune(conn, 3600) == 2
        assert changes.head(conn) == passed == changes.pruned_through(conn)
        changes.append(conn, [_entry(3)])
        conn.commit()
        assert changes.number(conn) == 1
        assert _positions(conn, passed) == [(passed + 1, 3)]


def test_parallel_writers_and_sequencers_give_a_reader_every_change_once_in_order(app):
    """Eight writers, two sequencers and a reader at once: the reader, always reading after
    the last position it saw, gets every change exactly once, positions increasing, and each
    writer's changes in the order it committed them."""
    engine = _postgres_engine(app)
    writers, each = 8, 25
    done = threading.Event()
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            with engine.connect() as conn:
                for i in range(each):
                    changes.append(conn, [_entry(w * 1000 + i)])
                    conn.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def sequence() -> None:
        try:
            with engine.connect() as conn:
                while not done.is_set():
                    changes.number(conn)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    seen: list[tuple[int, int]] = []

    def read() -> None:
        try:
            with engine.connect() as conn:
                while not done.is_set():
                    seen.extend(_positions(conn, seen[-1][0] if seen else 0))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    helpers = [threading.Thread(target=sequence) for _ in range(2)] + [
        threading.Thread(target=read)
    ]
    for thread in threads + helpers:
        thread.start()
    for thread in threads:
        thread.join(60)
    with engine.connect() as conn:
        changes.number(conn)
    time.sleep(0.3)
    done.set()
    for thread in helpers:
        thread.join(10)
    assert not errors, errors
    with engine.connect() as conn:
        seen.extend(_positions(conn, seen[-1][0] if seen else 0))
    positions = [position for position, _ in seen]
    assert positions == sorted(set(positions)), "a position came twice or out of order"
    ns = [n for _, n in seen]
    assert sorted(ns) == sorted(w * 1000 + i for w in range(writers) for i in range(each))
    for w in range(writers):
        assert [n for n in ns if n // 1000 == w] == [w * 1000 + i for i in range(each)]


def test_a_browser_on_another_origin_may_open_a_stream(client, user):
    origin = {"Origin": "https://app.example.org"}
    preflight = client.options(
        f"{API}/changes?collections=a",
        headers={
            **origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, last-event-id",
        },
    )
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "last-event-id" in allowed
    response = client.get(
        f"{API}/changes?collections=a", headers={**user.headers, **origin}, buffered=False
    )
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    Stream(response).close()


# --- with sharing: grants, groups and policies decide what a stream sees ----------------------


def _grant(client, owner, record, grantee: str, access: str = "read") -> None:
    url = f"{API}/data/tasks/{record['id']}/grants/{grantee}"
    assert client.put(url, json={"access": access}, headers=owner.headers).status_code == 200


def _revoke(client, owner, record, grantee: str) -> None:
    url = f"{API}/data/tasks/{record['id']}/grants/{grantee}"
    assert client.delete(url, headers=owner.headers).status_code == 204


def test_a_shared_records_changes_reach_the_grantee_until_the_grant_is_revoked(client, accounts):
    alice, bob = accounts.create(), accounts.create()
    shared = create(client, alice, {"n": 0})
    hidden = create(client, alice, {"secret": True})
    _grant(client, alice, shared, f"user:{bob.id}")
    stream = watch(client, bob, query="scope=shared")
    patch(client, alice, hidden, {"secret": "still"})
    patch(client, alice, shared, {"n": 1})
    event = stream.event()
    assert event["data"]["record"]["id"] == shared["id"]
    assert event["data"]["record"]["access"] == "read" and event["data"]["record"]["data"]["n"] == 1

    _revoke(client, alice, shared, f"user:{bob.id}")
    patch(client, alice, shared, {"n": 2})  # no longer bob's to see
    marker = create(client, bob, {"own": True})
    _grant(client, alice, hidden, f"user:{bob.id}", "write")
    patch(client, alice, hidden, {"now": "shared"})
    event = stream.event()
    assert event["data"]["record"]["id"] == hidden["id"], "neither the revoked nor bob's own"
    assert event["data"]["record"]["access"] == "write"
    assert marker["id"] != event["data"]["record"]["id"]


def test_a_group_grant_reaches_members_and_ends_with_the_membership(client, accounts):
    alice, bob = accounts.create(), accounts.create()
    group = client.post(f"{API}/groups", json={"name": "team"}, headers=alice.headers).get_json()
    member = f"{API}/groups/{group['id']}/members/{bob.id}"
    assert client.put(member, headers=alice.headers).status_code == 204
    board = create(client, alice, {"n": 0})
    _grant(client, alice, board, f"group:{group['id']}")
    stream = watch(client, bob, query="scope=all")
    patch(client, alice, board, {"n": 1})
    assert stream.event()["data"]["record"]["data"]["n"] == 1
    assert client.delete(member, headers=alice.headers).status_code == 204
    patch(client, alice, board, {"n": 2})
    mine = create(client, bob, {"mine": True})
    assert stream.event()["data"]["record"]["id"] == mine["id"]


def test_a_deletion_reaches_whoever_could_read_the_record_just_before(client, accounts):
    alice, bob, carol, dave = (accounts.create() for _ in range(4))
    group = client.post(f"{API}/groups", json={"name": "team"}, headers=alice.headers).get_json()
    member = f"{API}/groups/{group['id']}/members/{carol.id}"
    assert client.put(member, headers=alice.headers).status_code == 204
    direct, through_group, unshared = (create(client, alice, {"n": n}) for n in range(3))
    _grant(client, alice, direct, f"user:{bob.id}")
    _grant(client, alice, through_group, f"group:{group['id']}")
    streams = {name: watch(client, who, query="scope=all") for name, who in
               (("bob", bob), ("carol", carol), ("dave", dave))}  # fmt: skip
    own_only = watch(client, bob)  # scope=own: shared records are not its view
    for record in (unshared, direct, through_group):
        delete(client, alice, record)
    marker = create(client, dave, {"dave's": True})
    bobs = create(client, bob, {"bob's": True})
    carols = create(client, carol, {"carol's": True})

    assert [e["data"]["record"]["id"] for e in streams["bob"].events(2)] == [
        direct["id"],
        bobs["id"],
    ]
    deleted = streams["carol"].event()
    assert (deleted["event"], deleted["data"]) == (
        "deleted",
        {"collection": "tasks", "record": {"id": through_group["id"]}, "matches": False},
    )
    assert streams["carol"].event()["data"]["record"]["id"] == carols["id"]
    assert streams["dave"].event()["data"]["record"]["id"] == marker["id"], "never shared"
    assert own_only.event()["data"]["record"]["id"] == bobs["id"]


def test_deleting_a_collection_or_an_account_reaches_its_grantees(client, accounts):
    alice, bob = accounts.create(), accounts.create()
    first, second = create(client, alice, {"n": 1}), create(client, alice, {"n": 2})
    _grant(client, alice, first, f"user:{bob.id}")
    _grant(client, alice, second, f"user:{bob.id}")
    stream = watch(client, bob, query="scope=shared")
    assert client.delete(f"{API}/data/tasks", headers=alice.headers).status_code == 204
    events = stream.events(2)
    assert {e["data"]["record"]["id"] for e in events} == {first["id"], second["id"]}
    assert {e["event"] for e in events} == {"deleted"}
    third = create(client, alice, {"n": 3})  # not bob's yet: no event for him
    _grant(client, alice, third, f"user:{bob.id}")  # a grant is no change of the record
    confirmation = {"password": alice.password}
    assert (
        client.delete(f"{API}/users/me", json=confirmation, headers=alice.headers).status_code
        == 204
    )
    gone = stream.event()
    assert (gone["event"], gone["data"]["record"]["id"]) == ("deleted", third["id"])


def test_a_public_collections_stream_needs_no_token(client, accounts):
    admin, alice = accounts.create(role="admin"), accounts.create()
    policy = {"read": "public", "create": "users"}
    assert (
        client.put(f"{API}/collections/news", json=policy, headers=admin.headers).status_code == 200
    )
    response = client.get(f"{API}/data/news/changes", buffered=False)
    assert response.status_code == 200
    stream = Stream(response)
    create(client, alice, {"private": True}, collection="tasks")
    item = create(client, alice, {"headline": "hello"}, collection="news")
    event = stream.event()
    assert (
        event["data"]["record"]["id"] == item["id"] and event["data"]["record"]["access"] == "read"
    )


def test_a_private_collections_stream_needs_a_token(client):
    assert_problem(client.get(f"{API}/data/tasks/changes", buffered=False), 401)
    assert_problem(client.get(f"{API}/changes?collections=tasks", buffered=False), 401)


def test_a_record_and_its_change_commit_together_on_the_requests_connection(app, user):
    """On PostgreSQL the request's connection runs in AUTOCOMMIT; a record write and its log
    entry leave it for one transaction, so a failure between them leaves neither."""
    entry = _entry(7)
    with app.test_request_context():
        conn = database.connection()
        with pytest.raises(RuntimeError), database.transaction(conn):
            record = {**_record_of(entry), "owner_id": uuid.UUID(user.id)}
            conn.execute(sa.insert(Record.__table__), record)
            changes.append(conn, [entry])
            raise RuntimeError("the request fails before its commit")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Change)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Record)) == 0


def _record_of(entry: dict) -> dict:
    names = ("collection", "owner_id", "version", "created_at", "updated_at", "data")
    return {"id": entry["record_id"], **{name: entry[name] for name in names}}


# --- pruning the log ---------------------------------------------------------------------------


def _logged(app) -> list[dict]:
    with app.app_context():
        rows = db.session.scalars(sa.select(Change.data).order_by(Change.id)).all()
        db.session.commit()
    return rows


def test_a_writing_app_prunes_the_log_without_any_open_stream(make_app, accounts_for, frozen_clock):
    app = make_app(COFFER_CHANGES_RETENTION=3600, COFFER_ACCESS_TOKEN_TTL=86400)
    client, user = app.test_client(), accounts_for(app).create()
    create(client, user, {"n": 0})
    frozen_clock.advance(3601)  # past the retention, and past the first pruning (~30 s)
    create(client, user, {"n": 1})
    deadline = time.monotonic() + 5
    while _logged(app) != [{"n": 1}] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _logged(app) == [{"n": 1}]


def test_flask_purge_prunes_the_log(make_app, accounts_for, frozen_clock):
    app = make_app(COFFER_CHANGES_RETENTION=3600, COFFER_ACCESS_TOKEN_TTL=86400)
    client, user = app.test_client(), accounts_for(app).create()
    create(client, user, {"n": 0})
    app.extensions["coffer_feed"].stop()  # as in a process that only runs the command
    frozen_clock.advance(1800)
    create(client, user, {"n": 1})
    frozen_clock.advance(1801)
    with app.app_context():  # as `flask` pushes one
        result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert "pruned 1 changes" in result.output
    assert _logged(app) == [{"n": 1}]
