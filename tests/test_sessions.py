"""Sessions: log-in, refresh-token rotation and reuse detection, listing and revocation."""

import http.client
import json
import re
import statistics
import threading
import time
import uuid
from datetime import datetime, timedelta

import jwt
import pytest
from argon2 import PasswordHasher
from helpers import (
    API,
    PASSWORD,
    UNKNOWN_ID,
    assert_problem,
    assert_unauthorized,
    bearer,
    log_in,
)

from api.config import SETTINGS
from api.extensions import db
from api.models import RefreshToken, Session, User, utcnow

SESSIONS = f"{API}/sessions"
REFRESH = f"{SESSIONS}/refresh"
CURRENT = f"{SESSIONS}/current"
ME = f"{API}/users/me"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SESSION_FIELDS = {
    "id",
    "device_name",
    "user_agent",
    "ip",
    "created_at",
    "last_used_at",
    "expires_at",
    "current",
}


def tokens_for(client, email: str, password: str = PASSWORD) -> dict:
    response = log_in(client, email, password)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def refresh(client, refresh_token: str):
    return client.post(REFRESH, json={"refresh_token": refresh_token})


def without_request_id(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "request_id"}


def stored_hash(app, email: str) -> str:
    with app.app_context():
        return db.session.execute(db.select(User.password_hash).filter_by(email=email)).scalar()


# --- log-in ---------------------------------------------------------------------------------


def test_log_in_returns_tokens_and_the_session(app, client, user):
    response = log_in(client, user.email, device_name="Ada's phone")
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
        "session",
        "user",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == app.config["COFFER_ACCESS_TOKEN_TTL"]
    assert body["refresh_expires_in"] == app.config["COFFER_REFRESH_TOKEN_TTL"]
    assert len(body["refresh_token"]) >= 43  # at least 256 bits, base64url
    assert set(body["session"]) == SESSION_FIELDS
    assert body["session"]["current"] is True
    for name in ("created_at", "last_used_at", "expires_at"):
        assert TIMESTAMP.match(body["session"][name]), body["session"]
    assert body["user"]["id"] == user.id and "password" not in body["user"]
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == user.id and claims["sid"] == body["session"]["id"]
    assert claims["role"] == "user"


def test_token_lifetimes_follow_the_configuration(make_app, user):
    client = make_app(COFFER_ACCESS_TOKEN_TTL=60, COFFER_REFRESH_TOKEN_TTL=3600).test_client()
    body = tokens_for(client, user.email)
    assert body["expires_in"] == 60 and body["refresh_expires_in"] == 3600
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60
    created = datetime.fromisoformat(body["session"]["created_at"])
    expires = datetime.fromisoformat(body["session"]["expires_at"])
    assert abs((expires - created).total_seconds() - 3600) < 5


def test_log_in_access_token_works(client, user):
    body = tokens_for(client, user.email)
    response = client.get(ME, headers=bearer(body["access_token"]))
    assert response.status_code == 200
    assert response.get_json()["id"] == user.id


def test_log_in_email_is_normalised(client, user):
    assert log_in(client, f"  {user.email.upper()} ").status_code == 201


def test_log_in_records_device_and_user_agent(client, user):
    response = client.post(
        SESSIONS,
        json={"email": user.email, "password": PASSWORD, "device_name": "Ada's phone"},
        headers={"User-Agent": "CofferTest/1.0 (Linux)"},
    )
    session = response.get_json()["session"]
    assert session["device_name"] == "Ada's phone"
    assert session["user_agent"] == "CofferTest/1.0 (Linux)"
    assert session["ip"] == "127.0.0.1"
    current = client.get(CURRENT, headers=bearer(response.get_json()["access_token"]))
    assert current.get_json()["device_name"] == "Ada's phone"
    assert current.get_json()["user_agent"] == "CofferTest/1.0 (Linux)"


def test_wrong_password_and_unknown_email_get_the_same_401(client, user):
    wrong = log_in(client, user.email, "not my password at all")
    unknown = log_in(client, "nobody@example.com", "not my password at all")
    wrong_body, unknown_body = assert_unauthorized(wrong), assert_unauthorized(unknown)
    assert without_request_id(wrong_body) == without_request_id(unknown_body)
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]


def test_inactive_user_cannot_log_in(client, user, admin):
    client.patch(f"{API}/users/{user.id}", json={"is_active": False}, headers=admin.headers)
    inactive = log_in(client, user.email)
    unknown = log_in(client, "nobody@example.com")
    assert without_request_id(assert_unauthorized(inactive)) == without_request_id(
        assert_unauthorized(unknown)
    )


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"password": PASSWORD}, "email"),
        ({"email": "ada@example.com"}, "password"),
        ({"email": "ada@example.com", "password": PASSWORD, "remember": True}, "remember"),
        (
            {"email": "ada@example.com", "password": PASSWORD, "device_name": "d" * 101},
            "device_name",
        ),
    ],
)
def test_log_in_validation_errors_name_the_field(client, payload, field):
    body = assert_problem(client.post(SESSIONS, json=payload), 422)
    assert field in body["errors"]


def test_unknown_email_is_checked_against_a_dummy_hash_of_equal_cost(app, client, user):
    """Enumeration safety: an unknown email costs one argon2 verification, like a wrong password."""
    verified = []

    class SpyHasher(PasswordHasher):
        def verify(self, stored, password):
            verified.append(stored)
            return super().verify(stored, password)

    real = app.extensions["coffer_hasher"]
    app.extensions["coffer_hasher"] = SpyHasher(
        time_cost=real.time_cost, memory_cost=real.memory_cost, parallelism=real.parallelism
    )
    assert_unauthorized(log_in(client, "nobody@example.com", "not my password at all"))
    assert len(verified) == 1
    cost = re.compile(r"\$m=\d+,t=\d+,p=\d+\$")
    assert cost.search(verified[0]).group() == cost.search(stored_hash(app, user.email)).group()
    assert_unauthorized(log_in(client, user.email, "not my password at all"))
    assert len(verified) == 2


def test_unknown_email_takes_about_as_long_as_a_wrong_password(make_app):
    defaults = {name: SETTINGS[name][1] for name in SETTINGS if name.startswith("COFFER_ARGON2_")}
    client = make_app(**defaults).test_client()
    email = "timing@example.com"
    assert (
        client.post(f"{API}/users", json={"email": email, "password": PASSWORD}).status_code == 201
    )

    def duration(login_email: str) -> float:
        started = time.perf_counter()
        assert log_in(client, login_email, "not my password at all").status_code == 401
        return time.perf_counter() - started

    wrong, unknown = [], []
    for _ in range(5):
        wrong.append(duration(email))
        unknown.append(duration("nobody@example.com"))
    slow, fast = sorted([statistics.median(wrong), statistics.median(unknown)], reverse=True)
    assert slow / fast < 3, (wrong, unknown)


def test_log_in_upgrades_the_hash_to_new_argon2_parameters(app, make_app, user):
    assert "$m=1024,t=1,p=1$" in stored_hash(app, user.email)
    stronger = make_app(
        COFFER_ARGON2_TIME_COST=2, COFFER_ARGON2_MEMORY_KIB=2048, COFFER_ARGON2_PARALLELISM=2
    ).test_client()
    assert log_in(stronger, user.email).status_code == 201
    upgraded = stored_hash(app, user.email)
    assert upgraded.startswith("$argon2id$") and "$m=2048,t=2,p=2$" in upgraded
    assert log_in(stronger, user.email).status_code == 201
    assert_unauthorized(log_in(stronger, user.email, "not my password at all"))


def test_failed_log_in_does_not_rehash(app, make_app, user):
    before = stored_hash(app, user.email)
    stronger = make_app(COFFER_ARGON2_TIME_COST=2).test_client()
    assert_unauthorized(log_in(stronger, user.email, "not my password at all"))
    assert stored_hash(app, user.email) == before


# --- refresh --------------------------------------------------------------------------------


def test_refresh_rotates_the_refresh_token(client, user):
    first = tokens_for(client, user.email)
    response = refresh(client, first["refresh_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    second = response.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["token_type"] == "Bearer"
    assert client.get(ME, headers=bearer(second["access_token"])).status_code == 200
    assert refresh(client, second["refresh_token"]).status_code == 200


def test_refreshed_tokens_carry_the_same_session(client, user):
    first = tokens_for(client, user.email)
    second = refresh(client, first["refresh_token"]).get_json()
    assert second["session"]["id"] == first["session"]["id"]
    assert second["session"]["current"] is True
    assert second["user"]["id"] == user.id
    claims = jwt.decode(second["access_token"], options={"verify_signature": False})
    assert claims["sid"] == first["session"]["id"]
    current = client.get(CURRENT, headers=bearer(second["access_token"]))
    assert current.get_json()["id"] == first["session"]["id"]


def test_old_refresh_token_stops_working_after_the_grace(make_app, user, frozen_clock):
    client = make_app(COFFER_REFRESH_REUSE_INTERVAL=1).test_client()
    first = tokens_for(client, user.email)
    assert refresh(client, first["refresh_token"]).status_code == 200
    frozen_clock.advance(1)
    assert refresh(client, first["refresh_token"]).status_code == 200  # the grace's last instant
    frozen_clock.advance(0.001)
    assert_unauthorized(refresh(client, first["refresh_token"]))


def test_refresh_token_reuse_within_the_interval_gets_the_same_new_token(client, user):
    first = tokens_for(client, user.email)
    second = refresh(client, first["refresh_token"]).get_json()
    replay = refresh(client, first["refresh_token"])
    assert replay.status_code == 200
    replayed = replay.get_json()
    assert replayed["refresh_token"] == second["refresh_token"]
    assert replayed["session"]["id"] == first["session"]["id"]
    assert client.get(ME, headers=bearer(replayed["access_token"])).status_code == 200
    assert client.get(ME, headers=bearer(first["access_token"])).status_code == 200
    third = refresh(client, second["refresh_token"])
    assert third.status_code == 200
    assert third.get_json()["refresh_token"] != second["refresh_token"]


def test_refresh_token_reuse_revokes_session(make_app, user):
    client = make_app(COFFER_REFRESH_REUSE_INTERVAL=0).test_client()
    first = tokens_for(client, user.email)
    second = refresh(client, first["refresh_token"]).get_json()
    assert_unauthorized(refresh(client, first["refresh_token"]))
    assert_unauthorized(client.get(ME, headers=bearer(first["access_token"])))
    assert_unauthorized(client.get(ME, headers=bearer(second["access_token"])))
    assert_unauthorized(refresh(client, second["refresh_token"]))
    assert client.get(ME, headers=user.headers).status_code == 200  # other sessions live on


def test_only_the_immediate_parent_gets_the_grace(client, user):
    first = tokens_for(client, user.email)
    second = refresh(client, first["refresh_token"]).get_json()
    third = refresh(client, second["refresh_token"]).get_json()
    assert_unauthorized(refresh(client, first["refresh_token"]))
    assert_unauthorized(client.get(ME, headers=bearer(third["access_token"])))
    assert_unauthorized(refresh(client, third["refresh_token"]))


@pytest.mark.parametrize("token", ["not-a-token", "A" * 43, "x"])
def test_unknown_refresh_token_is_401_and_revokes_nothing(client, user, token):
    first = tokens_for(client, user.email)
    assert_unauthorized(refresh(client, token))
    assert client.get(ME, headers=bearer(first["access_token"])).status_code == 200
    assert refresh(client, first["refresh_token"]).status_code == 200


@pytest.mark.parametrize("payload", [{}, {"refresh_token": ""}, {"refresh_token": 7}])
def test_refresh_needs_a_refresh_token(client, payload):
    body = assert_problem(client.post(REFRESH, json=payload), 422)
    assert "refresh_token" in body["errors"]


def test_refresh_of_an_inactive_users_session_is_401(app, client, user):
    first = tokens_for(client, user.email)
    with app.app_context():
        db.session.get(User, uuid.UUID(user.id)).is_active = False
        db.session.commit()
    assert_unauthorized(refresh(client, first["refresh_token"]))


def test_refresh_of_a_logged_out_session_is_401(client, user):
    first = tokens_for(client, user.email)
    assert client.delete(CURRENT, headers=bearer(first["access_token"])).status_code == 204
    assert_unauthorized(refresh(client, first["refresh_token"]))


def _post_json(port: int, path: str, payload: dict) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps(payload)
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_parallel_refreshes_of_one_token_yield_one_live_token(app, client, user, serve):
    first = tokens_for(client, user.email)
    port = int(serve(app).rsplit(":", 1)[1])
    results, start = [], threading.Barrier(12)

    def attempt():
        start.wait()
        results.append(_post_json(port, REFRESH, {"refresh_token": first["refresh_token"]}))

    workers = [threading.Thread(target=attempt) for _ in range(12)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [status for status, _ in results] == [200] * 12, results
    assert len({body["refresh_token"] for _, body in results}) == 1
    with app.app_context():
        live = db.session.scalars(
            db.select(RefreshToken).where(
                RefreshToken.session_id == uuid.UUID(first["session"]["id"]),
                RefreshToken.rotated_at.is_(None),
            )
        ).all()
    assert len(live) == 1
    assert refresh(client, results[0][1]["refresh_token"]).status_code == 200


# --- listing and revocation -----------------------------------------------------------------


def test_sessions_are_listed_newest_first_page_by_page(client, user):
    logged_in = [tokens_for(client, user.email) for _ in range(3)]
    headers = bearer(logged_in[-1]["access_token"])
    expected = [t["session"]["id"] for t in reversed(logged_in)] + [user.session_id]
    seen, url = [], f"{SESSIONS}?limit=1"
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        body = response.get_json()
        assert len(body["items"]) == 1
        assert set(body["items"][0]) == SESSION_FIELDS
        seen.append(body["items"][0]["id"])
        if body["next_cursor"] is None:
            assert "Link" not in response.headers
            url = None
        else:
            link = re.match(r'^<([^>]+)>; rel="next"$', response.headers["Link"])
            assert link and "limit=1" in link.group(1)
            url = re.sub(r"^https?://[^/]+", "", link.group(1))
    assert seen == expected
    body = client.get(SESSIONS, headers=headers).get_json()
    assert [item["id"] for item in body["items"]] == expected
    assert [item["current"] for item in body["items"]] == [True, False, False, False]
    assert body["next_cursor"] is None


@pytest.mark.parametrize(
    "query, status",
    [
        ("limit=0", 422),
        ("limit=101", 422),
        ("limit=-1", 422),
        ("limit=abc", 400),
        ("cursor=not-a-cursor", 400),
        ("foo=bar", 400),
    ],
)
def test_session_list_rejects_bad_query_parameters(client, user, query, status):
    assert_problem(client.get(f"{SESSIONS}?{query}", headers=user.headers), status)


def test_session_list_rejects_a_tampered_cursor(client, user):
    tokens_for(client, user.email)
    cursor = client.get(f"{SESSIONS}?limit=1", headers=user.headers).get_json()["next_cursor"]
    middle = len(cursor) // 2
    tampered = cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]
    response = client.get(f"{SESSIONS}?limit=1&cursor={tampered}", headers=user.headers)
    assert_problem(response, 400)


def test_a_users_cursor_is_refused_on_the_sessions_list(client, accounts, admin):
    accounts.create()
    cursor = client.get(f"{API}/users?limit=1", headers=admin.headers).get_json()["next_cursor"]
    assert cursor
    response = client.get(f"{SESSIONS}?cursor={cursor}", headers=admin.headers)
    assert_problem(response, 400)


def test_an_expired_session_ends(app, client, user):
    ended, live = tokens_for(client, user.email), tokens_for(client, user.email)
    with app.app_context():
        session = db.session.get(Session, uuid.UUID(ended["session"]["id"]))
        session.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert_unauthorized(client.get(ME, headers=bearer(ended["access_token"])))
    assert_unauthorized(refresh(client, ended["refresh_token"]))
    listed = client.get(SESSIONS, headers=bearer(live["access_token"])).get_json()["items"]
    assert [item["id"] for item in listed] == [live["session"]["id"], user.session_id]


def test_get_current_session(client, user):
    response = client.get(CURRENT, headers=user.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == user.session_id and body["current"] is True
    assert set(body) == SESSION_FIELDS


def test_log_out_refuses_the_token_on_the_next_request(client, user):
    assert client.get(ME, headers=user.headers).status_code == 200
    response = client.delete(CURRENT, headers=user.headers)
    assert response.status_code == 204
    assert_unauthorized(client.get(ME, headers=user.headers))
    assert_unauthorized(client.get(CURRENT, headers=user.headers))


def test_get_and_revoke_one_own_session(client, user):
    other = tokens_for(client, user.email)
    url = f"{SESSIONS}/{other['session']['id']}"
    response = client.get(url, headers=user.headers)
    assert response.status_code == 200
    assert response.get_json()["id"] == other["session"]["id"]
    assert response.get_json()["current"] is False
    assert client.delete(url, headers=user.headers).status_code == 204
    assert_unauthorized(client.get(ME, headers=bearer(other["access_token"])))
    assert_unauthorized(refresh(client, other["refresh_token"]))
    assert_problem(client.get(url, headers=user.headers), 404)
    assert_problem(client.delete(url, headers=user.headers), 404)
    assert client.get(ME, headers=user.headers).status_code == 200


@pytest.mark.parametrize("method", ["get", "delete"])
def test_another_users_session_is_404(client, accounts, user, method):
    other = accounts.create()
    response = getattr(client, method)(f"{SESSIONS}/{other.session_id}", headers=user.headers)
    assert_problem(response, 404)
    assert client.get(ME, headers=other.headers).status_code == 200


@pytest.mark.parametrize("method", ["get", "delete"])
def test_unknown_session_id_is_404(client, user, method):
    response = getattr(client, method)(f"{SESSIONS}/{uuid.uuid4()}", headers=user.headers)
    assert_problem(response, 404)


def test_revoke_all_sessions(client, accounts, user):
    other = tokens_for(client, user.email)
    bystander = accounts.create()
    assert client.delete(SESSIONS, headers=user.headers).status_code == 204
    assert_unauthorized(client.get(ME, headers=user.headers))
    assert_unauthorized(client.get(ME, headers=bearer(other["access_token"])))
    assert_unauthorized(refresh(client, other["refresh_token"]))
    assert client.get(ME, headers=bystander.headers).status_code == 200


def test_revoke_all_sessions_but_the_current_one(client, user):
    others = [tokens_for(client, user.email) for _ in range(2)]
    response = client.delete(f"{SESSIONS}?keep_current=true", headers=user.headers)
    assert response.status_code == 204
    assert client.get(ME, headers=user.headers).status_code == 200
    for other in others:
        assert_unauthorized(client.get(ME, headers=bearer(other["access_token"])))
    listed = client.get(SESSIONS, headers=user.headers).get_json()["items"]
    assert [item["id"] for item in listed] == [user.session_id]


@pytest.mark.parametrize("query", ["keep_current=maybe", "everything=true"])
def test_revoke_all_with_a_bad_query_is_400_and_revokes_nothing(client, user, query):
    assert_problem(client.delete(f"{SESSIONS}?{query}", headers=user.headers), 400)
    assert client.get(ME, headers=user.headers).status_code == 200


def test_revoked_sessions_disappear_from_the_list(client, user):
    kept, dropped = tokens_for(client, user.email), tokens_for(client, user.email)
    client.delete(f"{SESSIONS}/{dropped['session']['id']}", headers=user.headers)
    listed = client.get(SESSIONS, headers=user.headers).get_json()["items"]
    assert [item["id"] for item in listed] == [kept["session"]["id"], user.session_id]


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", SESSIONS),
        ("delete", SESSIONS),
        ("get", CURRENT),
        ("delete", CURRENT),
        ("get", f"{SESSIONS}/{UNKNOWN_ID}"),
        ("delete", f"{SESSIONS}/{UNKNOWN_ID}"),
    ],
)
def test_session_routes_need_a_token(client, method, path):
    assert_unauthorized(getattr(client, method)(path))
