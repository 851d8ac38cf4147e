"""The change feed over HTTP: Server-Sent Events streams of record changes, and the tickets
that let a browser's EventSource open one (API.md: Change feed). The streams are api/feed/'s;
this module maps them to routes."""

from flask import g, request
from flask_restful import Resource
from werkzeug.datastructures import MultiDict

from api import feed, policies, query, stream_tickets
from api.http.auth import authenticate, authenticate_stream, authenticate_stream_or_anonymous
from api.http.operation import arguments, event_stream, operation, other_responses, response
from resources.data import FILTERS_PARAMETER, data_route
from schemas.changes import (
    change_event,
    changes_query,
    collection_changes_query,
    stream_ticket_public,
)
from schemas.data import no_query

_STREAM = {
    401: "No valid token, or a ticket that is unknown, spent or expired.",
    503: "The instance serves COFFER_MAX_STREAMS streams already (Retry-After).",
}


def _last_event_id(args: dict) -> str | None:
    """EventSource sends Last-Event-ID by itself when it reconnects; a fresh EventSource (a
    new ticket) passes it as ?last_event_id=."""
    return request.headers.get("Last-Event-ID", args["last_event_id"])


class CollectionChanges(Resource):
    @authenticate_stream_or_anonymous
    @data_route
    @operation("watchCollection")
    @arguments(collection_changes_query, parameters=(FILTERS_PARAMETER,))
    @event_stream(change_event)
    @other_responses({**_STREAM, 403: "owner_id from a caller who is no admin."})
    def get(self, args, collection):
        """Stream the changes of a collection's records that the caller may read."""
        policies.require_reader(g.caller, collection)  # no token: public collections only
        return feed.current().open(
            g.caller,
            scope=args["scope"],
            collections=(collection,),
            listing=query.parse(request.args, sort=None),
            last_event_id=_last_event_id(args),
        )


class Changes(Resource):
    @authenticate_stream
    @operation("watchCollections")
    @arguments(changes_query)
    @event_stream(change_event)
    @other_responses(_STREAM)
    def get(self, args):
        """Stream the changes of several collections (at most 20) in one connection."""
        return feed.current().open(
            g.caller,
            scope=args["scope"],
            collections=args["collections"],
            listing=query.parse(MultiDict(), sort=None),
            last_event_id=_last_event_id(args),
        )


class StreamTickets(Resource):
    @authenticate
    @operation("createStreamTicket")
    @arguments(no_query)
    @response(stream_ticket_public, 201)
    def post(self):
        """A single-use ticket (30 s) that opens one stream: `EventSource(url + "?ticket=…")`."""
        # No Idempotency-Key: a replay would hand out a spent ticket, and the replay store
        # would keep the ticket in clear.
        ticket = stream_tickets.issue(g.caller)
        return {"ticket": ticket, "expires_in": stream_tickets.TICKET_TTL}
