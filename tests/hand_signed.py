"""Access tokens signed (or put together) by a test, for checks of what Coffer accepts and
refuses."""

import base64
import json
import time
import uuid

import jwt


def claims_for(app, account=None, **overrides) -> dict:
    """A complete, valid claim set for `account`'s session (without one, for a user and session
    that need not exist), with some claims replaced."""
    now = int(time.time())
    claims = {
        "iss": app.config["COFFER_JWT_ISSUER"],
        "aud": app.config["COFFER_JWT_AUDIENCE"],
        "sub": account.id if account else str(uuid.uuid4()),
        "sid": account.session_id if account else str(uuid.uuid4()),
        "role": "user",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def sign(app, claims: dict, *, key: str | None = None, algorithm="HS256", typ="at+jwt") -> str:
    return jwt.encode(
        claims,
        key or app.config["COFFER_SECRET_KEY"],
        algorithm=algorithm,
        headers={"typ": typ},
    )


def b64(data: bytes) -> str:
    """base64url without padding, as JWTs encode their parts."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64_json(value: dict) -> str:
    """A JWT header or payload part, for tokens put together by hand."""
    return b64(json.dumps(value, separators=(",", ":")).encode())
