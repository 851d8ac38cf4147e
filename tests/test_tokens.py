"""Access tokens: any malformed, forged, stale or misplaced token is 401 with a Bearer challenge."""

import base64
import json
import time
import uuid

import jwt
import pytest
from hand_signed import b64_json, claims_for, sign
from helpers import API, assert_unauthorized, bearer

ME = f"{API}/users/me"
WRONG_KEY = "a-different-signing-key-" + "Rt5vW8yZ" * 6
CLAIMS = ["iss", "aud", "sub", "sid", "role", "iat", "nbf", "exp", "jti"]


def get_me(client, token: str, scheme: str = "Bearer"):
    return client.get(ME, headers={"Authorization": f"{scheme} {token}"})


def test_a_hand_signed_valid_token_is_accepted(app, client, user):
    """The control for every test below: the helpers build tokens that Coffer accepts."""
    response = get_me(client, sign(app, claims_for(app, user)))
    assert response.status_code == 200
    assert response.get_json()["id"] == user.id


def test_no_token_is_401(client):
    response = client.get(ME)
    assert_unauthorized(response)


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer not.a.jwt", "Bearer garbage"],
)
def test_garbage_authorization_is_401(client, header):
    assert_unauthorized(client.get(ME, headers={"Authorization": header}))


def test_lowercase_bearer_scheme_is_accepted(client, user):
    assert get_me(client, user.token, scheme="bearer").status_code == 200
    assert get_me(client, user.token, scheme="BEARER").status_code == 200


def test_tampered_payload_is_401(app, client, user):
    header, payload, signature = user.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    assert_unauthorized(get_me(client, f"{header}.{b64_json(claims)}.{signature}"))


def test_tampered_signature_is_401(client, user):
    header, payload, signature = user.token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert_unauthorized(get_me(client, f"{header}.{payload}.{flipped}"))


def test_alg_none_is_401(app, client, user):
    claims = claims_for(app, user)
    assert_unauthorized(get_me(client, jwt.encode(claims, None, algorithm="none")))
    by_hand = f"{b64_json({'alg': 'none', 'typ': 'at+jwt'})}.{b64_json(claims)}."
    assert_unauthorized(get_me(client, by_hand))


def test_hs256_with_a_wrong_key_is_401(app, client, user):
    assert_unauthorized(get_me(client, sign(app, claims_for(app, user), key=WRONG_KEY)))


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_algorithms_with_the_right_key_are_401(app, client, user, algorithm):
    assert_unauthorized(get_me(client, sign(app, claims_for(app, user), algorithm=algorithm)))


def test_expired_token_is_401(app, client, user):
    now = int(time.time())
    claims = claims_for(app, user, iat=now - 1000, nbf=now - 1000, exp=now - 60)
    assert_unauthorized(get_me(client, sign(app, claims)))


def test_token_expired_within_the_leeway_is_accepted(app, client, user):
    now = int(time.time())
    claims = claims_for(app, user, iat=now - 1000, nbf=now - 1000, exp=now - 5)
    assert get_me(client, sign(app, claims)).status_code == 200


def test_token_not_yet_valid_is_401(app, client, user):
    claims = claims_for(app, user, nbf=int(time.time()) + 120)
    assert_unauthorized(get_me(client, sign(app, claims)))


def test_token_issued_in_the_future_is_401(app, client, user):
    now = int(time.time())
    claims = claims_for(app, user, iat=now + 120, nbf=now)
    assert_unauthorized(get_me(client, sign(app, claims)))


def test_small_clock_skew_is_tolerated(app, client, user):
    now = int(time.time())
    claims = claims_for(app, user, iat=now + 5, nbf=now + 5)
    assert get_me(client, sign(app, claims)).status_code == 200


@pytest.mark.parametrize("claim, value", [("iss", "someone-else"), ("aud", "another-api")])
def test_wrong_issuer_or_audience_is_401(app, client, user, claim, value):
    assert_unauthorized(get_me(client, sign(app, claims_for(app, user, **{claim: value}))))


@pytest.mark.parametrize("claim", CLAIMS)
def test_token_missing_a_claim_is_401(app, client, user, claim):
    claims = claims_for(app, user)
    del claims[claim]
    assert_unauthorized(get_me(client, sign(app, claims)))


@pytest.mark.parametrize("typ", ["JWT", "refresh+jwt", None])
def test_token_of_another_type_is_401(app, client, user, typ):
    claims = claims_for(app, user)
    if typ is None:
        token = jwt.encode(claims, app.config["COFFER_SECRET_KEY"], algorithm="HS256")
    else:
        token = sign(app, claims, typ=typ)
    assert_unauthorized(get_me(client, token))


def test_sub_that_is_not_the_user_of_the_session_is_401(app, client, accounts, user):
    other = accounts.create()
    assert_unauthorized(get_me(client, sign(app, claims_for(app, user, sub=other.id))))
    assert_unauthorized(get_me(client, sign(app, claims_for(app, other, sid=user.session_id))))


@pytest.mark.parametrize("claim", ["sub", "sid"])
def test_malformed_or_unknown_ids_are_401(app, client, user, claim):
    assert_unauthorized(get_me(client, sign(app, claims_for(app, user, **{claim: "12345"}))))
    assert_unauthorized(
        get_me(client, sign(app, claims_for(app, user, **{claim: str(uuid.uuid4())})))
    )


def test_token_in_the_query_string_is_refused_even_when_valid(client, user):
    assert_unauthorized(client.get(f"{ME}?access_token={user.token}"))
    assert_unauthorized(client.get(f"{ME}?access_token={user.token}", headers=user.headers))


def test_a_role_claim_that_disagrees_with_the_database_grants_nothing(app, client, user):
    forged = sign(app, claims_for(app, user, role="admin"))
    response = client.get(f"{API}/users", headers=bearer(forged))
    assert response.status_code in (401, 403)
    assert response.mimetype == "application/problem+json"


# --- the per-worker cache of verified tokens ---------------------------------------------------


def test_a_token_verified_once_still_expires(app, client, user, frozen_clock):
    token = sign(app, claims_for(app, user, exp=int(frozen_clock.timestamp()) + 60))
    assert get_me(client, token).status_code == 200  # verified, and remembered
    frozen_clock.advance(60 + 29)
    assert get_me(client, token).status_code == 200  # expired, but within the 30 s leeway
    frozen_clock.advance(1)  # exp + the leeway
    assert_unauthorized(get_me(client, token))


def test_a_revoked_session_is_refused_even_with_a_remembered_token(client, user):
    assert get_me(client, user.token).status_code == 200
    assert client.delete(f"{API}/sessions/current", headers=user.headers).status_code == 204
    assert_unauthorized(get_me(client, user.token))
