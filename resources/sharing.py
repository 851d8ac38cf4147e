"""Sharing data over HTTP: collection policies (admins) and the grants of one record."""

import functools
import re

from flask import g
from flask_restful import Resource

from api import grants, policies
from api.errors import InvalidRequest
from api.http.auth import authenticate, require_role
from api.http.operation import (
    arguments,
    body,
    operation,
    other_responses,
    paginated,
    path_parameter,
    response,
)
from resources.data import COLLECTION_PATTERN, data_route, record_uuid
from schemas.common import page_query
from schemas.data import collection_name, no_query
from schemas.sharing import (
    collection_summary,
    grant_public,
    grant_write,
    grantee_field,
    policy_public,
    policy_write,
)

_NAME = re.compile(COLLECTION_PATTERN)
_NO_RECORD = {404: "No such record, or one the caller may not read."}
_NOT_OWNER = {403: "The caller may read the record, but only its owner or an admin manages it."}


def policy_route(view):
    """A collection name in the path that matches COLLECTION_PATTERN (else 400)."""

    @functools.wraps(view)
    def checked(*args, **kwargs):
        if not _NAME.fullmatch(kwargs["name"]):
            raise InvalidRequest(f"A collection name must match {COLLECTION_PATTERN}.")
        return view(*args, **kwargs)

    return path_parameter("name", collection_name)(checked)


class CollectionPolicies(Resource):
    tag = "sharing"

    @authenticate
    @require_role("admin")
    @operation("listCollectionPolicies")
    @arguments(page_query)
    @paginated(collection_summary)
    def get(self, query):
        """Every collection with a policy or records: its policy and record count (admin)."""
        return policies.page(limit=query["limit"], cursor=query["cursor"])


class CollectionPolicy(Resource):
    tag = "sharing"

    @authenticate
    @require_role("admin")
    @policy_route
    @operation("getCollectionPolicy")
    @arguments(no_query)
    @response(policy_public)
    def get(self, name):
        """A collection's policy, the default one when none was set (admin)."""
        return policies.get(name)

    @authenticate
    @require_role("admin")
    @policy_route
    @operation("setCollectionPolicy")
    @arguments(no_query)
    @body(policy_write)
    @response(policy_public)
    @other_responses({409: "Another admin set the policy at the same moment; retry."})
    def put(self, policy, name):
        """Set who reads and who creates a collection's records (admin)."""
        return policies.put(name, **policy)

    @authenticate
    @require_role("admin")
    @policy_route
    @operation("deleteCollectionPolicy")
    @arguments(no_query)
    @response(None, 204)
    def delete(self, name):
        """Put a collection back on the default policy; its records stay (admin)."""
        policies.delete(name)


class RecordGrants(Resource):
    tag = "sharing"

    @authenticate
    @data_route
    @operation("listRecordGrants")
    @arguments(page_query)
    @paginated(grant_public)
    @other_responses({**_NOT_OWNER, **_NO_RECORD})
    def get(self, query, collection, record_id):
        """Who a record is shared with (its owner or an admin)."""
        page = {"limit": query["limit"], "cursor": query["cursor"]}
        return grants.page(g.caller, collection, record_uuid(record_id), **page)


class RecordGrantItem(Resource):
    tag = "sharing"

    @authenticate
    @data_route
    @path_parameter("grantee", grantee_field)
    @operation("putRecordGrant")
    @arguments(no_query)
    @body(grant_write)
    @response(grant_public)
    @other_responses(
        {409: "The same grant changed at the same moment; retry.", **_NOT_OWNER, **_NO_RECORD}
    )
    def put(self, grant, collection, record_id, grantee):
        """Share a record with a user or group, or change its access (owner or admin)."""
        return grants.put(
            g.caller, collection, record_uuid(record_id), grantee, access=grant["access"]
        )

    @authenticate
    @data_route
    @path_parameter("grantee", grantee_field)
    @operation("deleteRecordGrant")
    @arguments(no_query)
    @response(None, 204)
    @other_responses({422: "A malformed grantee.", **_NOT_OWNER, **_NO_RECORD})
    def delete(self, collection, record_id, grantee):
        """Stop sharing a record with a user or group (owner or admin)."""
        grants.delete(g.caller, collection, record_uuid(record_id), grantee)
