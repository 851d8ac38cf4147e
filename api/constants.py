"""The names Coffer's rules are spelled in: roles, policies, scopes, page sizes.

A leaf module: the models, the services and the request schemas all read these from here,
so that a schema validates against the very tuple a database constraint checks.
"""

ROLES = ("user", "service", "admin")
# What a link token proves (api/link_tokens.py).
LINK_PURPOSES = ("verify_email", "reset_password", "change_email")
# Who reads a collection's records, who creates them (api/visibility.py, api/sharing.py).
READ_POLICIES = ("owner", "users", "public")
CREATE_POLICIES = ("users", "admins")
GRANT_ACCESS = ("read", "write")
# Whom a grant names, in a path: `user:<id>` or `group:<id>`.
GRANTEE_PATTERN = "^(user|group):[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
# What a change to a record was (api/changes.py).
CHANGE_KINDS = ("created", "updated", "deleted")
# Which records a list or a change feed covers (api/visibility.py).
SCOPES = ("own", "shared", "all")
# Page sizes of every list (api/pagination.py).
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# The security events Coffer records (api/events.py), the spec's enum of their types.
EVENT_TYPES = (
    "user_registered",
    "session_created",
    "login_failed",
    "session_refreshed",
    "refresh_reuse_detected",
    "session_revoked",
    "password_changed",
    "email_changed",
    "user_updated",
    "user_deactivated",
    "user_deleted",
    "email_verification_sent",
    "email_verified",
    "email_change_requested",
    "password_reset_requested",
    "password_reset_completed",
    "mfa_enabled",
    "mfa_disabled",
    "mfa_failed",
    "recovery_code_used",
    "recovery_codes_regenerated",
    "record_shared",
    "record_unshared",
)
# The algorithms a JWT may be signed with (api/signing): one shared secret or a key pair.
HS256 = "HS256"
ASYMMETRIC = ("EdDSA", "ES256", "RS256")
