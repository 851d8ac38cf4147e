"""The page envelope of every list, with its `Link` header."""

from urllib.parse import urlencode

from flask import request


def page(items: list, next_cursor: str | None) -> tuple[dict, int, dict]:
    """The list envelope, with a `Link: rel="next"` header when there is a next page.

    The link is a relative reference (RFC 8288 resolves it against the request's URL), so
    that a forged `Host` header never reaches a response.
    """
    headers = {}
    if next_cursor:
        query = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
        query.append(("cursor", next_cursor))
        headers["Link"] = f'<{request.path}?{urlencode(query)}>; rel="next"'
    return {"items": items, "next_cursor": next_cursor}, 200, headers
