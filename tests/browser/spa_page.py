"""What the browser tests do on examples/spa's page: open it on an API, fill its forms, tell
its API calls apart, and read its stored tokens."""

import secrets
from urllib.parse import urlencode, urlsplit

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None  # conftest.py skips the browser tests (or fails them in CI)

PASSWORD = "a long and private passphrase"
STORED_TOKENS = "JSON.parse(sessionStorage.getItem('coffer.tokens'))"


def open_spa(page, spa_origin: str, api_url: str) -> None:
    page.goto(f"{spa_origin}/?{urlencode({'api': api_url})}")
    expect(page.locator("#api-base")).to_have_text(api_url)


def fill_credentials(page, email: str, password: str = PASSWORD, name: str = "") -> None:
    page.fill("#name", name)
    page.fill("#email", email)
    page.fill("#password", password)


def new_email() -> str:
    return f"ada-{secrets.token_hex(4)}@example.com"


def is_api_call(method: str, path: str):
    return lambda response: (
        response.request.method == method and urlsplit(response.url).path == path
    )


def closed_streams(browser_log) -> list[str]:
    """The change streams that the page closed itself (log-out, a reload, another scope):
    Chromium reports an EventSource closed mid-stream as an aborted request."""
    return [
        line
        for line in browser_log.failed_requests
        if "/api/v1/data/notes/changes?" in line and line.endswith(": net::ERR_ABORTED")
    ]


def assert_no_cors_trouble(browser_log) -> None:
    assert browser_log.cors_errors == []
    closed = closed_streams(browser_log)
    assert [line for line in browser_log.failed_requests if line not in closed] == []
    assert browser_log.page_errors == []


def note_row(page, title: str):
    """A note of the list, by its title."""
    return page.locator("#notes > li", has_text=title)


def log_in(page, spa_origin: str, api_url: str, email: str) -> None:
    """Log in on a freshly opened page, and wait until its list is live."""
    open_spa(page, spa_origin, api_url)
    fill_credentials(page, email)
    page.click("#login")
    expect(page.locator("#status")).to_have_text(f"Logged in as {email}.")
    expect(page.locator("#live")).to_have_text("Live")


def sign_up(page, spa_origin: str, api_url: str, name: str = "") -> str:
    """Register a new account on the page and log in with it; its address."""
    email = new_email()
    open_spa(page, spa_origin, api_url)
    fill_credentials(page, email, name=name)
    page.click("#register")
    expect(page.locator("#status")).to_contain_text(f"Registered {email}.")
    page.click("#login")
    expect(page.locator("#status")).to_have_text(f"Logged in as {email}.")
    expect(page.locator("#live")).to_have_text("Live")
    return email


def add_note(page, title: str):
    """Add a note through the form; the API's 201 response."""
    page.fill("#new-title", title)
    with page.expect_response(is_api_call("POST", "/api/v1/data/notes")) as created:
        page.click("#add")
    expect(page.locator("#status")).to_have_text(f'Added "{title}".')
    return created.value
