"""Collection policies: `read: users|public`, `create: admins`, the admin routes, anonymous reads
of public collections, and counts that follow what a caller may read."""

import pytest
from helpers import API, assert_problem, assert_unauthorized

DATA = f"{API}/data"
POLICIES = f"{API}/collections"


def create(client, account, data, collection="catalogue"):
    response = client.post(f"{DATA}/{collection}", json={"data": data}, headers=account.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def set_policy(client, admin, name, read, create="users"):
    response = client.put(
        f"{POLICIES}/{name}", json={"read": read, "create": create}, headers=admin.headers
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def items(response) -> list[dict]:
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


# --- the admin routes ----------------------------------------------------------------------


def test_a_collection_without_a_policy_has_the_default_one(client, admin):
    response = client.get(f"{POLICIES}/notes", headers=admin.headers)
    assert response.status_code == 200
    assert response.get_json() == {
        "name": "notes",
        "read": "owner",
        "create": "users",
        "updated_at": None,
    }


def test_put_sets_a_policy_and_delete_restores_the_default(client, admin, frozen_clock):
    policy = set_policy(client, admin, "notes", "users", "admins")
    assert policy["read"] == "users" and policy["create"] == "admins"
    assert policy["updated_at"].endswith("Z")
    assert client.get(f"{POLICIES}/notes", headers=admin.headers).get_json() == policy
    frozen_clock.advance(5)
    assert set_policy(client, admin, "notes", "users", "admins") == policy  # unchanged
    changed = set_policy(client, admin, "notes", "public", "admins")
    assert changed["updated_at"] > policy["updated_at"]
    assert client.delete(f"{POLICIES}/notes", headers=admin.headers).status_code == 204
    assert client.get(f"{POLICIES}/notes", headers=admin.headers).get_json()["updated_at"] is None


def test_the_collections_list_has_every_collection_with_records_or_a_policy(
    client, admin, user, accounts
):
    other = accounts.create()
    create(client, user, {"n": 1}, "alpha")
    create(client, other, {"n": 2}, "alpha")
    create(client, user, {"n": 3}, "beta")
    set_policy(client, admin, "beta", "users")
    set_policy(client, admin, "gamma", "public", "admins")
    listing = client.get(POLICIES, headers=admin.headers).get_json()
    assert listing["next_cursor"] is None
    summary = {c["name"]: (c["read"], c["create"], c["count"]) for c in listing["items"]}
    assert summary == {
        "alpha": ("owner", "users", 2),
        "beta": ("users", "users", 1),
        "gamma": ("public", "admins", 0),
    }
    first = client.get(f"{POLICIES}?limit=2", headers=admin.headers).get_json()
    assert [c["name"] for c in first["items"]] == ["alpha", "beta"]
    rest = client.get(f"{POLICIES}?limit=2&cursor={first['next_cursor']}", headers=admin.headers)
    assert [c["name"] for c in items(rest)] == ["gamma"]


def test_the_policy_routes_are_for_admins(client, user):
    for response in (
        client.get(POLICIES, headers=user.headers),
        client.get(f"{POLICIES}/notes", headers=user.headers),
        client.put(
            f"{POLICIES}/notes", json={"read": "public", "create": "users"}, headers=user.headers
        ),
        client.delete(f"{POLICIES}/notes", headers=user.headers),
    ):
        assert_problem(response, 403)
    assert_unauthorized(client.get(POLICIES))


@pytest.mark.parametrize(
    "body",
    [{"read": "users"}, {"create": "users"}, {"read": "all", "create": "users"}, {}]
    + [{"read": "users", "create": "owner"}, {"read": "users", "create": "users", "x": 1}],
)
def test_a_policy_needs_both_fields_with_known_values(client, admin, body):
    response = client.put(f"{POLICIES}/notes", json=body, headers=admin.headers)
    assert_problem(response, 422)
    assert client.get(f"{POLICIES}/notes", headers=admin.headers).get_json()["updated_at"] is None


def test_a_bad_collection_name_is_400(client, admin):
    assert_problem(client.get(f"{POLICIES}/Bad!", headers=admin.headers), 400)
    body = {"read": "users", "create": "users"}
    assert_problem(client.put(f"{POLICIES}/1x", json=body, headers=admin.headers), 400)


# --- read: users, read: public, create: admins ----------------------------------------------


def test_read_users_lets_every_signed_in_user_read_every_record(client, admin, user, accounts):
    reader = accounts.create()
    record = create(client, user, {"title": "hello"}, "feed")
    path = f"{DATA}/feed/{record['id']}"
    assert_problem(client.get(path, headers=reader.headers), 404)
    set_policy(client, admin, "feed", "users")
    got = client.get(path, headers=reader.headers)
    assert got.status_code == 200 and got.get_json()["access"] == "read"
    assert [
        r["id"] for r in items(client.get(f"{DATA}/feed?scope=all", headers=reader.headers))
    ] == [record["id"]]
    assert items(client.get(f"{DATA}/feed?scope=shared", headers=reader.headers)) == []
    assert items(client.get(f"{DATA}/feed", headers=reader.headers)) == []  # scope=own
    assert_problem(client.patch(path, json={"data": {}}, headers=reader.headers), 403)
    assert_problem(client.delete(path, headers=reader.headers), 403)
    assert_unauthorized(client.get(path))  # users, not anonymous
    client.delete(f"{POLICIES}/feed", headers=admin.headers)
    assert_problem(client.get(path, headers=reader.headers), 404)  # at once


def test_read_public_needs_no_token_and_shows_no_other_collection(client, admin, user):
    record = create(client, user, {"sku": 1}, "catalogue")
    hidden = create(client, user, {"sku": 2}, "private")
    assert_unauthorized(client.get(f"{DATA}/catalogue"))
    set_policy(client, admin, "catalogue", "public", "admins")
    listing = client.get(f"{DATA}/catalogue?scope=own")  # anonymous callers always get `all`
    assert [r["id"] for r in items(listing)] == [record["id"]]
    assert items(listing)[0]["access"] == "read"
    one = client.get(f"{DATA}/catalogue/{record['id']}")
    assert one.status_code == 200 and one.get_json()["data"] == {"sku": 1}
    assert_unauthorized(client.get(f"{DATA}/private"))
    assert_unauthorized(client.get(f"{DATA}/private/{hidden['id']}"))
    assert_problem(client.get(f"{DATA}/catalogue/{hidden['id']}"), 404)
    assert_unauthorized(client.get(DATA))
    assert_unauthorized(client.patch(f"{DATA}/catalogue/{record['id']}", json={"data": {}}))
    assert_unauthorized(client.post(f"{DATA}/catalogue", json={"data": {}}))
    bad_token = {"Authorization": "Bearer nonsense"}
    assert_unauthorized(client.get(f"{DATA}/catalogue", headers=bad_token))


def test_anonymous_reads_are_rate_limited_per_ip(make_app, admin, user):
    client = make_app(COFFER_RATE_LIMIT_API="3/minute").test_client()
    record = create(client, user, {"sku": 1})
    set_policy(client, admin, "catalogue", "public")
    for _ in range(3):
        assert client.get(f"{DATA}/catalogue").status_code == 200
    limited = client.get(f"{DATA}/catalogue/{record['id']}")
    assert_problem(limited, 429)
    assert int(limited.headers["Retry-After"]) >= 1
    elsewhere = client.get(f"{DATA}/catalogue", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert elsewhere.status_code == 200
    assert client.get(f"{DATA}/catalogue", headers=user.headers).status_code == 200


def test_create_admins_refuses_a_users_post(client, admin, user, accounts):
    service = accounts.create(role="service")
    set_policy(client, admin, "catalogue", "public", "admins")
    response = client.post(f"{DATA}/catalogue", json={"data": {}}, headers=user.headers)
    assert_problem(response, 403)
    assert client.get(f"{DATA}/catalogue?scope=all", headers=user.headers).get_json()["items"] == []
    for account in (admin, service):
        created = client.post(f"{DATA}/catalogue", json={"data": {}}, headers=account.headers)
        assert created.status_code == 201 and created.get_json()["access"] == "owner"


def test_counts_follow_what_the_caller_may_read_in_scope(client, admin, user, accounts):
    reader = accounts.create()
    for n in range(3):
        create(client, user, {"n": n}, "feed")
        create(client, user, {"n": n}, "secret")
    create(client, reader, {"n": 9}, "feed")
    set_policy(client, admin, "feed", "users")

    def counts(scope):
        listing = items(client.get(f"{DATA}?scope={scope}", headers=reader.headers))
        return {c["name"]: c["count"] for c in listing}

    assert counts("own") == {"feed": 1}
    assert counts("shared") == {}
    assert counts("all") == {"feed": 4}
    assert {c["name"]: c["count"] for c in items(client.get(DATA, headers=user.headers))} == {
        "feed": 3,
        "secret": 3,
    }
