"""Domain errors: what the core raises when a request cannot be done. They know no HTTP; the
HTTP layer (api/http/problems.py) maps each kind to its status and problem+json body."""


class CofferError(Exception):
    """A failure that the caller can act on, with a sentence that says what went wrong.

    `problem_type` is the RFC 9457 `type` of its body: `about:blank` (the status says it all)
    unless a kind of error needs telling apart from others of its status.
    """

    problem_type = "about:blank"
    members: dict | None = None  # extension members of the problem body (RFC 9457 §3.2)

    def __init__(self, detail: str, *, errors: dict | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class InvalidRequest(CofferError):
    """A malformed parameter: an unknown filter operator, a tampered cursor, a bad name."""


class Unauthenticated(CofferError):
    """No credentials, or credentials that prove nothing (invalid, expired, revoked, wrong).

    `reason` is the RFC 6750 error code a challenge carries: `invalid_token` by default,
    `invalid_request` for a request that sends a token the wrong way, None when no token
    was sent at all or the failure is not about a token (wrong password).
    """

    def __init__(self, detail: str, *, reason: str | None = "invalid_token") -> None:
        super().__init__(detail)
        self.reason = reason


class MfaRequired(Unauthenticated):
    """The password was right, and the account wants its second factor: the problem carries
    the single-use `mfa_token` of the second step and the `methods` it accepts."""

    problem_type = "urn:coffer:problem:mfa-required"

    def __init__(self, detail: str, *, mfa_token: str, methods: list[str]) -> None:
        super().__init__(detail, reason=None)
        self.members = {"mfa_token": mfa_token, "methods": methods}


class WrongMfaCode(Unauthenticated):
    """A wrong code at the second log-in step; `attempts_left` before the mfa_token dies."""

    def __init__(self, detail: str, *, attempts_left: int) -> None:
        super().__init__(detail, reason=None)
        self.members = {"attempts_left": attempts_left}


class Forbidden(CofferError):
    """Authenticated, but the caller's role or access does not allow this."""


class EmailNotVerified(Forbidden):
    """The password was right, but COFFER_REQUIRE_VERIFIED_EMAIL wants a verified address."""

    problem_type = "urn:coffer:problem:email-not-verified"


class NotFound(CofferError):
    """No such thing, or one that belongs to someone else (never told apart)."""


class Conflict(CofferError):
    """The request conflicts with the current state (a taken address, a contended write)."""


class PreconditionFailed(CofferError):
    """If-Match names a version that is no longer the current one."""


class RateLimited(CofferError):
    """A rate limit is spent; `retry_after` seconds until there is room again."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(CofferError):
    """The service cannot take this request now (a capacity is spent); `retry_after` seconds
    until it may."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
