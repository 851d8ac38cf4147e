"""What a grantee learns of the owner's other records through the list language: nothing.
Filters, sorts, cursors and counts all run over what the caller may read, never the rest."""

import pytest
from helpers import API, assert_problem, walk
from sql_capture import beyond_authentication, captured_statements, explain

DATA = f"{API}/data"


@pytest.fixture
def shared_world(client, accounts):
    """An owner with 12 records, one of them shared read-only with a reader who owns 2."""
    owner, reader = accounts.create(), accounts.create()
    made = []
    for rank in range(12):
        body = {"data": {"secret": "s", "rank": rank, "tag": "hidden"}}
        made.append(client.post(f"{DATA}/lists", json=body, headers=owner.headers).get_json())
    shared = made[5]
    path = f"{DATA}/lists/{shared['id']}/grants/user:{reader.id}"
    assert client.put(path, json={"access": "read"}, headers=owner.headers).status_code == 200
    own = [
        client.post(
            f"{DATA}/lists", json={"data": {"rank": 100 + n}}, headers=reader.headers
        ).get_json()
        for n in range(2)
    ]
    return owner, reader, shared, own


def ids(items) -> set[str]:
    return {item["id"] for item in items}


@pytest.mark.parametrize(
    "params",
    [
        [("data.secret", "eq.s")],
        [("data.tag", "eq.hidden")],
        [("data.rank", "lt.50")],
        [("data.rank", "in.(1,2,3,4,5,6,7)")],
        [("created_at", "gte.2000-01-01T00:00:00Z"), ("data.rank", "lte.11")],
        [("data.secret", "ne.x")],
    ],
)
def test_filters_match_only_readable_records(client, shared_world, params):
    _, reader, shared, _ = shared_world
    for scope in ("shared", "all"):
        found = walk(client, reader, [*params, ("scope", scope), ("limit", "2")], "lists")
        assert ids(found) == {shared["id"]}


@pytest.mark.parametrize("sort", ["data.rank", "-data.rank", "-created_at", "id", "data.secret"])
def test_sorts_and_pages_walk_only_readable_records(client, shared_world, sort):
    _, reader, shared, own = shared_world
    for limit in ("1", "2", "100"):
        found = walk(client, reader, [("scope", "all"), ("sort", sort), ("limit", limit)], "lists")
        assert len(found) == 3 and ids(found) == {shared["id"], *ids(own)}


def test_the_last_page_says_nothing_of_hidden_records_after_it(client, shared_world):
    _, reader, shared, _ = shared_world
    params = {"scope": "shared", "sort": "data.rank", "limit": 1}
    page = client.get(f"{DATA}/lists", query_string=params, headers=reader.headers).get_json()
    assert [r["id"] for r in page["items"]] == [shared["id"]]
    assert page["next_cursor"] is None


def test_a_cursor_is_bound_to_its_caller_and_scope(client, shared_world, accounts):
    owner, reader, _, _ = shared_world
    stranger = accounts.create()

    def first_cursor(account, scope):
        query = {"scope": scope, "limit": 1}
        page = client.get(f"{DATA}/lists", query_string=query, headers=account.headers)
        return page.get_json()["next_cursor"]

    owners = first_cursor(owner, "own")
    readers = first_cursor(reader, "all")
    for account, scope, cursor in (
        (reader, "own", owners),
        (reader, "all", owners),
        (reader, "shared", readers),
        (reader, "own", readers),
        (stranger, "all", readers),
        (owner, "all", readers),
    ):
        query = {"scope": scope, "limit": 1, "cursor": cursor}
        response = client.get(f"{DATA}/lists", query_string=query, headers=account.headers)
        assert_problem(response, 400)
    query = {"scope": "all", "limit": 1, "cursor": readers}
    assert (
        client.get(f"{DATA}/lists", query_string=query, headers=reader.headers).status_code == 200
    )


def test_counts_hold_only_what_the_caller_may_read(client, shared_world):
    owner, reader, _, _ = shared_world

    def counts(account, scope):
        response = client.get(DATA, query_string={"scope": scope}, headers=account.headers)
        return {c["name"]: c["count"] for c in response.get_json()["items"]}

    assert counts(reader, "own") == {"lists": 2}
    assert counts(reader, "shared") == {"lists": 1}
    assert counts(reader, "all") == {"lists": 3}
    assert counts(owner, "all") == {"lists": 12}
    assert counts(owner, "shared") == {}


def test_a_hidden_record_is_404_on_every_verb(client, shared_world, accounts):
    owner, reader, shared, _ = shared_world
    stranger = accounts.create()
    path = f"{DATA}/lists/{shared['id']}"
    for response in (
        client.get(path, headers=stranger.headers),
        client.get(path, headers={**stranger.headers, "If-None-Match": "*"}),
        client.put(path, json={"data": {}}, headers=stranger.headers),
        client.patch(path, json={"data": {}}, headers={**stranger.headers, "If-Match": "*"}),
        client.delete(path, headers=stranger.headers),
        client.get(f"{path}/grants", headers=stranger.headers),
        client.delete(f"{path}/grants/user:{reader.id}", headers=stranger.headers),
    ):
        assert_problem(response, 404)
    assert_problem(client.get(f"{DATA}/lists?owner_id={owner.id}", headers=reader.headers), 403)


# --- the cost of a page in every scope -------------------------------------------------------


@pytest.mark.parametrize("scope", ["own", "shared", "all"])
def test_a_page_is_one_query_in_every_scope(app, client, shared_world, accounts, admin, scope):
    """Every statement a page runs counts, whatever table it reads, but the caller's
    authentication: one per page, so an N+1 anywhere shows."""
    owner, reader, _, _ = shared_world
    group = client.post(f"{API}/groups", json={"name": "g"}, headers=owner.headers).get_json()
    client.put(f"{API}/groups/{group['id']}/members/{reader.id}", headers=owner.headers)
    for account in (owner, reader, admin):
        for sort in ("-created_at", "data.rank"):
            query = {"scope": scope, "sort": sort, "limit": 2}
            with captured_statements(app) as statements:
                response = client.get(f"{DATA}/lists", query_string=query, headers=account.headers)
                assert response.status_code == 200
                cursor = response.get_json()["next_cursor"]
                if cursor:
                    more = {**query, "cursor": cursor}
                    response = client.get(
                        f"{DATA}/lists", query_string=more, headers=account.headers
                    )
                    assert response.status_code == 200
            pages = 2 if cursor else 1
            ran = beyond_authentication(statements)
            assert len(ran) == pages, [sql for sql, _ in ran]
            assert all("FROM records" in sql for sql, _ in ran), ran
        with captured_statements(app) as statements:
            counts = client.get(DATA, query_string={"scope": scope}, headers=account.headers)
            assert counts.status_code == 200
        assert len(beyond_authentication(statements)) == 1, statements


def test_an_anonymous_page_of_a_public_collection_is_one_query_and_the_policy(
    app, client, shared_world, admin
):
    """No authentication, so every statement counts: per page, the collection's policy (is it
    public, or is this a 401?) and the page itself, however many records it holds."""
    policy = {"read": "public", "create": "users"}
    client.put(f"{API}/collections/lists", json=policy, headers=admin.headers)
    query = {"limit": 5, "sort": "data.rank"}
    with captured_statements(app) as statements:
        first = client.get(f"{DATA}/lists", query_string=query)
        assert first.status_code == 200 and len(first.get_json()["items"]) == 5
        cursor = first.get_json()["next_cursor"]
        client.get(f"{DATA}/lists", query_string={**query, "cursor": cursor})
    ran = [sql.split("FROM", 1)[1].split()[0] for sql, _ in statements]
    assert ran == ["collection_policies", "records"] * 2, statements


@pytest.mark.parametrize(("sort", "index"), [("-created_at", "created"), ("id", "id")])
def test_pages_of_scope_all_walk_the_collection_index(app, client, shared_world, sort, index):
    _, reader, _, _ = shared_world
    query = {"scope": "all", "sort": sort, "limit": 1}
    cursor = client.get(f"{DATA}/lists", query_string=query, headers=reader.headers).get_json()[
        "next_cursor"
    ]
    for params in (query, {**query, "cursor": cursor}):
        with captured_statements(app) as statements:
            client.get(f"{DATA}/lists", query_string=params, headers=reader.headers)
        [(statement, parameters)] = [s for s in statements if "FROM records" in s[0]]
        plan = explain(app, statement, parameters)
        assert f"ix_records_collection_{index}" in plan, plan
        assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
