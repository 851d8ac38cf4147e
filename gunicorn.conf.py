"""gunicorn settings for Coffer; environment variables override the defaults."""

import multiprocessing
import os

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
logger_class = "api.logs.GunicornLogger"
# Workers heartbeat through a temporary file; on a container's overlay filesystem those writes
# can stall a worker into a timeout, so use memory-backed /dev/shm where there is one.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"
# Proxies: the app reads X-Forwarded-* itself (ProxyFix, COFFER_TRUSTED_PROXIES hops), so
# gunicorn's forwarded_allow_ips stays at its default and there is nothing to set here.
