"""Structured logs: one JSON object a line, carrying the request id when there is one."""

import logging
import sys
from datetime import UTC, datetime

import orjson
from flask import Flask, g, has_request_context


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context():
            entry["request_id"] = g.get("request_id")
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def init_app(app: Flask) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    app.logger.handlers[:] = [handler]
    app.logger.setLevel(app.config["COFFER_LOG_LEVEL"])
    app.logger.propagate = False


try:
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # gunicorn is only needed to serve; the app imports without it
    _GunicornLogger = object


class GunicornLogger(_GunicornLogger):
    """gunicorn's logger with one JSON line per request: request id, status and latency."""

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
            "status": _status_code(resp),
            "bytes": resp.sent,
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        self.access_log.info(orjson.dumps(entry).decode())


def _status_code(resp) -> int | None:
    """gunicorn's own error path (Worker.handle_error) sets only `status`, e.g. "500 …"."""
    code = getattr(resp, "status_code", None)
    if code is None and resp.status:
        code = int(str(resp.status).split(None, 1)[0])
    return code
