"""examples/spa in Chromium, on another origin than the API: every call is a CORS request."""

import re
from urllib.parse import urlsplit

import pytest
from spa_page import (
    PASSWORD,
    STORED_TOKENS,
    add_note,
    assert_no_cors_trouble,
    expect,
    fill_credentials,
    is_api_call,
    new_email,
    open_spa,
)

pytestmark = pytest.mark.browser

NOTES = ["Buy milk", "Write the report", "Call the plumber"]
FORGE_ACCESS_TOKEN = """() => {
  const tokens = JSON.parse(sessionStorage.getItem("coffer.tokens"));
  tokens.access_token = tokens.access_token.split(".").slice(0, 2).join(".") + ".forged";
  sessionStorage.setItem("coffer.tokens", JSON.stringify(tokens));
}"""
FETCH_ME = """async ({api, token}) => {
  const headers = {Authorization: "Bearer " + token};
  const response = await fetch(api + "/api/v1/users/me", {headers});
  return {status: response.status, body: await response.json()};
}"""
REGISTERED = (
    "Registered {}. You can log in now; a mail with a link and a code to confirm the address "
    "is on its way."
)


def test_spa_registers_logs_in_edits_notes_refreshes_and_logs_out(
    page, browser_log, coffer, spa_origin, screenshots
):
    status = page.locator("#status")
    titles = page.locator("#notes li .title")
    email = new_email()
    requests = []
    page.on("request", lambda request: requests.append((request.method, request.url)))

    open_spa(page, spa_origin, coffer.url)
    expect(status).to_have_text("Log in or register.")
    expect(page.locator("#app-panel")).to_be_hidden()

    fill_credentials(page, email, name="Ada Lovelace")
    page.click("#register")
    expect(status).to_have_text(REGISTERED.format(email))
    page.click("#login")
    expect(status).to_have_text(f"Logged in as {email}.")
    expect(page.locator("#user-name")).to_have_text("Ada Lovelace")
    expect(page.locator("#user-email")).to_have_text(f"<{email}>")
    expect(page.locator("#empty")).to_be_visible()

    created = {title: add_note(page, title) for title in NOTES}
    expect(titles).to_have_text(NOTES[::-1])
    page.click("#reload")
    expect(status).to_have_text("Loaded 3 notes.")
    expect(titles).to_have_text(NOTES[::-1])

    # Mark one done: a PATCH with the ETag that the create response exposed through CORS.
    milk = page.locator("#notes li", has_text="Buy milk")
    with page.expect_response(lambda r: r.request.method == "PATCH") as patched:
        milk.locator(".done").click()
    expect(status).to_have_text('Marked "Buy milk" as done.')
    expect(milk).to_have_class(re.compile(r"\bdone\b"))
    assert patched.value.status == 200
    assert patched.value.request.headers["if-match"] == created["Buy milk"].headers["etag"]
    milk_url = created["Buy milk"].headers["location"]
    assert ("GET", coffer.url + milk_url) not in requests  # the page had the ETag already

    report = page.locator("#notes li", has_text="Write the report")
    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        report.locator(".delete").click()
    expect(status).to_have_text('Deleted "Write the report".')
    assert deleted.value.status == 204
    expect(titles).to_have_text(["Call the plumber", "Buy milk"])

    page.click("#reload")  # what the server has now
    expect(status).to_have_text("Loaded 2 notes.")
    expect(titles).to_have_text(["Call the plumber", "Buy milk"])
    plumber = page.locator("#notes li", has_text="Call the plumber")
    expect(milk.locator(".done")).to_be_checked()
    expect(plumber.locator(".done")).not_to_be_checked()
    page.screenshot(path=screenshots / "spa-notes.png")

    # Refresh by hand: both tokens rotate and the new access token works.
    before = page.evaluate(STORED_TOKENS)
    page.click("#refresh")
    expect(status).to_have_text("Token refreshed; the new access token expires in 900 s.")
    after = page.evaluate(STORED_TOKENS)
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]
    add_note(page, "Water the plants")
    expect(titles).to_have_text(["Water the plants", "Call the plumber", "Buy milk"])

    # A rejected access token: the page refreshes once by itself and carries on.
    page.evaluate(FORGE_ACCESS_TOKEN)
    calls = []
    page.on("response", lambda r: calls.append((r.request.method, urlsplit(r.url).path, r.status)))
    page.reload()
    expect(status).to_have_text(f"Welcome back, {email}.")
    expect(titles).to_have_text(["Water the plants", "Call the plumber", "Buy milk"])
    api_calls = [call for call in calls if call[1].startswith("/api/")]
    assert api_calls == [
        ("GET", "/api/v1/users/me", 401),
        ("POST", "/api/v1/sessions/refresh", 200),
        ("GET", "/api/v1/users/me", 200),
        ("POST", "/api/v1/stream-tickets", 201),  # the live list: its stream, then the list
        ("GET", "/api/v1/data/notes/changes", 200),
        ("GET", "/api/v1/data/notes", 200),
    ]

    # Log out: the page closes its change stream, forgets the tokens, and the server refuses
    # the old one.
    old = page.evaluate(STORED_TOKENS)
    expect(page.locator("#live")).to_have_text("Live")
    with (
        page.expect_event("requestfailed", lambda r: "/data/notes/changes?" in r.url) as closed,
        page.expect_response(is_api_call("DELETE", "/api/v1/sessions/current")) as logout,
    ):
        page.click("#logout")
    assert closed.value.failure == "net::ERR_ABORTED"
    expect(page.locator("#live")).to_be_hidden()
    expect(status).to_have_text("Logged out.")
    assert logout.value.status == 204
    expect(page.locator("#auth-panel")).to_be_visible()
    expect(page.locator("#app-panel")).to_be_hidden()
    assert page.evaluate(STORED_TOKENS) is None
    page.screenshot(path=screenshots / "spa-logged-out.png")

    refused = page.evaluate(FETCH_ME, {"api": coffer.url, "token": old["access_token"]})
    assert refused["status"] == 401
    assert refused["body"]["status"] == 401  # the problem is readable cross-origin too
    code, headers, _ = coffer.get("/api/v1/users/me", token=old["access_token"])
    assert code == 401
    assert headers["www-authenticate"].startswith("Bearer")

    assert_no_cors_trouble(browser_log)
    preflighted = {
        entry["path"]
        for entry in coffer.access_log()
        if entry["method"] == "OPTIONS" and entry["status"] == 200
    }
    assert {
        "/api/v1/users",
        "/api/v1/sessions",
        "/api/v1/users/me",
        "/api/v1/data/notes",
        urlsplit(milk_url).path,
        "/api/v1/sessions/refresh",
        "/api/v1/sessions/current",
    } <= preflighted


def test_spa_shows_problem_details(page, browser_log, coffer, spa_origin):
    status = page.locator("#status")
    email = new_email()
    open_spa(page, spa_origin, coffer.url)

    # 422: the password may not be the email; the field's message is shown with the detail.
    fill_credentials(page, email, password=email)
    with page.expect_response(is_api_call("POST", "/api/v1/users")) as rejected:
        page.click("#register")
    assert rejected.value.status == 422
    problem = rejected.value.json()
    expect(status).to_contain_text(problem["detail"])
    expect(status).to_contain_text("password: ")
    expect(status).to_have_attribute("data-kind", "error")

    fill_credentials(page, email)
    page.click("#register")
    expect(status).to_have_text(REGISTERED.format(email))

    # 409: registered already.
    with page.expect_response(is_api_call("POST", "/api/v1/users")) as duplicate:
        page.click("#register")
    assert duplicate.value.status == 409
    expect(status).to_have_text(duplicate.value.json()["detail"])

    # 401: a wrong password, which does not log in.
    fill_credentials(page, email, password=PASSWORD + " but wrong")
    with page.expect_response(is_api_call("POST", "/api/v1/sessions")) as denied:
        page.click("#login")
    assert denied.value.status == 401
    expect(status).to_have_text(denied.value.json()["detail"])
    expect(status).to_have_attribute("data-kind", "error")
    expect(page.locator("#app-panel")).to_be_hidden()

    assert_no_cors_trouble(browser_log)


def test_spa_cannot_log_in_when_the_api_allows_another_origin(
    page, browser_log, coffer_for_other_origin, spa_origin, screenshots
):
    api = coffer_for_other_origin
    open_spa(page, spa_origin, api.url)
    fill_credentials(page, new_email())

    with (
        page.expect_console_message(lambda m: "blocked by CORS policy" in m.text) as blocked,
        page.expect_event("requestfailed") as failed,
    ):
        page.click("#login")
    expect(page.locator("#status")).to_have_text(
        f"Could not reach the API at {api.url} (network error or blocked by CORS)."
    )
    expect(page.locator("#auth-panel")).to_be_visible()
    page.screenshot(path=screenshots / "spa-cors-blocked.png")

    assert f"from origin '{spa_origin}'" in blocked.value.text
    assert failed.value.url == f"{api.url}/api/v1/sessions"
    # The API is up and answered the preflight, but the browser never sent the log-in itself.
    assert api.answers()
    seen = [(entry["method"], entry["path"]) for entry in api.access_log()]
    assert ("OPTIONS", "/api/v1/sessions") in seen
    assert ("POST", "/api/v1/sessions") not in seen
