"""What a new password may be, under NIST SP 800-63B: long enough, not too long, not the
account's own address, not a common password. The request schemas check a new password with
it; api/passwords.py hashes and verifies."""

from importlib import resources as package_files

from flask import current_app

from api.email_address import InvalidEmail, normalise_email

MAX_PASSWORD_LENGTH = 256


def _load_common_passwords() -> str:
    """The list as one string, each password between two newlines: 0.24 MB, where a frozenset
    of its 30,000 strings held 4.4 MB in every worker. A look-up scans it (tens of µs), on
    the routes that set a password, which hash it too (milliseconds)."""
    text = package_files.files("api").joinpath("data/common-passwords.txt").read_text("utf-8")
    lines = (line for line in text.splitlines() if line and not line.startswith("#"))
    return "\n" + "\n".join(lines) + "\n"


_COMMON_PASSWORDS = _load_common_passwords()


def is_common(password: str) -> bool:
    """Whether `password`, in lower case, is one of the list's (a whole line of it)."""
    candidate = password.lower()
    return "\n" not in candidate and f"\n{candidate}\n" in _COMMON_PASSWORDS


def password_problems(password: str, email: str | None) -> list[str]:
    """What is wrong with a new password under NIST SP 800-63B; empty when it is acceptable."""
    minimum = current_app.config["COFFER_PASSWORD_MIN_LENGTH"]
    if len(password) < minimum:
        return [f"Must be at least {minimum} characters long."]
    if len(password) > MAX_PASSWORD_LENGTH:
        return [f"Must be at most {MAX_PASSWORD_LENGTH} characters long."]
    if email and _is_the_email(password, email):
        return ["Must not be the email address."]
    if is_common(password):
        return ["Is too common; choose a less predictable password."]
    return []


def _is_the_email(password: str, email: str) -> bool:
    """Whether the password is the address in another spelling (case, spaces, full-width)."""
    try:
        return normalise_email(password) == normalise_email(email)
    except InvalidEmail:  # a format character: no address reads like that
        return False
