"""Throwaway PostgreSQL clusters and Redis servers, to stop and start at will."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from harness import free_port, wait_for


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl live: $TEST_PG_BINDIR, Debian's versioned dir, or the PATH."""
    candidates = [os.environ.get("TEST_PG_BINDIR", "")]
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    initdb = shutil.which("initdb")
    candidates.append(os.path.dirname(initdb) if initdb else "")
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


class ThrowawayPostgres:
    """A private PostgreSQL cluster on a free port: initdb, start, stop -m immediate, start."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        # Not under pytest's tmp dir: as root, the cluster runs as `postgres`, which needs a
        # directory it owns on a path it can traverse.
        self.dir = Path(tempfile.mkdtemp(prefix="coffer-pg-"))
        self.data = self.dir / "data"
        try:
            if os.geteuid() == 0:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "--no-sync")
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        options = f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1"
        log = str(self.dir / "postgres.log")
        self._run(
            "pg_ctl", "start", "-D", str(self.data), "-l", log, "-w", "-t", "60", "-o", options
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except RuntimeError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


class ThrowawayRedis:
    """A private redis-server on a free port, with nothing persisted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ThrowawayRedis:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        assert wait_for(self.answers, timeout=10), "redis-server did not start"
        return self

    def start_again(self) -> ThrowawayRedis:
        """The same port, empty again: as a restarted Redis without persistence comes back."""
        self.kill()
        return self.start()

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
        if self.process:
            self.process.wait(timeout=10)
