"""What openapi.yaml says about each operation, in one table: its summary, body, statuses,
headers and links. api/openapi.py turns it, the marshmallow schemas and Flask's routing table
into the document."""

from dataclasses import dataclass, field

from marshmallow import Schema

from resources.docs import ASSETS
from schemas import common, data, events, sessions, tokens, users


@dataclass(frozen=True)
class Op:
    """One operation: what it takes and every status it can answer."""

    summary: str
    tag: str
    responses: dict[int, str | None]  # status -> response schema name (None: no body)
    body: str | None = None
    body_types: tuple[str, ...] = ("application/json",)
    query: type[Schema] | None = None
    auth: bool = True
    idempotent: bool = False
    limited: bool = False  # has its own per-IP rate limit (log-in, registration, refresh)
    filters: bool = False  # takes the data filter language's query parameters
    conditional: str | None = None  # If-Match / If-None-Match
    links: tuple[str, ...] = ()  # operations that take the id this one creates
    headers: dict[int, tuple[str, ...]] = field(default_factory=dict)
    op_id: str = ""


SCHEMAS: dict[str, type[Schema]] = {
    "UserCreate": users.UserCreate,
    "UserPublic": users.UserPublic,
    "UserSelfUpdate": users.UserSelfUpdate,
    "UserAdminUpdate": users.UserAdminUpdate,
    "PasswordChange": users.PasswordChange,
    "PasswordConfirmation": users.PasswordConfirmation,
    "LoginRequest": sessions.LoginRequest,
    "RefreshRequest": sessions.RefreshRequest,
    "SessionPublic": sessions.SessionPublic,
    "SecurityEvent": events.SecurityEventPublic,
    "RecordWrite": data.RecordWrite,
    "RecordPatch": data.RecordPatch,
    "RecordPublic": data.RecordPublic,
    "CollectionPublic": data.CollectionPublic,
    "IntrospectionRequest": tokens.IntrospectionRequest,
    "Problem": common.ProblemSchema,
}

# Hand-written only where no marshmallow schema exists: envelopes and small literals.
EXTRA_SCHEMAS: dict[str, dict] = {
    "Tokens": {
        "type": "object",
        "required": [
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "refresh_expires_in",
            "session",
            "user",
        ],
        "properties": {
            "access_token": {"type": "string", "description": "JWT, sent as a Bearer token"},
            "token_type": {"type": "string", "const": "Bearer"},
            "expires_in": {"type": "integer", "description": "seconds"},
            "refresh_token": {"type": "string"},
            "refresh_expires_in": {"type": "integer", "description": "seconds"},
            "session": {"$ref": "#/components/schemas/SessionPublic"},
            "user": {"$ref": "#/components/schemas/UserPublic"},
        },
    },
    "Introspection": {
        "type": "object",
        "description": 'RFC 7662; `{"active": false}` alone for a dead or forged token.',
        "required": ["active"],
        "properties": {
            "active": {"type": "boolean"},
            "sub": {"type": "string"},
            "sid": {"type": "string"},
            "role": {"type": "string"},
            "exp": {"type": "integer"},
            "iat": {"type": "integer"},
            "nbf": {"type": "integer"},
            "iss": {"type": "string"},
            "aud": {"type": "string"},
            "jti": {"type": "string"},
            "token_type": {"type": "string"},
        },
    },
    "Jwks": {
        "type": "object",
        "required": ["keys"],
        "properties": {
            "keys": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["kid", "kty", "alg", "use"],
                    "properties": {
                        "kid": {"type": "string"},
                        "kty": {"type": "string"},
                        "alg": {"type": "string"},
                        "use": {"type": "string"},
                    },
                },
            }
        },
    },
    "Status": {
        "type": "object",
        "properties": {"status": {"type": "string"}, "checks": {"type": "object"}},
    },
}

OPERATIONS: dict[tuple[str, str], Op] = {}


def operation(path: str, method: str, op: Op) -> None:
    OPERATIONS[(path, method)] = op


V1 = "/api/v1"
operation(
    "/healthz",
    "get",
    Op("Liveness probe", "operations", {200: "Status"}, auth=False, op_id="liveness"),
)
operation(
    "/readyz",
    "get",
    Op("Readiness probe", "operations", {200: "Status", 503: None}, auth=False, op_id="readiness"),
)
operation(
    f"{V1}/users",
    "post",
    Op(
        "Register a user",
        "users",
        {201: "UserPublic", 400: None, 409: None, 413: None, 415: None, 422: None, 429: None},
        body="UserCreate",
        auth=False,
        idempotent=True,
        limited=True,
        headers={201: ("Location",)},
        op_id="registerUser",
    ),
)
operation(
    f"{V1}/users",
    "get",
    Op(
        "List users (admin)",
        "users",
        {200: "Page_UserPublic", 400: None, 403: None, 422: None},
        query=users.UserListQuery,
        links=("getUser", "updateUser", "deleteUser", "listUserEvents"),
        op_id="listUsers",
    ),
)
operation(f"{V1}/users/me", "get", Op("Own profile", "users", {200: "UserPublic"}, op_id="getMe"))
operation(
    f"{V1}/users/me",
    "patch",
    Op(
        "Change own name or email",
        "users",
        {200: "UserPublic", 400: None, 409: None, 413: None, 415: None, 422: None},
        body="UserSelfUpdate",
        op_id="updateMe",
    ),
)
operation(
    f"{V1}/users/me",
    "delete",
    Op(
        "Delete own account",
        "users",
        {204: None, 400: None, 413: None, 415: None, 422: None},
        body="PasswordConfirmation",
        op_id="deleteMe",
    ),
)
operation(
    f"{V1}/users/me/password",
    "put",
    Op(
        "Change own password; revokes every other session",
        "users",
        {204: None, 400: None, 413: None, 415: None, 422: None},
        body="PasswordChange",
        op_id="changePassword",
    ),
)
operation(
    f"{V1}/users/{{user_id}}",
    "get",
    Op(
        "One user (admin, or the user itself)",
        "users",
        {200: "UserPublic", 404: None},
        op_id="getUser",
    ),
)
operation(
    f"{V1}/users/{{user_id}}",
    "patch",
    Op(
        "Change a user (admin); a new role or deactivation revokes its sessions",
        "users",
        {
            200: "UserPublic",
            400: None,
            403: None,
            404: None,
            409: None,
            413: None,
            415: None,
            422: None,
        },
        body="UserAdminUpdate",
        op_id="updateUser",
    ),
)
operation(
    f"{V1}/users/{{user_id}}",
    "delete",
    Op(
        "Delete a user with its sessions and records (admin)",
        "users",
        {204: None, 403: None, 404: None},
        op_id="deleteUser",
    ),
)
operation(
    f"{V1}/users/me/events",
    "get",
    Op(
        "Own security events, newest first",
        "events",
        {200: "Page_SecurityEvent", 400: None, 422: None},
        query=common.PageQuery,
        op_id="listMyEvents",
    ),
)
operation(
    f"{V1}/users/{{user_id}}/events",
    "get",
    Op(
        "A user's security events (admin)",
        "events",
        {200: "Page_SecurityEvent", 400: None, 403: None, 404: None, 422: None},
        query=common.PageQuery,
        op_id="listUserEvents",
    ),
)
operation(
    "/.well-known/jwks.json",
    "get",
    Op(
        "Public signing keys (empty under HS256)", "tokens", {200: "Jwks"}, auth=False, op_id="jwks"
    ),
)
operation(
    f"{V1}/tokens/introspect",
    "post",
    Op(
        "RFC 7662 token introspection (role service or admin)",
        "tokens",
        {200: "Introspection", 400: None, 403: None, 413: None, 415: None, 422: None},
        body="IntrospectionRequest",
        op_id="introspectToken",
    ),
)
operation(
    f"{V1}/sessions",
    "post",
    Op(
        "Log in",
        "sessions",
        {201: "Tokens", 400: None, 401: None, 413: None, 415: None, 422: None, 429: None},
        body="LoginRequest",
        auth=False,
        limited=True,
        op_id="logIn",
    ),
)
operation(
    f"{V1}/sessions",
    "get",
    Op(
        "Own active sessions, newest first",
        "sessions",
        {200: "Page_SessionPublic", 400: None, 422: None},
        query=common.PageQuery,
        links=("getSession", "revokeSession"),
        op_id="listSessions",
    ),
)
operation(
    f"{V1}/sessions",
    "delete",
    Op(
        "Revoke all own sessions",
        "sessions",
        {204: None, 400: None},
        query=sessions.RevokeAllQuery,
        op_id="revokeAllSessions",
    ),
)
operation(
    f"{V1}/sessions/refresh",
    "post",
    Op(
        "Rotate a refresh token",
        "sessions",
        {200: "Tokens", 400: None, 401: None, 413: None, 415: None, 422: None, 429: None},
        body="RefreshRequest",
        auth=False,
        limited=True,
        op_id="refreshSession",
    ),
)
operation(
    f"{V1}/sessions/current",
    "get",
    Op(
        "The session of the presented token",
        "sessions",
        {200: "SessionPublic"},
        op_id="getCurrentSession",
    ),
)
operation(
    f"{V1}/sessions/current", "delete", Op("Log out", "sessions", {204: None}, op_id="logOut")
)
operation(
    f"{V1}/sessions/{{session_id}}",
    "get",
    Op("One own session", "sessions", {200: "SessionPublic", 404: None}, op_id="getSession"),
)
operation(
    f"{V1}/sessions/{{session_id}}",
    "delete",
    Op("Revoke one own session", "sessions", {204: None, 404: None}, op_id="revokeSession"),
)
operation(
    "/docs",
    "get",
    Op("Interactive API documentation (HTML)", "operations", {200: None}, auth=False, op_id="docs"),
)
operation(
    "/docs/init.js",
    "get",
    Op(
        "The documentation page's script", "operations", {200: None}, auth=False, op_id="docsScript"
    ),
)
operation(
    "/docs/assets/{name}",
    "get",
    Op("A Swagger UI asset", "operations", {200: None, 404: None}, auth=False, op_id="docsAsset"),
)
RECORD = f"{V1}/data/{{collection}}/{{record_id}}"
COLLECTION = f"{V1}/data/{{collection}}"
_WRITE_ERRORS = {400: None, 404: None, 412: None, 413: None, 415: None, 422: None}
operation(
    f"{V1}/data",
    "get",
    Op(
        "Own collections with their record counts",
        "data",
        {200: "Page_CollectionPublic", 400: None, 403: None},
        query=data.OwnerQuery,
        op_id="listCollections",
    ),
)
operation(
    COLLECTION,
    "post",
    Op(
        "Create a record",
        "data",
        {201: "RecordPublic", 400: None, 409: None, 413: None, 415: None, 422: None},
        body="RecordWrite",
        idempotent=True,
        headers={201: ("Location", "ETag")},
        links=("getRecord", "replaceRecord", "patchRecord", "deleteRecord"),
        op_id="createRecord",
    ),
)
operation(
    COLLECTION,
    "get",
    Op(
        "List own records: filters (`data.<path>=<op>.<value>`, `created_at`, `updated_at`), "
        "sort and keyset pagination",
        "data",
        {200: "Page_RecordPublic", 400: None, 403: None, 422: None},
        query=data.RecordListQuery,
        filters=True,
        op_id="listRecords",
    ),
)
operation(
    COLLECTION,
    "delete",
    Op(
        "Delete all own records of the collection",
        "data",
        {204: None, 400: None},
        op_id="deleteCollection",
    ),
)
operation(
    RECORD,
    "get",
    Op(
        "One own record",
        "data",
        {200: "RecordPublic", 304: None, 400: None, 403: None, 404: None},
        query=data.OwnerQuery,
        conditional="If-None-Match",
        headers={200: ("ETag",), 304: ("ETag",)},
        op_id="getRecord",
    ),
)
operation(
    RECORD,
    "put",
    Op(
        "Replace a record's data",
        "data",
        {200: "RecordPublic", **_WRITE_ERRORS},
        body="RecordWrite",
        conditional="If-Match",
        headers={200: ("ETag",)},
        op_id="replaceRecord",
    ),
)
operation(
    RECORD,
    "patch",
    Op(
        "Apply a JSON Merge Patch (RFC 7396) to a record's data",
        "data",
        {200: "RecordPublic", 409: None, **_WRITE_ERRORS},
        body="RecordPatch",
        body_types=("application/json", "application/merge-patch+json"),
        conditional="If-Match",
        headers={200: ("ETag",)},
        op_id="patchRecord",
    ),
)
operation(
    RECORD,
    "delete",
    Op(
        "Delete a record",
        "data",
        {204: None, 400: None, 404: None, 412: None},
        conditional="If-Match",
        op_id="deleteRecord",
    ),
)
operation(
    f"{V1}/openapi.json",
    "get",
    Op("This document as JSON", "operations", {200: None}, auth=False, op_id="openapiJson"),
)
operation(
    f"{V1}/openapi.yaml",
    "get",
    Op("This document as YAML", "operations", {200: None}, auth=False, op_id="openapiYaml"),
)

HEADERS = {
    "X-Request-ID": {
        "description": "The request's id: yours when sane, else generated.",
        "schema": {"type": "string"},
    },
    "Location": {"description": "URL of the created resource.", "schema": {"type": "string"}},
    "Link": {
        "description": 'RFC 8288 `<…>; rel="next"` when there is a next page.',
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "Strong validator of the record's current version.",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    },
    "WWW-Authenticate": {"description": "RFC 6750 Bearer challenge.", "schema": {"type": "string"}},
    "Allow": {"description": "Methods the resource supports.", "schema": {"type": "string"}},
    "X-RateLimit-Limit": {
        "description": "Requests allowed in the current window.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the current window.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Reset": {
        "description": "Unix time at which the window resets.",
        "schema": {"type": "integer"},
    },
}
PROBLEM_HEADERS = {
    401: ("WWW-Authenticate",),
    405: ("Allow",),
    429: ("Retry-After",),
    503: ("Retry-After",),
}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


FILTERS_PARAMETER = {
    "in": "query",
    "name": "filters",
    "description": (
        "PostgREST-style filters, one query parameter each: `data.<path>=<op>.<value>` "
        "(dots go into nested objects), `created_at=<op>.<RFC 3339>`, `updated_at=…`; "
        "operators `eq ne gt gte lt lte in`, e.g. `data.status=eq.open`, "
        "`data.priority=gte.3`, `data.tag=in.(a,b)`. The value is read as JSON when it parses."
    ),
    "required": False,
    "style": "form",
    "explode": True,
    "schema": {
        "type": "object",
        "propertyNames": {
            "pattern": "^(data\\.[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*|created_at|updated_at)$"
        },
        "additionalProperties": {"type": "string", "pattern": "^(eq|ne|gt|gte|lt|lte|in)\\..*$"},
    },
}


_RECORD_LINK = {"collection": "$request.path.collection", "record_id": "$response.body#/id"}
# Users and sessions are linked from the lists that show them to their reader, not from
# registration or log-in: those create an account or session that the caller may not read
# (another user's is 404, API.md), which a stateful run would take for a lost resource.
_USER_LINK = {"user_id": "$response.body#/items/0/id"}
_SESSION_LINK = {"session_id": "$response.body#/items/0/id"}
LINK_PARAMETERS = {
    "getRecord": _RECORD_LINK,
    "replaceRecord": _RECORD_LINK,
    "patchRecord": _RECORD_LINK,
    "deleteRecord": _RECORD_LINK,
    "getUser": _USER_LINK,
    "updateUser": _USER_LINK,
    "deleteUser": _USER_LINK,
    "listUserEvents": _USER_LINK,
    "getSession": _SESSION_LINK,
    "revokeSession": _SESSION_LINK,
}


PATH_PARAMETERS = {
    "user_id": {"type": "string", "format": "uuid"},
    "session_id": {"type": "string", "format": "uuid"},
    "record_id": {"type": "string", "format": "uuid"},
    "collection": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,63}$"},
    "name": {"type": "string", "enum": sorted(ASSETS)},
}
