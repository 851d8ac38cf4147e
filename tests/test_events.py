"""Security events: each account action leaves exactly one event, seen by its owner and admins."""

import ast
from pathlib import Path

import pytest
import yaml
from helpers import PASSWORD, bearer, log_in, register

from api.events import TYPES
from resources.spec import SPEC_FILE

ROOT = Path(__file__).resolve().parent.parent

NEW_PASSWORD = "another long passphrase 42"


def events(client, headers, path="/api/v1/users/me/events"):
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def types(client, headers, path="/api/v1/users/me/events"):
    return [event["type"] for event in events(client, headers, path)]


def register_and_log_in(client, email="ev@example.com"):
    assert register(client, email).status_code == 201
    response = log_in(client, email, device_name="phone", headers={"User-Agent": "EventsTest/1.0"})
    assert response.status_code == 201
    tokens = response.get_json()
    return tokens, bearer(tokens["access_token"])


def test_registration_and_log_in_are_recorded_newest_first(client):
    tokens, headers = register_and_log_in(client)
    recorded = events(client, headers)
    assert [e["type"] for e in recorded] == [
        "session_created",
        "email_verification_sent",  # registration mails a verification link
        "user_registered",
    ]
    created = recorded[0]
    assert created["session_id"] == tokens["session"]["id"]
    assert created["user_id"] == tokens["user"]["id"]
    assert created["ip"] == "127.0.0.1"
    assert created["user_agent"] == "EventsTest/1.0"
    assert created["details"] == {"device_name": "phone", "amr": ["pwd"]}
    assert created["created_at"].endswith("Z")


def test_a_failed_log_in_is_recorded_for_the_account(client):
    _, headers = register_and_log_in(client)
    response = log_in(client, "ev@example.com", "x")
    assert response.status_code == 401
    assert types(client, headers)[0] == "login_failed"
    assert types(client, headers).count("login_failed") == 1


def test_a_failed_log_in_for_an_unknown_email_is_visible_to_no_one(client, admin, app):
    response = log_in(client, "ghost@example.com")
    assert response.status_code == 401
    from api.extensions import db
    from api.models import SecurityEvent

    with app.app_context():
        stored = db.session.execute(db.select(SecurityEvent)).scalars().all()
    failed = [e for e in stored if e.type == "login_failed"]
    assert len(failed) == 1
    assert failed[0].user_id is None
    assert "ghost" not in str(failed[0].details)


def test_refresh_grace_replay_and_reuse_are_recorded(make_app):
    client = make_app(COFFER_REFRESH_REUSE_INTERVAL=10).test_client()
    tokens, headers = register_and_log_in(client)
    first = client.post("/api/v1/sessions/refresh", json={"refresh_token": tokens["refresh_token"]})
    replay = client.post(
        "/api/v1/sessions/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert first.status_code == replay.status_code == 200
    headers = bearer(replay.get_json()["access_token"])
    recorded = events(client, headers)[:2]
    assert [e["type"] for e in recorded] == ["session_refreshed", "session_refreshed"]
    assert [e["details"]["replayed"] for e in recorded] == [True, False]

    newer = client.post(
        "/api/v1/sessions/refresh", json={"refresh_token": first.get_json()["refresh_token"]}
    )
    assert newer.status_code == 200
    reuse = client.post("/api/v1/sessions/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reuse.status_code == 401
    admin_client_headers = headers  # the session is revoked now: read as the user again
    assert client.get("/api/v1/users/me", headers=admin_client_headers).status_code == 401
    _, fresh = _log_in_again(client)
    assert types(client, fresh)[1] == "refresh_reuse_detected"


def _log_in_again(client, email="ev@example.com"):
    response = log_in(client, email)
    assert response.status_code == 201
    tokens = response.get_json()
    return tokens, bearer(tokens["access_token"])


def test_logout_revoke_one_and_revoke_all_each_leave_one_event(client):
    _, first = register_and_log_in(client)
    second_tokens, second = _log_in_again(client)
    third_tokens, third = _log_in_again(client)

    assert client.delete("/api/v1/sessions/current", headers=third).status_code == 204
    assert (
        client.delete(
            f"/api/v1/sessions/{second_tokens['session']['id']}", headers=first
        ).status_code
        == 204
    )
    assert client.delete("/api/v1/sessions?keep_current=true", headers=first).status_code == 204

    recorded = events(client, first)
    revoked = [e for e in recorded if e["type"] == "session_revoked"]
    assert len(revoked) == 3
    assert revoked[0]["details"] == {"all_sessions": True, "revoked_sessions": 0}
    assert revoked[1]["session_id"] == second_tokens["session"]["id"]
    assert revoked[2]["session_id"] == third_tokens["session"]["id"]


def test_password_change_is_one_event(client):
    _, headers = register_and_log_in(client)
    _log_in_again(client)
    response = client.put(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 204
    recorded = events(client, headers)
    assert recorded[0]["type"] == "password_changed"
    assert recorded[0]["details"] == {"revoked_sessions": 1}
    assert [e["type"] for e in recorded].count("session_revoked") == 0
    assert NEW_PASSWORD not in str(recorded) and PASSWORD not in str(recorded)


def test_email_and_name_changes(client):
    """A new email only starts a change; its confirmation is tests/test_email_change.py's."""
    _, headers = register_and_log_in(client)
    client.patch("/api/v1/users/me", json={"name": "Eve"}, headers=headers)
    client.patch(
        "/api/v1/users/me",
        json={"email": "eve@example.com", "current_password": PASSWORD},
        headers=headers,
    )
    client.patch("/api/v1/users/me", json={"name": "Eve"}, headers=headers)  # no change
    recorded = events(client, headers)
    assert [e["type"] for e in recorded[:2]] == ["email_change_requested", "user_updated"]
    assert recorded[0]["details"] == {"new_email": "eve@example.com"}
    assert recorded[1]["details"] == {"fields": ["name"]}


def test_admin_changes_are_recorded_with_the_admin(client, admin):
    tokens, headers = register_and_log_in(client)
    user_id = tokens["user"]["id"]
    path = f"/api/v1/users/{user_id}"
    assert client.patch(path, json={"role": "service"}, headers=admin.headers).status_code == 200
    assert client.patch(path, json={"is_active": False}, headers=admin.headers).status_code == 200
    recorded = events(client, admin.headers, f"{path}/events")
    assert [e["type"] for e in recorded[:2]] == ["user_deactivated", "user_updated"]
    assert recorded[0]["details"] == {"fields": ["is_active"], "by": admin.id}
    assert recorded[1]["details"] == {"fields": ["role"], "by": admin.id}


@pytest.mark.parametrize("by_admin", [False, True])
def test_deletion_is_recorded_and_kept_for_admins(client, admin, by_admin):
    tokens, headers = register_and_log_in(client)
    user_id = tokens["user"]["id"]
    if by_admin:
        response = client.delete(f"/api/v1/users/{user_id}", headers=admin.headers)
    else:
        response = client.delete("/api/v1/users/me", json={"password": PASSWORD}, headers=headers)
    assert response.status_code == 204
    recorded = events(client, admin.headers, f"/api/v1/users/{user_id}/events")
    assert recorded[0]["type"] == "user_deleted"
    assert recorded[0]["details"] == ({"by": admin.id} if by_admin else {})


def test_events_are_visible_to_the_owner_and_admins_only(client, accounts, admin):
    tokens, headers = register_and_log_in(client)
    other = accounts.create()
    path = f"/api/v1/users/{tokens['user']['id']}/events"
    assert client.get(path, headers=other.headers).status_code == 403
    assert all(e["user_id"] == other.id for e in events(client, other.headers))
    assert len(events(client, admin.headers, path)) == 3  # registered, mailed, logged in
    assert client.get(path).status_code == 401


def test_events_of_an_unknown_user_are_404(client, admin):
    path = "/api/v1/users/01234567-89ab-7def-8123-456789abcdef/events"
    assert client.get(path, headers=admin.headers).status_code == 404


def test_events_are_paginated(client):
    _, headers = register_and_log_in(client)
    for _ in range(3):
        log_in(client, "ev@example.com", "nope")
    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(f"/api/v1/users/me/events{query}", headers=headers).get_json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6  # registered, verification mailed, logged in, 3 failures
    assert len({e["id"] for e in seen}) == 6
    assert client.get("/api/v1/users/me/events?limit=0", headers=headers).status_code == 422


def _emitted_types() -> dict[str, list[str]]:
    """Event type -> where it is emitted, from every emit() call in the code (`emit(...)` or
    `events.emit(...)`); a call whose type is no string literal fails the test."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "api").rglob("*.py")) + sorted((ROOT / "resources").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name != "emit":
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            first = node.args[0] if node.args else None
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), where
            found.setdefault(first.value, []).append(where)
    return found


def test_every_emitted_event_type_is_listed_and_every_listed_type_is_emitted():
    emitted = _emitted_types()
    assert {t: w for t, w in emitted.items() if t not in TYPES} == {}, "emitted, not in TYPES"
    assert [t for t in TYPES if t not in emitted] == [], "in TYPES, emitted nowhere"
    assert len(set(TYPES)) == len(TYPES)


def test_the_spec_lists_the_event_types_as_an_enum():
    with open(SPEC_FILE) as handle:
        spec = yaml.safe_load(handle)
    event_type = spec["components"]["schemas"]["SecurityEvent"]["properties"]["type"]
    assert event_type["enum"] == list(TYPES)
