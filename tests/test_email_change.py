"""Changing the own e-mail address: a change that starts (202, `pending_email`), a link + code
to the new address and a notice to the old one, and a confirmation that swaps the address and
signs out every other device (API.md: Account e-mail). Mail goes through a real SMTP server."""

import pytest
from helpers import API, PASSWORD, assert_problem, assert_unauthorized, bearer, log_in, register
from mailed import (
    INVALID_LINK,
    ME,
    VERIFY,
    assert_no_secret_in,
    event_types,
    events_of,
    last_mail,
    mailed,
    proof,
)
from smtp_sink import CODE, TOKEN_IN_LINK, text_of

NEW = "ada.new@example.org"


@pytest.fixture
def app(make_app, smtp_sink):
    return make_app(**smtp_sink.config)


def start_change(client, user, email: str = NEW, **extra):
    body = {"email": email, "current_password": PASSWORD, **extra}
    return client.patch(ME, json=body, headers=user.headers)


def test_a_new_address_starts_a_change(client, user):
    response = start_change(client, user, " Ada.New@Example.ORG ", name="Ada")
    assert response.status_code == 202
    body = response.get_json()
    assert body["email"] == user.email and body["pending_email"] == NEW
    assert body["name"] == "Ada"  # applies at once
    assert client.get(ME, headers=user.headers).get_json() == body
    assert log_in(client, user.email).status_code == 201
    assert_unauthorized(log_in(client, NEW))


def test_a_link_and_code_go_to_the_new_address_and_a_notice_to_the_old(
    app, client, smtp_sink, user
):
    start_change(client, user)
    (confirmation,) = mailed(app, smtp_sink, NEW)
    token, code = proof(confirmation)
    assert f"http://localhost:5173/verify-email#token={token}" in text_of(confirmation)
    (notice,) = smtp_sink.to(user.email)
    assert NEW in text_of(notice)
    assert not TOKEN_IN_LINK.search(text_of(notice)) and not CODE.search(text_of(notice))


def test_confirming_swaps_the_address_and_revokes_the_other_sessions(app, client, smtp_sink, user):
    other = log_in(client, user.email).get_json()
    start_change(client, user)
    token, _ = proof(last_mail(app, smtp_sink, NEW))
    response = client.post(VERIFY, json={"token": token})
    assert response.status_code == 200
    body = response.get_json()
    assert body["email"] == NEW and body["pending_email"] is None and body["email_verified"]
    assert client.get(ME, headers=user.headers).get_json()["email"] == NEW  # asked: stays
    assert_unauthorized(client.get(ME, headers=bearer(other["access_token"])))
    assert log_in(client, NEW).status_code == 201
    assert_unauthorized(log_in(client, user.email))


def test_the_code_of_the_new_address_confirms(app, client, smtp_sink, user):
    start_change(client, user)
    _, code = proof(last_mail(app, smtp_sink, NEW))
    assert_problem(client.post(VERIFY, json={"email": user.email, "code": code}), 400)
    response = client.post(VERIFY, json={"email": NEW.upper(), "code": code})
    assert response.status_code == 200 and response.get_json()["email"] == NEW


def test_an_address_with_an_account_is_409_at_once(app, client, smtp_sink, accounts, user):
    taken = accounts.create()
    response = start_change(client, user, taken.email.upper())
    assert_problem(response, 409)
    assert client.get(ME, headers=user.headers).get_json()["pending_email"] is None
    assert mailed(app, smtp_sink, taken.email) == [] and smtp_sink.to(user.email) == []


def test_an_address_taken_meanwhile_is_409_on_confirmation(app, client, smtp_sink, user):
    start_change(client, user)
    token, _ = proof(last_mail(app, smtp_sink, NEW))
    assert register(client, NEW).status_code == 201
    assert_problem(client.post(VERIFY, json={"token": token}), 409)
    me = client.get(ME, headers=user.headers).get_json()
    assert me["email"] == user.email and me["pending_email"] == NEW


def test_a_wrong_current_password_starts_nothing(app, client, smtp_sink, user):
    body = {"email": NEW, "current_password": "not my password at all"}
    problem = assert_problem(client.patch(ME, json=body, headers=user.headers), 422)
    assert "current_password" in problem["errors"]
    assert client.get(ME, headers=user.headers).get_json()["pending_email"] is None
    assert smtp_sink.deliver(app) == []


def test_a_newer_change_replaces_the_older(app, client, smtp_sink, user):
    start_change(client, user)
    older, _ = proof(last_mail(app, smtp_sink, NEW))
    assert start_change(client, user, "ada.other@example.org").status_code == 202
    newer, _ = proof(last_mail(app, smtp_sink, "ada.other@example.org"))
    assert_problem(client.post(VERIFY, json={"token": older}), 400)
    assert client.post(VERIFY, json={"token": newer}).get_json()["email"] == "ada.other@example.org"


def test_a_password_change_cancels_a_pending_change(app, client, smtp_sink, user):
    start_change(client, user)
    token, code = proof(last_mail(app, smtp_sink, NEW))
    change = {"current_password": PASSWORD, "new_password": "an entirely other passphrase"}
    assert client.put(f"{ME}/password", json=change, headers=user.headers).status_code == 204
    assert client.get(ME, headers=user.headers).get_json()["pending_email"] is None
    refused = assert_problem(client.post(VERIFY, json={"token": token}), 400)
    assert refused["detail"] == INVALID_LINK
    assert_problem(client.post(VERIFY, json={"email": NEW, "code": code}), 400)


def test_an_admin_change_cancels_a_pending_change(app, client, smtp_sink, user, admin):
    start_change(client, user)
    token, _ = proof(last_mail(app, smtp_sink, NEW))
    path = f"{API}/users/{user.id}"
    changed = client.patch(path, json={"email": "ada@admin.example"}, headers=admin.headers)
    assert changed.get_json()["pending_email"] is None
    assert_problem(client.post(VERIFY, json={"token": token}), 400)


def test_the_same_address_is_no_change(app, client, smtp_sink, user):
    response = client.patch(ME, json={"email": user.email.upper()}, headers=user.headers)
    assert response.status_code == 200
    assert response.get_json()["pending_email"] is None
    assert smtp_sink.deliver(app) == []


def test_email_change_events(app, client, smtp_sink, admin, user):
    start_change(client, user)
    token, code = proof(last_mail(app, smtp_sink, NEW))
    client.post(VERIFY, json={"token": token})
    assert event_types(client, admin, user.id) == [
        "email_change_requested",
        "email_changed",
        "email_verified",
    ]
    requested, changed, verified = events_of(client, admin, user.id)
    assert requested["details"] == {"new_email": NEW}
    assert requested["session_id"] == user.session_id
    assert changed["details"] == {
        "old_email": user.email,
        "new_email": NEW,
        "revoked_sessions": 0,
    }
    assert verified["details"] == {"email": NEW}
    assert_no_secret_in([requested, changed, verified], token, code, PASSWORD)
