"""examples/spa's live list in Chromium: the page follows the change feed (an EventSource opened
with a stream ticket) and shows other browsers' changes without a reload; when its stream drops
(the API restarts), it reopens it with a fresh ticket after the last event it saw,
or reloads the list when the API cannot resume from there."""

from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import start_coffer
from spa_page import (
    PASSWORD,
    add_note,
    assert_no_cors_trouble,
    expect,
    log_in,
    note_row,
    sign_up,
)

pytestmark = pytest.mark.browser

RELOADED = "The list was reloaded: the live updates could not resume where they stopped."
# A fresh ticket, a new stream and the list's reload after a restart: three round trips to a
# gunicorn that has just started, which a busy CI machine has stretched past the page timeout.
RESUME_TIMEOUT_MS = 45_000


@pytest.fixture
def restartable_coffer(work_dir, spa_origin):
    """A Coffer of the test's own, which the test may restart."""
    server = start_coffer(work_dir, cors_origins=spa_origin, COFFER_RATE_LIMIT_AUTH="100/minute")
    yield server
    server.stop()


@pytest.fixture
def forgetful_coffer(work_dir, spa_origin):
    """A Coffer that keeps no change log to resume from (COFFER_CHANGES_RETENTION=0): every
    resumed stream starts with `event: reset`."""
    server = start_coffer(
        work_dir,
        cors_origins=spa_origin,
        COFFER_RATE_LIMIT_AUTH="100/minute",
        COFFER_CHANGES_RETENTION="0",
    )
    yield server
    server.stop()


def list_loads(page) -> list[str]:
    """The list requests (GET /api/v1/data/notes) that the page makes from now on."""
    loads = []
    page.on(
        "request",
        lambda r: loads.append(r.url) if is_list_load(r.method, r.url) else None,
    )
    return loads


def is_list_load(method: str, url: str) -> bool:
    return method == "GET" and urlsplit(url).path == "/api/v1/data/notes"


def list_load(response) -> bool:
    return is_list_load(response.request.method, response.url)


def is_stream(request) -> bool:
    return urlsplit(request.url).path == "/api/v1/data/notes/changes"


def api_token(coffer, email: str) -> str:
    """A session of the user on another device (curl, say)."""
    status, _, body = coffer.post("/api/v1/sessions", {"email": email, "password": PASSWORD})
    assert status == 201, body
    return body["access_token"]


def test_spa_lists_follow_other_browsers_changes_without_a_reload(
    page, browser_log, other_pages, coffer_for_many_log_ins, spa_origin
):
    api = coffer_for_many_log_ins.url
    (bob, bob_log), (bobs_phone, phone_log) = other_pages(), other_pages()
    ada = page
    sign_up(ada, spa_origin, api, name="Ada")
    bob_email = sign_up(bob, spa_origin, api, name="Bob")
    bob_id = bob.locator("#user-id").inner_text()
    add_note(ada, "Shared plan")
    panel = note_row(ada, "Shared plan").locator(".share")
    panel.locator("summary").click()
    panel.locator(".grantee").fill(bob_id)
    panel.locator(".grant-access").select_option("write")
    panel.locator(".grant").click()
    shared_now = f'user:{bob_id} may read and edit "Shared plan" now.'
    expect(ada.locator("#status")).to_have_text(shared_now)
    bob.click("#reload")  # a grant is no change of the note: Bob's list learns of it on a load
    expect(bob.locator("#status")).to_have_text("Loaded 1 note.")
    log_in(bobs_phone, spa_origin, api, bob_email)

    bob_titles = bob.locator("#notes > li .title")
    loads = list_loads(bob)
    stream = bob.locator("#live")
    expect(stream).to_have_text("Live")

    # Ada ticks her note done: Bob's list shows it.
    shared = note_row(bob, "Shared plan")
    expect(shared.locator(".access")).to_have_text("shared with you: may edit")
    note_row(ada, "Shared plan").locator(".done").click()
    expect(ada.locator("#status")).to_have_text('Marked "Shared plan" as done.')
    expect(shared.locator(".done")).to_be_checked()

    # Bob's phone adds a note, at the top of his list; Bob ticks it, his phone shows it done.
    add_note(bobs_phone, "Buy sun cream")
    expect(bob_titles).to_have_text(["Buy sun cream", "Shared plan"])
    expect(note_row(bob, "Buy sun cream").locator(".access")).to_be_hidden()  # his own
    note_row(bob, "Buy sun cream").locator(".done").click()
    expect(bob.locator("#status")).to_have_text('Marked "Buy sun cream" as done.')
    expect(note_row(bobs_phone, "Buy sun cream").locator(".done")).to_be_checked()
    # … and the phone, on a version it learnt from the stream, unticks it (a fresh ETag).
    with bobs_phone.expect_response(lambda r: r.request.method == "PATCH") as unticked:
        note_row(bobs_phone, "Buy sun cream").locator(".done").click()
    assert unticked.value.status == 200
    expect(note_row(bob, "Buy sun cream").locator(".done")).not_to_be_checked()

    # The phone deletes it: it leaves Bob's list.
    note_row(bobs_phone, "Buy sun cream").locator(".delete").click()
    expect(bobs_phone.locator("#status")).to_have_text('Deleted "Buy sun cream".')
    expect(bob_titles).to_have_text(["Shared plan"])
    expect(bobs_phone.locator("#notes > li .title")).to_have_text(["Shared plan"])

    assert loads == [], "Bob's page showed every change without loading the list again"
    for log in (browser_log, bob_log, phone_log):
        assert_no_cors_trouble(log)


def test_spa_drops_a_shared_note_that_its_owner_deletes(
    page, other_pages, coffer_for_many_log_ins, spa_origin
):
    api = coffer_for_many_log_ins.url
    ada, (bob, _) = page, other_pages()
    sign_up(ada, spa_origin, api)
    sign_up(bob, spa_origin, api)
    add_note(ada, "Shared plan")
    panel = note_row(ada, "Shared plan").locator(".share")
    panel.locator("summary").click()
    panel.locator(".grantee").fill(bob.locator("#user-id").inner_text())
    panel.locator(".grant").click()
    expect(panel.locator(".grants li")).to_have_count(1)
    bob.click("#reload")
    expect(bob.locator("#notes > li .title")).to_have_text(["Shared plan"])

    note_row(ada, "Shared plan").locator(".delete").click()
    expect(ada.locator("#status")).to_have_text('Deleted "Shared plan".')
    expect(bob.locator("#notes > li")).to_have_count(0, timeout=5000)
    expect(bob.locator("#empty")).to_be_visible()


def is_ticket_request(request) -> bool:
    return request.method == "POST" and urlsplit(request.url).path == "/api/v1/stream-tickets"


def stream_urls(page) -> list[str]:
    """The change streams that the page opens from now on."""
    urls = []
    page.on("request", lambda r: urls.append(r.url) if is_stream(r) else None)
    return urls


class TicketGate:
    """The page's stream-ticket requests: let through, or held while the gate is shut, so that
    the page stays offline until the test lets it go.

    Its route is set before the page makes any request and stays for the whole test. Adding
    or removing a page's only route turns Playwright's interception of all its requests on or
    off, and a request that starts meanwhile can be lost to Playwright: in Chromium it pairs
    each request's `Network.requestWillBeSent` with its `Fetch.requestPaused`, and one sent as
    interception ends is never paused, so its `request` and `response` events never come,
    although the server answers. The page's list reload starts just as its stream opens, which
    is when a route removed after the release would turn interception off.
    """

    def __init__(self, page) -> None:
        self.page = page
        self.shut = False
        self.held: list = []
        page.route("**/api/v1/stream-tickets", self._ticket)

    def _ticket(self, route) -> None:
        if self.shut:
            self.held.append(route)
        else:
            route.continue_()

    def drop_and_hold(self, coffer) -> None:
        """Restart the API (gunicorn stops, which ends the page's stream, and starts again)
        and hold the page's next stream ticket."""
        self.shut = True
        with self.page.expect_request(is_ticket_request):
            coffer.restart()
        expect(self.page.locator("#live")).to_have_text("Reconnecting…")
        assert len(self.held) == 1, "the page asked for a fresh ticket, once"

    def release(self) -> None:
        """Let the held ticket request go: the page opens its stream again."""
        self.shut = False
        held, self.held = self.held, []
        with self.page.expect_request(is_stream):
            for route in held:
                route.continue_()


def test_spa_resumes_its_stream_after_a_drop_with_what_it_missed(
    page, browser_log, restartable_coffer, spa_origin
):
    coffer = restartable_coffer
    tickets = TicketGate(page)
    streams = stream_urls(page)
    email = sign_up(page, spa_origin, coffer.url)
    titles = page.locator("#notes > li .title")
    token = api_token(coffer, email)  # another device of the user's: curl, say
    loads = list_loads(page)

    def add(title: str) -> dict:
        status, _, record = coffer.post("/api/v1/data/notes", {"data": {"title": title}}, token)
        assert status == 201
        return record

    # Dropped before any event came: no position to resume from, so the list reloads.
    tickets.drop_and_hold(coffer)
    add("While away")
    expect(titles).to_have_count(0)  # the page is offline: not yet
    with page.expect_response(list_load, timeout=RESUME_TIMEOUT_MS):
        tickets.release()
    expect(titles).to_have_text(["While away"])
    expect(page.locator("#live")).to_have_text("Live")
    assert len(loads) == 1
    assert "last_event_id" not in parse_qs(urlsplit(streams[-1]).query)

    # An event seen, then dropped: the next stream resumes after it, and the list shows the
    # changes it missed without loading again.
    seen = add("Seen live")
    expect(titles).to_have_text(["Seen live", "While away"])
    tickets.drop_and_hold(coffer)
    add("Missed")
    status, _, _ = coffer.request("DELETE", f"/api/v1/data/notes/{seen['id']}", token=token)
    assert status == 204
    expect(titles).to_have_text(["Seen live", "While away"])  # offline: not yet
    tickets.release()
    expect(titles).to_have_text(["Missed", "While away"])
    expect(page.locator("#live")).to_have_text("Live")
    assert len(loads) == 1, "the stream resumed: the list was not loaded again"

    assert len(streams) == 3
    first, reloaded, resumed = (parse_qs(urlsplit(url).query) for url in streams)
    assert resumed["scope"] == ["all"]
    assert resumed["last_event_id"][0].isdigit()  # the id of the event of "Seen live"
    assert len({first["ticket"][0], reloaded["ticket"][0], resumed["ticket"][0]}) == 3
    assert_no_cors_trouble(browser_log)


def test_spa_reloads_its_list_when_the_stream_cannot_resume(
    page, browser_log, forgetful_coffer, spa_origin
):
    coffer = forgetful_coffer
    tickets = TicketGate(page)
    email = sign_up(page, spa_origin, coffer.url)
    titles = page.locator("#notes > li .title")
    token = api_token(coffer, email)
    status, _, first = coffer.post(
        "/api/v1/data/notes", {"data": {"title": "Before the restart"}}, token
    )
    assert status == 201
    expect(titles).to_have_text(["Before the restart"])  # its event: a position to resume from
    loads = list_loads(page)

    tickets.drop_and_hold(coffer)
    status, _, _ = coffer.post("/api/v1/data/notes", {"data": {"title": "While away"}}, token)
    assert status == 201
    status, _, _ = coffer.request("DELETE", f"/api/v1/data/notes/{first['id']}", token=token)
    assert status == 204

    with page.expect_response(list_load, timeout=RESUME_TIMEOUT_MS):
        tickets.release()
    expect(page.locator("#status")).to_have_text(RELOADED)
    expect(titles).to_have_text(["While away"])
    expect(page.locator("#live")).to_have_text("Live")
    assert len(loads) == 1

    # Reloaded, the list follows the stream again.
    status, _, _ = coffer.post("/api/v1/data/notes", {"data": {"title": "After"}}, token)
    assert status == 201
    expect(titles).to_have_text(["After", "While away"])
    assert len(loads) == 1
    assert_no_cors_trouble(browser_log)
