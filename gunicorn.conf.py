"""gunicorn settings; every value can be overridden with the usual GUNICORN_CMD_ARGS."""

import multiprocessing
import os

bind = os.environ.get("COFFER_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("COFFER_THREADS", 1))
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 10000
max_requests_jitter = 1000
accesslog = "-"
