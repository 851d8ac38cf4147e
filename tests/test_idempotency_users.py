"""`Idempotency-Key` on registration: a retried POST /users replays instead of creating twice."""

import threading

import pytest
from helpers import API, PASSWORD, assert_problem

import api.accounts
from api.extensions import db
from api.models import User

USERS = f"{API}/users"


def register(client, email: str, key: str | None, *, ip: str = "127.0.0.1", **extra):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(
        USERS,
        json={"email": email, "password": PASSWORD, **extra},
        headers=headers,
        environ_base={"REMOTE_ADDR": ip},
    )


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(User))


def test_retry_with_the_same_key_replays_the_first_response(app, client):
    first = register(client, "ada@example.com", "signup-1")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    retry = register(client, "ada@example.com", "signup-1")
    assert retry.status_code == 201
    assert retry.get_json() == first.get_json()
    assert retry.headers["Location"] == first.headers["Location"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert user_count(app) == 1


def test_without_a_key_a_retry_is_a_conflict(client):
    assert register(client, "ada@example.com", None).status_code == 201
    assert_problem(register(client, "ada@example.com", None), 409)


def test_same_key_with_another_body_is_422(app, client):
    assert register(client, "ada@example.com", "signup-1").status_code == 201
    assert_problem(register(client, "bob@example.com", "signup-1"), 422)
    assert user_count(app) == 1


def test_same_key_with_another_field_value_is_422(client):
    assert register(client, "ada@example.com", "signup-1", name="Ada").status_code == 201
    assert_problem(register(client, "ada@example.com", "signup-1", name="Bob"), 422)


@pytest.mark.parametrize("key", ["k" * 300, "", "has space", "tab\tkey", "caf\u00e9"])
def test_invalid_key_is_400(app, client, key):
    assert_problem(register(client, "ada@example.com", key), 400)
    assert user_count(app) == 0


def test_a_key_of_255_characters_is_accepted(client):
    assert register(client, "ada@example.com", "k" * 255).status_code == 201


def test_a_failed_request_does_not_burn_the_key(app, client):
    failed = client.post(
        USERS,
        json={"email": "not-an-email", "password": PASSWORD},
        headers={"Idempotency-Key": "signup-1"},
    )
    assert_problem(failed, 422)
    response = register(client, "ada@example.com", "signup-1")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    assert user_count(app) == 1


def test_a_conflict_does_not_burn_the_key(app, client):
    assert register(client, "ada@example.com", None).status_code == 201
    assert_problem(register(client, "ada@example.com", "signup-1"), 409)
    assert register(client, "bob@example.com", "signup-1").status_code == 201


def test_keys_are_scoped_to_the_caller(app, client):
    assert register(client, "ada@example.com", "signup-1", ip="192.0.2.1").status_code == 201
    other = register(client, "bob@example.com", "signup-1", ip="192.0.2.2")
    assert other.status_code == 201
    assert "Idempotent-Replayed" not in other.headers
    assert user_count(app) == 2


def test_a_retry_while_the_first_request_runs_is_409(app, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    create_user = api.accounts.create_user

    def slow_create_user(**kwargs):
        entered.set()
        release.wait(timeout=10)
        return create_user(**kwargs)

    monkeypatch.setattr(api.accounts, "create_user", slow_create_user)
    first = []
    worker = threading.Thread(
        target=lambda: first.append(register(app.test_client(), "ada@example.com", "signup-1"))
    )
    worker.start()
    try:
        assert entered.wait(timeout=10)
        assert_problem(register(app.test_client(), "ada@example.com", "signup-1"), 409)
    finally:
        release.set()
        worker.join(timeout=10)
    assert first[0].status_code == 201
    replay = register(app.test_client(), "ada@example.com", "signup-1")
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert user_count(app) == 1
