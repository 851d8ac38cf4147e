"""The server secret and the primitives built on it: COFFER_SECRET_KEY (else generated once into
the instance folder), keys derived from it per purpose, base64url, and secret files."""

import base64
import hashlib
import hmac
import os
import secrets
import tempfile

from flask import Flask

_PLACEHOLDERS = {"secret", "changeme", "change-me", "change_me", "placeholder", "dev", "test"}
MIN_PRODUCTION_LENGTH = 32


def derive_key(secret: str, purpose: str) -> bytes:
    """A 256-bit key for one purpose (`"coffer cursor v1"`), so that no two uses share a key."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2), as JWKs, cursors and derived tokens use it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """The bytes of unpadded base64url; ValueError when `text` is not base64url."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def create_secret_file(path: str, content: bytes) -> None:
    """Create `path` holding `content`, complete or not at all, readable by the owner only
    (mode 0600); FileExistsError when it exists, which is never replaced."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".new-secret-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.link(tmp, path)  # fails if another process created the file first
    finally:
        os.unlink(tmp)


def _read_or_create(path: str) -> str:
    """Create the key file atomically; every worker then reads the same key."""
    if not os.path.exists(path):
        try:
            create_secret_file(path, secrets.token_urlsafe(64).encode())
        except FileExistsError:
            pass
    with open(path) as handle:
        return handle.read().strip()


def looks_like_placeholder(key: str) -> bool:
    lowered = key.lower()
    return (
        len(key) < MIN_PRODUCTION_LENGTH
        or len(set(key)) < 10
        or any(word in lowered for word in _PLACEHOLDERS if len(word) > 4)
        or lowered in _PLACEHOLDERS
    )


def init_app(app: Flask) -> None:
    key = app.config.get("COFFER_SECRET_KEY")
    if app.config["COFFER_ENV"] == "production":
        if not key or looks_like_placeholder(key):
            raise RuntimeError(
                "COFFER_SECRET_KEY must be set to a random value of at least "
                f"{MIN_PRODUCTION_LENGTH} characters when COFFER_ENV=production"
            )
    if not key:
        key = _read_or_create(os.path.join(app.instance_path, "secret_key"))
    app.config["COFFER_SECRET_KEY"] = key
    app.config["SECRET_KEY"] = key
