"""What many test modules share: the test password, the calls that register, log in, create a
record, watch a collection's changes and page through a data listing, bearer headers, and the
problem+json checks."""

import multiprocessing
import threading
import uuid

from sse import Stream

API = "/api/v1"
PASSWORD = "correct horse battery staple"  # every test account's, unless a test says otherwise
PROBLEM_FIELDS = ("type", "title", "detail")
ASYMMETRIC = ["EdDSA", "ES256", "RS256"]  # the asymmetric signing algorithms
# An id that no row has; fixed, so that test ids match across xdist workers.
UNKNOWN_ID = "0190f5a4-7c1e-7d2a-9b3c-4d5e6f708192"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(client, email: str, password: str = PASSWORD, **extra):
    return client.post(f"{API}/users", json={"email": email, "password": password, **extra})


def log_in(client, email: str, password: str = PASSWORD, *, headers=None, **extra):
    body = {"email": email, "password": password, **extra}
    return client.post(f"{API}/sessions", json=body, headers=headers)


def register_and_log_in(client, email: str | None = None) -> dict:
    """A new user (a fresh address unless `email`) through the API; its log-in's tokens."""
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    created = register(client, email)
    assert created.status_code == 201, created.get_data(as_text=True)
    response = log_in(client, email)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def create(client, account, data, collection="tasks") -> dict:
    """A record of `account`'s, as the API answers its creation."""
    response = client.post(f"{API}/data/{collection}", json={"data": data}, headers=account.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def watch(client, account, collection="tasks", *, query="", headers=None) -> Stream:
    """`account`'s change stream of `collection`, open."""
    url = f"{API}/data/{collection}/changes" + (f"?{query}" if query else "")
    response = client.get(url, headers={**account.headers, **(headers or {})}, buffered=False)
    return Stream(response)


def walk(client, account, params, collection: str = "tasks") -> list[dict]:
    """Every record of a data listing, following next_cursor page by page."""
    items, cursor = [], None
    for _ in range(500):
        query = list(params) + ([("cursor", cursor)] if cursor else [])
        response = client.get(
            f"{API}/data/{collection}", query_string=query, headers=account.headers
        )
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("paging did not end")


def assert_problem(response, status: int) -> dict:
    """`response` is an RFC 9457 problem of `status`, as every Coffer error is; its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    text = response.get_data(as_text=True)
    assert text.endswith("}\n") and "<html" not in text.lower() and "Traceback" not in text
    body = response.get_json()
    assert isinstance(body, dict)
    for name in PROBLEM_FIELDS:
        assert isinstance(body[name], str) and body[name], (name, body)
    assert body["status"] == status and isinstance(body["status"], int)
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def assert_unauthorized(response) -> dict:
    """A 401 problem that challenges for a bearer token; its body."""
    body = assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return body


def count_in_processes(
    make_tier, limit, identifiers: tuple, processes: int, threads: int, hits: int
):
    """`processes` forked processes, each with `threads` threads, count one key at once, `hits`
    times each thread, all starting together; each process counts through the tier that
    `make_tier()` builds in it (its own storage and connections). Every thread's
    (allowed, remaining) answers, in order."""
    forked = multiprocessing.get_context("fork")
    start, results = forked.Barrier(processes * threads), forked.Queue()

    def child() -> None:
        tier = make_tier()
        outcomes: list[list[tuple[bool, int]]] = [[] for _ in range(threads)]

        def run(mine: list) -> None:
            start.wait(timeout=30)
            for _ in range(hits):
                window = tier.count(limit, identifiers)
                mine.append((window.allowed, window.remaining))

        running = [threading.Thread(target=run, args=(mine,)) for mine in outcomes]
        for thread in running:
            thread.start()
        for thread in running:
            thread.join(timeout=60)
        results.put(outcomes)

    children = [forked.Process(target=child) for _ in range(processes)]
    for process in children:
        process.start()
    answers = [thread for _ in children for thread in results.get(timeout=90)]
    for process in children:
        process.join(timeout=10)
        assert process.exitcode == 0
    return answers
