"""examples/spa's account e-mail screens in Chromium, against gunicorn that sends its mail to a
real SMTP server: confirming an address with the mail's link and with its code, resetting a
forgotten password, and changing the address. The mails' links open the page (COFFER_APP_URL
is its origin, another than the API's), as a user's mail program would."""

import re
import time
from urllib.parse import urlsplit

import pytest
from smtp_sink import code_in, html_of, text_of
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

NEW_PASSWORD = "another long and private passphrase"
# Mail goes out from the workers' sender threads, woken by the commit: within a second or
# two, but a loaded machine may take longer.
MAIL_TIMEOUT = 20.0
LINK = re.compile(r"https?://\S+#token=[A-Za-z0-9_~.%-]+")
INVALID = "The link or code is invalid, used or expired."
VERIFY_SUBJECT = "Confirm your e-mail address"
RESET_SUBJECT = "Reset your password"
CHANGE_SUBJECT = "Confirm your new e-mail address"
NOTICE_SUBJECT = "Your e-mail address is about to change"


def mail_to(sink, address: str, subject: str, timeout: float = MAIL_TIMEOUT):
    """The mail with this subject to `address`, once it arrived (AssertionError after
    `timeout` seconds); there must be exactly one."""
    deadline = time.monotonic() + timeout
    while True:
        arrived = len(sink.messages)  # before looking: a mail that comes meanwhile ends the wait
        found = [mail for mail in sink.to(address) if mail["Subject"] == subject]
        if found:
            assert len(found) == 1, f"{len(found)} mails {subject!r} to {address}"
            return found[0]
        left = deadline - time.monotonic()
        if left <= 0:
            seen = [(mail["To"], mail["Subject"]) for mail in sink.messages]
            raise AssertionError(f"no mail {subject!r} to {address} in {timeout} s; {seen}")
        try:
            sink.wait_for(arrived + 1, timeout=left)
        except AssertionError:
            pass  # the deadline passed; the loop looks once more and reports


def link_in(mail) -> str:
    """The link of the mail's plain-text part, which its HTML part carries too."""
    match = LINK.search(text_of(mail))
    assert match, f"no link in:\n{text_of(mail)}"
    assert f'href="{match.group(0)}"' in html_of(mail)
    return match.group(0)


def register(page, email: str, name: str = "") -> None:
    fill_credentials(page, email, name=name)
    with page.expect_response(is_api_call("POST", "/api/v1/users")) as created:
        page.click("#register")
    assert created.value.status == 201
    expect(page.locator("#status")).to_contain_text(f"Registered {email}.")


def log_in(page, email: str, password: str = PASSWORD) -> None:
    fill_credentials(page, email, password)
    page.click("#login")
    expect(page.locator("#status")).to_have_text(f"Logged in as {email}.")
    expect(page.locator("#app-panel")).to_be_visible()


def profile(coffer, page) -> dict:
    """GET /users/me with the page's access token, as the API sees it."""
    status, _, me = coffer.get(
        "/api/v1/users/me", token=page.evaluate(STORED_TOKENS)["access_token"]
    )
    assert status == 200
    return me


def post_paths(page) -> list[str]:
    """The paths of the POST requests the page sends from now on."""
    posts = []
    page.on("request", lambda r: posts.append(urlsplit(r.url).path) if r.method == "POST" else 0)
    return posts


def test_spa_confirms_the_address_with_the_link_from_the_mail(
    page, browser_log, mailing_coffer, spa_origin, screenshots
):
    coffer, sink = mailing_coffer.coffer, mailing_coffer.sink
    status = page.locator("#status")
    email = new_email()
    open_spa(page, spa_origin, coffer.url)
    register(page, email, name="Ada")

    mail = mail_to(sink, email, VERIFY_SUBJECT)
    link = link_in(mail)
    assert link.startswith(f"{spa_origin}/verify-email#token=")
    assert re.fullmatch(r"\d{6}", code_in(mail))

    # Opening the link shows the page and spends nothing: mail scanners open links too.
    posts = post_paths(page)
    page.goto(link)
    expect(status).to_have_text("Confirm your address.")
    expect(page.locator("#verify-panel")).to_be_visible()
    expect(page.locator("#verify-code")).to_be_hidden()  # the link's token needs no code
    expect(page.locator("#auth-panel")).to_be_hidden()
    page.screenshot(path=screenshots / "spa-verify-email.png")
    assert posts == []

    with page.expect_response(is_api_call("POST", "/api/v1/email-verification")) as confirmed:
        page.click("#confirm-email")
    expect(status).to_have_text(f"Your address {email} is confirmed. You can log in with it now.")
    assert confirmed.value.status == 200
    assert confirmed.value.request.post_data_json == {"token": link.split("#token=")[1]}
    assert urlsplit(page.url)[2:] == ("/", "", "")  # the token is gone from the address bar
    expect(page.locator("#auth-panel")).to_be_visible()
    expect(page.locator("#email")).to_have_value(email)

    page.fill("#password", PASSWORD)
    page.click("#login")
    expect(status).to_have_text(f"Logged in as {email}.")
    expect(page.locator("#email-state")).to_have_text("confirmed")
    expect(page.locator("#unverified")).to_be_hidden()
    assert profile(coffer, page)["email_verified"] is True

    # The link works once: opened again, the page says that it is spent.
    page.goto(link)
    with page.expect_response(is_api_call("POST", "/api/v1/email-verification")) as again:
        page.click("#confirm-email")
    assert again.value.status == 400
    expect(status).to_have_text(INVALID)
    expect(status).to_have_attribute("data-kind", "error")
    assert_no_cors_trouble(browser_log)


def test_spa_confirms_the_address_with_the_code_from_the_mail(
    page, browser_log, mailing_coffer, spa_origin
):
    coffer, sink = mailing_coffer.coffer, mailing_coffer.sink
    status = page.locator("#status")
    email = new_email()
    open_spa(page, spa_origin, coffer.url)
    register(page, email)
    log_in(page, email)
    expect(page.locator("#email-state")).to_have_text("not confirmed")
    expect(page.locator("#unverified")).to_be_visible()
    code = code_in(mail_to(sink, email, VERIFY_SUBJECT))

    # The mail was read on another device: the user types its code in.
    page.click("#enter-code")
    expect(page.locator("#verify-panel")).to_be_visible()
    expect(page.locator("#app-panel")).to_be_hidden()
    expect(status).to_have_text(f"Enter the 6-digit code from the mail sent to {email}.")
    expect(page.locator("#verify-email")).to_have_value(email)

    page.fill("#verify-code", "000000" if code != "000000" else "111111")
    page.click("#confirm-email")
    expect(status).to_have_text(INVALID)
    assert profile(coffer, page)["email_verified"] is False

    page.fill("#verify-code", code)
    with page.expect_response(is_api_call("POST", "/api/v1/email-verification")) as confirmed:
        page.click("#confirm-email")
    expect(status).to_have_text(f"Your address {email} is confirmed.")
    assert confirmed.value.request.post_data_json == {"email": email, "code": code}
    expect(page.locator("#app-panel")).to_be_visible()
    expect(page.locator("#email-state")).to_have_text("confirmed")
    expect(page.locator("#unverified")).to_be_hidden()
    assert profile(coffer, page)["email_verified"] is True
    assert_no_cors_trouble(browser_log)


def test_spa_resets_a_forgotten_password_with_the_link_from_the_mail(
    page, browser_log, mailing_coffer, spa_origin, screenshots
):
    coffer, sink = mailing_coffer.coffer, mailing_coffer.sink
    status = page.locator("#status")
    email = new_email()
    open_spa(page, spa_origin, coffer.url)
    register(page, email)

    page.click("#forgot")
    expect(page.locator("#forgot-panel")).to_be_visible()
    page.fill("#forgot-email", email)
    with page.expect_response(is_api_call("POST", "/api/v1/password-resets")) as requested:
        page.click("#send-reset")
    assert requested.value.status == 202
    expect(status).to_have_text(requested.value.json()["detail"])
    expect(page.locator("#reset-panel")).to_be_visible()  # ready for the code, too
    expect(page.locator("#reset-email")).to_have_value(email)

    mail = mail_to(sink, email, RESET_SUBJECT)
    link = link_in(mail)
    assert link.startswith(f"{spa_origin}/reset-password#token=")

    # The mail program opens the link in a new tab, where nobody is logged in.
    tab = page.context.new_page()
    posts = post_paths(tab)
    tab.goto(link)
    tab_status = tab.locator("#status")
    expect(tab_status).to_have_text("Choose a new password.")
    expect(tab.locator("#reset-panel")).to_be_visible()
    expect(tab.locator("#reset-code")).to_be_hidden()
    assert posts == []
    tab.fill("#new-password", NEW_PASSWORD)
    tab.screenshot(path=screenshots / "spa-reset-password.png")
    with tab.expect_response(is_api_call("POST", "/api/v1/password-resets/confirm")) as reset:
        tab.click("#set-password")
    expect(tab_status).to_have_text(
        "Your password is changed and every session ended. Log in with the new password."
    )
    assert reset.value.status == 204
    expect(tab.locator("#auth-panel")).to_be_visible()
    assert urlsplit(tab.url)[2:] == ("/", "", "")

    # The old password no longer logs in; the new one does, and the address counts as proven.
    fill_credentials(tab, email, PASSWORD)
    with tab.expect_response(is_api_call("POST", "/api/v1/sessions")) as refused:
        tab.click("#login")
    assert refused.value.status == 401
    expect(tab_status).to_have_text(refused.value.json()["detail"])
    expect(tab.locator("#app-panel")).to_be_hidden()
    log_in(tab, email, NEW_PASSWORD)
    expect(tab.locator("#email-state")).to_have_text("confirmed")
    assert profile(coffer, tab)["email_verified"] is True

    # The reset spent the request: its code, typed in on the first tab, does nothing.
    page.fill("#reset-code", code_in(mail))
    page.fill("#new-password", PASSWORD)
    page.click("#set-password")
    expect(status).to_have_text(INVALID)
    tab.close()
    assert_no_cors_trouble(browser_log)


def test_spa_resets_a_forgotten_password_with_the_code_from_the_mail(
    page, browser_log, mailing_coffer, spa_origin
):
    coffer, sink = mailing_coffer.coffer, mailing_coffer.sink
    status = page.locator("#status")
    email = new_email()
    open_spa(page, spa_origin, coffer.url)
    register(page, email)
    page.click("#forgot")
    page.fill("#forgot-email", email)
    page.click("#send-reset")
    expect(page.locator("#reset-panel")).to_be_visible()
    code = code_in(mail_to(sink, email, RESET_SUBJECT))

    page.fill("#reset-code", code)
    page.fill("#new-password", NEW_PASSWORD)
    with page.expect_response(is_api_call("POST", "/api/v1/password-resets/confirm")) as reset:
        page.click("#set-password")
    expect(status).to_have_text(
        "Your password is changed and every session ended. Log in with the new password."
    )
    assert reset.value.request.post_data_json == {
        "email": email,
        "code": code,
        "new_password": NEW_PASSWORD,
    }
    log_in(page, email, NEW_PASSWORD)
    assert_no_cors_trouble(browser_log)


def test_spa_changes_the_address_once_the_link_sent_to_the_new_one_is_opened(
    page, browser_log, mailing_coffer, spa_origin, screenshots
):
    coffer, sink = mailing_coffer.coffer, mailing_coffer.sink
    status = page.locator("#status")
    old, new = new_email(), new_email()
    open_spa(page, spa_origin, coffer.url)
    register(page, old, name="Ada")
    log_in(page, old)

    page.click("#change-email-box summary")
    page.fill("#change-email", new)
    page.fill("#change-password", PASSWORD)
    with page.expect_response(is_api_call("PATCH", "/api/v1/users/me")) as started:
        page.click("#send-change")
    assert started.value.status == 202
    expect(status).to_have_text(
        f"A mail with a link and a code went to {new}; your address stays {old} until you "
        "confirm it."
    )
    expect(page.locator("#user-email")).to_have_text(f"<{old}>")
    expect(page.locator("#pending")).to_be_visible()
    expect(page.locator("#pending-email")).to_have_text(new)
    me = profile(coffer, page)
    assert (me["email"], me["pending_email"]) == (old, new)

    notice = mail_to(sink, old, NOTICE_SUBJECT)
    assert "#token=" not in text_of(notice)
    link = link_in(mail_to(sink, new, CHANGE_SUBJECT))
    assert link.startswith(f"{spa_origin}/verify-email#token=")

    # The link opens in this tab, where the change was asked for: this session stays.
    page.goto(link)
    expect(page.locator("#verify-panel")).to_be_visible()
    assert profile(coffer, page)["email"] == old  # opening the link changed nothing
    page.click("#confirm-email")
    expect(status).to_have_text(f"Your address {new} is confirmed.")
    expect(page.locator("#app-panel")).to_be_visible()
    expect(page.locator("#user-email")).to_have_text(f"<{new}>")
    expect(page.locator("#email-state")).to_have_text("confirmed")
    expect(page.locator("#pending")).to_be_hidden()
    page.screenshot(path=screenshots / "spa-email-changed.png")
    me = profile(coffer, page)
    assert (me["email"], me["pending_email"], me["email_verified"]) == (new, None, True)

    # Log out: the new address logs in, the old one no longer does.
    page.click("#logout")
    expect(status).to_have_text("Logged out.")
    fill_credentials(page, old)
    with page.expect_response(is_api_call("POST", "/api/v1/sessions")) as refused:
        page.click("#login")
    assert refused.value.status == 401
    log_in(page, new)
    assert_no_cors_trouble(browser_log)


def test_spa_asks_for_the_code_when_log_in_needs_a_confirmed_address(
    page, browser_log, mailing_coffer_requiring_verified_email, spa_origin
):
    coffer = mailing_coffer_requiring_verified_email.coffer
    sink = mailing_coffer_requiring_verified_email.sink
    status = page.locator("#status")
    email = new_email()
    open_spa(page, spa_origin, coffer.url)
    register(page, email)

    # The right password, but no confirmed address yet: the page asks for the mail's code.
    fill_credentials(page, email)
    with page.expect_response(is_api_call("POST", "/api/v1/sessions")) as refused:
        page.click("#login")
    assert refused.value.status == 403
    assert refused.value.json()["type"] == "urn:coffer:problem:email-not-verified"
    expect(status).to_have_text(
        f"{refused.value.json()['detail']} Open the link in the mail we sent, or enter its "
        "code here."
    )
    expect(page.locator("#verify-panel")).to_be_visible()
    expect(page.locator("#verify-email")).to_have_value(email)
    assert page.evaluate(STORED_TOKENS) is None

    page.fill("#verify-code", code_in(mail_to(sink, email, VERIFY_SUBJECT)))
    page.click("#confirm-email")
    expect(status).to_have_text(f"Your address {email} is confirmed. You can log in with it now.")
    expect(page.locator("#email")).to_have_value(email)
    log_in(page, email)
    expect(page.locator("#email-state")).to_have_text("confirmed")
    assert_no_cors_trouble(browser_log)


def start_change(page, old: str, new: str) -> None:
    """Ask for a change of address on the logged-in page; the mails go out."""
    page.click("#change-email-box summary")
    page.fill("#change-email", new)
    page.fill("#change-password", PASSWORD)
    page.click("#send-change")
    expect(page.locator("#pending-email")).to_have_text(new)
    expect(page.locator("#user-email")).to_have_text(f"<{old}>")


def test_spa_changes_the_address_with_the_code_sent_to_the_new_one(
    page, browser_log, mailing_coffer, spa_origin
):
    coffer, sink = mailing_coffer.coffer, mailing_coffer.sink
    status = page.locator("#status")
    old, new = new_email(), new_email()
    open_spa(page, spa_origin, coffer.url)
    register(page, old)
    log_in(page, old)
    start_change(page, old, new)
    code = code_in(mail_to(sink, new, CHANGE_SUBJECT))

    page.click("#enter-change-code")
    expect(status).to_have_text(f"Enter the 6-digit code from the mail sent to {new}.")
    expect(page.locator("#verify-email")).to_have_value(new)
    page.fill("#verify-code", code)
    page.click("#confirm-email")
    expect(status).to_have_text(f"Your address {new} is confirmed.")
    expect(page.locator("#user-email")).to_have_text(f"<{new}>")
    expect(page.locator("#pending")).to_be_hidden()
    assert profile(coffer, page)["email"] == new
    assert_no_cors_trouble(browser_log)


def test_spa_confirming_a_change_in_another_session_ends_that_session_only(
    page, browser_log, mailing_coffer, spa_origin
):
    coffer, sink = mailing_coffer.coffer, mailing_coffer.sink
    old, new = new_email(), new_email()
    open_spa(page, spa_origin, coffer.url)
    register(page, old)
    log_in(page, old)
    start_change(page, old, new)
    link = link_in(mail_to(sink, new, CHANGE_SUBJECT))

    # The link opens in another tab, logged in with a session of its own: a confirmed change
    # ends every session but the one that asked for it, so that tab is logged out.
    tab = page.context.new_page()
    tab.goto(spa_origin)
    log_in(tab, old)
    tab.goto(link)
    tab.click("#confirm-email")
    expect(tab.locator("#status")).to_contain_text(
        f"Your address {new} is confirmed. Your session has ended, please log in again."
    )
    expect(tab.locator("#auth-panel")).to_be_visible()
    expect(tab.locator("#email")).to_have_value(new)
    assert tab.evaluate(STORED_TOKENS) is None
    log_in(tab, new)
    tab.close()

    # The tab that asked keeps its session and shows the new address once it reloads.
    page.reload()
    expect(page.locator("#status")).to_have_text(f"Welcome back, {new}.")
    expect(page.locator("#user-email")).to_have_text(f"<{new}>")
    expect(page.locator("#email-state")).to_have_text("confirmed")
    assert_no_cors_trouble(browser_log)
