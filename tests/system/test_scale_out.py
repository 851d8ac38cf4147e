"""Two instances, one PostgreSQL and one Redis: any instance can serve any request."""

import secrets
import threading

import pytest
from helpers import PASSWORD
from traffic import log_in, new_email, sign_up

pytestmark = [pytest.mark.system, pytest.mark.xdist_group("system")]


def test_access_and_refresh_tokens_from_one_instance_work_on_the_other(pair):
    a, b = pair
    account = sign_up(a)
    me = b.call("GET", "/api/v1/users/me", token=account.access_token)
    assert me.status == 200
    assert me.json()["email"] == account.email
    refreshed = b.call(
        "POST", "/api/v1/sessions/refresh", json_body={"refresh_token": account.refresh_token}
    )
    assert refreshed.status == 200, refreshed.body
    token = refreshed.json()["access_token"]
    assert a.call("GET", "/api/v1/sessions/current", token=token).status == 200


def test_session_revoked_on_one_instance_is_refused_by_the_other_on_the_next_request(pair):
    a, b = pair
    account = sign_up(a)
    assert a.call("GET", "/api/v1/users/me", token=account.access_token).status == 200
    logout = b.call("DELETE", "/api/v1/sessions/current", token=account.access_token)
    assert logout.status == 204
    # Several requests, so that every worker of A (and its connection pool) answers at least once.
    for _ in range(4):
        refused = a.call("GET", "/api/v1/users/me", token=account.access_token)
        assert refused.status == 401
        assert refused.media_type == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")


def _client_ip() -> str:
    """A client address of this test alone, so that no other run shares its counters."""
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"


def test_auth_rate_limit_counts_across_instances(fleet, shared_env):
    env = {**shared_env, "COFFER_RATE_LIMIT_AUTH": "5/minute", "COFFER_TRUSTED_PROXIES": "1"}
    a, b = fleet.start(("limit-a", env), ("limit-b", env))
    client = {"X-Forwarded-For": _client_ip()}
    email = new_email("limited")
    registered = a.call(
        "POST", "/api/v1/users", json_body={"email": email, "password": PASSWORD}, headers=client
    )
    assert registered.status == 201  # registration is limited on its own route

    # Five log-ins, alternating instances, wrong passwords included: each one counts.
    statuses = []
    for attempt in range(5):
        body = {"email": email, "password": PASSWORD if attempt % 2 == 0 else "not the password!"}
        instance = (a, b)[attempt % 2]
        statuses.append(
            instance.call("POST", "/api/v1/sessions", json_body=body, headers=client).status
        )
    assert statuses == [201, 401, 201, 401, 201]

    for instance in (b, a):
        limited = log_in(instance, email, headers=client)
        assert limited.status == 429
        assert limited.media_type == "application/problem+json"
        assert int(limited.headers["retry-after"]) > 0

    # The per-account limit is shared too: the same account from another address is limited...
    elsewhere = {"X-Forwarded-For": _client_ip()}
    assert log_in(b, email, headers=elsewhere).status == 429
    # ...while another account from that address is not.
    assert log_in(b, new_email("unknown"), headers=elsewhere).status == 401


def test_concurrent_conditional_patches_across_instances_let_exactly_one_win(pair):
    a, b = pair
    account = sign_up(a)
    created = a.call(
        "POST", "/api/v1/data/notes", json_body={"data": {"title": "x"}}, token=account.access_token
    )
    assert created.status == 201
    etag = created.headers["etag"]
    path = f"/api/v1/data/notes/{created.json()['id']}"

    contenders = 12
    start = threading.Barrier(contenders)
    replies = [None] * contenders

    def patch(index: int) -> None:
        start.wait()
        replies[index] = (a, b)[index % 2].call(
            "PATCH",
            path,
            json_body={"data": {"winner": index}},
            token=account.access_token,
            headers={"If-Match": etag},
        )

    threads = [threading.Thread(target=patch, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200] + [412] * (contenders - 1)
    winner = next(i for i, reply in enumerate(replies) if reply.status == 200)
    current = a.call("GET", path, token=account.access_token)
    assert current.json()["data"] == {"title": "x", "winner": winner}
    assert current.json()["version"] == created.json()["version"] + 1
    assert current.headers["etag"] == replies[winner].headers["etag"]
