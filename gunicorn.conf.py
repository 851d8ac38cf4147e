"""gunicorn settings for Coffer; environment variables override the defaults."""

import ctypes
import gc
import multiprocessing
import os
from datetime import UTC, datetime

import orjson
from gunicorn.glogging import Logger

bind = os.environ.get("COFFER_BIND", "127.0.0.1:8000")
# Sync workers: CPU-bound argon2 and short database calls; two per core plus one.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("COFFER_THREADS", "1"))
timeout = int(os.environ.get("COFFER_WORKER_TIMEOUT", "30"))
graceful_timeout = 20  # SIGTERM: in-flight requests get this long to finish
keepalive = 5
# Recycle workers now and then (jittered so that they never all restart at once).
max_requests = 10000
max_requests_jitter = 1000
# Coffer answers over-long URLs itself (414 problem+json); gunicorn's limit would send HTML.
limit_request_line = 0
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
        _import_coffer()


def _import_coffer():
    """Import Coffer's code, but build no app: every worker still runs create_app() itself.

    Each worker then starts with these modules already in memory, shared with the master
    until written to, instead of a private copy each: about 45 MB less private memory per
    worker, and a faster start. gc.freeze() keeps the workers' garbage collector off these
    objects, so that collecting does not copy their pages. Like gunicorn's preload_app, it
    means that new code needs a restart of the master; `kill -HUP` only restarts the workers.
    Only Coffer's app: the benchmark's bare-Flask ceiling runs under this file too.
    """
    import api  # noqa: F401
    import resources  # noqa: F401

    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        import psycopg  # noqa: F401  (PostgreSQL's driver: its libraries are shared the same way)

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
