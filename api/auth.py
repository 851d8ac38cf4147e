"""Security primitives: password hashing and policy, access tokens, refresh tokens, and the
decorators that authenticate a request and check its role."""

import base64
import functools
import hashlib
import hmac
import math
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources as package_files
from types import MappingProxyType

import jwt
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app, g, request

from api import database, ratelimit, signing
from api.email_address import InvalidEmail, normalise_email
from api.errors import Problem
from api.models import Session, User, utcnow

ACCESS_TOKEN_TYPE = "at+jwt"  # RFC 9068: tells access tokens apart from any other JWT
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "role", "iat", "nbf", "exp", "jti"]
STRING_CLAIMS = ("sub", "sid", "role", "jti")  # `iss` and `aud` are PyJWT's to check
TIME_CLAIMS = ("iat", "nbf", "exp")
CLOCK_LEEWAY = 30  # seconds of clock skew tolerated on iat/nbf/exp
VERIFIED_TOKENS = 1024  # access tokens whose verification each worker remembers
MAX_PASSWORD_LENGTH = 256
# Sessions are touched at most this often; `last_used_at` is informational.
LAST_USED_RESOLUTION = timedelta(minutes=1)


# --- passwords ------------------------------------------------------------------------------


def _load_common_passwords() -> frozenset[str]:
    text = package_files.files("api").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


COMMON_PASSWORDS = _load_common_passwords()


def password_problems(password: str, email: str | None) -> list[str]:
    """What is wrong with a new password under NIST SP 800-63B; empty when it is acceptable."""
    minimum = current_app.config["COFFER_PASSWORD_MIN_LENGTH"]
    if len(password) < minimum:
        return [f"Must be at least {minimum} characters long."]
    if len(password) > MAX_PASSWORD_LENGTH:
        return [f"Must be at most {MAX_PASSWORD_LENGTH} characters long."]
    if email and _is_the_email(password, email):
        return ["Must not be the email address."]
    if password.lower() in COMMON_PASSWORDS:
        return ["Is too common; choose a less predictable password."]
    return []


def _is_the_email(password: str, email: str) -> bool:
    """Whether the password is the address in another spelling (case, spaces, full-width)."""
    try:
        return normalise_email(password) == normalise_email(email)
    except InvalidEmail:  # a format character: no address reads like that
        return False


def hasher() -> PasswordHasher:
    return current_app.extensions["coffer_hasher"]


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(user: User | None, password: str) -> bool:
    """Check a password in constant work: an unknown user costs the same as a wrong password."""
    stored = user.password_hash if user else current_app.extensions["coffer_dummy_hash"]
    try:
        hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
    if user is None:
        return False
    if hasher().check_needs_rehash(stored):
        user.password_hash = hash_password(password)
    return True


# --- access tokens --------------------------------------------------------------------------


def issue_access_token(user: User, session: Session) -> tuple[str, int]:
    config = current_app.config
    ttl = config["COFFER_ACCESS_TOKEN_TTL"]
    now = int(datetime.now().timestamp())
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
    now = time.time()
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


def _is_numeric_date(value: object) -> bool:
    """RFC 7519's NumericDate: a JSON number of seconds (bool is an int to Python, not here)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


# --- refresh tokens -------------------------------------------------------------------------


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def child_refresh_token(parent: str) -> str:
    """The token that rotation hands out for `parent`: derived, so a replay can re-send it
    without Coffer ever storing a refresh token in clear."""
    key = current_app.extensions["coffer_refresh_key"]
    digest = hmac.new(key, parent.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# --- request authentication -----------------------------------------------------------------


def unauthorized(description: str, *, error: str | None = "invalid_token") -> Problem:
    challenge = 'Bearer realm="coffer"'
    if error:
        challenge += f', error="{error}", error_description="{description}"'
    return Problem(401, description, headers={"WWW-Authenticate": challenge})


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


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
    session_id: uuid.UUID


_users, _sessions = User.__table__, Session.__table__
# One primary-key lookup per request: the session (is it live?) joined to its user.
_LIVE_SESSION = (
    sa.select(
        *(_users.c[name] for name in Caller.__slots__ if name != "session_id"),
        _sessions.c.user_id,
        (_sessions.c.revoked_at.is_(None) & (_sessions.c.expires_at > sa.bindparam("now"))).label(
            "live"
        ),
        (_sessions.c.last_used_at < sa.bindparam("stale")).label("stale"),
    )
    .join_from(_sessions, _users, _users.c.id == _sessions.c.user_id)
    .where(_sessions.c.id == sa.bindparam("sid"))
)
_TOUCH = (
    sa.update(_sessions)
    .where(_sessions.c.id == sa.bindparam("sid"))
    .values(last_used_at=sa.bindparam("now"))
)


def _live_caller(claims: Mapping, *, touch: bool) -> tuple[Caller | None, str | None]:
    """The caller of verified claims, or None and why its session is not live; `touch`
    records the use of the session (at most once a LAST_USED_RESOLUTION)."""
    session_id, now = uuid.UUID(claims["sid"]), utcnow()
    conn = database.connection()
    params = {"sid": session_id, "now": now, "stale": now - LAST_USED_RESOLUTION}
    row = conn.execute(_LIVE_SESSION, params).first()
    if row is None or not row.live:
        return None, "The session has ended."
    if str(row.user_id) != claims["sub"] or not row.is_active:
        return None, "The token does not belong to an active user."
    if touch and row.stale:
        conn.execute(_TOUCH, {"sid": session_id, "now": now})
        conn.commit()
    return Caller(*row[: len(Caller.__slots__) - 1], session_id=session_id), None


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
        "token_type": "Bearer",
    }


def authenticate(view):
    """Require a valid access token of a live session; sets `g.caller`."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if "access_token" in request.args:
            raise unauthorized(
                "Tokens are accepted only in the Authorization header.", error="invalid_request"
            )
        token = _bearer_token()
        if token is None:
            raise unauthorized("Authentication is required.", error=None)
        try:
            claims = decode_access_token(token)
        except (jwt.PyJWTError, ValueError):
            raise unauthorized("The access token is invalid or expired.") from None
        caller, refusal = _live_caller(claims, touch=True)
        if refusal:
            raise unauthorized(refusal)
        # Counted only once the session is known to be live: a revoked or stolen token must
        # not spend its user's limit and lock the user out (API.md: Sessions).
        ratelimit.enforce_api_limit(claims["sub"])
        g.caller = caller
        return view(*args, **kwargs)

    return wrapper


def require_role(*roles: str):
    """Allow only these roles (checked against the database, never the token alone)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if g.caller.role not in roles:
                raise Problem(403, "Your role does not allow this operation.")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def init_app(app: Flask) -> None:
    config = app.config
    app.extensions["coffer_hasher"] = PasswordHasher(
        time_cost=config["COFFER_ARGON2_TIME_COST"],
        memory_cost=config["COFFER_ARGON2_MEMORY_KIB"],
        parallelism=config["COFFER_ARGON2_PARALLELISM"],
    )
    # Verified against when the email is unknown, so that both paths cost one argon2 check.
    app.extensions["coffer_dummy_hash"] = app.extensions["coffer_hasher"].hash(
        secrets.token_urlsafe(16)
    )
    app.extensions["coffer_refresh_key"] = hmac.new(
        config["COFFER_SECRET_KEY"].encode(), b"coffer refresh-token v1", hashlib.sha256
    ).digest()
    signing.init_app(app)
    # Per app (its keys, issuer and audience); failures are never cached.
    app.extensions["coffer_verified_tokens"] = functools.lru_cache(maxsize=VERIFIED_TOKENS)(
        _verify_access_token
    )
