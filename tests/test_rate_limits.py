"""Rate limits: registration, log-in and refresh per IP (log-in also per account), and one
per-user limit shared by every authenticated route.

Every test uses client addresses of its own: with Redis, counters outlive the app that made them.
"""

import secrets
import threading
import time

import pytest
from helpers import API, PASSWORD, assert_problem
from limits import parse

from api import ratelimit
from api.counters import FileStorage

USERS = f"{API}/users"
SESSIONS = f"{API}/sessions"
REFRESH = f"{SESSIONS}/refresh"


@pytest.fixture
def strict(make_app):
    """A client of an app that allows three auth requests a minute."""
    return make_app(COFFER_RATE_LIMIT_AUTH="3/minute").test_client()


def new_ip() -> str:
    """A client address (IPv6 documentation range) that no other test uses."""
    groups = ":".join(secrets.token_hex(2) for _ in range(4))
    return f"2001:db8:{secrets.token_hex(2)}::{groups}"


@pytest.fixture
def ip() -> str:
    return new_ip()


def from_ip(ip: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": ip}}


def register(client, ip: str):
    body = {"email": f"user-{secrets.token_hex(6)}@example.com", "password": PASSWORD}
    return client.post(USERS, json=body, **from_ip(ip))


def log_in(client, email: str, ip: str, password: str = PASSWORD):
    return client.post(SESSIONS, json={"email": email, "password": password}, **from_ip(ip))


def refresh(client, token: str, ip: str):
    return client.post(REFRESH, json={"refresh_token": token}, **from_ip(ip))


def assert_limited(response) -> None:
    assert_problem(response, 429)
    assert int(response.headers["Retry-After"]) > 0


def test_registration_is_limited_per_ip(strict, ip):
    for _ in range(3):
        assert register(strict, ip).status_code == 201
    assert_limited(register(strict, ip))
    assert register(strict, new_ip()).status_code == 201


def test_failed_registrations_count_too(strict, ip):
    for _ in range(3):
        response = strict.post(USERS, json={"email": "nope", "password": PASSWORD}, **from_ip(ip))
        assert response.status_code == 422
    assert_limited(register(strict, ip))


def test_log_in_is_limited_per_ip(strict, accounts, ip):
    for _ in range(3):
        assert log_in(strict, f"nobody-{secrets.token_hex(6)}@example.com", ip).status_code == 401
    user = accounts.create()
    assert_limited(log_in(strict, user.email, ip))
    assert log_in(strict, user.email, new_ip()).status_code == 201


def test_log_in_is_limited_per_account_across_ips(strict, accounts):
    user = accounts.create()
    for _ in range(3):
        response = log_in(strict, user.email, new_ip(), password="not my password at all")
        assert response.status_code == 401
    assert_limited(log_in(strict, user.email, new_ip()))
    assert_limited(log_in(strict, f" {user.email.upper()}", new_ip()))
    other = accounts.create()
    assert log_in(strict, other.email, new_ip()).status_code == 201


def test_each_log_in_attempt_counts_once_against_the_ip(strict, ip):
    """A request without an email must not use up two of the IP's attempts."""
    for _ in range(3):
        response = strict.post(SESSIONS, json={"password": PASSWORD}, **from_ip(ip))
        assert response.status_code == 422
    assert_limited(strict.post(SESSIONS, json={"password": PASSWORD}, **from_ip(ip)))


def test_refresh_is_limited_per_ip(strict, accounts, ip):
    user = accounts.create()
    token = log_in(strict, user.email, new_ip()).get_json()["refresh_token"]
    for _ in range(2):
        response = refresh(strict, token, ip)
        assert response.status_code == 200
        token = response.get_json()["refresh_token"]
    assert refresh(strict, "unknown-token", ip).status_code == 401
    assert_limited(refresh(strict, token, ip))
    assert refresh(strict, token, new_ip()).status_code == 200


def test_auth_routes_are_limited_separately(strict, accounts, ip):
    user = accounts.create()
    for _ in range(3):
        assert register(strict, ip).status_code == 201
    assert_limited(register(strict, ip))
    tokens = [log_in(strict, user.email, ip).get_json() for _ in range(3)]
    assert all("refresh_token" in t for t in tokens)
    assert_limited(log_in(strict, user.email, ip))
    for t in tokens:
        assert refresh(strict, t["refresh_token"], ip).status_code == 200
    assert_limited(refresh(strict, tokens[0]["refresh_token"], ip))


def test_the_auth_limit_does_not_apply_to_reading(strict, accounts):
    admin = accounts.create(role="admin")
    for path in ["/users", "/sessions"] * 3:
        assert strict.get(API + path, headers=admin.headers).status_code == 200


def test_the_api_limit_is_per_user_and_shared_by_every_route(make_app, accounts):
    client = make_app(COFFER_RATE_LIMIT_API="5/minute").test_client()
    user, other = accounts.create(), accounts.create()
    paths = ["/users/me", "/sessions", "/sessions/current", "/users/me", "/sessions"]
    for path in paths:
        assert client.get(API + path, headers=user.headers).status_code == 200
    assert_limited(client.get(f"{API}/sessions/current", headers=user.headers))
    assert_limited(client.patch(f"{API}/users/me", json={"name": "x"}, headers=user.headers))
    assert client.get(f"{API}/users/me", headers=other.headers).status_code == 200


def test_the_api_limit_follows_the_user_across_ips(make_app, accounts):
    client = make_app(COFFER_RATE_LIMIT_API="5/minute").test_client()
    user = accounts.create()
    for _ in range(5):
        response = client.get(f"{API}/users/me", headers=user.headers, **from_ip(new_ip()))
        assert response.status_code == 200
    assert_limited(client.get(f"{API}/users/me", headers=user.headers, **from_ip(new_ip())))


def test_anonymous_requests_do_not_use_a_users_api_limit(make_app, accounts, ip):
    client = make_app(COFFER_RATE_LIMIT_API="2/minute").test_client()
    user = accounts.create()
    for _ in range(5):
        assert client.get(f"{API}/users/me", **from_ip(ip)).status_code == 401
    response = client.get(f"{API}/users/me", headers=user.headers, **from_ip(ip))
    assert response.status_code == 200


def test_responses_carry_rate_limit_headers(strict, ip):
    response = register(strict, ip)
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "2"


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on return: nothing listens there


def test_with_redis_unreachable_limits_count_in_the_instances_file(make_app, ip):
    """The fallback is shared by the workers: another app of the instance (a worker with a
    working configuration, here one without Redis) sees the counts."""
    prefix = f"coffer-test-{secrets.token_hex(8)}"
    redis_down = f"redis://127.0.0.1:{closed_port()}/0"
    worker = make_app(
        REDIS_URL=redis_down, COFFER_RATE_LIMIT_AUTH="3/minute", COFFER_RATE_LIMIT_PREFIX=prefix
    )
    other_worker = make_app(
        REDIS_URL="", COFFER_RATE_LIMIT_AUTH="3/minute", COFFER_RATE_LIMIT_PREFIX=prefix
    )
    client = worker.test_client()
    for _ in range(3):
        assert register(client, ip).status_code == 201
    assert_limited(register(other_worker.test_client(), ip))
    assert_limited(register(client, ip))
    assert register(client, new_ip()).status_code == 201  # other clients keep their own count


def test_when_the_instances_file_fails_limits_count_in_the_process(make_app, tmp_path, ip):
    app = make_app(REDIS_URL="", COFFER_RATE_LIMIT_AUTH="3/minute")
    (tmp_path / "a-file").write_text("")
    app.instance_path = str(tmp_path / "a-file" / "instance")  # no folder can be made there
    client = app.test_client()
    for _ in range(3):
        assert register(client, ip).status_code == 201
    assert_limited(register(client, ip))
    assert register(client, new_ip()).status_code == 201
    with app.app_context():
        instance_file = ratelimit.counters().tiers[0]
        assert instance_file.down_until > time.monotonic()  # passed over for a while


def stored_counters(storage) -> int:
    """How many counters `storage` keeps: in memory, expired ones that were not swept yet
    included; in the instance's file (a table of fixed size, whose expired counters' slots
    are taken again), the live ones."""
    if isinstance(storage, FileStorage):
        return storage.live()
    return len(storage.storage)


@pytest.mark.parametrize("index", [0, 1], ids=["instance-file", "process-memory"])
def test_local_counters_start_no_threads_and_forget_expired_counts(make_app, index, monkeypatch):
    app = make_app(REDIS_URL="")  # counters in the instance's file, else in this process
    per_second = parse("5/second")
    with app.app_context():
        tier = ratelimit.counters().tiers[index]
        threads = threading.active_count()
        for n in range(50):
            tier.count(per_second, ("test", "test", f"key-{n}"))
        assert threading.active_count() <= threads  # the stock storage starts timer threads
        assert stored_counters(tier.storage) == 50
        # A one-second sliding window keeps a counter for two seconds. Both storages read
        # time.time() (limits' MemoryStorage, api/counters.py): move it on instead of sleeping.
        later = time.time() + 2.1
        monkeypatch.setattr(time, "time", lambda: later)
        tier.storage._next_sweep = 0  # the next count sweeps
        tier.count(per_second, ("test", "test", "key-last"))
        assert stored_counters(tier.storage) == 1
