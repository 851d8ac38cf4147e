"""Coffer under real gunicorn, over raw sockets: what gunicorn refuses itself, and chunked bodies.

gunicorn.conf.py bounds the request line and the headers, so that gunicorn stops reading an
over-long one at its limit, and its worker answers those refusals in problem+json like the app.
A chunked body over COFFER_MAX_BODY_BYTES is 413, as one with a Content-Length is.
One gunicorn (one sync worker) serves the whole module, on the test database.
"""

import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from gunicorn_run import Reply, coffer_env, free_port, request, start_gunicorn, stop_gunicorn
from helpers import PASSWORD

MAX_BODY = 1048576  # COFFER_MAX_BODY_BYTES's default
RECORD = b'{"data": {"x": 1}}'
THINGS = "/api/v1/data/things"
PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id"}


def _environment(database_url: str, port: int, runtime_dir: Path) -> dict[str, str]:
    """One sync worker, one thread, and limits that these tests never reach."""
    return coffer_env(
        DATABASE_URL=database_url,
        COFFER_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
        COFFER_THREADS="1",
        COFFER_RATE_LIMIT_AUTH="100000/minute",
        COFFER_RATE_LIMIT_API="100000/minute",
        XDG_RUNTIME_DIR=str(runtime_dir),
    )


def _wait_until_up(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"gunicorn exited:\n{log.read_text(errors='replace')}"
        try:
            if request(port, "GET", "/healthz", timeout=10).status == 200:
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"gunicorn never answered:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def port(database_url, tmp_path_factory):
    """`gunicorn --config gunicorn.conf.py wsgi:app` with one worker; the port it serves."""
    run_dir = tmp_path_factory.mktemp("gunicorn")
    runtime_dir = run_dir / "run"
    runtime_dir.mkdir(mode=0o700)
    log = run_dir / "gunicorn.log"
    served = free_port()
    with open(log, "wb") as output:
        process = start_gunicorn(_environment(database_url, served, runtime_dir), output)
    try:
        _wait_until_up(served, process, log)
        yield served
    finally:
        stop_gunicorn(process)


# --- HTTP, by hand ---------------------------------------------------------------------------


def exchange(port: int, data: bytes) -> Reply:
    """Send raw bytes and read the answer, even when the server stops reading and resets."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it was all read; the answer is already on its way
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return Reply(int(status_line.split()[1]), headers, body)


def timed_exchange(port: int, data: bytes) -> tuple[Reply, float]:
    started = time.perf_counter()
    reply = exchange(port, data)
    return reply, time.perf_counter() - started


def chunked_post(port: int, path: str, body: bytes, token: str, headers: dict) -> Reply:
    """POST `body` with Transfer-Encoding: chunked (no Content-Length), 64 KiB a chunk."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}"]
    lines += ["Content-Type: application/json", "Transfer-Encoding: chunked", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    pieces = (body[i : i + 65536] for i in range(0, len(body), 65536))
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return exchange(port, head + chunks + b"0\r\n\r\n")


def assert_problem(reply: Reply, status: int) -> dict:
    """The reply is Coffer's problem+json, wherever it came from; its body."""
    assert reply.status == status, reply
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.body.endswith(b"}\n") and b"<html" not in reply.body.lower()
    body = reply.json()
    assert PROBLEM_KEYS <= body.keys(), body
    assert (body["type"], body["status"]) == ("about:blank", status)
    assert body["title"] and body["detail"]
    assert body["request_id"] == reply.headers["x-request-id"]
    return body


def assert_refused_by_gunicorn(reply: Reply, status: int) -> dict:
    body = assert_problem(reply, status)
    assert body.keys() == PROBLEM_KEYS
    assert reply.headers["connection"] == "close"
    assert int(reply.headers["content-length"]) == len(reply.body)
    return body


# --- what gunicorn refuses --------------------------------------------------------------------


def test_an_8_mb_request_line_is_refused_414_as_fast_as_a_small_malformed_request(port):
    small, small_time = timed_exchange(port, b"GARBAGE\r\n\r\n")
    assert_refused_by_gunicorn(small, 400)
    line = b"GET /" + b"a" * 8_000_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    large, large_time = timed_exchange(port, line)
    body = assert_refused_by_gunicorn(large, 414)
    assert body["title"] == "URI Too Long"
    assert "8190 bytes" in body["detail"]
    # gunicorn stops reading at its limit: no parsing of the 8 MB (an unbounded line took ~5 s).
    assert large_time < 1.0, f"8 MB line: {large_time:.3f} s, malformed: {small_time:.3f} s"


def test_a_url_just_over_gunicorns_limit_is_414_and_one_under_reaches_the_app(port):
    assert_refused_by_gunicorn(exchange(port, b"GET /" + b"a" * 8200 + b" HTTP/1.0\r\n\r\n"), 414)
    reply = exchange(port, b"GET /" + b"a" * 8000 + b" HTTP/1.0\r\n\r\n")
    assert_problem(reply, 404)  # the app's own answer: an unknown route


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"b" * 20000 + b"\r\n",
        b"".join(b"X-Header-%d: 1\r\n" % n for n in range(150)),
    ],
    ids=["one-huge-header", "too-many-headers"],
)
def test_over_large_headers_are_431(port, headers):
    reply = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
    body = assert_refused_by_gunicorn(reply, 431)
    assert body["title"] == "Request Header Fields Too Large"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/7.0\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nBad Header: 1\r\n\r\n",
    ],
    ids=["request-line", "http-version", "header-name"],
)
def test_a_malformed_request_is_400(port, request_bytes):
    assert_refused_by_gunicorn(exchange(port, request_bytes), 400)


# --- chunked bodies ---------------------------------------------------------------------------


@pytest.fixture
def token(port) -> str:
    """A fresh user's access token, made through the API."""
    credentials = {"email": f"chunked-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}
    assert request(port, "POST", "/api/v1/users", json_body=credentials).status == 201
    return request(port, "POST", "/api/v1/sessions", json_body=credentials).json()["access_token"]


def padded(size: int) -> bytes:
    """The record's JSON followed by spaces (still valid JSON), `size` bytes in all."""
    return RECORD + b" " * (size - len(RECORD))


TOO_LARGE = f"The request body is larger than {MAX_BODY} bytes (COFFER_MAX_BODY_BYTES)."


@pytest.mark.parametrize("size", [MAX_BODY + 1, 2 * MAX_BODY])
@pytest.mark.parametrize("key", [None, "chunked-1"], ids=["plain", "idempotent"])
def test_a_chunked_body_over_the_limit_is_413_and_stores_nothing(port, token, size, key):
    headers = {"Idempotency-Key": key} if key else {}
    reply = chunked_post(port, THINGS, padded(size), token, headers)
    assert assert_problem(reply, 413)["detail"] == TOO_LARGE
    assert request(port, "GET", THINGS, token=token).json()["items"] == []


@pytest.mark.parametrize("size", [len(RECORD), MAX_BODY], ids=["small", "at-the-limit"])
def test_a_chunked_body_up_to_the_limit_is_stored(port, token, size):
    reply = chunked_post(port, THINGS, padded(size), token, {"Idempotency-Key": "chunked-2"})
    assert reply.status == 201, reply
    assert reply.json()["data"] == {"x": 1}
    listed = request(port, "GET", THINGS, token=token).json()["items"]
    assert [item["data"] for item in listed] == [{"x": 1}]
