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


def assert_no_cors_trouble(browser_log) -> None:
    assert browser_log.cors_errors == []
    assert browser_log.failed_requests == []
    assert browser_log.page_errors == []
