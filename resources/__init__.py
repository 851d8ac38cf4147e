"""The routing table: every endpoint of Coffer, at a glance. Users and sessions come first,
as they do in /docs (the spec lists its tags in this order)."""

from flask import Blueprint, Flask

from api.http.problems import ProblemApi
from api.http.web import V1, json_response
from resources import spec
from resources.account_email import (
    EmailVerification,
    MyEmailVerification,
    PasswordResetConfirmation,
    PasswordResets,
)
from resources.changes import Changes, CollectionChanges, StreamTickets
from resources.data import Collection, Collections, RecordItem
from resources.docs import Docs, DocsAsset, DocsInit
from resources.events import MyEvents, UserEvents
from resources.groups import GroupItem, GroupList, GroupMember, GroupMembers
from resources.health import Liveness, Readiness
from resources.mfa import MyRecoveryCodes, MyTotp, MyTotpConfirmation, UserMfa
from resources.sessions import (
    CurrentSession,
    SessionItem,
    SessionList,
    SessionMfa,
    SessionRefresh,
)
from resources.sharing import (
    CollectionPolicies,
    CollectionPolicy,
    RecordGrantItem,
    RecordGrants,
)
from resources.tokens import Introspection, KeySet
from resources.users import Me, MyPassword, UserItem, UserList

blueprint = Blueprint("coffer", __name__)
api = ProblemApi(blueprint, representation=json_response)

api.add_resource(UserList, f"{V1}/users")
api.add_resource(Me, f"{V1}/users/me")
api.add_resource(MyPassword, f"{V1}/users/me/password")
api.add_resource(UserItem, f"{V1}/users/<uuid:user_id>")

api.add_resource(SessionList, f"{V1}/sessions")
api.add_resource(SessionRefresh, f"{V1}/sessions/refresh")
api.add_resource(SessionMfa, f"{V1}/sessions/mfa")
api.add_resource(CurrentSession, f"{V1}/sessions/current")
api.add_resource(SessionItem, f"{V1}/sessions/<uuid:session_id>")

api.add_resource(MyEmailVerification, f"{V1}/users/me/email-verification")
api.add_resource(EmailVerification, f"{V1}/email-verification")
api.add_resource(PasswordResets, f"{V1}/password-resets")
api.add_resource(PasswordResetConfirmation, f"{V1}/password-resets/confirm")

api.add_resource(MyTotp, f"{V1}/users/me/mfa/totp")
api.add_resource(MyTotpConfirmation, f"{V1}/users/me/mfa/totp/confirm")
api.add_resource(MyRecoveryCodes, f"{V1}/users/me/mfa/recovery-codes")
api.add_resource(UserMfa, f"{V1}/users/<uuid:user_id>/mfa")

api.add_resource(Collections, f"{V1}/data")
api.add_resource(Collection, f"{V1}/data/<string:collection>")
api.add_resource(RecordItem, f"{V1}/data/<string:collection>/<string:record_id>")
api.add_resource(RecordGrants, f"{V1}/data/<string:collection>/<string:record_id>/grants")
api.add_resource(
    RecordGrantItem, f"{V1}/data/<string:collection>/<string:record_id>/grants/<string:grantee>"
)

api.add_resource(CollectionPolicies, f"{V1}/collections")
api.add_resource(CollectionPolicy, f"{V1}/collections/<string:name>")
api.add_resource(GroupList, f"{V1}/groups")
api.add_resource(GroupItem, f"{V1}/groups/<uuid:group_id>")
api.add_resource(GroupMembers, f"{V1}/groups/<uuid:group_id>/members")
api.add_resource(GroupMember, f"{V1}/groups/<uuid:group_id>/members/<uuid:user_id>")

api.add_resource(CollectionChanges, f"{V1}/data/<string:collection>/changes")
api.add_resource(Changes, f"{V1}/changes")
api.add_resource(StreamTickets, f"{V1}/stream-tickets")

api.add_resource(MyEvents, f"{V1}/users/me/events")
api.add_resource(UserEvents, f"{V1}/users/<uuid:user_id>/events")

api.add_resource(KeySet, "/.well-known/jwks.json")
api.add_resource(Introspection, f"{V1}/tokens/introspect")

api.add_resource(Liveness, "/healthz")
api.add_resource(Readiness, "/readyz")
api.add_resource(spec.OpenApiJson, f"{V1}/openapi.json")
api.add_resource(spec.OpenApiYaml, f"{V1}/openapi.yaml")
api.add_resource(Docs, "/docs")
api.add_resource(DocsInit, "/docs/init.js")
api.add_resource(DocsAsset, "/docs/assets/<string:name>")


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    spec.load(app)
