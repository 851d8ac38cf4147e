"""Accounts and load: sign-ups, log-ins, and threads that keep requests in flight."""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from gunicorn_run import Reply
from harness import CONNECTION_ERRORS, Instance
from helpers import PASSWORD


@dataclass
class Account:
    email: str
    access_token: str
    refresh_token: str
    session_id: str


def new_email(tag: str = "user") -> str:
    return f"{tag}-{secrets.token_hex(6)}@example.com"


def log_in(instance: Instance, email: str, **kwargs) -> Reply:
    body = {"email": email, "password": PASSWORD}
    return instance.call("POST", "/api/v1/sessions", json_body=body, **kwargs)


def sign_up(instance: Instance, *, log_in_on: Instance | None = None, **kwargs) -> Account:
    """Register a fresh user and log it in (on `log_in_on`, else the same instance)."""
    email = new_email()
    body = {"email": email, "password": PASSWORD}
    registered = instance.call("POST", "/api/v1/users", json_body=body, **kwargs)
    assert registered.status == 201, (registered.status, registered.body)
    session = log_in(log_in_on or instance, email, **kwargs)
    assert session.status == 201, (session.status, session.body)
    tokens = session.json()
    return Account(email, tokens["access_token"], tokens["refresh_token"], tokens["session"]["id"])


@dataclass
class LoadResult:
    statuses: Counter = field(default_factory=Counter)
    refused: int = 0  # nothing was listening: the request never reached a server
    connection_errors: list[str] = field(default_factory=list)  # cut off in flight
    other_errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        answered = sum(self.statuses.values())
        return answered + self.refused + len(self.connection_errors) + len(self.other_errors)


class Load:
    """`threads` threads calling `step(thread_index, result)` until stopped.

    A step records statuses itself; a connection error or any other exception is counted here
    and the thread carries on, so that one bad moment never hides the rest of the run.
    """

    def __init__(self, step: Callable[[int, LoadResult], None], threads: int) -> None:
        self.step = step
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(index,), daemon=True)
            for index in range(threads)
        ]

    def _run(self, index: int) -> None:
        while not self._stop.is_set():
            local = LoadResult()
            try:
                self.step(index, local)
            except ConnectionRefusedError:
                local.refused += 1
                time.sleep(0.01)
            except CONNECTION_ERRORS as exc:
                local.connection_errors.append(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # reported by the test, never lost
                local.other_errors.append(f"{type(exc).__name__}: {exc}")
            with self._lock:
                self.result.statuses.update(local.statuses)
                self.result.refused += local.refused
                self.result.connection_errors += local.connection_errors
                self.result.other_errors += local.other_errors

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
