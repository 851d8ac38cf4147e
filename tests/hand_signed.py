"""Access tokens signed by a test, for checks of what Coffer accepts and refuses."""

import time
import uuid

import jwt


def claims_for(app, account, **overrides) -> dict:
    """A complete, valid claim set for `account`'s session, with some claims replaced."""
    now = int(time.time())
    claims = {
        "iss": app.config["COFFER_JWT_ISSUER"],
        "aud": app.config["COFFER_JWT_AUDIENCE"],
        "sub": account.id,
        "sid": account.session_id,
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
