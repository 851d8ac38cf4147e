"""The page envelope of every list, a schema per item schema, with its `Link` header."""

from urllib.parse import urlencode

from flask import request
from marshmallow import Schema, fields

from api.http.queries import per_query_string

_ENVELOPES: dict[type[Schema], Schema] = {}


def page_schema(item: Schema) -> Schema:
    """The envelope of a page of `item`s, `{"items": […], "next_cursor"}`: one schema per item
    schema, named Page_<Item> in the spec."""
    envelope = _ENVELOPES.get(type(item))
    if envelope is None:
        name = type(item).__name__.removesuffix("Schema")
        envelope_class = Schema.from_dict(
            {
                "items": fields.List(fields.Nested(item), required=True),
                "next_cursor": fields.String(required=True, allow_none=True),
            },
            name=f"Page_{name}",
        )
        envelope = _ENVELOPES[type(item)] = envelope_class()
    return envelope


def next_link(next_cursor: str | None) -> dict[str, str]:
    """A `Link: rel="next"` header when there is a next page.

    The link is a relative reference (RFC 8288 resolves it against the request's URL), so
    that a forged `Host` header never reaches a response.
    """
    if not next_cursor:
        return {}
    cursor = urlencode((("cursor", next_cursor),))
    return {"Link": f'<{_before_cursor(request.path)}{cursor}>; rel="next"'}


@per_query_string
def _before_cursor(path: str) -> str:
    """The next page's link up to its cursor: the path and every query parameter but the
    cursor, encoded again, ready for `cursor=…` (the same for every page of a listing)."""
    query = urlencode([(k, v) for k, v in request.args.items(multi=True) if k != "cursor"])
    return f"{path}?{query}&" if query else f"{path}?"
