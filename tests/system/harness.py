"""Coffer instances for the system tests: gunicorn processes, their environment and /proc
readings (the HTTP client is gunicorn_run's). Standard library only; throwaway.py and traffic.py
do the rest."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from gunicorn_run import Reply, coffer_env, free_port, request, start_gunicorn

# Transport failures: the server went away while a request was in flight (before its answer,
# or half-way through sending it: IncompleteRead), or was not there.
CONNECTION_ERRORS = (
    ConnectionError,
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    http.client.IncompleteRead,
)
# Lines printed in the terminal summary (conftest.py): what the suite measured.
METRICS: list[str] = []


def wait_for(predicate: Callable[[], object], *, timeout: float, interval: float = 0.1):
    """Poll until `predicate` returns something truthy; that value, or None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(interval)


# --- processes -------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """State and parent pid of a process, from /proc (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields_after_name = handle.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields_after_name[0], int(fields_after_name[1])


def children_of(pid: int) -> list[int]:
    """Live (non-zombie) child processes of `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat and stat[1] == pid and stat[0] != "Z":
                found.append(int(entry))
    return sorted(found)


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process in KiB (VmRSS), None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def tcp_client_of(pids: list[int], local_port: int) -> int | None:
    """Which of `pids` holds the TCP socket whose local port is `local_port` (the client end
    of a connection that a server saw coming from that port), from /proc; None if none does."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
            except FileNotFoundError:
                continue
    return None


def instance_env(*, database_url: str, redis_url: str | None, **settings: str) -> dict[str, str]:
    """The environment of one Coffer instance (cheap hashing: the tests that need slow
    requests raise it); nothing inherited configures Coffer."""
    env = coffer_env(
        DATABASE_URL=database_url,
        WEB_CONCURRENCY="2",
        COFFER_RATE_LIMIT_AUTH="1000000/minute",
        COFFER_RATE_LIMIT_API="1000000/minute",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(settings)
    return env


class Instance:
    """`gunicorn --config gunicorn.conf.py wsgi:app` on a free port, in its own process group."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = log_dir / f"{name}-{self.port}.log"
        # gunicorn >= 25 opens a control socket in $XDG_RUNTIME_DIR (else ~/.gunicorn): one
        # directory per instance, so that instances never take over each other's socket.
        runtime_dir = log_dir / f"{name}-{self.port}-run"
        runtime_dir.mkdir(mode=0o700)
        self.env = {
            **env,
            "COFFER_BIND": f"127.0.0.1:{self.port}",
            "XDG_RUNTIME_DIR": str(runtime_dir),
        }
        self.process: subprocess.Popen | None = None
        self._log = None
        self._terminated = False

    def __repr__(self) -> str:
        return f"<Instance {self.name} :{self.port}>"

    def start(self) -> Instance:
        self._log = open(self.log_path, "ab")  # closed in stop() and kill()
        self.process = start_gunicorn(self.env, self._log)
        return self

    @property
    def master_pid(self) -> int:
        return self.process.pid

    def call(self, method: str, path: str, **kwargs) -> Reply:
        return request(self.port, method, path, **kwargs)

    def wait_until(self, path: str = "/readyz", status: int = 200, timeout: float = 30) -> None:
        """Wait until `path` answers `status`; fail with the log's tail if it never does."""

        def answers() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self} exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                return self.call("GET", path, timeout=5).status == status
            except (OSError, http.client.HTTPException):
                return False

        if not wait_for(answers, timeout=timeout, interval=0.1):
            raise RuntimeError(f"{self} never answered {path} {status}:\n{self.log_tail()}")

    def workers(self) -> list[int]:
        return children_of(self.master_pid)

    def wait_for_workers(self, count: int, *, timeout: float = 20) -> list[int]:
        found = wait_for(lambda: len(self.workers()) == count and self.workers(), timeout=timeout)
        assert found, f"{self}: expected {count} workers, have {self.workers()}"
        return found

    def crashes(self) -> list[str]:
        """Log lines where gunicorn caught an exception from the app or lost a worker."""
        markers = ("Error handling request", "Exception in worker process", "exited with code")
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if any(m in line for m in markers)]

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def terminate(self) -> None:
        """SIGTERM to the master, once: gunicorn's graceful shutdown."""
        if not self._terminated and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (gunicorn's graceful shutdown), then SIGKILL to the whole group."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._finish()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL to the master and every worker at once, as a crash would."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._finish()

    def _finish(self) -> None:
        self.process.wait(timeout=30)
        # Workers orphaned by a killed master notice within a second; make sure they are gone.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self._log:
            self._log.close()
            self._log = None


class Fleet:
    """Instances started together and stopped together."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.instances: list[Instance] = []

    def start(self, *specs: tuple[str, dict[str, str]], ready: str = "/readyz", timeout=30):
        """Start every (name, env) at once, wait for each to be ready; one instance or a list."""
        started = [Instance(name, env, self.log_dir).start() for name, env in specs]
        self.instances.extend(started)
        for instance in started:
            instance.wait_until(ready, timeout=timeout)
        return started[0] if len(started) == 1 else started

    def stop_all(self) -> None:
        """SIGTERM to every instance first, so that they shut down side by side."""
        for instance in self.instances:
            instance.terminate()
        for instance in self.instances:
            instance.stop()
        self.instances.clear()
