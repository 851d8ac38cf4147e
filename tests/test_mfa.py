"""Multi-factor authentication: TOTP enrolment, the second log-in step, recovery codes, step-up
for sensitive changes, an admin's reset, and `amr` in tokens (API.md: Multi-factor
authentication). Time is Coffer's injected clock (frozen_clock), never a sleep."""

import uuid
from xml.etree import ElementTree

import jwt
import pyotp
import pytest
from helpers import API, PASSWORD, assert_problem, assert_unauthorized, bearer, log_in
from mailed import RESET_CONFIRM, RESETS, event_types, events_of, last_mail, proof

from api.extensions import db
from api.models import MfaChallenge, MfaFactor, RecoveryCode

ME = f"{API}/users/me"
TOTP = f"{ME}/mfa/totp"
CONFIRM = f"{TOTP}/confirm"
RECOVERY = f"{ME}/mfa/recovery-codes"
SECOND_STEP = f"{API}/sessions/mfa"
MFA_REQUIRED = "urn:coffer:problem:mfa-required"
NEW_PASSWORD = "a brand new passphrase 42"


class Enrolled:
    """A user with MFA on: its account, its secret and its recovery codes."""

    def __init__(self, account, secret: str, recovery_codes: list[str], clock):
        self.account, self.secret, self.recovery_codes, self.clock = (
            account,
            secret,
            recovery_codes,
            clock,
        )

    def code(self, steps: int = 0) -> str:
        """The code of the current 30-second step, or `steps` steps away from it."""
        return pyotp.TOTP(self.secret).at(self.clock.timestamp() + 30 * steps)


@pytest.fixture
def enrol(client, frozen_clock):
    def enrol(account) -> Enrolled:
        started = client.post(TOTP, json={"password": PASSWORD}, headers=account.headers)
        assert started.status_code == 201, started.get_json()
        secret = started.get_json()["secret"]
        code = pyotp.TOTP(secret).at(frozen_clock.timestamp())
        confirmed = client.post(CONFIRM, json={"code": code}, headers=account.headers)
        assert confirmed.status_code == 200, confirmed.get_json()
        return Enrolled(account, secret, confirmed.get_json()["recovery_codes"], frozen_clock)

    return enrol


@pytest.fixture
def enrolled(enrol, user, frozen_clock) -> Enrolled:
    """MFA on since this step; the clock moved on one step, so that its codes are fresh."""
    on = enrol(user)
    frozen_clock.advance(30)
    return on


def challenge(client, account) -> str:
    """Log in with the right password; the mfa_token of the problem that answers."""
    body = assert_unauthorized(log_in(client, account.email))
    assert body["type"] == MFA_REQUIRED
    return body["mfa_token"]


def second_step(client, mfa_token: str, **code):
    return client.post(SECOND_STEP, json={"mfa_token": mfa_token, **code})


def claims_of(access_token: str) -> dict:
    return jwt.decode(access_token, options={"verify_signature": False})


def me(client, account) -> dict:
    return client.get(ME, headers=account.headers).get_json()


# --- enrolment ---------------------------------------------------------------------------------


def test_enrolment_needs_the_password(client, user):
    for body in ({}, {"password": "not the password at all"}):
        answer = assert_problem(client.post(TOTP, json=body, headers=user.headers), 422)
        assert "password" in answer["errors"]
    assert me(client, user)["mfa_enabled"] is False


def test_enrolment_gives_a_secret_and_a_uri_for_authenticator_apps(client, user):
    started = client.post(TOTP, json={"password": PASSWORD}, headers=user.headers)
    assert started.status_code == 201
    body = started.get_json()
    parsed = pyotp.parse_uri(body["otpauth_uri"])
    assert parsed.secret == body["secret"] and parsed.issuer == "Coffer"
    assert parsed.name == user.email and parsed.digits == 6 and parsed.interval == 30
    svg = ElementTree.fromstring(body["qr_svg"])  # a standalone SVG document, as <img> needs
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert me(client, user)["mfa_enabled"] is False


def test_an_unconfirmed_factor_changes_nothing_at_log_in(client, user):
    assert client.post(TOTP, json={"password": PASSWORD}, headers=user.headers).status_code == 201
    assert log_in(client, user.email).status_code == 201


def test_a_new_enrolment_replaces_an_unconfirmed_one(client, user, frozen_clock):
    first = client.post(TOTP, json={"password": PASSWORD}, headers=user.headers).get_json()
    second = client.post(TOTP, json={"password": PASSWORD}, headers=user.headers).get_json()
    assert first["secret"] != second["secret"]
    stale = pyotp.TOTP(first["secret"]).at(frozen_clock.timestamp())
    answer = assert_problem(client.post(CONFIRM, json={"code": stale}, headers=user.headers), 422)
    assert "code" in answer["errors"]
    fresh = pyotp.TOTP(second["secret"]).at(frozen_clock.timestamp())
    assert client.post(CONFIRM, json={"code": fresh}, headers=user.headers).status_code == 200


def test_confirming_turns_mfa_on_and_shows_ten_recovery_codes_once(client, enrol, user):
    on = enrol(user)
    assert len(on.recovery_codes) == 10 and len(set(on.recovery_codes)) == 10
    assert me(client, user)["mfa_enabled"] is True
    again = client.post(TOTP, json={"password": PASSWORD}, headers=user.headers)
    assert assert_problem(again, 409)["detail"].startswith("Two-factor authentication is on")


def test_a_wrong_first_code_leaves_mfa_off(client, user):
    client.post(TOTP, json={"password": PASSWORD}, headers=user.headers)
    for code in ("000000", "12345", "abcdef"):
        answer = assert_problem(
            client.post(CONFIRM, json={"code": code}, headers=user.headers), 422
        )
        assert "code" in answer["errors"]
    assert me(client, user)["mfa_enabled"] is False
    assert log_in(client, user.email).status_code == 201


def test_confirming_without_an_enrolment_is_409(client, user):
    assert_problem(client.post(CONFIRM, json={"code": "123456"}, headers=user.headers), 409)


def test_the_secret_and_the_recovery_codes_are_not_stored_in_clear(app, enrolled):
    with app.app_context():
        factor = db.session.get(MfaFactor, uuid.UUID(enrolled.account.id))
        stored = factor.secret + b"".join(
            row.code_hash for row in db.session.execute(db.select(RecoveryCode)).scalars()
        )
    assert enrolled.secret.encode() not in stored
    for code in enrolled.recovery_codes:
        assert code.encode() not in stored and code.replace("-", "").encode() not in stored


# --- the second log-in step ----------------------------------------------------------------------


def test_the_password_alone_opens_no_session(client, enrolled):
    sessions_before = client.get(f"{API}/sessions", headers=enrolled.account.headers).get_json()
    response = log_in(client, enrolled.account.email)
    body = assert_unauthorized(response)
    assert body["type"] == MFA_REQUIRED and body["methods"] == ["totp", "recovery_code"]
    assert len(body["mfa_token"]) >= 43
    sessions_after = client.get(f"{API}/sessions", headers=enrolled.account.headers).get_json()
    assert sessions_after == sessions_before


def test_a_wrong_password_is_the_plain_401_for_an_mfa_user(client, enrolled):
    body = assert_unauthorized(log_in(client, enrolled.account.email, "not the password at all"))
    assert body["type"] == "about:blank" and "mfa_token" not in body


def test_a_valid_code_opens_a_session_whose_amr_is_pwd_and_otp(client, enrolled, admin):
    answer = second_step(client, challenge(client, enrolled.account), code=enrolled.code())
    assert answer.status_code == 201, answer.get_json()
    tokens = answer.get_json()
    assert claims_of(tokens["access_token"])["amr"] == ["pwd", "otp"]
    assert tokens["user"]["mfa_enabled"] is True
    own = client.get(f"{API}/sessions/current", headers=bearer(tokens["access_token"]))
    assert own.status_code == 200 and own.get_json()["id"] == tokens["session"]["id"]
    introspected = client.post(
        f"{API}/tokens/introspect", json={"token": tokens["access_token"]}, headers=admin.headers
    ).get_json()
    assert introspected["active"] is True and introspected["amr"] == ["pwd", "otp"]


def test_a_session_keeps_its_amr_across_refreshes(client, enrolled):
    tokens = second_step(client, challenge(client, enrolled.account), code=enrolled.code())
    refreshed = client.post(
        f"{API}/sessions/refresh", json={"refresh_token": tokens.get_json()["refresh_token"]}
    )
    assert refreshed.status_code == 200
    assert claims_of(refreshed.get_json()["access_token"])["amr"] == ["pwd", "otp"]


def test_a_log_in_without_mfa_has_amr_pwd(client, user):
    assert claims_of(log_in(client, user.email).get_json()["access_token"])["amr"] == ["pwd"]


def test_codes_one_step_either_side_are_accepted_two_steps_away_are_not(
    client, enrolled, frozen_clock
):
    frozen_clock.advance(90)  # three steps after the one that confirmed the factor
    mfa_token = challenge(client, enrolled.account)
    assert_unauthorized(second_step(client, mfa_token, code=enrolled.code(-2)))
    assert second_step(client, mfa_token, code=enrolled.code(-1)).status_code == 201
    mfa_token = challenge(client, enrolled.account)
    assert_unauthorized(second_step(client, mfa_token, code=enrolled.code(2)))
    assert second_step(client, mfa_token, code=enrolled.code(1)).status_code == 201


def test_a_code_is_never_accepted_twice_nor_one_of_an_older_step(client, enrolled):
    code = enrolled.code()
    assert second_step(client, challenge(client, enrolled.account), code=code).status_code == 201
    assert_unauthorized(second_step(client, challenge(client, enrolled.account), code=code))
    newer = second_step(client, challenge(client, enrolled.account), code=enrolled.code(1))
    assert newer.status_code == 201
    older = second_step(client, challenge(client, enrolled.account), code=enrolled.code())
    assert_unauthorized(older)


def test_a_code_spent_at_log_in_is_refused_by_a_password_change(client, enrolled):
    code = enrolled.code()
    assert second_step(client, challenge(client, enrolled.account), code=code).status_code == 201
    refused = assert_problem(_change_password(client, enrolled.account.headers, code=code), 422)
    assert list(refused["errors"]) == ["code"]
    assert challenge(client, enrolled.account), "the old password still logs in"


def test_a_code_spent_on_a_password_change_is_refused_at_log_in(client, enrolled):
    code = enrolled.code()
    assert _change_password(client, enrolled.account.headers, code=code).status_code == 204
    mfa_token = assert_unauthorized(log_in(client, enrolled.account.email, NEW_PASSWORD))[
        "mfa_token"
    ]
    assert_unauthorized(second_step(client, mfa_token, code=code))
    assert second_step(client, mfa_token, code=enrolled.code(1)).status_code == 201


def test_the_code_that_confirmed_enrolment_is_refused_at_log_in(client, enrol, user):
    on = enrol(user)  # the clock has not moved: the confirming code is still current
    mfa_token = challenge(client, user)
    assert_unauthorized(second_step(client, mfa_token, code=on.code()))
    assert second_step(client, mfa_token, code=on.code(1)).status_code == 201


def test_an_mfa_token_opens_one_session(client, enrolled):
    mfa_token = challenge(client, enrolled.account)
    assert second_step(client, mfa_token, code=enrolled.code()).status_code == 201
    body = assert_unauthorized(second_step(client, mfa_token, code=enrolled.code(1)))
    assert "mfa_token" in body["detail"]


def test_five_wrong_codes_kill_the_mfa_token(client, enrolled):
    mfa_token = challenge(client, enrolled.account)
    left = [
        assert_unauthorized(second_step(client, mfa_token, code="000000"))["attempts_left"]
        for _ in range(5)
    ]
    assert left == [4, 3, 2, 1, 0]
    dead = assert_unauthorized(second_step(client, mfa_token, code=enrolled.code()))
    assert "attempts_left" not in dead and "mfa_token" in dead["detail"]
    fresh = challenge(client, enrolled.account)
    assert second_step(client, fresh, code=enrolled.code()).status_code == 201


def test_four_wrong_codes_leave_the_mfa_token_alive(client, enrolled):
    mfa_token = challenge(client, enrolled.account)
    for _ in range(4):
        assert_unauthorized(second_step(client, mfa_token, code="000000"))
    assert second_step(client, mfa_token, code=enrolled.code()).status_code == 201


def test_an_mfa_token_expires_after_five_minutes(client, enrolled, frozen_clock):
    mfa_token = challenge(client, enrolled.account)
    frozen_clock.advance(301)
    assert_unauthorized(second_step(client, mfa_token, code=enrolled.code()))


def test_spent_and_expired_challenges_do_not_pile_up(app, client, enrolled, frozen_clock):
    second_step(client, challenge(client, enrolled.account), code=enrolled.code())
    challenge(client, enrolled.account)
    frozen_clock.advance(301)
    live = challenge(client, enrolled.account)
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(MfaChallenge.id))).scalar() == 1
    assert second_step(client, live, code=enrolled.code()).status_code == 201


def test_an_unknown_mfa_token_is_401(client, enrolled):
    assert_unauthorized(second_step(client, "x" * 43, code=enrolled.code()))


def test_a_deactivated_user_cannot_finish_the_second_step(client, enrolled, admin):
    mfa_token = challenge(client, enrolled.account)
    deactivated = client.patch(
        f"{API}/users/{enrolled.account.id}", json={"is_active": False}, headers=admin.headers
    )
    assert deactivated.status_code == 200
    assert_unauthorized(second_step(client, mfa_token, code=enrolled.code()))


def test_wrong_codes_count_under_the_accounts_log_in_limit(make_app, accounts_for, frozen_clock):
    app = make_app(COFFER_RATE_LIMIT_AUTH="6/minute")
    client, account = app.test_client(), accounts_for(app).create()
    secret, _ = _enrol_directly(client, account, frozen_clock)  # password + code: 2 attempts
    frozen_clock.advance(30)
    mfa_token = challenge(client, account)  # the 3rd
    for _ in range(3):  # the 4th to 6th: the mfa_token lives on (5 would kill it)
        assert_unauthorized(second_step(client, mfa_token, code="000000"))
    right = pyotp.TOTP(secret).at(frozen_clock.timestamp())
    elsewhere = {"REMOTE_ADDR": "10.9.8.7"}  # a client whose own counters are untouched
    body = {"mfa_token": mfa_token, "code": right}
    assert_problem(client.post(SECOND_STEP, json=body, environ_base=elsewhere), 429)


def _enrol_directly(client, account, clock) -> tuple[str, list[str]]:
    secret = client.post(TOTP, json={"password": PASSWORD}, headers=account.headers).get_json()[
        "secret"
    ]
    confirmed = client.post(
        CONFIRM, json={"code": pyotp.TOTP(secret).at(clock.timestamp())}, headers=account.headers
    )
    return secret, confirmed.get_json()["recovery_codes"]


@pytest.mark.parametrize(
    "body",
    [
        {"mfa_token": "t"},
        {"mfa_token": "t", "code": "123456", "recovery_code": "abcd-efgh-jkmn"},
        {"code": "123456"},
        {"mfa_token": "t", "code": "123456", "remember": True},
    ],
)
def test_a_malformed_second_step_is_422(client, body):
    assert_problem(client.post(SECOND_STEP, json=body), 422)


# --- recovery codes ------------------------------------------------------------------------------


def test_a_recovery_code_logs_in_once(client, enrolled):
    code = enrolled.recovery_codes[0]
    typed = code.upper().replace("-", " ")  # as a user copies it off paper
    answer = second_step(client, challenge(client, enrolled.account), recovery_code=typed)
    assert answer.status_code == 201
    assert claims_of(answer.get_json()["access_token"])["amr"] == ["pwd", "otp"]
    again = second_step(client, challenge(client, enrolled.account), recovery_code=code)
    assert_unauthorized(again)
    other = enrolled.recovery_codes[1]
    assert (
        second_step(client, challenge(client, enrolled.account), recovery_code=other).status_code
        == 201
    )


def test_new_recovery_codes_kill_the_old_set(client, enrolled):
    headers = enrolled.account.headers
    renewed = client.post(
        RECOVERY, json={"password": PASSWORD, "code": enrolled.code()}, headers=headers
    )
    assert renewed.status_code == 200
    fresh = renewed.get_json()["recovery_codes"]
    assert len(fresh) == 10 and not set(fresh) & set(enrolled.recovery_codes)
    old = enrolled.recovery_codes[0]
    assert_unauthorized(second_step(client, challenge(client, enrolled.account), recovery_code=old))
    new = fresh[0]
    assert (
        second_step(client, challenge(client, enrolled.account), recovery_code=new).status_code
        == 201
    )


def test_recovery_codes_of_a_user_without_mfa_are_404(client, user):
    body = {"password": PASSWORD, "code": "123456"}
    assert_problem(client.post(RECOVERY, json=body, headers=user.headers), 404)


# --- step-up: sensitive changes ask for a code -------------------------------------------------


def _change_password(client, headers, **code):
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, **code}
    return client.put(f"{ME}/password", json=body, headers=headers)


def _change_email(client, headers, **code):
    body = {"email": "moved@example.com", "current_password": PASSWORD, **code}
    return client.patch(ME, json=body, headers=headers)


def _delete_account(client, headers, **code):
    return client.delete(ME, json={"password": PASSWORD, **code}, headers=headers)


def _disable(client, headers, **code):
    return client.delete(TOTP, json={"password": PASSWORD, **code}, headers=headers)


def _new_recovery_codes(client, headers, **code):
    return client.post(RECOVERY, json={"password": PASSWORD, **code}, headers=headers)


SENSITIVE = [
    (_change_password, 204),
    (_change_email, 202),
    (_delete_account, 204),
    (_disable, 204),
    (_new_recovery_codes, 200),
]


@pytest.mark.parametrize(("change", "status"), SENSITIVE)
def test_a_sensitive_change_needs_a_current_code(client, enrolled, change, status):
    headers = enrolled.account.headers
    missing = assert_problem(change(client, headers), 422)
    assert list(missing["errors"]) == ["code"]
    wrong = assert_problem(change(client, headers, code="000000"), 422)
    assert list(wrong["errors"]) == ["code"]
    assert change(client, headers, code=enrolled.code()).status_code == status


@pytest.mark.parametrize(("change", "status"), SENSITIVE[:3])
def test_without_mfa_a_sensitive_change_needs_no_code(client, user, change, status):
    assert change(client, user.headers).status_code == status


def test_a_recovery_code_also_turns_mfa_off(client, enrolled):
    headers = enrolled.account.headers
    off = _disable(client, headers, code=enrolled.recovery_codes[3])
    assert off.status_code == 204
    assert me(client, enrolled.account)["mfa_enabled"] is False
    assert log_in(client, enrolled.account.email).status_code == 201


def test_a_wrong_password_with_a_right_code_changes_nothing(client, enrolled):
    body = {"password": "not the password at all", "code": enrolled.code()}
    answer = assert_problem(client.delete(TOTP, json=body, headers=enrolled.account.headers), 422)
    assert list(answer["errors"]) == ["password"]
    assert me(client, enrolled.account)["mfa_enabled"] is True


def test_turning_mfa_off_when_it_is_off_is_404(client, user):
    assert_problem(_disable(client, user.headers, code="123456"), 404)


# --- admin reset, events, password reset ---------------------------------------------------------


def test_an_admin_reset_removes_the_factor_and_revokes_the_users_sessions(client, enrolled, admin):
    answer = client.delete(f"{API}/users/{enrolled.account.id}/mfa", headers=admin.headers)
    assert answer.status_code == 204
    assert_unauthorized(client.get(ME, headers=enrolled.account.headers))
    tokens = log_in(client, enrolled.account.email)
    assert tokens.status_code == 201, "the password alone logs in again"
    assert tokens.get_json()["user"]["mfa_enabled"] is False
    events = events_of(client, admin, enrolled.account.id)
    disabled = [event for event in events if event["type"] == "mfa_disabled"]
    assert disabled[-1]["details"] == {"by": admin.id, "revoked_sessions": 1}


def test_only_admins_reset_a_users_mfa(client, enrolled, user, accounts):
    other = accounts.create()
    url = f"{API}/users/{enrolled.account.id}/mfa"
    assert_problem(client.delete(url, headers=other.headers), 403)
    assert me(client, enrolled.account)["mfa_enabled"] is True


def test_an_admin_reset_of_an_unknown_user_is_404(client, admin):
    url = f"{API}/users/0190f5a4-7c1e-7d2a-9b3c-4d5e6f708192/mfa"
    assert_problem(client.delete(url, headers=admin.headers), 404)


def test_a_wrong_code_at_enrolment_confirmation_writes_mfa_failed(client, user, admin):
    assert client.post(TOTP, json={"password": PASSWORD}, headers=user.headers).status_code == 201
    assert_problem(client.post(CONFIRM, json={"code": "000000"}, headers=user.headers), 422)
    failed = [e for e in events_of(client, admin, user.id) if e["type"] == "mfa_failed"]
    assert [e["details"] for e in failed] == [{"step": "enrolment"}]


def test_a_wrong_step_up_code_writes_mfa_failed(client, enrolled, admin):
    assert_problem(_change_password(client, enrolled.account.headers, code="000000"), 422)
    failed = [e for e in events_of(client, admin, enrolled.account.id) if e["type"] == "mfa_failed"]
    assert [e["details"] for e in failed] == [{"step": "confirmation"}]


def test_every_step_writes_its_security_event(client, enrolled, admin):
    mfa_token = challenge(client, enrolled.account)
    assert_unauthorized(second_step(client, mfa_token, code="000000"))
    second_step(client, mfa_token, recovery_code=enrolled.recovery_codes[0])
    _new_recovery_codes(client, enrolled.account.headers, code=enrolled.code())
    _disable(client, enrolled.account.headers, code=enrolled.code(1))
    types = event_types(client, admin, enrolled.account.id)
    assert [t for t in types if t.startswith(("mfa", "recovery"))] == [
        "mfa_enabled",
        "mfa_failed",
        "recovery_code_used",
        "recovery_codes_regenerated",
        "mfa_disabled",
    ]
    created = [
        e for e in events_of(client, admin, enrolled.account.id) if e["type"] == "session_created"
    ]
    assert created[-1]["details"]["amr"] == ["pwd", "otp"]


@pytest.fixture
def mail_app(make_app, smtp_sink):
    return make_app(**smtp_sink.config)


def test_a_password_reset_by_mail_does_not_turn_mfa_off(
    mail_app, accounts_for, smtp_sink, frozen_clock
):
    client = mail_app.test_client()
    account = accounts_for(mail_app).create()
    secret, _ = _enrol_directly(client, account, frozen_clock)
    frozen_clock.advance(30)
    assert client.post(RESETS, json={"email": account.email}).status_code == 202
    token, _ = proof(last_mail(mail_app, smtp_sink, account.email))
    body = {"token": token, "new_password": NEW_PASSWORD}
    assert client.post(RESET_CONFIRM, json=body).status_code == 204
    answer = assert_unauthorized(log_in(client, account.email, NEW_PASSWORD))
    assert answer["type"] == MFA_REQUIRED
    code = pyotp.TOTP(secret).at(frozen_clock.timestamp())
    assert second_step(client, answer["mfa_token"], code=code).status_code == 201
