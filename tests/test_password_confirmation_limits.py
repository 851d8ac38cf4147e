"""A password confirmation (`current_password`, `password`) counts under the account's log-in
limit, so that a stolen access token is no unlimited oracle for the password (API.md)."""

import uuid

import pytest
from helpers import API

from api.extensions import db
from api.models import User
from api.passwords import verify_password

ME = f"{API}/users/me"
NEW_PASSWORD = "a brand new passphrase 42"
WRONG = "not my password at all"

# Each route that asks for a confirmation: a request body around the confirmed password,
# and the field that a wrong one is reported under.
CONFIRMATIONS = {
    "password-change": (
        "put",
        f"{ME}/password",
        lambda password: {"current_password": password, "new_password": NEW_PASSWORD},
        "current_password",
    ),
    "email-change": (
        "patch",
        ME,
        lambda password: {"email": "changed@example.com", "current_password": password},
        "current_password",
    ),
    "account-deletion": ("delete", ME, lambda password: {"password": password}, "password"),
}


@pytest.fixture
def limited(make_app):
    """An app that allows 3 log-ins a minute (per IP and per account)."""
    return make_app(COFFER_RATE_LIMIT_AUTH="3/minute")


def confirm(client, user, route: str, password: str):
    method, path, body, _ = CONFIRMATIONS[route]
    return getattr(client, method)(path, json=body(password), headers=user.headers)


@pytest.mark.parametrize("route", CONFIRMATIONS)
def test_wrong_confirmations_run_into_the_accounts_log_in_limit(limited, user, route):
    client = limited.test_client()
    field = CONFIRMATIONS[route][3]
    for _ in range(3):
        response = confirm(client, user, route, WRONG)
        assert response.status_code == 422, response.get_data(as_text=True)
        assert field in response.get_json()["errors"]
    refused = confirm(client, user, route, WRONG)
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    # The counter is the one log-in uses for this account.
    log_in = client.post(f"{API}/sessions", json={"email": user.email, "password": user.password})
    assert log_in.status_code == 429


@pytest.mark.parametrize("route", CONFIRMATIONS)
def test_once_the_limit_is_spent_even_the_right_password_is_not_checked(limited, user, route):
    client = limited.test_client()
    for _ in range(3):
        confirm(client, user, route, WRONG)
    assert confirm(client, user, route, user.password).status_code == 429
    with limited.app_context():  # nothing changed: the account, its email and its password
        stored = db.session.get(User, uuid.UUID(user.id))
        assert stored.email == user.email and verify_password(stored, user.password)


def test_right_confirmations_count_too(limited, user):
    """Like log-ins: counting only failures would tell a guesser which guess was right."""
    client = limited.test_client()
    there, back = (user.password, NEW_PASSWORD), (NEW_PASSWORD, user.password)
    for current, new in (there, back, there):
        body = {"current_password": current, "new_password": new}
        assert client.put(f"{ME}/password", json=body, headers=user.headers).status_code == 204
    body = {"current_password": NEW_PASSWORD, "new_password": user.password}
    assert client.put(f"{ME}/password", json=body, headers=user.headers).status_code == 429


def test_log_ins_spend_the_confirmations_of_the_account(limited, user):
    client = limited.test_client()
    for _ in range(3):
        wrong = {"email": user.email, "password": WRONG}
        assert client.post(f"{API}/sessions", json=wrong).status_code == 401
    assert confirm(client, user, "account-deletion", user.password).status_code == 429


def test_a_name_change_needs_no_confirmation_and_is_not_counted(limited, user):
    client = limited.test_client()
    for _ in range(5):
        assert client.patch(ME, json={"name": "Ada"}, headers=user.headers).status_code == 200
    assert confirm(client, user, "password-change", user.password).status_code == 204
