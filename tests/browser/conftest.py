"""Browser tests: Chromium, driven by Playwright, against Coffer served by real gunicorn.

The example app (examples/spa) is served by its own serve.py (static files, and index.html for
the mail links' paths) on one port and the API by gunicorn on another, so every call the page
makes is cross-origin and goes through CORS preflights, as it would in production. The
`mailing_coffer` fixture also sends Coffer's mail to a real SMTP server (tests/smtp_sink.py),
with links that open the example app. Each test process (each xdist worker) starts its own
servers and its own Chromium, so the tests also run under `-n auto`:

    .venv/bin/pytest -p no:cacheprovider -m browser tests/browser

They need /usr/bin/chromium (Debian's `chromium` package, or CHROMIUM_PATH; `playwright
install` is not needed) and the `playwright` package. Without them they are skipped, except in
CI (`CI` set), where they fail. Screenshots go to ${ARTIFACTS:-artifacts}/screenshots/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from gunicorn_run import ROOT, coffer_env, free_port, migrate, start_gunicorn, stop_gunicorn
from helpers import bearer
from smtp_sink import SmtpSink

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError as error:  # the tests below skip (or fail in CI) with this reason
    sync_playwright = None
    PLAYWRIGHT_IMPORT_ERROR = error

SPA_DIR = ROOT / "examples" / "spa"
# Debian's package; CHROMIUM_PATH points elsewhere (another distribution, a laptop).
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A host name that is neither localhost nor 127.0.0.1, for pages that treat those specially.
    "--host-resolver-rules=MAP coffer.test 127.0.0.1",
]
# An origin that nothing is served from: an API that allows only this one refuses the SPA.
OTHER_ORIGIN = "http://127.0.0.1:9"
START_TIMEOUT = 30
# How long an action or an `expect` waits for the page (Playwright's `expect` alone would give
# up after 5 s, which a busy 2-core machine rendering Swagger UI may need and more).
PAGE_TIMEOUT_MS = 15_000
if sync_playwright is not None:
    expect.set_options(timeout=PAGE_TIMEOUT_MS)


def _missing_browser() -> str | None:
    if sync_playwright is None:
        return f"the playwright package is not importable ({PLAYWRIGHT_IMPORT_ERROR})"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember whether a test's body failed, so that its page can be photographed."""
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report


@pytest.fixture(scope="session", autouse=True)
def browser_available():
    """Skip when there is no browser to drive, but never in CI: there that is a failure."""
    reason = _missing_browser()
    if reason and os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    if reason:
        pytest.skip(f"browser tests need Chromium and Playwright: {reason}")


# --- the example app -------------------------------------------------------------------------


def _spa_handler() -> type[SimpleHTTPRequestHandler]:
    """SinglePageApp of examples/spa/serve.py: the example's own server, which answers the
    mail links' paths (/reset-password, /verify-email) with index.html."""
    spec = importlib.util.spec_from_file_location("spa_serve", SPA_DIR / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SinglePageApp


@pytest.fixture(scope="session")
def spa_origin():
    """examples/spa, served from its own origin (another port than the API's)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_spa_handler(), directory=SPA_DIR))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


# --- the API under gunicorn -----------------------------------------------------------------


@dataclass
class Coffer:
    """One gunicorn serving Coffer; `stop()` ends it (SIGTERM, then SIGKILL to its group)."""

    port: int
    process: subprocess.Popen
    log_path: Path
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def access_log(self) -> list[dict]:
        """gunicorn's access log: one JSON object per request."""
        entries = []
        text = self.log()
        # A worker may be writing the last line right now: read complete lines only.
        for line in text[: text.rfind("\n") + 1].splitlines():
            if line.startswith("{") and '"method"' in line:
                entries.append(json.loads(line))
        return entries

    def get(self, path: str, token: str | None = None) -> tuple[int, dict, dict | None]:
        return self.request("GET", path, token=token)

    def post(
        self, path: str, body: dict, token: str | None = None
    ) -> tuple[int, dict, dict | None]:
        return self.request("POST", path, body, token)

    def request(
        self, method: str, path: str, body: dict | None = None, token: str | None = None
    ) -> tuple[int, dict, dict | None]:
        """A direct request (no browser), with a JSON body if one is given: status,
        lower-cased headers and the JSON body."""
        headers = bearer(token) if token else {}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, head, answer = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                status, head, answer = error.code, error.headers, error.read()
        headers = {k.lower(): v for k, v in head.items()}
        return status, headers, json.loads(answer) if answer else None

    def answers(self) -> bool:
        try:
            return self.get("/healthz")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        stop_gunicorn(self.process)

    def restart(self) -> None:
        """Stop gunicorn (SIGTERM: its change streams end at once), then start it again on the
        same port and database, as a deployment does; return once it answers."""
        self.stop()
        with open(self.log_path, "ab") as log:
            self.process = start_gunicorn(self.env, log)
        _wait_until_it_answers(self)


def _wait_until_it_answers(coffer: Coffer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not coffer.answers():
        if coffer.process.poll() is not None or time.monotonic() > deadline:
            coffer.stop()
            pytest.fail(f"gunicorn did not start on port {coffer.port}:\n{coffer.log()}")
        time.sleep(0.1)


def start_coffer(work_dir: Path, *, cors_origins: str, **settings: str) -> Coffer:
    """Migrate a fresh SQLite database, start gunicorn on a free port, wait for /healthz.
    `settings` are more of its environment (COFFER_MAIL_URL=…)."""
    port = free_port()
    run_dir = Path(tempfile.mkdtemp(prefix=f"gunicorn-{port}-", dir=work_dir))
    run_dir.chmod(0o700)
    env = coffer_env(
        DATABASE_URL=f"sqlite:///{run_dir / 'coffer.db'}",
        COFFER_BIND=f"127.0.0.1:{port}",
        COFFER_CORS_ORIGINS=cors_origins,
        WEB_CONCURRENCY="2",
        XDG_RUNTIME_DIR=str(run_dir),
        **settings,
    )
    migrate(env)
    log_path = run_dir / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = start_gunicorn(env, log)
    coffer = Coffer(port=port, process=process, log_path=log_path, env=env)
    _wait_until_it_answers(coffer)
    return coffer


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="session")
def coffer(work_dir, spa_origin):
    """Coffer that allows the SPA's origin, and only that one."""
    server = start_coffer(work_dir, cors_origins=spa_origin)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def coffer_for_many_log_ins(work_dir, spa_origin):
    """Coffer that allows the SPA's origin, and more log-ins and codes a minute from
    127.0.0.1 (COFFER_RATE_LIMIT_AUTH) than a module of tests that log in again and again
    needs."""
    server = start_coffer(work_dir, cors_origins=spa_origin, COFFER_RATE_LIMIT_AUTH="100/minute")
    yield server
    server.stop()


@dataclass
class MailingCoffer:
    """Coffer whose mail goes to `sink` (a real SMTP server) with links to the example app."""

    coffer: Coffer
    sink: SmtpSink


@contextmanager
def _mailing_coffer(work_dir: Path, spa_origin: str, **settings: str):
    sink = SmtpSink().start()
    try:
        server = start_coffer(
            work_dir,
            cors_origins=spa_origin,
            COFFER_APP_URL=spa_origin,
            COFFER_MAIL_URL=sink.url,
            COFFER_MAIL_FROM="Coffer notes <no-reply@coffer.test>",
            # Every test logs in and confirms from 127.0.0.1, more than 10 times a minute.
            COFFER_RATE_LIMIT_AUTH="100/minute",
            **settings,
        )
        try:
            yield MailingCoffer(server, sink)
        finally:
            server.stop()
    finally:
        sink.stop()


@pytest.fixture(scope="module")
def mailing_coffer(work_dir, spa_origin):
    """Coffer that allows the SPA's origin, mails through its own sender threads (as in
    production) to a real SMTP server, and builds the mails' links on the SPA's origin
    (COFFER_APP_URL). Module-scoped: the sink runs only while the tests that read it do."""
    with _mailing_coffer(work_dir, spa_origin) as server:
        yield server


@pytest.fixture
def mailing_coffer_requiring_verified_email(work_dir, spa_origin):
    """mailing_coffer with COFFER_REQUIRE_VERIFIED_EMAIL=true."""
    with _mailing_coffer(work_dir, spa_origin, COFFER_REQUIRE_VERIFIED_EMAIL="true") as server:
        yield server


@pytest.fixture
def coffer_for_other_origin(work_dir):
    """Coffer that allows some other origin than the SPA's."""
    server = start_coffer(work_dir, cors_origins=OTHER_ORIGIN)
    yield server
    server.stop()


# --- Chromium --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@dataclass
class BrowserLog:
    """What the page reported: console messages, failed requests, uncaught errors."""

    console: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def matching(self, *needles: str) -> list[str]:
        return [line for line in self.console if any(n in line for n in needles)]

    @property
    def cors_errors(self) -> list[str]:
        return self.matching("CORS", "Access-Control-")

    @property
    def csp_violations(self) -> list[str]:
        return self.matching("Content Security Policy", "Content-Security-Policy")


@pytest.fixture
def browser_log():
    return BrowserLog()


@pytest.fixture(scope="session")
def screenshots():
    """The folder that keeps screenshots (CI uploads ${ARTIFACTS:-artifacts})."""
    folder = Path(os.environ.get("ARTIFACTS") or ROOT / "artifacts") / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open_tab(browser, log: BrowserLog):
    """A page in a fresh context (no storage shared with any other) that reports to `log`."""
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    tab.on("console", lambda message: log.console.append(f"{message.type}: {message.text}"))
    tab.on("pageerror", lambda error: log.page_errors.append(str(error)))
    tab.on(
        "requestfailed",
        lambda request: log.failed_requests.append(
            f"{request.method} {request.url}: {request.failure}"
        ),
    )
    return tab


def _photograph_if_failed(request, screenshots, tab, name: str = "") -> None:
    if getattr(request.node, "call_failed", False):
        test = re.sub(r"[^\w.-]+", "-", request.node.name).strip("-")
        tab.screenshot(path=screenshots / f"failed-{test}{name}.png")


@pytest.fixture
def page(request, browser, browser_log, screenshots):
    """A page in a fresh context (no storage shared between tests) that reports to browser_log.

    When the test fails, the page's last state is saved as screenshots/failed-<test>.png.
    """
    tab = _open_tab(browser, browser_log)
    yield tab
    _photograph_if_failed(request, screenshots, tab)
    tab.context.close()


@pytest.fixture
def other_pages(request, browser, screenshots):
    """More pages for a test with several users or devices: `other_pages()` opens one in a
    fresh context of its own (another browser, as far as the page can tell) and returns it with
    its BrowserLog. Photographed like `page` (failed-<test>-<n>.png) and closed at the end."""
    opened: list = []

    def open_page():
        log = BrowserLog()
        tab = _open_tab(browser, log)
        opened.append(tab)
        return tab, log

    yield open_page
    for number, tab in enumerate(opened, start=2):
        _photograph_if_failed(request, screenshots, tab, f"-{number}")
        tab.context.close()
