"""Tokens: access tokens (JWTs) issued and verified, opaque refresh tokens, and the live
caller behind an access token (its session is read on every use: revocation is immediate)."""

import functools
import hashlib
import hmac
import math
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

import jwt
import sqlalchemy as sa
from flask import Flask, current_app

from api import clock, database, signing
from api.errors import Unauthenticated
from api.keys import b64url_encode, derive_key
from api.models import Session, User, utcnow

ACCESS_TOKEN_TYPE = "at+jwt"  # RFC 9068: tells access tokens apart from any other JWT
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "role", "iat", "nbf", "exp", "jti"]
STRING_CLAIMS = ("sub", "sid", "role", "jti")  # `iss` and `aud` are PyJWT's to check
TIME_CLAIMS = ("iat", "nbf", "exp")
CLOCK_LEEWAY = 30  # seconds of clock skew tolerated on iat/nbf/exp
VERIFIED_TOKENS = 1024  # access tokens whose verification each worker remembers
# Sessions are touched at most this often; `last_used_at` is informational.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def issue_access_token(user: User, session: Session) -> tuple[str, int]:
    config = current_app.config
    ttl = config["COFFER_ACCESS_TOKEN_TTL"]
    now = int(clock.timestamp())
    claims = {
        "iss": config["COFFER_JWT_ISSUER"],
        "aud": config["COFFER_JWT_AUDIENCE"],
        "sub": str(user.id),
        "sid": str(session.id),
        "role": user.role,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
        "amr": session.amr.split(),  # RFC 8176: how the session's log-in was proved
    }
    ring = signing.keyring()
    headers = {"typ": ACCESS_TOKEN_TYPE}
    if ring.signing_kid:
        headers["kid"] = ring.signing_kid
    token = jwt.encode(claims, ring.signing_key, algorithm=ring.algorithm, headers=headers)
    return token, ttl


def decode_access_token(token: str) -> Mapping:
    """The verified claims of an access token; raises jwt.PyJWTError or ValueError for any bad
    token. The claims are read-only: they may be shared with other requests.

    Each worker verifies a token's signature, issuer, audience, type and claims once and keeps
    the result (tokens are immutable, and the keys change only with a restart); the time claims
    are checked again on every use. Revocation is not a property of the token: `authenticate`
    asks the database on every request.
    """
    claims = current_app.extensions["coffer_verified_tokens"](token)
    now = clock.timestamp()
    if claims["exp"] <= now - CLOCK_LEEWAY:
        raise jwt.ExpiredSignatureError("the token has expired")
    if claims["nbf"] > now + CLOCK_LEEWAY or claims["iat"] > now + CLOCK_LEEWAY:
        raise jwt.ImmatureSignatureError("the token is not yet valid")
    return claims


def _verify_access_token(token: str) -> Mapping:
    config = current_app.config
    ring = signing.keyring()
    decoded = jwt.decode_complete(
        token,
        ring.verification_key(token),
        algorithms=[ring.algorithm],  # pinned: the header's `alg` is never trusted
        audience=config["COFFER_JWT_AUDIENCE"],
        issuer=config["COFFER_JWT_ISSUER"],
        leeway=CLOCK_LEEWAY,
        options={"require": REQUIRED_CLAIMS},
    )
    if decoded["header"].get("typ") != ACCESS_TOKEN_TYPE:
        raise jwt.InvalidTokenError("not an access token")
    claims = decoded["payload"]
    _check_claim_types(claims)
    for name in ("sub", "sid"):
        uuid.UUID(claims[name])  # ValueError for a malformed id
    return MappingProxyType(claims)


def _check_claim_types(claims: Mapping) -> None:
    """Refuse claims of the wrong JSON type, which the code after this would trip over.

    PyJWT checks some types but not all: it reads `exp`, `nbf` and `iat` through int(), so
    "9999999999" or `true` pass, and it leaves `sid` and `role` alone.
    """
    for name in STRING_CLAIMS:
        if not isinstance(claims[name], str):
            raise jwt.InvalidTokenError(f"the {name} claim must be a string")
    for name in TIME_CLAIMS:
        if not _is_numeric_date(claims[name]):
            raise jwt.InvalidTokenError(f"the {name} claim must be a number")
    amr = claims.get("amr", [])
    if not isinstance(amr, list) or not all(isinstance(method, str) for method in amr):
        raise jwt.InvalidTokenError("the amr claim must be a list of strings")


def _is_numeric_date(value: object) -> bool:
    """RFC 7519's NumericDate: a JSON number of seconds (bool is an int to Python, not here)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def child_refresh_token(parent: str) -> str:
    """The token that rotation hands out for `parent`: derived, so a replay can re-send it
    without Coffer ever storing a refresh token in clear."""
    key = current_app.extensions["coffer_refresh_key"]
    return b64url_encode(hmac.new(key, parent.encode(), hashlib.sha256).digest())


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Caller:
    """The user behind a request's live session, as the auth check read it.

    Not an ORM object: reading it costs one Core query. Routes that change the user or the
    session load those (`accounts.get_user(g.caller.id)`).
    """

    id: uuid.UUID
    email: str
    name: str | None
    role: str
    is_active: bool
    created_at: datetime
    updated_at: datetime
    email_verified: bool
    pending_email: str | None
    mfa_enabled: bool
    session_id: uuid.UUID


_users, _sessions = User.__table__, Session.__table__
# One primary-key lookup per request: the session (is it live?) joined to its user.
_LIVE_SESSION = database.Statement(
    sa.select(
        *(_users.c[name] for name in Caller.__slots__ if name != "session_id"),
        (_sessions.c.revoked_at.is_(None) & (_sessions.c.expires_at > sa.bindparam("now"))).label(
            "live"
        ),
        (_sessions.c.last_used_at < sa.bindparam("stale")).label("stale"),
    )
    .join_from(_sessions, _users, _users.c.id == _sessions.c.user_id)
    .where(_sessions.c.id == sa.bindparam("sid"))
)
_CALLER_COLUMNS = Caller.__slots__[:-1]  # the session's id is the token's
_TOUCH = (
    sa.update(_sessions)
    .where(_sessions.c.id == sa.bindparam("sid"))
    .values(last_used_at=sa.bindparam("now"))
)


def _live_caller(claims: Mapping, *, touch: bool) -> tuple[Caller | None, str | None]:
    """The caller of verified claims, or None and why its session is not live; `touch`
    records the use of the session (at most once a LAST_USED_RESOLUTION)."""
    session_id, now = uuid.UUID(claims["sid"]), utcnow()
    params = {"sid": session_id, "now": now, "stale": now - LAST_USED_RESOLUTION}
    row = _LIVE_SESSION.first(params)
    if row is None or not row["live"]:
        return None, "The session has ended."
    if (claims["sub"] is not None and str(row["id"]) != claims["sub"]) or not row["is_active"]:
        return None, "The token does not belong to an active user."
    if touch and row["stale"]:
        conn = database.connection()
        conn.execute(_TOUCH, {"sid": session_id, "now": now})
        conn.commit()
    return Caller(*(row[name] for name in _CALLER_COLUMNS), session_id=session_id), None


def live_caller(token: str) -> Caller:
    """The caller behind an access token of a live session; Unauthenticated for any other
    token. Records the use of the session (at most once a LAST_USED_RESOLUTION)."""
    try:
        claims = decode_access_token(token)
    except (jwt.PyJWTError, ValueError):
        raise Unauthenticated("The access token is invalid or expired.") from None
    caller, refusal = _live_caller(claims, touch=True)
    if refusal:
        raise Unauthenticated(refusal)
    return caller


def session_caller(session_id: uuid.UUID) -> Caller | None:
    """The caller of a live session of an active user (a stream ticket's), or None."""
    caller, _ = _live_caller({"sid": str(session_id), "sub": None}, touch=False)
    return caller


def live_sessions(conn: sa.Connection, session_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these sessions are live, of active users: what keeps a change stream open."""
    live: set[uuid.UUID] = set()
    for start in range(0, len(session_ids), 500):
        stmt = (
            sa.select(_sessions.c.id)
            .join_from(_sessions, _users, _users.c.id == _sessions.c.user_id)
            .where(
                _sessions.c.id.in_(session_ids[start : start + 500]),
                _sessions.c.revoked_at.is_(None),
                _sessions.c.expires_at > utcnow(),
                _users.c.is_active,
            )
        )
        live.update(conn.scalars(stmt))
    return live


def introspect_token(token: str) -> dict:
    """RFC 7662: the claims of a live access token, or just `active: false` for any other."""
    try:
        claims = decode_access_token(token)
    except (jwt.PyJWTError, ValueError):
        return {"active": False}
    caller, _ = _live_caller(claims, touch=False)  # the holder did not use it
    if caller is None:
        return {"active": False}
    return {
        "active": True,
        **{name: claims[name] for name in REQUIRED_CLAIMS},
        "amr": claims.get("amr", ["pwd"]),  # tokens from before MFA existed were passwords'
        "token_type": "Bearer",
    }


def init_app(app: Flask) -> None:
    app.extensions["coffer_refresh_key"] = derive_key(
        app.config["COFFER_SECRET_KEY"], "coffer refresh-token v1"
    )
    signing.init_app(app)
    # Per app (its keys, issuer and audience); failures are never cached.
    app.extensions["coffer_verified_tokens"] = functools.lru_cache(maxsize=VERIFIED_TOKENS)(
        _verify_access_token
    )
