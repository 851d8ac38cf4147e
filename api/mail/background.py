"""Where the sender runs: a daemon thread in each process that serves requests, started when
a gunicorn worker has booted (gunicorn.conf.py `post_worker_init`), else by the process's first
request. Not at create_app: gunicorn's master builds an app to bootstrap the admin and then
forks the workers (a thread would run on in the master and in no worker), and `flask`
commands build one too. Any one running sender drains the whole outbox.

The thread delivers every POLL_SECONDS, and at once when this process commits mail
(api.mail.outbox.committed). It survives errors (logged; it pauses longer while they last),
and at process exit it finishes the mail being sent and hands the rest back to the outbox.
"""

import atexit
import logging
import os
import threading

from flask import Flask

from api.mail.outbox import committed
from api.mail.sender import BATCH, deliver

POLL_SECONDS = 2.0  # the pace when no commit wakes the thread
MAX_PAUSE = 60.0  # the longest pause while the database fails
EXIT_GRACE = 5.0  # seconds a process at exit waits for the mail being sent

log = logging.getLogger(__name__)
# This process's id, kept by a fork hook: ensure_running runs before every request, and
# os.getpid() is a system call.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


class SenderThread:
    """deliver() in a daemon thread of this process, from ensure_running() on."""

    def __init__(self, app: Flask):
        self.app = app
        self.pid: int | None = None
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def ensure_running(self) -> None:
        if self.pid == _pid:
            return
        with self.lock:
            if self.pid == _pid:
                return
            self.stopping.clear()
            self.thread = threading.Thread(target=self.run, name="coffer-mail", daemon=True)
            self.thread.start()
            self.pid = os.getpid()
            _running.add(self)

    def stop(self, timeout: float = EXIT_GRACE) -> None:
        """Stop after the mail being sent; unsent claimed rows go back to the outbox."""
        self.stopping.set()
        committed.set()
        if self.thread is not None:
            self.thread.join(timeout)
        _running.discard(self)
        self.pid = None

    def run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            committed.clear()
            try:
                self._drain()
                failures = 0
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.exception("mail sender failed; it keeps trying")
                else:
                    log.warning("mail sender failed again (%d): %s", failures, exc)
            pause = min(POLL_SECONDS * 2 ** min(failures, 10), MAX_PAUSE)
            committed.wait(pause)

    def _drain(self) -> None:
        with self.app.app_context():
            while not self.stopping.is_set():
                if deliver(limit=BATCH, stop=self.stopping).claimed < BATCH:
                    return


_running: set[SenderThread] = set()


@atexit.register
def _stop_senders() -> None:
    for sender in list(_running):
        if sender.pid == os.getpid():
            sender.stop()


def sender_enabled(value: object) -> bool:
    """COFFER_MAIL_SENDER: on/off, true/false, yes/no, 1/0."""
    text = str(value).strip().lower()
    if text in ("on", "true", "yes", "1"):
        return True
    if text in ("off", "false", "no", "0"):
        return False
    raise RuntimeError(f"COFFER_MAIL_SENDER must be on or off, got {value!r}")


def init_app(app: Flask) -> None:
    """A sender thread per process, from its first request, unless COFFER_MAIL_SENDER is off
    or the app is TESTING (tests call deliver_due themselves)."""
    if not sender_enabled(app.config["COFFER_MAIL_SENDER"]) or app.testing:
        return
    sender = SenderThread(app)
    app.extensions["coffer_mail_sender"] = sender
    app.before_request(sender.ensure_running)
