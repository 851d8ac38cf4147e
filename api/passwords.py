"""Passwords: argon2id hashing and checking (the policy on new ones: api/password_rules.py)."""

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app
from marshmallow import ValidationError

from api import ratelimit
from api.models import User


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


def require_password(user: User, password: str | None, field: str) -> None:
    """A confirmation of the user's own password; wrong or missing is 422 naming the field.

    Every attempt, right or wrong, counts under the account's log-in limit before the password
    is checked (429 once it is spent): else a stolen access token would be an unlimited oracle
    for the password, around the limit that log-in puts on guessing it.
    """
    if not password:
        raise ValidationError({field: ["The password is incorrect."]})
    ratelimit.enforce_account_limit(ratelimit.LOG_IN, user.email)
    if not verify_password(user, password):
        raise ValidationError({field: ["The password is incorrect."]})


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
