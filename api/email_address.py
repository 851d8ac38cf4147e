"""E-mail addresses as Coffer stores and compares them: one normalisation for every path
(registration, e-mail changes, log-in and its rate limit, the admin list's filter, the first
admin), so that two spellings of one address are always one account."""

import unicodedata


class InvalidEmail(ValueError):
    """An address that would look like another one while being a different string."""


def normalise_email(value: str) -> str:
    """Trimmed, Unicode NFKC, lower-cased (API.md: Users).

    NFKC folds compatibility look-alikes (full-width `ａdmin`, ligatures, superscripts) into
    their plain form. Format characters (Unicode category Cf: zero-width spaces and joiners,
    word joiners, byte-order marks, direction marks) survive it and are invisible, so an
    address carrying one would be a twin of another that nobody can tell apart: refused.
    """
    email = unicodedata.normalize("NFKC", value).strip().lower()
    if any(unicodedata.category(char) == "Cf" for char in email):
        raise InvalidEmail("Must not contain invisible formatting characters.")
    return email
