"""Configuration: one table of environment variables, each with a default that works locally.

Flask config keys carry the same names as the environment variables, so `create_app(config)`
overrides read exactly like the documentation (`{"COFFER_ACCESS_TOKEN_TTL": 60}`).
"""

import os
from collections.abc import Mapping

# name -> (type, default). `None` means "unset"; the app derives a value at start-up.
SETTINGS: dict[str, tuple[type, object]] = {
    "COFFER_ENV": (str, "development"),
    "DATABASE_URL": (str, None),
    "REDIS_URL": (str, None),
    "COFFER_SECRET_KEY": (str, None),
    # The instance folder (an absolute path): the development secret key and database, the
    # signing keys and the rate-limit counters. Unset: Flask's, `instance/` beside `api/`.
    "COFFER_INSTANCE_PATH": (str, None),
    "COFFER_CORS_ORIGINS": (list, "*"),
    "COFFER_ACCESS_TOKEN_TTL": (int, 900),
    "COFFER_REFRESH_TOKEN_TTL": (int, 2592000),
    "COFFER_REFRESH_REUSE_INTERVAL": (int, 10),
    "COFFER_RATE_LIMIT_AUTH": (str, "10/minute"),
    "COFFER_RATE_LIMIT_API": (str, "600/minute"),
    "COFFER_ADMIN_EMAIL": (str, None),
    "COFFER_ADMIN_PASSWORD": (str, None),
    "COFFER_MAX_BODY_BYTES": (int, 1048576),
    "COFFER_MAX_RECORD_BYTES": (int, 65536),
    "COFFER_JWT_ISSUER": (str, "coffer"),
    "COFFER_JWT_AUDIENCE": (str, "coffer-api"),
    # HS256 signs with COFFER_SECRET_KEY; EdDSA, ES256 and RS256 with the keys of api/signing/.
    "COFFER_JWT_ALGORITHM": (str, "HS256"),
    "COFFER_JWT_KEY_DIR": (str, None),
    "COFFER_JWT_PRIVATE_KEYS": (str, None),
    "COFFER_PASSWORD_MIN_LENGTH": (int, 12),
    # argon2id cost: the smallest-memory of OWASP's equivalent settings (m=7 MiB, t=5, p=1).
    # Every worker allocates the memory cost on each hash, so it sets their peak memory; on two
    # cores a hash takes ~15 ms at any of OWASP's settings up to 19 MiB (README: Passwords).
    "COFFER_ARGON2_TIME_COST": (int, 5),
    "COFFER_ARGON2_MEMORY_KIB": (int, 7168),
    "COFFER_ARGON2_PARALLELISM": (int, 1),
    "COFFER_TRUSTED_PROXIES": (int, 0),
    "COFFER_LOG_LEVEL": (str, "INFO"),
    # Mail (api/mail): links open COFFER_APP_URL; smtp://, smtps:// or console:// (the log).
    "COFFER_APP_URL": (str, "http://localhost:5173"),
    "COFFER_MAIL_URL": (str, "console://"),
    "COFFER_MAIL_FROM": (str, "Coffer <no-reply@localhost>"),
    "COFFER_MAIL_TEMPLATES": (str, None),  # a folder whose templates win over the built-in ones
    "COFFER_MAIL_RETRY_FOR": (int, 86400),
    # on: every web worker runs a sender thread; off: only `flask mail send` (cron) sends.
    "COFFER_MAIL_SENDER": (bool, "on"),
    # Account e-mail (api/account_email.py): how long a link + code lives, in seconds; whether
    # log-in needs a verified address; mails per target address.
    "COFFER_VERIFY_TOKEN_TTL": (int, 86400),
    "COFFER_RESET_TOKEN_TTL": (int, 3600),
    "COFFER_REQUIRE_VERIFIED_EMAIL": (bool, "false"),  # as the environment spells it
    "COFFER_RATE_LIMIT_MAIL": (str, "5/hour"),
    # Change feed (api/feed/): seconds of change log kept for resuming; open streams per
    # instance, all workers together.
    "COFFER_CHANGES_RETENTION": (int, 86400),
    "COFFER_MAX_STREAMS": (int, 1000),
    # Threads per gthread worker for ordinary requests (gunicorn.conf.py): each keeps a database
    # connection from request to request, and the pool is sized for them (api/database/kept.py).
    "COFFER_THREADS": (int, 2),
}


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _convert(name: str, kind: type, raw: str) -> object:
    if kind is bool:
        if raw.lower() not in _TRUE | _FALSE:
            raise RuntimeError(f"{name} must be true or false, got {raw!r}")
        return raw.lower() in _TRUE
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise RuntimeError(f"{name} must be an integer, got {raw!r}") from None
    if kind is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def from_env(environ: Mapping[str, str] = os.environ) -> dict[str, object]:
    """Read every setting; an empty variable counts as unset."""
    config: dict[str, object] = {}
    for name, (kind, default) in SETTINGS.items():
        raw = environ.get(name, "").strip()
        if raw:
            config[name] = _convert(name, kind, raw)
        elif isinstance(default, str) and kind is not str:
            config[name] = _convert(name, kind, default)
        else:
            config[name] = default
    return config
