"""What a query string loads and parses to is kept per process (api/http/web.py
`per_query_string`): the next request with the same string answers as the first did, a string
that failed fails again, a kept load is handed out as a copy, and a string that may carry a
credential (a stream ticket) or is over REMEMBERED_QUERY_BYTES is never kept."""

from helpers import create

from api.http.operation import arguments
from api.http.queries import REMEMBERED_QUERY_BYTES, _remembered_load, load_query
from schemas.changes import changes_query
from schemas.data import record_list_query

LIST = "/api/v1/data/tasks?data.n=gte.2&sort=-data.n&limit=2"


def numbers(response) -> list:
    assert response.status_code == 200, response.get_json()
    return [item["data"]["n"] for item in response.get_json()["items"]]


def test_a_repeated_list_query_answers_each_time_as_the_first(client, accounts):
    first, second = accounts.create(), accounts.create()
    for n in (1, 2, 3):
        create(client, first, {"n": n})
    assert numbers(client.get(LIST, headers=first.headers)) == [3, 2]
    create(client, first, {"n": 5})  # the records are read anew: only the query is kept
    assert numbers(client.get(LIST, headers=first.headers)) == [5, 3]
    assert numbers(client.get(LIST, headers=second.headers)) == []  # and it is nobody's
    create(client, second, {"n": 4})
    assert numbers(client.get(LIST, headers=second.headers)) == [4]
    page = client.get(LIST, headers=first.headers)
    assert page.headers["Link"].endswith('rel="next"') and "cursor=" in page.headers["Link"]


def test_a_query_string_that_failed_fails_again(client, user):
    failing = {"limit=0": 422, "data.n=zz.1": 400, "sort=data..n": 400}
    for _ in range(3):
        for query, status in failing.items():
            response = client.get(f"/api/v1/data/tasks?{query}", headers=user.headers)
            assert response.status_code == status, query
    assert client.get(LIST, headers=user.headers).status_code == 200


def test_a_kept_load_is_handed_out_as_a_copy(app):
    with app.test_request_context("/?limit=7&scope=all"):
        hits = _remembered_load.cache_info().hits
        loaded = load_query(record_list_query)
        loaded["limit"] = 1000
        again = load_query(record_list_query)
        assert again["limit"] == 7 and again["scope"] == "all"
        assert _remembered_load.cache_info().hits == hits + 1


def test_a_query_string_that_may_carry_a_ticket_is_never_kept(app):
    seen = []
    view = arguments(changes_query)(lambda loaded: seen.append(loaded) or loaded)
    with app.test_request_context("/?ticket=secret-ticket-1&collections=tasks"):
        kept = _remembered_load.cache_info()
        view()
        view()
        assert seen[0]["ticket"] == seen[1]["ticket"] == "secret-ticket-1"
        after = _remembered_load.cache_info()
        assert (after.hits, after.misses, after.currsize) == (kept.hits, kept.misses, kept.currsize)


def test_a_long_query_string_is_never_kept(app):
    sort = "-data." + "n" * REMEMBERED_QUERY_BYTES
    with app.test_request_context(f"/?sort={sort}"):
        kept = _remembered_load.cache_info()
        assert load_query(record_list_query)["sort"] == sort
        assert load_query(record_list_query)["sort"] == sort
        assert _remembered_load.cache_info().misses == kept.misses
    with app.test_request_context("/?sort=-data.n"):
        load_query(record_list_query)
        assert _remembered_load.cache_info().misses in (kept.misses, kept.misses + 1)


def test_a_next_link_is_the_lists_own_for_the_same_query_string(client, accounts, admin):
    for _ in range(2):  # three users: a second page with a link of its own
        accounts.create()
    client.post("/api/v1/sessions", json={"email": admin.email, "password": admin.password})
    for path in ("/api/v1/users", "/api/v1/sessions", "/api/v1/users"):
        first = client.get(f"{path}?limit=1", headers=admin.headers)
        assert first.headers["Link"].startswith(f"<{path}?limit=1&cursor="), path
        cursor = first.get_json()["next_cursor"]
        assert first.headers["Link"] == f'<{path}?limit=1&cursor={cursor}>; rel="next"'
    following = client.get(first.headers["Link"][1:].split(">")[0], headers=admin.headers)
    assert following.status_code == 200 and following.get_json()["next_cursor"]
    assert following.headers["Link"].startswith("</api/v1/users?limit=1&cursor=")
    assert following.headers["Link"] != first.headers["Link"]


def test_the_names_of_a_query_are_read_decoded_each_time(client, user, admin):
    """The kept names of a query string are its parameters' decoded names: a token in the
    query string is refused however its name is written, and so is a user's owner_id."""
    for _ in range(2):
        for name in ("access_token", "access%5Ftoken", "access%5ftoken"):
            response = client.get(f"/api/v1/users/me?{name}=x", headers=user.headers)
            assert response.status_code == 401, name
        for name in ("owner_id", "owner%5Fid"):
            url = f"/api/v1/data/tasks?{name}={user.id}"
            assert client.get(url, headers=user.headers).status_code == 403, name
            assert client.get(url, headers=admin.headers).status_code == 200, name
