"""Cursors and links shared by every list: malformed cursors, binding, relative links."""

import pytest
from helpers import API, assert_problem

SESSIONS = f"{API}/sessions"
USERS = f"{API}/users"


@pytest.mark.parametrize("path", [SESSIONS, USERS, f"{API}/users/me/events", f"{API}/data/x"])
@pytest.mark.parametrize("cursor", ["", "A" * 2049])
def test_an_empty_or_over_long_cursor_is_400(client, admin, path, cursor):
    response = client.get(f"{path}?cursor={cursor}", headers=admin.headers)
    assert_problem(response, 400)


def test_the_next_link_is_relative_so_a_forged_host_never_reaches_it(client, accounts, admin):
    for _ in range(2):
        accounts.create()
    response = client.get(
        f"{USERS}?limit=1&role=user", headers={**admin.headers, "Host": "evil.example"}
    )
    link = response.headers["Link"]
    assert link.startswith(f"<{USERS}?") and link.endswith('>; rel="next"')
    assert "evil.example" not in link
    assert "role=user" in link and "limit=1" in link


def test_a_session_list_cursor_is_bound_to_its_reader(client, accounts):
    first, second = accounts.create(), accounts.create()
    for account in (first, second):
        account_logins = [
            client.post(SESSIONS, json={"email": account.email, "password": account.password})
            for _ in range(2)
        ]
        assert all(r.status_code == 201 for r in account_logins)
    cursor = client.get(f"{SESSIONS}?limit=1", headers=first.headers).get_json()["next_cursor"]
    assert cursor
    response = client.get(f"{SESSIONS}?limit=1&cursor={cursor}", headers=second.headers)
    assert_problem(response, 400)
    assert client.get(f"{SESSIONS}?cursor={cursor}", headers=first.headers).status_code == 200


def test_a_user_list_cursor_is_bound_to_its_filters_not_its_page_size(client, accounts, admin):
    for _ in range(3):
        accounts.create()
    cursor = client.get(f"{USERS}?limit=1&role=user", headers=admin.headers).get_json()[
        "next_cursor"
    ]
    other_filter = client.get(f"{USERS}?role=admin&cursor={cursor}", headers=admin.headers)
    assert_problem(other_filter, 400)
    other_size = client.get(f"{USERS}?limit=5&role=user&cursor={cursor}", headers=admin.headers)
    assert other_size.status_code == 200
    assert len(other_size.get_json()["items"]) == 2


def test_a_user_list_cursor_is_bound_to_its_reader(client, accounts):
    first, second = accounts.create(role="admin"), accounts.create(role="admin")
    cursor = client.get(f"{USERS}?limit=1", headers=first.headers).get_json()["next_cursor"]
    assert_problem(client.get(f"{USERS}?cursor={cursor}", headers=second.headers), 400)
