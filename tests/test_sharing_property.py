"""Property: for any owners, grants, groups and policies, what each caller lists in each scope,
the access it sees, the counts of GET /data, and the answers to a GET and a PATCH of each
record are exactly what a plain-Python model of who-may-read-and-write-what gives (API.md:
Sharing data). Runs on SQLite and on PostgreSQL alike."""

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from helpers import API
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uuid6 import uuid7

from api.extensions import db
from api.models import CollectionPolicy, Group, GroupMember, Record, RecordGrant

USERS = 4  # user 3 is an admin
COLLECTIONS = ("c0", "c1")
SCOPES = ("own", "shared", "all")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def worlds(draw):
    records = draw(
        st.lists(st.tuples(st.integers(0, USERS - 1), st.sampled_from(COLLECTIONS)), max_size=10)
    )
    groups = []
    for _ in range(draw(st.integers(0, 2))):
        owner = draw(st.integers(0, USERS - 1))
        members = draw(st.sets(st.integers(0, USERS - 1), max_size=USERS)) | {owner}
        groups.append((owner, members))
    grantees = [("user", u) for u in range(USERS)] + [("group", g) for g in range(len(groups))]
    grants = {}
    if records:
        for _ in range(draw(st.integers(0, 12))):
            index = draw(st.integers(0, len(records) - 1))
            kind, who = draw(st.sampled_from(grantees))
            if kind == "user" and who == records[index][0]:
                continue  # the owner is never a grantee
            grants[(index, kind, who)] = draw(st.sampled_from(("read", "write")))
    policies = {
        name: draw(st.sampled_from((None, "owner", "users", "public"))) for name in COLLECTIONS
    }
    return records, groups, grants, policies


# --- the model -----------------------------------------------------------------------------


class Model:
    def __init__(self, world) -> None:
        self.records, self.groups, self.grants, self.policies = world

    def granted(self, user: int, index: int, access: str | None = None) -> bool:
        for (record, kind, who), given_access in self.grants.items():
            if record != index or (access and given_access != access):
                continue
            if (kind == "user" and who == user) or (
                kind == "group" and user in self.groups[who][1]
            ):
                return True
        return False

    def readable(self, caller: int | None, scope: str, index: int) -> bool:
        owner, collection = self.records[index]
        if caller is None:
            return self.policies[collection] == "public"
        if scope == "own":
            return owner == caller
        if scope == "shared":
            return owner != caller and self.granted(caller, index)
        if caller == USERS - 1:  # the admin
            return True
        policy = self.policies[collection]
        return owner == caller or self.granted(caller, index) or policy in ("users", "public")

    def writable(self, caller: int, index: int) -> bool:
        """PUT and PATCH: the owner, an admin, or a writer (directly or through a group)."""
        owner = self.records[index][0]
        return caller in (owner, USERS - 1) or self.granted(caller, index, "write")

    def access(self, caller: int | None, index: int) -> str:
        if caller is not None and self.records[index][0] == caller:
            return "owner"
        if caller == USERS - 1 or (caller is not None and self.granted(caller, index, "write")):
            return "write"
        return "read"


# --- the world in the database -------------------------------------------------------------


def store(app, world, users: list[uuid.UUID]) -> list[uuid.UUID]:
    """Replace every record, group, grant and policy with the drawn ones; the record ids."""
    records, groups, grants, policies = world
    with app.app_context():
        for model in (RecordGrant, GroupMember, Group, Record, CollectionPolicy):
            db.session.execute(sa.delete(model))
        record_ids = [uuid7() for _ in records]
        for index, (owner, collection) in enumerate(records):
            stamp = EPOCH + timedelta(seconds=index)
            db.session.add(
                Record(
                    id=record_ids[index],
                    owner_id=users[owner],
                    collection=collection,
                    data={"n": index},
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
        group_ids = [uuid7() for _ in groups]
        for group_id, (owner, members) in zip(group_ids, groups, strict=True):
            db.session.add(Group(id=group_id, name="g", owner_id=users[owner]))
            db.session.add_all(GroupMember(group_id=group_id, user_id=users[m]) for m in members)
        for (index, kind, who), access in grants.items():
            grantee = {"user_id": users[who]} if kind == "user" else {"group_id": group_ids[who]}
            db.session.add(RecordGrant(record_id=record_ids[index], access=access, **grantee))
        for name, read in policies.items():
            if read is not None:
                db.session.add(CollectionPolicy(name=name, read=read, create="users"))
        db.session.commit()
    return record_ids


def listed(client, headers, collection: str, scope: str) -> list[tuple[str, str]] | None:
    """(id, access) of every record of a listing, page by page; None when it is a 401."""
    found, cursor = [], None
    while True:
        query = {"scope": scope, "limit": 3, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"{API}/data/{collection}", query_string=query, headers=headers)
        if response.status_code == 401:
            return None
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        found += [(item["id"], item["access"]) for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def check_one_by_one(client, model, record_ids, caller, headers) -> None:
    """GET of each record: 200 with the model's access when it may read it, else 404 (401 for
    no token outside a public collection); PATCH: 200 when it may write, 403 when it may only
    read, 404 when it may not read."""
    for index, record_id in enumerate(record_ids):
        collection = model.records[index][1]
        path = f"{API}/data/{collection}/{record_id}"
        got = client.get(path, headers=headers)
        if caller is None and model.policies[collection] != "public":
            assert got.status_code == 401, (caller, index)
            continue
        if model.readable(caller, "all", index):
            assert got.status_code == 200, (caller, index, got.get_json())
            assert got.get_json()["access"] == model.access(caller, index), (caller, index)
        else:
            assert got.status_code == 404, (caller, index)
        if caller is None:
            continue
        patched = client.patch(path, json={"data": {"seen": caller}}, headers=headers)
        if not model.readable(caller, "all", index):
            expected = 404
        else:
            expected = 200 if model.writable(caller, index) else 403
        assert patched.status_code == expected, (caller, index, patched.get_json())
        if expected == 200:
            assert patched.get_json()["access"] == model.access(caller, index)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds())
def test_what_each_caller_reads_and_writes_is_what_the_model_says(app, client, accounts, world):
    if not hasattr(accounts, "drawn"):  # once per test: hypothesis reuses the fixtures
        accounts.drawn = [accounts.create() for _ in range(USERS - 1)]
        accounts.drawn.append(accounts.create(role="admin"))
    people = accounts.drawn
    record_ids = store(app, world, [uuid.UUID(p.id) for p in people])
    model = Model(world)
    callers = [(None, {})] + [(n, p.headers) for n, p in enumerate(people)]
    for caller, headers in callers:
        for collection in COLLECTIONS:
            for scope in SCOPES:
                expected = [
                    (str(record_ids[i]), model.access(caller, i))
                    for i in reversed(range(len(record_ids)))  # newest first
                    if model.records[i][1] == collection and model.readable(caller, scope, i)
                ]
                got = listed(client, headers, collection, scope)
                if caller is None and model.policies[collection] != "public":
                    assert got is None
                else:
                    assert got == expected, (caller, collection, scope)
        check_one_by_one(client, model, record_ids, caller, headers)
        if caller is None:
            continue
        for scope in SCOPES:
            response = client.get(f"{API}/data", query_string={"scope": scope}, headers=headers)
            counts = {c["name"]: c["count"] for c in response.get_json()["items"]}
            expected = {}
            for i, (_, collection) in enumerate(model.records):
                if model.readable(caller, scope, i):
                    expected[collection] = expected.get(collection, 0) + 1
            assert counts == expected, (caller, scope)
