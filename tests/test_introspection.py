"""POST /api/v1/tokens/introspect (RFC 7662): other services ask whether a token is live."""

import time
import uuid

import jwt
import pytest
from hand_signed import claims_for, sign
from helpers import API, ASYMMETRIC, assert_problem, assert_unauthorized, bearer, log_in, register

from api import signing
from api.extensions import db
from api.models import Session

INTROSPECT = f"{API}/tokens/introspect"
CLAIMS = ["iss", "aud", "sub", "sid", "role", "iat", "nbf", "exp", "jti"]
INACTIVE = {"active": False}


@pytest.fixture
def service(accounts):
    return accounts.create(role="service")


def introspect(client, caller, token):
    return client.post(INTROSPECT, headers=caller.headers, json={"token": token})


def answer(client, caller, token) -> dict:
    response = introspect(client, caller, token)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()


def hand_signed(app, account, **overrides) -> str:
    return sign(app, claims_for(app, account, **overrides))


# --- live tokens ----------------------------------------------------------------------------


def test_a_live_token_is_active_with_its_claims(client, service, user):
    body = answer(client, service, user.token)
    claims = jwt.decode(user.token, options={"verify_signature": False})
    assert body == {
        "active": True,
        "token_type": "Bearer",
        **{name: claims[name] for name in CLAIMS},
        "amr": ["pwd"],
    }
    assert body["sub"] == user.id
    assert body["sid"] == user.session_id
    assert body["role"] == "user"


@pytest.mark.parametrize("role", ["service", "admin"])
def test_services_and_admins_may_introspect(client, accounts, user, role):
    caller = accounts.create(role=role)
    assert answer(client, caller, user.token)["active"] is True


def test_a_caller_may_introspect_its_own_token(client, service):
    body = answer(client, service, service.token)
    assert body["active"] is True and body["role"] == "service"


def test_a_hand_signed_valid_token_is_active(app, client, service, user):
    """The control for the hand-made tokens below."""
    assert answer(client, service, hand_signed(app, user))["active"] is True


def test_introspection_does_not_count_as_use_of_the_session(app, client, service, user):
    with app.app_context():
        session = db.session.get(Session, uuid.UUID(user.session_id))
        session.last_used_at = session.last_used_at.replace(year=2020)
        db.session.commit()
    answer(client, service, user.token)
    with app.app_context():
        assert db.session.get(Session, uuid.UUID(user.session_id)).last_used_at.year == 2020


# --- tokens that are not live: 200 {"active": false}, never 401 ------------------------------


def test_a_logged_out_token_is_inactive(client, service, user):
    assert client.delete(f"{API}/sessions/current", headers=user.headers).status_code == 204
    assert answer(client, service, user.token) == INACTIVE


def test_a_token_of_a_revoked_session_is_inactive(client, service, accounts, user):
    other_token = log_in(client, user.email).get_json()["access_token"]
    revoke = client.delete(f"{API}/sessions?keep_current=true", headers=bearer(other_token))
    assert revoke.status_code == 204
    assert answer(client, service, user.token) == INACTIVE
    assert answer(client, service, other_token)["active"] is True


def test_a_token_of_a_deactivated_user_is_inactive(client, service, admin, user):
    response = client.patch(
        f"{API}/users/{user.id}", headers=admin.headers, json={"is_active": False}
    )
    assert response.status_code == 200
    assert answer(client, service, user.token) == INACTIVE


def test_a_token_of_a_deleted_user_is_inactive(client, service, admin, user):
    assert client.delete(f"{API}/users/{user.id}", headers=admin.headers).status_code == 204
    assert answer(client, service, user.token) == INACTIVE


def test_an_expired_token_is_inactive(app, client, service, user):
    now = int(time.time())
    expired = hand_signed(app, user, iat=now - 1000, nbf=now - 1000, exp=now - 60)
    assert answer(client, service, expired) == INACTIVE


def test_a_token_issued_with_a_lifetime_already_past_is_inactive(make_app, client, service):
    """Beyond the 30-second leeway: the issuing app and this one share database and secret."""
    issuer = make_app(COFFER_ACCESS_TOKEN_TTL=-60).test_client()
    email = f"ttl-{uuid.uuid4().hex[:8]}@example.com"
    assert register(issuer, email).status_code == 201
    response = log_in(issuer, email)
    assert answer(client, service, response.get_json()["access_token"]) == INACTIVE


def test_a_token_of_another_user_s_session_is_inactive(app, client, service, accounts, user):
    other = accounts.create()
    assert answer(client, service, hand_signed(app, user, sub=other.id)) == INACTIVE


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "Bearer x", "eyJhbGciOiJIUzI1NiJ9.e30.", "x" * 5000, " "],
)
def test_garbage_is_inactive(client, service, token):
    assert answer(client, service, token) == INACTIVE


def test_a_forged_token_is_inactive(app, client, service, user):
    forged = jwt.encode(
        jwt.decode(user.token, options={"verify_signature": False}),
        "another-key-" + "Zq8xWv3n" * 6,
        algorithm="HS256",
        headers={"typ": "at+jwt"},
    )
    assert answer(client, service, forged) == INACTIVE


def test_alg_none_is_inactive(client, service, user):
    claims = jwt.decode(user.token, options={"verify_signature": False})
    assert answer(client, service, jwt.encode(claims, None, algorithm="none")) == INACTIVE


@pytest.mark.parametrize("typ", ["JWT", "refresh+jwt"])
def test_a_jwt_that_is_not_an_access_token_is_inactive(app, client, service, user, typ):
    claims = jwt.decode(user.token, options={"verify_signature": False})
    token = jwt.encode(
        claims, app.config["COFFER_SECRET_KEY"], algorithm="HS256", headers={"typ": typ}
    )
    assert answer(client, service, token) == INACTIVE


def test_a_refresh_token_is_inactive(client, service, user):
    refresh_token = log_in(client, user.email).get_json()["refresh_token"]
    assert answer(client, service, refresh_token) == INACTIVE


# --- the caller -----------------------------------------------------------------------------


def test_a_plain_user_may_not_introspect(client, user):
    assert_problem(introspect(client, user, user.token), 403)


def test_introspection_needs_a_caller_token(client, user):
    assert_unauthorized(client.post(INTROSPECT, json={"token": user.token}))


def test_a_revoked_caller_is_401(client, service, user):
    client.delete(f"{API}/sessions/current", headers=service.headers)
    assert introspect(client, service, user.token).status_code == 401


# --- the request body -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, field",
    [
        ({"token": "x", "token_type_hint": "access_token", "extra": 1}, "extra"),
        ({}, "token"),
        ({"token": ""}, "token"),
        ({"token": 42}, "token"),
        ({"token": None}, "token"),
    ],
)
def test_an_invalid_body_is_422(client, service, body, field):
    response = client.post(INTROSPECT, headers=service.headers, json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]


def test_a_form_encoded_body_is_415(client, service, user):
    response = client.post(INTROSPECT, headers=service.headers, data={"token": user.token})
    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"


def test_malformed_json_is_400(client, service):
    response = client.post(
        INTROSPECT,
        headers={**service.headers, "Content-Type": "application/json"},
        data=b'{"token": ',
    )
    assert response.status_code == 400


def test_only_post_is_allowed(client, service):
    response = client.get(INTROSPECT, headers=service.headers)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


# --- under an asymmetric algorithm ----------------------------------------------------------


class TestUnderAnAsymmetricAlgorithm:
    @pytest.fixture(params=ASYMMETRIC)
    def app(self, request, make_app, tmp_path):
        """Overrides conftest's `app`, so that `client`, `accounts` and `user` use this one."""
        return make_app(
            COFFER_JWT_ALGORITHM=request.param, COFFER_JWT_KEY_DIR=str(tmp_path / "jwt-keys")
        )

    def test_a_live_token_is_active(self, app, client, service, user):
        assert jwt.get_unverified_header(user.token)["alg"] == app.config["COFFER_JWT_ALGORITHM"]
        body = answer(client, service, user.token)
        assert body["active"] is True and body["sub"] == user.id

    def test_a_logged_out_token_is_inactive(self, client, service, user):
        client.delete(f"{API}/sessions/current", headers=user.headers)
        assert answer(client, service, user.token) == INACTIVE

    @pytest.mark.parametrize("kid", ["signing", "unknown"])
    def test_a_token_signed_by_another_key_is_inactive(self, app, client, service, user, kid):
        algorithm = app.config["COFFER_JWT_ALGORITHM"]
        header = jwt.get_unverified_header(user.token)
        if kid == "unknown":
            header["kid"] = "unknown"
        forged = jwt.encode(
            jwt.decode(user.token, options={"verify_signature": False}),
            signing.generate_private_key(algorithm),
            algorithm=algorithm,
            headers=header,
        )
        assert answer(client, service, forged) == INACTIVE
