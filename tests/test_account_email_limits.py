"""Rate limits of account e-mail: COFFER_RATE_LIMIT_MAIL per target address, shared by every
route that mails (resend, reset, e-mail change), and COFFER_RATE_LIMIT_AUTH per client IP on
those routes and on the two confirmations (API.md: Account e-mail)."""

import pytest
from helpers import PASSWORD, assert_problem
from mailed import ME, RESEND, RESET_CONFIRM, RESETS, VERIFY, mailed


def from_ip(ip: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": ip}}


def assert_limited(response) -> None:
    assert_problem(response, 429)
    assert int(response.headers["Retry-After"]) >= 1


@pytest.fixture
def app(make_app, smtp_sink):
    """The default mail limit (5 an hour per address); the per-IP limit out of the way."""
    return make_app(**smtp_sink.config)


def test_the_sixth_mail_to_one_address_in_an_hour_is_429(app, client, smtp_sink, user):
    for n in range(3):  # from several clients: only the address's counter can refuse
        reset = client.post(RESETS, json={"email": user.email}, **from_ip(f"10.0.0.{n}"))
        assert reset.status_code == 202
    for _ in range(2):
        assert client.post(RESEND, headers=user.headers).status_code == 202
    assert_limited(client.post(RESETS, json={"email": user.email.upper()}))
    assert_limited(client.post(RESEND, headers=user.headers))
    assert len(mailed(app, smtp_sink, user.email)) == 5
    assert client.post(RESETS, json={"email": "someone.else@example.com"}).status_code == 202


def test_an_email_change_counts_on_the_new_address(make_app, smtp_sink, user):
    client = make_app(**smtp_sink.config, COFFER_RATE_LIMIT_MAIL="2/hour").test_client()
    for _ in range(2):
        assert client.post(RESETS, json={"email": "ada.new@example.org"}).status_code == 202
    change = {"email": "ada.new@example.org", "current_password": PASSWORD}
    assert_limited(client.patch(ME, json=change, headers=user.headers))
    assert client.get(ME, headers=user.headers).get_json()["pending_email"] is None
    other = {"email": "ada.other@example.org", "current_password": PASSWORD}
    assert client.patch(ME, json=other, headers=user.headers).status_code == 202


def test_unknown_addresses_are_limited_alike(make_app, smtp_sink):
    client = make_app(**smtp_sink.config, COFFER_RATE_LIMIT_MAIL="2/hour").test_client()
    for _ in range(2):
        assert client.post(RESETS, json={"email": "nobody@example.com"}).status_code == 202
    assert_limited(client.post(RESETS, json={"email": "nobody@example.com"}))


@pytest.fixture
def strict(make_app, smtp_sink):
    """3 requests a minute per client IP; the mail limit out of the way."""
    return make_app(
        **smtp_sink.config, COFFER_RATE_LIMIT_AUTH="3/minute", COFFER_RATE_LIMIT_MAIL="100/hour"
    )


def test_the_mail_routes_share_a_limit_per_client_ip(strict, accounts):
    client = strict.test_client()
    user = accounts.create()
    ip = from_ip("203.0.113.7")
    assert client.post(RESETS, json={"email": "a@example.com"}, **ip).status_code == 202
    assert client.post(RESEND, headers=user.headers, **ip).status_code == 202
    change = {"email": "ada.new@example.org", "current_password": PASSWORD}
    assert client.patch(ME, json=change, headers=user.headers, **ip).status_code == 202
    assert_limited(client.post(RESETS, json={"email": "b@example.com"}, **ip))
    assert_limited(client.patch(ME, json=change, headers=user.headers, **ip))
    assert client.patch(ME, json={"name": "Ada"}, headers=user.headers, **ip).status_code == 200
    elsewhere = from_ip("203.0.113.8")
    assert client.post(RESETS, json={"email": "b@example.com"}, **elsewhere).status_code == 202


@pytest.mark.parametrize(
    "path, body",
    [
        (VERIFY, {"token": "not a token that anyone was sent"}),
        (RESET_CONFIRM, {"token": "not a token", "new_password": "a brand new passphrase 42"}),
        (VERIFY, {"email": "ada@example.com", "code": "123456"}),
    ],
)
def test_the_confirmations_are_limited_per_client_ip(strict, path, body):
    client = strict.test_client()
    ip = from_ip("198.51.100.1")
    for _ in range(3):
        assert_problem(client.post(path, json=body, **ip), 400)
    assert_limited(client.post(path, json=body, **ip))
    assert_problem(client.post(path, json=body, **from_ip("198.51.100.2")), 400)
