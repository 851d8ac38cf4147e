"""The signing secret: from COFFER_SECRET_KEY, else generated once into the instance folder."""

import os
import secrets
import tempfile

from flask import Flask

_PLACEHOLDERS = {"secret", "changeme", "change-me", "change_me", "placeholder", "dev", "test"}
MIN_PRODUCTION_LENGTH = 32


def _read_or_create(path: str) -> str:
    """Create the key file atomically (mode 0600); every worker then reads the same key."""
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".secret-")
        try:
            with os.fdopen(fd, "w") as handle:  # mkstemp creates the file with mode 0600
                handle.write(secrets.token_urlsafe(64))
            os.link(tmp, path)  # fails if another process created the key first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
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
