"""A browser's change stream: POST /stream-tickets with the bearer token, then an EventSource
(which cannot send headers) opened with `?ticket=`, across origins (CORS), in Chromium."""

import json
import secrets
import urllib.request

import pytest

pytestmark = pytest.mark.browser

PASSWORD = "a long and private passphrase"
# In the page (the SPA's origin, not the API's): a ticket, then an EventSource that records
# every event it gets in window.received, and whether it failed in window.failed.
OPEN_STREAM = """async ({api, token, lastEventId}) => {
  const response = await fetch(api + "/api/v1/stream-tickets", {
    method: "POST", headers: {Authorization: "Bearer " + token}});
  const {ticket, expires_in} = await response.json();
  window.received = [];
  window.failed = false;
  let url = api + "/api/v1/data/notes/changes?ticket=" + encodeURIComponent(ticket);
  if (lastEventId) url += "&last_event_id=" + encodeURIComponent(lastEventId);
  const source = new EventSource(url);
  for (const kind of ["created", "updated", "deleted", "reset"]) {
    source.addEventListener(kind, (event) => window.received.push(
      {event: kind, id: event.lastEventId, data: JSON.parse(event.data)}));
  }
  source.onerror = () => { window.failed = source.readyState === EventSource.CLOSED; };
  await new Promise((resolve) => { source.onopen = resolve; });
  window.source = source;
  return {status: response.status, expires_in, ticket};
}"""
REUSE_TICKET = """({api, ticket}) => new Promise((resolve) => {
  const source = new EventSource(api + "/api/v1/data/notes/changes?ticket=" + ticket);
  source.onopen = () => resolve("opened");
  source.onerror = () => resolve(source.readyState === EventSource.CLOSED ? "refused" : "retry");
})"""


def _post(url: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def account(coffer) -> str:
    email = f"ada-{secrets.token_hex(4)}@example.com"
    _post(f"{coffer.url}/api/v1/users", {"email": email, "password": PASSWORD})
    return _post(f"{coffer.url}/api/v1/sessions", {"email": email, "password": PASSWORD})[
        "access_token"
    ]


def test_an_event_source_follows_changes_with_a_ticket_across_origins(
    page, browser_log, coffer, spa_origin
):
    token = account(coffer)
    page.goto(spa_origin + "/")
    opened = page.evaluate(OPEN_STREAM, {"api": coffer.url, "token": token, "lastEventId": ""})
    assert opened["status"] == 201 and opened["expires_in"] == 30

    record = _post(f"{coffer.url}/api/v1/data/notes", {"data": {"title": "milk"}}, token)
    page.wait_for_function("() => window.received.length === 1")
    received = page.evaluate("window.received")
    assert received[0]["event"] == "created"
    assert received[0]["data"]["record"]["id"] == record["id"]
    assert received[0]["data"]["record"]["access"] == "owner"

    # A spent ticket opens nothing: the EventSource fails for good (no endless retries).
    assert page.evaluate(REUSE_TICKET, {"api": coffer.url, "ticket": opened["ticket"]}) == (
        "refused"
    )

    # Dropped, then reopened with a fresh ticket and the last event's id: nothing is lost.
    last = received[0]["id"]
    page.evaluate("window.source.close()")
    missed = _post(f"{coffer.url}/api/v1/data/notes", {"data": {"title": "eggs"}}, token)
    page.evaluate(OPEN_STREAM, {"api": coffer.url, "token": token, "lastEventId": last})
    page.wait_for_function("() => window.received.length === 1")
    assert page.evaluate("window.received")[0]["data"]["record"]["id"] == missed["id"]
    assert browser_log.cors_errors == [] and browser_log.page_errors == []
    assert not page.evaluate("window.failed")
