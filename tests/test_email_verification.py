"""Verifying an address: the mail that registration sends, its link and its code, resending,
and COFFER_REQUIRE_VERIFIED_EMAIL (API.md: Account e-mail). Mail goes through a real SMTP
server (smtp_sink); links and codes are read out of the delivered messages."""

import pytest
from helpers import API, PASSWORD, assert_problem, assert_unauthorized, bearer, log_in, register
from mailed import (
    INVALID_LINK,
    ME,
    RESEND,
    VERIFY,
    assert_no_secret_in,
    event_types,
    events_of,
    last_mail,
    mailed,
    proof,
    wrong_code,
)
from smtp_sink import text_of

from api.config import from_env

ADA = "ada@example.com"
NOT_VERIFIED = "urn:coffer:problem:email-not-verified"


@pytest.fixture
def app(make_app, smtp_sink):
    return make_app(**smtp_sink.config)


def registered(client, email: str = ADA) -> dict:
    response = register(client, email)
    assert response.status_code == 201
    return response.get_json()


def test_registration_mails_a_link_and_a_code_to_the_address(app, client, smtp_sink):
    user = registered(client)
    assert user["email_verified"] is False and user["pending_email"] is None
    (message,) = mailed(app, smtp_sink, ADA)
    token, code = proof(message)
    assert f"http://localhost:5173/verify-email#token={token}" in text_of(message)
    assert len(token) >= 43 and len(code) == 6  # 256 bits, base64url


def test_the_link_verifies_the_address(app, client, smtp_sink):
    registered(client)
    token, _ = proof(last_mail(app, smtp_sink, ADA))
    response = client.post(VERIFY, json={"token": token})
    assert response.status_code == 200
    assert response.get_json()["email_verified"] is True
    headers = bearer(log_in(client, ADA).get_json()["access_token"])
    assert client.get(ME, headers=headers).get_json()["email_verified"] is True


def test_the_code_verifies_the_address_read_on_another_device(app, client, smtp_sink):
    registered(client)
    registered(client, "grace@example.com")
    _, code = proof(last_mail(app, smtp_sink, "grace@example.com"))
    response = client.post(VERIFY, json={"email": " Grace@Example.com ", "code": code})
    assert response.status_code == 200
    assert response.get_json()["email"] == "grace@example.com"
    assert response.get_json()["email_verified"] is True


@pytest.mark.parametrize("by", ["token", "code"])
def test_a_link_or_code_works_once(app, client, smtp_sink, by):
    registered(client)
    token, code = proof(last_mail(app, smtp_sink, ADA))
    body = {"token": token} if by == "token" else {"email": ADA, "code": code}
    assert client.post(VERIFY, json=body).status_code == 200
    again = assert_problem(client.post(VERIFY, json=body), 400)
    assert again["detail"] == INVALID_LINK


def test_an_expired_link_is_400_with_the_same_message(app, client, smtp_sink, frozen_clock):
    registered(client)
    token, code = proof(last_mail(app, smtp_sink, ADA))
    frozen_clock.advance(app.config["COFFER_VERIFY_TOKEN_TTL"] + 1)
    for body in ({"token": token}, {"email": ADA, "code": code}):
        assert assert_problem(client.post(VERIFY, json=body), 400)["detail"] == INVALID_LINK
    unknown = assert_problem(client.post(VERIFY, json={"token": "x" * 43}), 400)
    assert unknown["detail"] == INVALID_LINK


def test_five_wrong_codes_kill_the_request(app, client, smtp_sink):
    registered(client)
    token, code = proof(last_mail(app, smtp_sink, ADA))
    for _ in range(5):
        wrong = {"email": ADA, "code": wrong_code(code)}
        assert assert_problem(client.post(VERIFY, json=wrong), 400)["detail"] == INVALID_LINK
    assert_problem(client.post(VERIFY, json={"email": ADA, "code": code}), 400)
    assert_problem(client.post(VERIFY, json={"token": token}), 400)


def test_resending_replaces_the_older_link(app, client, smtp_sink, user):
    response = client.post(RESEND, headers=user.headers)
    assert response.status_code == 202
    assert set(response.get_json()) == {"detail"}
    older, _ = proof(last_mail(app, smtp_sink, user.email))
    assert client.post(RESEND, headers=user.headers).status_code == 202
    newest, _ = proof(last_mail(app, smtp_sink, user.email))
    assert len(smtp_sink.to(user.email)) == 2
    assert_problem(client.post(VERIFY, json={"token": older}), 400)
    assert client.post(VERIFY, json={"token": newest}).status_code == 200
    assert_problem(client.post(RESEND, headers=user.headers), 409)


def test_resending_needs_a_token(client):
    assert_unauthorized(client.post(RESEND))


def test_opening_a_link_never_spends_it(app, client, smtp_sink):
    registered(client)
    token, _ = proof(last_mail(app, smtp_sink, ADA))
    assert_problem(client.get(VERIFY, query_string={"token": token}), 405)
    assert client.post(VERIFY, json={"token": token}).status_code == 200


@pytest.mark.parametrize(
    "body, fields",
    [
        ({}, {"email", "code"}),
        ({"email": ADA}, {"code"}),
        ({"code": "123456"}, {"email"}),
        ({"token": "abc", "code": "123456"}, {"code"}),
        ({"token": "abc", "email": ADA, "code": "123456"}, {"email", "code"}),
        ({"email": ADA, "code": "12345"}, {"code"}),
        ({"email": ADA, "code": "1234567"}, {"code"}),
        ({"email": ADA, "code": "12345a"}, {"code"}),
        ({"email": ADA, "code": 123456}, {"code"}),
        ({"token": ""}, {"token"}),
        ({"token": "abc", "remember": True}, {"remember"}),
    ],
)
def test_a_body_that_is_neither_token_nor_email_and_code_is_422(client, body, fields):
    problem = assert_problem(client.post(VERIFY, json=body), 422)
    assert set(problem["errors"]) == fields


def test_an_admin_change_of_email_is_immediate_unverified_and_kills_the_link(
    app, client, smtp_sink, admin
):
    user_id = registered(client)["id"]
    token, _ = proof(last_mail(app, smtp_sink, ADA))
    changed = client.patch(
        f"{API}/users/{user_id}", json={"email": "Ada@Lovelace.org"}, headers=admin.headers
    )
    assert changed.status_code == 200
    assert changed.get_json()["email"] == "ada@lovelace.org"
    assert changed.get_json()["email_verified"] is False
    assert_problem(client.post(VERIFY, json={"token": token}), 400)
    assert log_in(client, "ada@lovelace.org").status_code == 201


def test_verification_events(app, client, smtp_sink, admin):
    user_id = registered(client)["id"]
    token, code = proof(last_mail(app, smtp_sink, ADA))
    client.post(VERIFY, json={"token": token})
    assert event_types(client, admin, user_id) == [
        "user_registered",
        "email_verification_sent",
        "email_verified",
    ]
    assert_no_secret_in(events_of(client, admin, user_id), token, code)


def test_resending_writes_its_security_event(app, client, smtp_sink, user, admin):
    assert client.post(RESEND, headers=user.headers).status_code == 202
    assert client.post(RESEND, headers=user.headers).status_code == 202
    assert event_types(client, admin, user.id) == ["email_verification_sent"] * 2
    assert_no_secret_in(
        events_of(client, admin, user.id), *proof(last_mail(app, smtp_sink, user.email))
    )


def test_a_verification_link_and_code_die_when_the_password_changes(app, client, smtp_sink):
    registered(client)
    token, code = proof(last_mail(app, smtp_sink, ADA))
    headers = bearer(log_in(client, ADA).get_json()["access_token"])
    change = {"current_password": PASSWORD, "new_password": "an entirely other passphrase"}
    assert client.put(f"{ME}/password", json=change, headers=headers).status_code == 204
    assert_problem(client.post(VERIFY, json={"token": token}), 400)
    assert_problem(client.post(VERIFY, json={"email": ADA, "code": code}), 400)
    assert client.get(ME, headers=headers).get_json()["email_verified"] is False
    assert client.post(RESEND, headers=headers).status_code == 202, "a new mail still verifies"
    fresh, _ = proof(last_mail(app, smtp_sink, ADA))
    assert client.post(VERIFY, json={"token": fresh}).status_code == 200


# --- COFFER_REQUIRE_VERIFIED_EMAIL -----------------------------------------------------------


@pytest.fixture
def strict(make_app, smtp_sink):
    return make_app(**smtp_sink.config, COFFER_REQUIRE_VERIFIED_EMAIL=True)


def test_an_unverified_log_in_with_the_right_password_is_403(strict, smtp_sink, admin):
    client = strict.test_client()
    user_id = registered(client)["id"]
    refused = assert_problem(log_in(client, ADA), 403)
    assert refused["type"] == NOT_VERIFIED
    (*_, failed) = events_of(client, admin, user_id)
    assert failed["type"] == "login_failed"
    assert failed["details"] == {"reason": "email_not_verified"}
    token, _ = proof(last_mail(strict, smtp_sink, ADA))
    assert client.post(VERIFY, json={"token": token}).status_code == 200
    assert log_in(client, ADA).status_code == 201


def test_a_wrong_password_stays_the_plain_401(strict):
    client = strict.test_client()
    registered(client)
    wrong = assert_unauthorized(log_in(client, ADA, "not the password at all"))
    unknown = assert_unauthorized(log_in(client, "nobody@example.com"))
    assert wrong["type"] == unknown["type"] == "about:blank"
    assert wrong["detail"] == unknown["detail"]


def test_an_unverified_refresh_is_403_while_the_setting_is_on(app, strict):
    registered(app.test_client())
    refresh_token = log_in(app.test_client(), ADA).get_json()["refresh_token"]
    body = {"refresh_token": refresh_token}
    refused = assert_problem(strict.test_client().post(f"{API}/sessions/refresh", json=body), 403)
    assert refused["type"] == NOT_VERIFIED
    assert app.test_client().post(f"{API}/sessions/refresh", json=body).status_code == 200


def test_the_setting_is_off_by_default(client):
    registered(client)
    assert log_in(client, ADA, PASSWORD).status_code == 201


@pytest.mark.parametrize(
    "raw, expected", [("", False), ("false", False), ("0", False), ("true", True), ("ON", True)]
)
def test_the_setting_reads_as_a_boolean_from_the_environment(raw, expected):
    config = from_env({"COFFER_REQUIRE_VERIFIED_EMAIL": raw})
    assert config["COFFER_REQUIRE_VERIFIED_EMAIL"] is expected


def test_a_setting_that_is_no_boolean_stops_start_up():
    with pytest.raises(RuntimeError, match="COFFER_REQUIRE_VERIFIED_EMAIL must be true or false"):
        from_env({"COFFER_REQUIRE_VERIFIED_EMAIL": "maybe"})
