"""Groups and their members over HTTP: what records are shared with together."""

import uuid

from flask import g
from flask_restful import Resource

from api import groups
from api.http.auth import authenticate
from api.http.idempotency import idempotent
from api.http.operation import (
    arguments,
    body,
    operation,
    other_responses,
    paginated,
    response,
)
from api.http.web import V1
from schemas.common import page_query
from schemas.data import no_query
from schemas.sharing import group_public, group_write, member_public

_NO_GROUP = {404: "No such group, or one the caller does not belong to."}
_NOT_OWNER = {403: "A member who is not the group's owner (nor an admin)."}


_GROUP = {"group_id": "$response.body#/id"}
_GROUP_LINKS = dict.fromkeys(("getGroup", "updateGroup", "deleteGroup", "listGroupMembers"), _GROUP)


class GroupList(Resource):
    @authenticate
    @operation("createGroup", links=_GROUP_LINKS)
    @idempotent
    @arguments(no_query)
    @body(group_write)
    @response(group_public, 201, headers=("Location",))
    def post(self, new):
        """Create a group; the caller owns it and is its first member."""
        group = groups.create(g.caller, name=new["name"])
        return group, {"Location": f"{V1}/groups/{group.id}"}

    @authenticate
    @operation("listGroups")
    @arguments(page_query)
    @paginated(group_public)
    def get(self, query):
        """The groups the caller owns or belongs to, newest first."""
        return groups.page_of_mine(g.caller, limit=query["limit"], cursor=query["cursor"])


class GroupItem(Resource):
    @authenticate
    @operation("getGroup")
    @arguments(no_query)
    @response(group_public)
    @other_responses(_NO_GROUP)
    def get(self, group_id: uuid.UUID):
        """One group the caller belongs to."""
        return groups.get(g.caller, group_id)

    @authenticate
    @operation("updateGroup")
    @arguments(no_query)
    @body(group_write)
    @response(group_public)
    @other_responses({**_NOT_OWNER, **_NO_GROUP})
    def patch(self, changes, group_id: uuid.UUID):
        """Rename a group (its owner or an admin)."""
        return groups.rename(g.caller, group_id, name=changes["name"])

    @authenticate
    @operation("deleteGroup")
    @arguments(no_query)
    @response(None, 204)
    @other_responses({**_NOT_OWNER, **_NO_GROUP})
    def delete(self, group_id: uuid.UUID):
        """Delete a group and end its grants (its owner or an admin)."""
        groups.delete(g.caller, group_id)


class GroupMembers(Resource):
    @authenticate
    @operation("listGroupMembers")
    @arguments(page_query)
    @paginated(member_public)
    @other_responses(_NO_GROUP)
    def get(self, query, group_id: uuid.UUID):
        """A group's members, the owner among them (members and admins)."""
        page = {"limit": query["limit"], "cursor": query["cursor"]}
        return groups.members_page(g.caller, group_id, **page)


class GroupMember(Resource):
    @authenticate
    @operation("addGroupMember")
    @arguments(no_query)
    @response(None, 204)
    @other_responses({**_NOT_OWNER, **_NO_GROUP, 422: "No such user."})
    def put(self, group_id: uuid.UUID, user_id: uuid.UUID):
        """Add a user to a group (its owner or an admin)."""
        groups.add_member(g.caller, group_id, user_id)

    @authenticate
    @operation("removeGroupMember")
    @arguments(no_query)
    @response(None, 204)
    @other_responses(
        {
            204: "Removed; also when the user was not a member (a repeated removal).",
            403: "Removing another member, as neither the owner nor an admin.",
            409: "The owner cannot leave its own group.",
            **_NO_GROUP,
            422: "No such user.",
        }
    )
    def delete(self, group_id: uuid.UUID, user_id: uuid.UUID):
        """Remove a member; a member may remove itself, the owner anyone."""
        groups.remove_member(g.caller, group_id, user_id)
