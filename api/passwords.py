"""Passwords: the NIST SP 800-63B policy and argon2id hashing."""

import secrets
from importlib import resources as package_files

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app
from marshmallow import ValidationError

from api import ratelimit
from api.email_address import InvalidEmail, normalise_email
from api.models import User

MAX_PASSWORD_LENGTH = 256


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
