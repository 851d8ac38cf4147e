"""The key directory: one `<kid>.pem` per private key, written, read, pruned, and created first."""

import os
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask

from api.keys import create_secret_file
from api.signing.keys import generate_private_key, load_pem, pem

try:
    import fcntl
except ImportError:  # Windows: no gunicorn workers racing to create the first key
    fcntl = None

KID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_KID_TIME = re.compile(r"^(\d{8}T\d{6}Z)")


@dataclass(frozen=True)
class KeyFile:
    kid: str
    path: str
    private_key: object
    created: datetime
    order: tuple  # sorts files oldest first


def new_kid(now: datetime | None = None) -> str:
    """A kid that sorts by creation time: `20261121T150000Z-3f9a0c1e`."""
    return f"{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def write_key_file(directory: str, algorithm: str) -> str:
    """Write a new key as `<kid>.pem`, complete or not at all, readable by the owner only."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    kid = new_kid()
    create_secret_file(os.path.join(directory, f"{kid}.pem"), pem(generate_private_key(algorithm)))
    return kid


def _created(kid: str, mtime: float) -> datetime:
    match = _KID_TIME.match(kid)
    if match:
        try:
            return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.fromtimestamp(int(mtime), UTC)


def read_key_files(directory: str) -> list[KeyFile]:
    """Every `<kid>.pem` of the directory, oldest first (the last one signs)."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        if not name.endswith(".pem") or name.startswith("."):
            continue
        kid, path = name[: -len(".pem")], os.path.join(directory, name)
        if not KID.match(kid):
            raise RuntimeError(f"{path}: a kid may hold only A-Z a-z 0-9 . _ - (128 at most)")
        with open(path, "rb") as handle:
            private_key = load_pem(handle.read(), path)
        stat = os.stat(path)
        created = _created(kid, stat.st_mtime)
        found.append(KeyFile(kid, path, private_key, created, (created, stat.st_mtime_ns, kid)))
    return sorted(found, key=lambda key_file: key_file.order)


def prunable(
    files: list[KeyFile], *, keep: int | None, older_than: int | None, now: datetime
) -> list[KeyFile]:
    """The key files to remove (`files` oldest first); never the newest one.

    `keep`: all but the `keep` newest. `older_than`: only keys that a newer key replaced (was
    created) more than that many seconds ago. Both: only keys that both rules would remove.
    """
    candidates = files[: len(files) - max(keep or 1, 1)]
    if older_than is not None:
        replaced = {old.kid: new.created for old, new in zip(files, files[1:], strict=False)}
        candidates = [
            key_file
            for key_file in candidates
            if (now - replaced[key_file.kid]).total_seconds() > older_than
        ]
    return candidates


@contextmanager
def _directory_lock(directory: str):
    fd = os.open(os.path.join(directory, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor closes
        yield
    finally:
        os.close(fd)


def create_first_key(app: Flask, directory: str, algorithm: str) -> None:
    """Development: create one key, even when several workers start at the same moment."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with _directory_lock(directory):
        if not read_key_files(directory):
            kid = write_key_file(directory, algorithm)
            app.logger.info("created JWT signing key %s in %s", kid, directory)
