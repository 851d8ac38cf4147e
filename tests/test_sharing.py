"""Sharing data: grants of one record to a user or a group, groups and their members, and what
a grantee may and may not do (API.md: Sharing data)."""

import pytest
from helpers import API, UNKNOWN_ID, assert_problem

DATA = f"{API}/data"


@pytest.fixture
def owner(accounts):
    return accounts.create()


@pytest.fixture
def friend(accounts):
    return accounts.create()


@pytest.fixture
def stranger(accounts):
    return accounts.create()


def create(client, account, data, collection="lists"):
    response = client.post(f"{DATA}/{collection}", json={"data": data}, headers=account.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def url(record) -> str:
    return f"{DATA}/{record['collection']}/{record['id']}"


def grant(client, account, record, grantee: str, access: str):
    return client.put(
        f"{url(record)}/grants/{grantee}", json={"access": access}, headers=account.headers
    )


def listed(client, account, scope: str, collection="lists", **params) -> list[dict]:
    response = client.get(
        f"{DATA}/{collection}",
        query_string={"scope": scope, **params},
        headers=account.headers,
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def ids(items) -> list[str]:
    return [item["id"] for item in items]


def writes(client, account, record, etag=None) -> list[int]:
    """The statuses of PUT, PATCH and DELETE of the record by `account`."""
    headers = {**account.headers, **({"If-Match": etag} if etag else {})}
    return [
        client.put(url(record), json={"data": {"x": 1}}, headers=headers).status_code,
        client.patch(url(record), json={"data": {"x": 1}}, headers=headers).status_code,
        client.delete(url(record), headers=headers).status_code,
    ]


def make_group(client, account, name="team") -> dict:
    response = client.post(f"{API}/groups", json={"name": name}, headers=account.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def add_member(client, account, group, member):
    path = f"{API}/groups/{group['id']}/members/{member.id}"
    return client.put(path, headers=account.headers)


def remove_member(client, account, group, member):
    path = f"{API}/groups/{group['id']}/members/{member.id}"
    return client.delete(path, headers=account.headers)


# --- grants to a user ------------------------------------------------------------------------


def test_a_record_shared_read_only_is_read_and_listed_but_not_written(client, owner, friend):
    record = create(client, owner, {"item": "milk"})
    create(client, owner, {"item": "private"})
    assert client.get(url(record), headers=friend.headers).status_code == 404
    response = grant(client, owner, record, f"user:{friend.id}", "read")
    assert response.status_code == 200
    assert response.get_json()["grantee"] == f"user:{friend.id}"
    assert response.get_json()["access"] == "read"
    got = client.get(url(record), headers=friend.headers)
    assert got.status_code == 200 and got.get_json()["access"] == "read"
    assert got.get_json()["owner_id"] == owner.id
    for scope in ("shared", "all"):
        items = listed(client, friend, scope)
        assert ids(items) == [record["id"]] and items[0]["access"] == "read"
    assert listed(client, friend, "own") == []
    for status in writes(client, friend, record, got.headers["ETag"]):
        assert status == 403
    assert client.get(url(record), headers=owner.headers).get_json()["version"] == 1


def test_an_upgrade_to_write_lets_the_grantee_patch_with_if_match(client, owner, friend):
    record = create(client, owner, {"item": "milk", "qty": 1})
    grant(client, owner, record, f"user:{friend.id}", "read")
    assert grant(client, owner, record, f"user:{friend.id}", "write").status_code == 200
    etag = client.get(url(record), headers=friend.headers).headers["ETag"]
    patched = client.patch(
        url(record), json={"data": {"qty": 2}}, headers={**friend.headers, "If-Match": etag}
    )
    assert patched.status_code == 200, patched.get_json()
    body = patched.get_json()
    assert body["data"] == {"item": "milk", "qty": 2} and body["version"] == 2
    assert body["access"] == "write" and body["owner_id"] == owner.id
    stale = client.patch(
        url(record), json={"data": {"qty": 3}}, headers={**friend.headers, "If-Match": etag}
    )
    assert_problem(stale, 412)
    put = client.put(url(record), json={"data": {"item": "oat milk"}}, headers=friend.headers)
    assert put.status_code == 200 and put.get_json()["owner_id"] == owner.id
    assert_problem(client.delete(url(record), headers=friend.headers), 403)
    assert listed(client, friend, "shared")[0]["access"] == "write"


def test_revoking_a_grant_ends_access_at_once(client, owner, friend):
    record = create(client, owner, {"item": "milk"})
    grant(client, owner, record, f"user:{friend.id}", "write")
    assert client.get(url(record), headers=friend.headers).status_code == 200
    revoked = client.delete(f"{url(record)}/grants/user:{friend.id}", headers=owner.headers)
    assert revoked.status_code == 204
    assert_problem(client.get(url(record), headers=friend.headers), 404)
    assert listed(client, friend, "all") == [] and listed(client, friend, "shared") == []
    for status in writes(client, friend, record):
        assert status == 404
    again = client.delete(f"{url(record)}/grants/user:{friend.id}", headers=owner.headers)
    assert again.status_code == 204


def test_a_grantee_never_manages_grants(client, owner, friend, stranger):
    record = create(client, owner, {"item": "milk"})
    grant(client, owner, record, f"user:{friend.id}", "write")
    grants = f"{url(record)}/grants"
    assert_problem(client.get(grants, headers=friend.headers), 403)
    assert_problem(grant(client, friend, record, f"user:{stranger.id}", "read"), 403)
    assert_problem(client.delete(f"{grants}/user:{friend.id}", headers=friend.headers), 403)
    # Who may not read the record does not learn that it exists.
    assert_problem(client.get(grants, headers=stranger.headers), 404)
    assert_problem(grant(client, stranger, record, f"user:{stranger.id}", "read"), 404)
    listing = client.get(grants, headers=owner.headers).get_json()
    assert [g["grantee"] for g in listing["items"]] == [f"user:{friend.id}"]
    assert listing["next_cursor"] is None


def test_admins_manage_any_records_grants(client, owner, friend, admin):
    record = create(client, owner, {"item": "milk"})
    assert grant(client, admin, record, f"user:{friend.id}", "read").status_code == 200
    assert client.get(url(record), headers=friend.headers).status_code == 200
    listing = client.get(f"{url(record)}/grants", headers=admin.headers)
    assert listing.status_code == 200 and len(listing.get_json()["items"]) == 1


@pytest.mark.parametrize(
    "grantee",
    ["user:" + UNKNOWN_ID, "group:" + UNKNOWN_ID, "user:nope", "team:" + UNKNOWN_ID, "nobody"],
)
def test_an_unknown_or_malformed_grantee_is_422(client, owner, grantee):
    record = create(client, owner, {"item": "milk"})
    body = assert_problem(grant(client, owner, record, grantee, "read"), 422)
    assert "grantee" in body["errors"]


def test_the_owner_cannot_be_a_grantee(client, owner):
    record = create(client, owner, {"item": "milk"})
    body = assert_problem(grant(client, owner, record, f"user:{owner.id}", "read"), 422)
    assert "grantee" in body["errors"]


def test_a_grant_takes_only_read_or_write(client, owner, friend):
    record = create(client, owner, {"item": "milk"})
    assert_problem(grant(client, owner, record, f"user:{friend.id}", "owner"), 422)
    path = f"{url(record)}/grants/user:{friend.id}"
    extra = client.put(path, json={"access": "read", "x": 1}, headers=owner.headers)
    assert_problem(extra, 422)


def test_the_grants_list_pages(client, owner, accounts):
    record = create(client, owner, {"item": "milk"})
    friends = [accounts.create() for _ in range(3)]
    for friend in friends:
        grant(client, owner, record, f"user:{friend.id}", "read")
    seen, cursor = [], None
    for _ in range(3):
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{url(record)}/grants", query_string=query, headers=owner.headers)
        assert page.status_code == 200
        seen += [g["grantee"] for g in page.get_json()["items"]]
        cursor = page.get_json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"user:{f.id}" for f in friends)


def test_sharing_and_unsharing_are_security_events_of_the_owner(client, owner, friend):
    record = create(client, owner, {"item": "milk"})
    grant(client, owner, record, f"user:{friend.id}", "read")
    grant(client, owner, record, f"user:{friend.id}", "read")  # no change: no event
    client.delete(f"{url(record)}/grants/user:{friend.id}", headers=owner.headers)
    events = client.get(f"{API}/users/me/events", headers=owner.headers).get_json()["items"]
    sharing = [e for e in events if e["type"].startswith("record_")]
    assert [e["type"] for e in sharing] == ["record_unshared", "record_shared"]
    details = {"collection": "lists", "record_id": record["id"], "grantee": f"user:{friend.id}"}
    assert sharing[1]["details"] == {**details, "access": "read"}
    assert sharing[0]["details"] == details


def test_deleting_a_record_deletes_its_grants(client, owner, friend):
    record = create(client, owner, {"item": "milk"})
    grant(client, owner, record, f"user:{friend.id}", "read")
    assert client.delete(url(record), headers=owner.headers).status_code == 204
    assert listed(client, friend, "shared") == []


# --- groups --------------------------------------------------------------------------------


def test_a_record_shared_with_a_group_reaches_its_members_until_removed(
    client, owner, friend, stranger
):
    record = create(client, owner, {"item": "milk"})
    group = make_group(client, owner)
    assert group["owner_id"] == owner.id and group["name"] == "team"
    assert add_member(client, owner, group, friend).status_code == 204
    assert grant(client, owner, record, f"group:{group['id']}", "read").status_code == 200
    got = client.get(url(record), headers=friend.headers)
    assert got.status_code == 200 and got.get_json()["access"] == "read"
    assert ids(listed(client, friend, "shared")) == [record["id"]]
    assert writes(client, friend, record) == [403, 403, 403]
    assert_problem(client.get(url(record), headers=stranger.headers), 404)
    grant(client, owner, record, f"group:{group['id']}", "write")
    assert listed(client, friend, "all")[0]["access"] == "write"
    assert remove_member(client, owner, group, friend).status_code == 204
    assert_problem(client.get(url(record), headers=friend.headers), 404)
    assert listed(client, friend, "all") == []


def test_a_member_may_leave_and_loses_access_at_once(client, owner, friend):
    record = create(client, owner, {"item": "milk"})
    group = make_group(client, owner)
    add_member(client, owner, group, friend)
    grant(client, owner, record, f"group:{group['id']}", "read")
    assert remove_member(client, friend, group, friend).status_code == 204
    assert_problem(client.get(url(record), headers=friend.headers), 404)
    assert listed(client, friend, "all") == []
    assert_problem(client.get(f"{API}/groups/{group['id']}", headers=friend.headers), 404)
    assert client.get(f"{API}/groups", headers=friend.headers).get_json()["items"] == []
    members = client.get(f"{API}/groups/{group['id']}/members", headers=owner.headers)
    assert [m["user_id"] for m in members.get_json()["items"]] == [owner.id]
    assert remove_member(client, friend, group, friend).status_code == 404  # no longer in it


def test_a_group_grant_of_write_lets_members_patch_with_if_match(client, owner, friend):
    record = create(client, owner, {"item": "milk", "qty": 1})
    group = make_group(client, owner)
    add_member(client, owner, group, friend)
    assert grant(client, owner, record, f"group:{group['id']}", "write").status_code == 200
    got = client.get(url(record), headers=friend.headers)
    assert got.status_code == 200 and got.get_json()["access"] == "write"
    etag = got.headers["ETag"]
    patched = client.patch(
        url(record), json={"data": {"qty": 2}}, headers={**friend.headers, "If-Match": etag}
    )
    assert patched.status_code == 200, patched.get_json()
    body = patched.get_json()
    assert body["data"] == {"item": "milk", "qty": 2} and body["version"] == 2
    assert body["access"] == "write" and body["owner_id"] == owner.id
    assert patched.headers["ETag"] != etag
    stale = client.patch(
        url(record), json={"data": {"qty": 3}}, headers={**friend.headers, "If-Match": etag}
    )
    assert_problem(stale, 412)
    assert client.get(url(record), headers=owner.headers).get_json()["data"]["qty"] == 2
    assert_problem(client.delete(url(record), headers=friend.headers), 403)


def test_revoking_a_group_grant_ends_members_access_at_once(client, owner, friend):
    record = create(client, owner, {"item": "milk"})
    group = make_group(client, owner)
    add_member(client, owner, group, friend)
    grantee = f"group:{group['id']}"
    grant(client, owner, record, grantee, "write")
    assert client.get(url(record), headers=friend.headers).status_code == 200
    revoked = client.delete(f"{url(record)}/grants/{grantee}", headers=owner.headers)
    assert revoked.status_code == 204
    assert_problem(client.get(url(record), headers=friend.headers), 404)
    assert listed(client, friend, "shared") == [] and listed(client, friend, "all") == []
    assert writes(client, friend, record) == [404, 404, 404]
    # Still a member: only the grant went.
    members = client.get(f"{API}/groups/{group['id']}/members", headers=friend.headers)
    assert friend.id in {m["user_id"] for m in members.get_json()["items"]}


def test_an_admin_manages_any_users_group(client, owner, friend, stranger, admin):
    record = create(client, owner, {"item": "milk"})
    group = make_group(client, owner)
    add_member(client, owner, group, friend)
    grant(client, owner, record, f"group:{group['id']}", "read")
    path = f"{API}/groups/{group['id']}"
    assert client.get(path, headers=admin.headers).get_json() == group
    members = client.get(f"{path}/members", headers=admin.headers)
    assert members.status_code == 200
    assert {m["user_id"] for m in members.get_json()["items"]} == {owner.id, friend.id}
    assert add_member(client, admin, group, stranger).status_code == 204
    assert client.get(url(record), headers=stranger.headers).status_code == 200
    assert remove_member(client, admin, group, friend).status_code == 204
    assert_problem(client.get(url(record), headers=friend.headers), 404)
    members = client.get(f"{path}/members", headers=owner.headers).get_json()["items"]
    assert {m["user_id"] for m in members} == {owner.id, stranger.id}
    assert_problem(remove_member(client, admin, group, owner), 409)
    renamed = client.patch(path, json={"name": "crew"}, headers=admin.headers)
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "crew"
    assert client.delete(path, headers=admin.headers).status_code == 204
    assert_problem(client.get(path, headers=owner.headers), 404)
    assert_problem(client.get(url(record), headers=stranger.headers), 404)


def test_the_group_owner_is_a_member_and_cannot_leave(client, owner, friend):
    group = make_group(client, owner)
    add_member(client, owner, group, friend)
    members = client.get(f"{API}/groups/{group['id']}/members", headers=friend.headers)
    assert members.status_code == 200
    items = members.get_json()["items"]
    assert {m["user_id"] for m in items} == {owner.id, friend.id}
    assert {m["email"] for m in items} == {owner.email, friend.email}
    assert all(m["added_at"].endswith("Z") for m in items)
    assert_problem(remove_member(client, owner, group, owner), 409)


def test_only_the_group_owner_changes_it_and_outsiders_do_not_see_it(
    client, owner, friend, stranger
):
    group = make_group(client, owner)
    add_member(client, owner, group, friend)
    path = f"{API}/groups/{group['id']}"
    assert client.get(path, headers=friend.headers).get_json() == group
    assert_problem(client.patch(path, json={"name": "x"}, headers=friend.headers), 403)
    assert_problem(client.delete(path, headers=friend.headers), 403)
    assert_problem(add_member(client, friend, group, stranger), 403)
    assert_problem(remove_member(client, friend, group, owner), 403)
    for response in (
        client.get(path, headers=stranger.headers),
        client.get(f"{path}/members", headers=stranger.headers),
        client.patch(path, json={"name": "x"}, headers=stranger.headers),
        add_member(client, stranger, group, stranger),
    ):
        assert_problem(response, 404)
    renamed = client.patch(path, json={"name": "crew"}, headers=owner.headers)
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "crew"


def test_groups_lists_the_groups_the_caller_owns_or_belongs_to(client, owner, friend, stranger):
    mine = make_group(client, owner, "mine")
    theirs = make_group(client, friend, "theirs")
    add_member(client, friend, theirs, owner)
    make_group(client, stranger, "other")
    listing = client.get(f"{API}/groups", headers=owner.headers).get_json()
    assert [g["id"] for g in listing["items"]] == [theirs["id"], mine["id"]]


def test_adding_or_removing_an_unknown_user_is_422_naming_the_user_id(client, owner, admin):
    group = make_group(client, owner)
    path = f"{API}/groups/{group['id']}/members/{UNKNOWN_ID}"
    for account in (owner, admin):
        for response in (
            client.put(path, headers=account.headers),
            client.delete(path, headers=account.headers),
        ):
            assert "user_id" in assert_problem(response, 422)["errors"]


def test_removing_a_user_who_is_not_a_member_is_204_and_changes_nothing(
    client, owner, friend, stranger
):
    group = make_group(client, owner)
    add_member(client, owner, group, friend)
    for _ in range(2):  # idempotent: a second removal answers the same
        assert remove_member(client, owner, group, stranger).status_code == 204
    assert remove_member(client, owner, group, friend).status_code == 204
    assert remove_member(client, owner, group, friend).status_code == 204
    members = client.get(f"{API}/groups/{group['id']}/members", headers=owner.headers)
    assert [m["user_id"] for m in members.get_json()["items"]] == [owner.id]


def test_deleting_a_group_ends_its_grants(client, owner, friend):
    record = create(client, owner, {"item": "milk"})
    group = make_group(client, owner)
    add_member(client, owner, group, friend)
    grant(client, owner, record, f"group:{group['id']}", "read")
    assert client.delete(f"{API}/groups/{group['id']}", headers=owner.headers).status_code == 204
    assert_problem(client.get(url(record), headers=friend.headers), 404)
    assert client.get(f"{url(record)}/grants", headers=owner.headers).get_json()["items"] == []


def test_a_group_name_is_required_and_bounded(client, owner):
    for body in ({}, {"name": ""}, {"name": "x" * 101}, {"name": "a", "extra": 1}):
        assert_problem(client.post(f"{API}/groups", json=body, headers=owner.headers), 422)


# --- scopes --------------------------------------------------------------------------------


def test_an_unknown_scope_is_400(client, owner):
    response = client.get(f"{DATA}/lists?scope=everything", headers=owner.headers)
    body = assert_problem(response, 400)
    assert "scope" in body["errors"]
    assert_problem(client.get(f"{DATA}?scope=mine", headers=owner.headers), 400)


def test_scope_own_is_the_default_and_all_joins_own_and_shared(client, owner, friend):
    own = create(client, friend, {"item": "mine"})
    shared = create(client, owner, {"item": "theirs"})
    grant(client, owner, shared, f"user:{friend.id}", "read")
    default = client.get(f"{DATA}/lists", headers=friend.headers).get_json()["items"]
    assert ids(default) == [own["id"]] and default[0]["access"] == "owner"
    everything = listed(client, friend, "all")
    assert ids(everything) == [shared["id"], own["id"]]
    assert [item["access"] for item in everything] == ["read", "owner"]


def test_admins_read_every_record_in_scope_all_with_write_access(client, owner, friend, admin):
    first = create(client, owner, {"n": 1})
    second = create(client, friend, {"n": 2})
    mine = create(client, admin, {"n": 3})
    items = listed(client, admin, "all")
    assert ids(items) == [mine["id"], second["id"], first["id"]]
    assert [item["access"] for item in items] == ["owner", "write", "write"]
    assert ids(listed(client, admin, "own")) == [mine["id"]]
    assert (
        client.patch(url(first), json={"data": {"n": 9}}, headers=admin.headers).status_code == 200
    )
    assert client.delete(url(second), headers=admin.headers).status_code == 204
