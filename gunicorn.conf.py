"""gunicorn settings for Coffer; environment variables override the defaults."""

import ctypes
import gc
import multiprocessing
import os
import socket
import sys
import threading
import uuid
from datetime import UTC, datetime
from http import HTTPStatus

import orjson
from gunicorn import util
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker

bind = os.environ.get("COFFER_BIND", "127.0.0.1:8000")
# Two workers per core plus one: CPU-bound argon2 and short database calls.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# gthread workers (README: "Change feed: the worker model"). An open change stream holds one
# thread of its worker while it waits for changes, so each worker may run COFFER_MAX_STREAMS
# threads on top of its COFFER_THREADS: the instance holds at most that many streams in all
# (api/stream_slots.py), so whichever worker they land on keeps COFFER_THREADS threads for
# ordinary requests. The pool starts threads only as they are needed: an idle one costs
# nothing, a waiting stream about 100 kB (its stack's touched pages).
max_streams = int(os.environ.get("COFFER_MAX_STREAMS", "1000"))
request_threads = int(os.environ.get("COFFER_THREADS", "2"))
threads = request_threads + max_streams
worker_connections = threads + 100  # kept-alive connections wait in the poller, threadless
timeout = int(os.environ.get("COFFER_WORKER_TIMEOUT", "30"))
graceful_timeout = 20  # SIGTERM: in-flight requests get this long to finish
keepalive = 5
# Recycle workers now and then (jittered so that they never all restart at once).
max_requests = 10000
max_requests_jitter = 1000
# gunicorn stops reading at these limits, so an over-long request line or header costs no more
# than a short one; ProblemErrors below answers them 414 and 431 in problem+json.
limit_request_line = 8190  # gunicorn's maximum (and api/http/web.py's MAX_URI_BYTES)
limit_request_fields = 100  # gunicorn's defaults, written out
limit_request_field_size = 8190
accesslog = "-"
errorlog = "-"
# Workers heartbeat through a temporary file; on a container's overlay filesystem those writes
# can stall a worker into a timeout, so use memory-backed /dev/shm where there is one.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"
# Proxies: the app reads X-Forwarded-* itself (ProxyFix, COFFER_TRUSTED_PROXIES hops), so
# gunicorn's forwarded_allow_ips stays at its default and there is nothing to set here.

COFFER_APP = "wsgi:app"
M_MMAP_THRESHOLD = -3  # mallopt(3)
MMAP_THRESHOLD = 128 * 1024  # glibc's default, kept fixed


def on_starting(server):
    """Once, in the master, before any worker forks."""
    _fixed_mmap_threshold()
    if getattr(server.app, "app_uri", None) == COFFER_APP:
        _bootstrap_admin()
        _import_coffer()


def post_worker_init(worker):
    """Each worker's mail sender starts with the worker rather than at its first request: an
    instance restarted with mail in its outbox sends it even before any traffic arrives."""
    app = getattr(worker, "wsgi", None)
    sender = getattr(app, "extensions", {}).get("coffer_mail_sender")
    if sender is not None:
        sender.ensure_running()


def _bootstrap_admin():
    """The first admin (API.md: Users), here so that it runs once per start of the service
    rather than in every worker. Before _import_coffer: its gc.collect() then frees the app
    built for it, whose database connections coffer.bootstrap_admin has closed already."""
    from coffer import bootstrap_at_start

    bootstrap_at_start()


def _import_coffer():
    """Import Coffer's code, but build no app: every worker still runs create_app() itself.

    Each worker then starts with these modules already in memory, shared with the master
    until written to, instead of a private copy each: about 45 MB less private memory per
    worker, and a faster start. gc.freeze() keeps the workers' garbage collector off these
    objects, so that collecting does not copy their pages. Like gunicorn's preload_app, it
    means that new code needs a restart of the master; `kill -HUP` only restarts the workers.
    Only Coffer's app: the benchmark's bare-Flask ceiling runs under this file too.
    """
    import coffer  # noqa: F401  (with it the core, api)
    import resources  # noqa: F401

    # The clients that only some deployments use, and so Coffer imports only when configured
    # (a worker on SQLite without Redis has neither): shared the same way when they are.
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        import psycopg  # noqa: F401  (PostgreSQL's driver)
    if os.environ.get("REDIS_URL"):
        import redis  # noqa: F401

    gc.collect()
    gc.freeze()


def _fixed_mmap_threshold():
    """Keep glibc's mmap threshold at its default, inherited by the workers.

    glibc raises the threshold to the size of the largest mapped block freed, up to 32 MiB:
    after one argon2 hash (7 MiB by default) every smaller allocation, such as a 1 MiB request
    body, would come from the heap, which glibc returns to the system only once twice that
    much is free at its top; a worker kept ~11 MB more after its first log-ins. Fixed, such
    blocks (argon2's included) get their own mapping and are returned when freed.
    """
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass  # not glibc


class JsonAccessLogger(Logger):
    """gunicorn's logger with one JSON line per request: request id, status and latency.

    Here rather than in the api package, so that a gunicorn master serving another app (the
    benchmark's ceiling) never imports Coffer.
    """

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "INFO",
            "logger": "gunicorn.access",
            "request_id": next((v for k, v in resp.headers if k.lower() == "x-request-id"), None),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": status_code(resp),
            "bytes": resp.sent,
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        self.access_log.info(orjson.dumps(entry).decode())


def status_code(resp) -> int | None:
    """gunicorn's own error path (Worker.handle_error) sets only `status`, e.g. "500 …"."""
    code = getattr(resp, "status_code", None)
    if code is None and resp.status:
        code = int(str(resp.status).split(None, 1)[0])
    return code


logger_class = JsonAccessLogger

# RFC 9110's names where Python's HTTPStatus still has the older ones (as in api/http/problems.py).
REQUEST_ID_ENVIRON = "coffer.request_id"  # api/http/web.py's, not imported: the master has no app
_TITLES = {413: "Content Too Large", 414: "URI Too Long", 422: "Unprocessable Content"}


class ProblemErrors:
    """Worker mixin: what gunicorn refuses itself is RFC 9457 problem+json, never its HTML page.

    gunicorn's own handle_error still classifies the error, logs it and writes the access line,
    but writes its page to a stand-in socket; the client gets the status of that page with the
    body of api/http/problems.py's `problem`, built here because the master must not import Flask.
    """

    def handle_error(self, req, client, addr, exc):
        page = _CapturedPage()
        super().handle_error(req, page, addr, exc)
        status = page.status()
        try:
            util.write_nonblock(client, _problem_response(status, _detail(self.cfg, status, exc)))
        except Exception:
            self.log.debug("Failed to send error message.")


class ProblemThreadWorker(ProblemErrors, ThreadWorker):
    """gunicorn's gthread worker, answering its own errors in problem+json. On SIGTERM it
    ends its change streams at once (api/feed/ `shutdown`), so that their clients reconnect
    to another instance instead of holding this one for the whole graceful timeout.

    Killed at its timeout (SIGABRT from the master, README: "The worker timeout"), it answers
    each in-flight request whose response has not started `500` in problem+json, with the
    request id the app gave it, rather than dropping the connection; a response already
    started is cut short, as a 500 written into it would corrupt it.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight: dict[int, tuple[dict, object]] = {}  # thread -> (environ, response)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = _Tracked(self.wsgi, self.in_flight)

    def handle_request(self, req, conn):
        try:
            return super().handle_request(req, conn)
        finally:
            self.in_flight.pop(threading.get_ident(), None)

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        feed = sys.modules.get("api.feed")  # never imported here: the master must not need it
        if feed is not None:
            feed.shutdown()

    def handle_abort(self, sig, frame):
        self.alive = False
        answered = 0
        for environ, response in list(self.in_flight.values()):
            if not getattr(response, "headers_sent", True):
                answered += _answer_timed_out(environ, self.cfg.timeout)
        if answered:
            self.log.error("worker timeout: %d in-flight request(s) answered 500", answered)
        super().handle_abort(sig, frame)


class _Tracked:
    """The worker's WSGI app, noting each request's environ and gunicorn response (whose
    start_response it is) under the thread that serves it; the app's attributes show through
    (post_worker_init reads its extensions)."""

    def __init__(self, app, in_flight: dict) -> None:
        self.app = app
        self.in_flight = in_flight

    def __call__(self, environ, start_response):
        response = getattr(start_response, "__self__", None)
        self.in_flight[threading.get_ident()] = (environ, response)
        return self.app(environ, start_response)

    def __getattr__(self, name):
        return getattr(self.app, name)


def _answer_timed_out(environ: dict, timeout: float) -> bool:
    """Write the 500 of a request cut off by the worker timeout, then shut its connection
    (the thread serving it can write nothing after). Whether it was sent."""
    client = environ.get("gunicorn.socket")
    if client is None:
        return False
    detail = (
        f"The server stalled for over {timeout:g} s while serving this request and was "
        "restarted; the request may or may not have taken effect."
    )
    request_id = environ.get(REQUEST_ID_ENVIRON) or uuid.uuid4().hex
    try:
        client.settimeout(0.5)  # the master kills the worker about a second after SIGABRT
        client.sendall(_problem_response(500, detail, request_id))
        client.shutdown(socket.SHUT_RDWR)
    except OSError:
        return False
    return True


class _CapturedPage:
    """Stands in for the client socket while gunicorn writes its error page (util.write_error)."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0  # non-blocking already: util.write_nonblock just calls sendall

    def sendall(self, data: bytes) -> None:
        self.data += data

    def status(self) -> int:
        """From "HTTP/1.1 414 URI Too Long"; a page that was never written counts as a crash."""
        parts = self.data.split(b" ", 2)
        return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else 500


def _detail(cfg, status: int, exc: BaseException) -> str:
    if status == 414:
        return f"The request line is longer than {cfg.limit_request_line} bytes."
    if status == 431:
        fields, size = cfg.limit_request_fields, cfg.limit_request_field_size
        return f"The request has more than {fields} header fields or one over {size} bytes."
    if status == 500:
        return "An unexpected error occurred."  # never the exception: it may hold internals
    return str(exc) or HTTPStatus(status).description  # gunicorn's word on what is malformed


def _problem_response(status: int, detail: str, request_id: str | None = None) -> bytes:
    """A whole HTTP response carrying api/http/problems.py's problem body; it closes the
    connection. Without a request id (no app has seen the request), a fresh one."""
    title = _TITLES.get(status) or HTTPStatus(status).phrase
    request_id = request_id or uuid.uuid4().hex
    problem = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    body = orjson.dumps(problem, option=orjson.OPT_APPEND_NEWLINE)
    head = (
        f"HTTP/1.1 {status} {title}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Cache-Control: no-store\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


worker_class = ProblemThreadWorker
