"""Security events: the own account's, and any user's for admins."""

from flask import g
from flask_restful import Resource

from api import events
from api.http.auth import authenticate, require_role
from api.http.operation import arguments, operation, other_responses, paginated
from schemas.common import page_query
from schemas.events import security_event


class MyEvents(Resource):
    @authenticate
    @operation("listMyEvents")
    @arguments(page_query)
    @paginated(security_event)
    def get(self, query):
        """Own security events, newest first."""
        return events.events_page(g.caller.id, limit=query["limit"], cursor=query["cursor"])


class UserEvents(Resource):
    @authenticate
    @require_role("admin")
    @operation("listUserEvents")
    @arguments(page_query)
    @paginated(security_event)
    @other_responses({404: "No such user, and none ever had events under this id."})
    def get(self, query, user_id):
        """A user's security events (admin); kept after the user is deleted."""
        page = {"limit": query["limit"], "cursor": query["cursor"]}
        return events.events_page(user_id, of_any_user=True, **page)
