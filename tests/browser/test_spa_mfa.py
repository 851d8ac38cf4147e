"""examples/spa's two-factor authentication in Chromium, against gunicorn on the real clock:
turning it on from the QR code's screen, the second log-in step with a code of the app or a
recovery code, the code that a change of address asks for, and turning it off.

The user's authenticator app is pyotp with the key that the page shows. Coffer accepts a code
only for a time step later than the last one it accepted, within one step either side of now,
so each code the app hands out is of the step after the last one it handed out and never of a
step before now: a second code within the same 30 seconds is the next step's, which the server
takes, and no test waits for the clock. Each account is asked for at most two codes."""

import time
from urllib.parse import unquote, urlsplit

import jwt
import pyotp
import pytest
from spa_page import (
    PASSWORD,
    STORED_TOKENS,
    assert_no_cors_trouble,
    expect,
    fill_credentials,
    is_api_call,
    new_email,
    open_spa,
)

pytestmark = pytest.mark.browser

STEP = 30  # seconds per code (RFC 6238), as the server counts them
MFA_REQUIRED = "urn:coffer:problem:mfa-required"
SECOND_STEP = (
    "This account has two-factor authentication: enter the code from your authenticator app."
)
ADD_TO_APP = "Add the account to your authenticator app, then enter the code it shows."
WRONG_CODE = "The code is incorrect or was used already."
TURNED_ON = (
    "Two-factor authentication is on: log-in asks for a code of your app from now on. Save your "
    "recovery codes now, they are shown only this once."
)
TURNED_OFF = "Two-factor authentication is off: log-in asks for the password only."
DEAD_MFA_TOKEN = "The mfa_token is invalid, used or expired: log in again."
FACTOR_EVENTS = {"mfa_enabled", "mfa_failed", "recovery_code_used", "mfa_disabled"}
IMAGE_LOADED = """selector => {
  const image = document.querySelector(selector);
  return image.complete && image.naturalWidth > 0;
}"""


class AuthenticatorApp:
    """The user's phone: codes of the key that the page showed."""

    def __init__(self, secret: str):
        self.totp = pyotp.TOTP(secret, interval=STEP)
        self.last_step: int | None = None

    def _next_step(self) -> int:
        now = int(time.time()) // STEP
        step = now if self.last_step is None else max(self.last_step + 1, now)
        assert step <= now + 1, "two codes of this account were used in this step already"
        return step

    def code(self) -> str:
        """A code that the server has not seen accepted: of now, or of the next step."""
        step = self._next_step()
        self.last_step = step
        return self.totp.at(step * STEP)

    def peek(self) -> str:
        """The code that `code()` would hand out, for a request the server is to refuse
        before it looks at the code."""
        return self.totp.at(self._next_step() * STEP)

    def wrong_code(self) -> str:
        """Six digits that are no code of the last, this or the next two steps."""
        now = int(time.time()) // STEP
        codes = {self.totp.at((now + offset) * STEP) for offset in range(-1, 3)}
        return next(c for c in ("000000", "123456", "999999", "314159", "271828") if c not in codes)


# --- what the user does ------------------------------------------------------------------------


def register_and_log_in(page, email: str) -> None:
    fill_credentials(page, email)
    with page.expect_response(is_api_call("POST", "/api/v1/users")) as created:
        page.click("#register")
    assert created.value.status == 201
    log_in_with_password(page, email)


def log_in_with_password(page, email: str) -> None:
    """A log-in that needs nothing but the password."""
    fill_credentials(page, email)
    with page.expect_response(is_api_call("POST", "/api/v1/sessions")) as answered:
        page.click("#login")
    assert answered.value.status == 201
    expect(page.locator("#status")).to_have_text(f"Logged in as {email}.")
    expect(page.locator("#app-panel")).to_be_visible()


def start_log_in(page, email: str) -> str:
    """The password, answered by the second step's screen; the log-in's mfa_token."""
    fill_credentials(page, email)
    with page.expect_response(is_api_call("POST", "/api/v1/sessions")) as answered:
        page.click("#login")
    problem = answered.value.json()
    assert (answered.value.status, problem["type"]) == (401, MFA_REQUIRED)
    expect(page.locator("#status")).to_have_text(SECOND_STEP)
    expect(page.locator("#mfa-panel")).to_be_visible()
    expect(page.locator("#auth-panel")).to_be_hidden()
    expect(page.locator("#mfa-code")).to_be_focused()
    expect(page.locator("#password")).to_have_value("")  # the mfa_token stands in for it
    assert page.evaluate(STORED_TOKENS) is None
    return problem["mfa_token"]


def send_code(page, field: str, code: str):
    """Type a code into the second step's `field` and send it; the API's answer."""
    page.fill(field, code)
    with page.expect_response(is_api_call("POST", "/api/v1/sessions/mfa")) as answered:
        page.click("#mfa-verify")
    return answered.value


def log_out(page) -> None:
    page.click("#logout")
    expect(page.locator("#status")).to_have_text("Logged out.")
    expect(page.locator("#auth-panel")).to_be_visible()


def turn_on_two_factor(page) -> tuple[AuthenticatorApp, list[str], dict]:
    """Turn it on from the profile, adding the key shown to the app: the app, the recovery
    codes shown and the enrolment's API answer."""
    page.click("#mfa-enable-box summary")
    page.fill("#mfa-enrol-password", PASSWORD)
    with page.expect_response(is_api_call("POST", "/api/v1/users/me/mfa/totp")) as enrolled:
        page.click("#mfa-enrol")
    assert enrolled.value.status == 201
    expect(page.locator("#mfa-setup")).to_be_visible()
    app = AuthenticatorApp(page.locator("#mfa-secret").inner_text().replace(" ", ""))
    page.fill("#mfa-confirm-code", app.code())
    with page.expect_response(is_api_call("POST", "/api/v1/users/me/mfa/totp/confirm")) as done:
        page.click("#mfa-confirm")
    assert done.value.status == 200
    expect(page.locator("#status")).to_have_text(TURNED_ON)
    expect(page.locator("#mfa-state")).to_have_text("on")
    codes = done.value.json()["recovery_codes"]
    expect(page.locator("#recovery-codes li")).to_have_text(codes)
    return app, codes, enrolled.value.json()


# --- what the API says -------------------------------------------------------------------------


def access_token(page) -> str:
    return page.evaluate(STORED_TOKENS)["access_token"]


def amr(page) -> list[str]:
    """How the page's session proved its log-in (the access token's `amr` claim)."""
    return jwt.decode(access_token(page), options={"verify_signature": False})["amr"]


def profile(coffer, page) -> dict:
    status, _, me = coffer.get("/api/v1/users/me", token=access_token(page))
    assert status == 200
    return me


def log_ins_and_factor_events(coffer, page) -> list[str]:
    """The account's security events about log-ins (with their `amr`) and its second factor,
    oldest first."""
    status, _, events = coffer.get("/api/v1/users/me/events", token=access_token(page))
    assert status == 200
    seen = []
    for event in reversed(events["items"]):
        if event["type"] == "session_created":
            seen.append(f"session_created {'+'.join(event['details']['amr'])}")
        elif event["type"] in FACTOR_EVENTS:
            seen.append(event["type"])
    return seen


# --- tests -------------------------------------------------------------------------------------


def test_spa_turns_two_factor_on_and_logs_in_with_a_code_of_the_app(
    page, browser_log, coffer_for_many_log_ins, spa_origin, screenshots
):
    coffer = coffer_for_many_log_ins
    status = page.locator("#status")
    email = new_email()
    open_spa(page, spa_origin, coffer.url)
    register_and_log_in(page, email)
    expect(page.locator("#mfa-state")).to_have_text("off")
    expect(page.locator("#mfa-disable-box")).to_be_hidden()
    assert amr(page) == ["pwd"]

    # The password shows the QR code and the key; nothing is on until a code confirms it.
    page.click("#mfa-enable-box summary")
    page.fill("#mfa-enrol-password", PASSWORD)
    with page.expect_response(is_api_call("POST", "/api/v1/users/me/mfa/totp")) as enrolled:
        page.click("#mfa-enrol")
    factor = enrolled.value.json()
    expect(status).to_have_text(ADD_TO_APP)
    expect(page.locator("#mfa-qr")).to_be_visible()
    page.wait_for_function(IMAGE_LOADED, arg="#mfa-qr")  # a picture, not a broken image
    source = page.locator("#mfa-qr").get_attribute("src")
    assert source.startswith("data:image/svg+xml;charset=utf-8,")
    shown_svg = unquote(source.split(",", 1)[1])
    assert shown_svg == factor["qr_svg"]  # a standalone SVG, shown as the API sent it
    assert page.locator("svg").count() == 0  # the API's markup never became part of the page
    secret = page.locator("#mfa-secret").inner_text().replace(" ", "")
    assert secret == factor["secret"]
    assert f"secret={secret}" in factor["otpauth_uri"]
    assert page.locator("#mfa-uri").get_attribute("href") == factor["otpauth_uri"]
    expect(page.locator("#mfa-enrol-password")).to_have_value("")
    page.screenshot(path=screenshots / "spa-mfa-qr-code.png")
    assert profile(coffer, page)["mfa_enabled"] is False

    # A wrong first code leaves it off; the app's code turns it on and shows the codes once.
    app = AuthenticatorApp(secret)
    page.fill("#mfa-confirm-code", app.wrong_code())
    with page.expect_response(is_api_call("POST", "/api/v1/users/me/mfa/totp/confirm")) as bad:
        page.click("#mfa-confirm")
    assert bad.value.status == 422
    expect(status).to_contain_text(f"code: {WRONG_CODE}")
    expect(status).to_have_attribute("data-kind", "error")
    expect(page.locator("#mfa-state")).to_have_text("off")
    assert profile(coffer, page)["mfa_enabled"] is False

    page.fill("#mfa-confirm-code", app.code())
    with page.expect_response(is_api_call("POST", "/api/v1/users/me/mfa/totp/confirm")) as done:
        page.click("#mfa-confirm")
    expect(status).to_have_text(TURNED_ON)
    expect(page.locator("#mfa-state")).to_have_text("on")
    codes = done.value.json()["recovery_codes"]
    assert len(codes) == 10
    expect(page.locator("#recovery-box")).to_be_visible()
    expect(page.locator("#recovery-box")).to_contain_text("Save these recovery codes now.")
    expect(page.locator("#recovery-codes li")).to_have_text(codes)
    expect(page.locator("#mfa-setup")).to_be_hidden()
    expect(page.locator("#mfa-secret")).to_have_text("")  # the key is gone from the page
    expect(page.locator("#mfa-enable-box")).to_be_hidden()
    page.screenshot(path=screenshots / "spa-mfa-recovery-codes.png")
    assert profile(coffer, page)["mfa_enabled"] is True

    page.click("#recovery-saved")
    expect(page.locator("#recovery-box")).to_be_hidden()
    expect(page.locator("#recovery-codes li")).to_have_count(0)

    # Log in again: the password alone opens no session; a wrong code is refused, the app's
    # next code logs in.
    log_out(page)
    mfa_token = start_log_in(page, email)
    page.screenshot(path=screenshots / "spa-mfa-second-step.png")
    wrong = send_code(page, "#mfa-code", app.wrong_code())
    assert wrong.status == 401
    expect(status).to_have_text(f"{WRONG_CODE} Try again (4 tries left).")
    expect(status).to_have_attribute("data-kind", "error")
    expect(page.locator("#mfa-panel")).to_be_visible()
    expect(page.locator("#mfa-code")).to_have_value("")
    assert page.evaluate(STORED_TOKENS) is None

    code = app.code()
    right = send_code(page, "#mfa-code", code)
    assert right.status == 201
    assert right.request.post_data_json == {"mfa_token": mfa_token, "code": code}
    expect(status).to_have_text(f"Logged in as {email}.")
    expect(page.locator("#app-panel")).to_be_visible()
    expect(page.locator("#mfa-panel")).to_be_hidden()
    expect(page.locator("#mfa-state")).to_have_text("on")
    assert amr(page) == ["pwd", "otp"]

    # After a log-out the sign-in shows again, not the second step.
    log_out(page)
    expect(page.locator("#mfa-panel")).to_be_hidden()
    assert_no_cors_trouble(browser_log)


def test_spa_logs_in_once_with_each_recovery_code_and_turns_two_factor_off(
    page, browser_log, coffer_for_many_log_ins, spa_origin
):
    coffer = coffer_for_many_log_ins
    status = page.locator("#status")
    email = new_email()
    open_spa(page, spa_origin, coffer.url)
    register_and_log_in(page, email)
    app, codes, _ = turn_on_two_factor(page)
    page.click("#recovery-saved")
    log_out(page)

    # A recovery code instead of the app's code: it logs in once.
    start_log_in(page, email)
    page.click("#mfa-switch")
    expect(page.locator("#mfa-recovery-code")).to_be_visible()
    expect(page.locator("#mfa-code")).to_be_hidden()
    expect(page.locator("#mfa-switch")).to_have_text("Use the code from the app instead")
    used = send_code(page, "#mfa-recovery-code", codes[0])
    assert used.status == 201
    assert set(used.request.post_data_json) == {"mfa_token", "recovery_code"}
    expect(status).to_have_text(f"Logged in as {email}. That recovery code is used up now.")
    assert amr(page) == ["pwd", "otp"]
    log_out(page)

    # The same recovery code again is refused; another one of the set logs in.
    start_log_in(page, email)
    expect(page.locator("#mfa-code")).to_be_visible()  # each log-in starts with the app's code
    page.click("#mfa-switch")
    spent = send_code(page, "#mfa-recovery-code", codes[0])
    assert spent.status == 401
    expect(status).to_have_text(f"{WRONG_CODE} Try again (4 tries left).")
    expect(page.locator("#mfa-recovery-code")).to_have_value("")
    assert send_code(page, "#mfa-recovery-code", codes[1].upper()).status == 201
    expect(status).to_have_text(f"Logged in as {email}. That recovery code is used up now.")

    # Turning it off asks for the password and a code: a wrong code changes nothing.
    page.click("#mfa-disable-box summary")
    page.fill("#mfa-disable-password", PASSWORD)
    page.fill("#mfa-disable-code", app.wrong_code())
    with page.expect_response(is_api_call("DELETE", "/api/v1/users/me/mfa/totp")) as refused:
        page.click("#mfa-disable")
    assert refused.value.status == 422
    expect(status).to_contain_text(f"code: {WRONG_CODE}")
    expect(page.locator("#mfa-state")).to_have_text("on")
    assert profile(coffer, page)["mfa_enabled"] is True

    page.fill("#mfa-disable-code", app.code())
    with page.expect_response(is_api_call("DELETE", "/api/v1/users/me/mfa/totp")) as removed:
        page.click("#mfa-disable")
    assert removed.value.status == 204
    expect(status).to_have_text(TURNED_OFF)
    expect(page.locator("#mfa-state")).to_have_text("off")
    expect(page.locator("#mfa-disable-box")).to_be_hidden()
    expect(page.locator("#mfa-enable-box")).to_be_visible()
    assert profile(coffer, page)["mfa_enabled"] is False
    assert log_ins_and_factor_events(coffer, page) == [
        "session_created pwd",
        "mfa_enabled",
        "session_created pwd+otp",
        "recovery_code_used",
        "mfa_failed",  # the spent recovery code
        "session_created pwd+otp",
        "recovery_code_used",
        "mfa_failed",  # the wrong code that did not turn it off
        "mfa_disabled",
    ]

    # Log-in is one step again: no second step, no code.
    log_out(page)
    posts = []
    page.on("request", lambda r: posts.append(urlsplit(r.url).path) if r.method == "POST" else 0)
    log_in_with_password(page, email)
    assert [path for path in posts if path.startswith("/api/v1/sessions")] == [
        "/api/v1/sessions"  # no /sessions/mfa: the live list's stream ticket follows it
    ]
    assert amr(page) == ["pwd"]
    assert_no_cors_trouble(browser_log)


def test_spa_sends_the_user_back_to_the_password_after_five_wrong_codes(
    page, browser_log, coffer_for_many_log_ins, spa_origin
):
    coffer = coffer_for_many_log_ins
    status = page.locator("#status")
    email = new_email()
    open_spa(page, spa_origin, coffer.url)
    register_and_log_in(page, email)
    app, _, _ = turn_on_two_factor(page)
    log_out(page)

    mfa_token = start_log_in(page, email)
    for left in (4, 3, 2, 1):
        assert send_code(page, "#mfa-code", app.wrong_code()).status == 401
        expect(status).to_have_text(
            f"{WRONG_CODE} Try again ({left} {'try' if left == 1 else 'tries'} left)."
        )
        expect(page.locator("#mfa-panel")).to_be_visible()
    assert send_code(page, "#mfa-code", app.wrong_code()).status == 401
    expect(status).to_have_text(
        f"{WRONG_CODE} That was the 5th wrong code: log in again with your password."
    )
    expect(page.locator("#auth-panel")).to_be_visible()
    expect(page.locator("#mfa-panel")).to_be_hidden()
    expect(page.locator("#email")).to_have_value(email)
    expect(page.locator("#password")).to_be_focused()

    # The server killed that mfa_token: even the app's right code no longer opens a session.
    answer, _, problem = coffer.post(
        "/api/v1/sessions/mfa", {"mfa_token": mfa_token, "code": app.peek()}
    )
    assert (answer, problem["detail"]) == (401, DEAD_MFA_TOKEN)

    # Cancel leaves the second step for the sign-in; the password again, then the same code,
    # which the dead token did not spend, logs in.
    start_log_in(page, email)
    page.click("#mfa-cancel")
    expect(status).to_have_text("Log in or register.")
    expect(page.locator("#auth-panel")).to_be_visible()
    expect(page.locator("#mfa-panel")).to_be_hidden()
    start_log_in(page, email)
    assert send_code(page, "#mfa-code", app.code()).status == 201
    expect(status).to_have_text(f"Logged in as {email}.")
    assert amr(page) == ["pwd", "otp"]
    assert_no_cors_trouble(browser_log)


def test_spa_asks_for_a_code_of_the_app_to_change_the_address(
    page, browser_log, coffer_for_many_log_ins, spa_origin
):
    coffer = coffer_for_many_log_ins
    status = page.locator("#status")
    old, new = new_email(), new_email()
    open_spa(page, spa_origin, coffer.url)
    register_and_log_in(page, old)
    page.click("#change-email-box summary")
    expect(page.locator("#change-password")).to_be_visible()
    expect(page.locator("#change-code")).to_be_hidden()  # no second factor, no code

    app, _, _ = turn_on_two_factor(page)
    expect(page.locator("#change-code")).to_be_visible()
    page.fill("#change-email", new)
    page.fill("#change-password", PASSWORD)
    page.fill("#change-code", app.wrong_code())
    with page.expect_response(is_api_call("PATCH", "/api/v1/users/me")) as refused:
        page.click("#send-change")
    assert refused.value.status == 422
    assert refused.value.json()["errors"] == {"code": [WRONG_CODE]}
    expect(status).to_contain_text(f"code: {WRONG_CODE}")
    assert profile(coffer, page)["pending_email"] is None

    code = app.code()
    page.fill("#change-password", PASSWORD)
    page.fill("#change-code", code)
    with page.expect_response(is_api_call("PATCH", "/api/v1/users/me")) as started:
        page.click("#send-change")
    assert started.value.status == 202
    assert started.value.request.post_data_json == {
        "email": new,
        "current_password": PASSWORD,
        "code": code,
    }
    expect(status).to_contain_text(f"A mail with a link and a code went to {new};")
    expect(page.locator("#pending-email")).to_have_text(new)
    expect(page.locator("#change-code")).to_have_value("")
    assert profile(coffer, page)["pending_email"] == new
    assert_no_cors_trouble(browser_log)
