"""A correctly signed access token whose claims have the wrong JSON type is refused like any
other bad token (401), never a crash: e.g. `exp` as the string "9999999999", which PyJWT's
int() accepts and Coffer's own time check would then compare with a number."""

import pytest
from hand_signed import claims_for, sign
from helpers import API, assert_unauthorized, bearer

AN_ID_OF_DIGITS = 12345678901234567890123456789012  # as a string, a well-formed UUID

WRONG_TYPES = {
    "exp-numeric-string": {"exp": "9999999999"},
    "iat-numeric-string": {"iat": "1700000000"},
    "nbf-numeric-string": {"nbf": "1700000000"},
    "exp-string": {"exp": "tomorrow"},
    "exp-array": {"exp": [9999999999]},
    "iat-true": {"iat": True},
    "nbf-false": {"nbf": False},
    "sub-number": {"sub": AN_ID_OF_DIGITS},
    "sid-number": {"sid": AN_ID_OF_DIGITS},
    "sid-object": {"sid": {"id": "x"}},
    "role-array": {"role": ["admin"]},
    "role-number": {"role": 1},
    "jti-number": {"jti": 7},
}


@pytest.fixture(params=WRONG_TYPES)
def wrong_token(request, app, user) -> str:
    return sign(app, claims_for(app, user, **WRONG_TYPES[request.param]))


def test_a_claim_of_the_wrong_type_is_401(client, wrong_token):
    response = client.get(f"{API}/users/me", headers=bearer(wrong_token))
    assert_unauthorized(response)
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="coffer"')
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_introspection_calls_a_token_with_a_wrong_claim_type_inactive(
    client, accounts, wrong_token
):
    service = accounts.create(role="service")
    response = client.post(
        f"{API}/tokens/introspect", json={"token": wrong_token}, headers=service.headers
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"active": False}


@pytest.mark.parametrize("exp", [9999999999, 9999999999.5], ids=["integer", "fraction"])
def test_a_numeric_date_may_be_an_integer_or_a_fraction(client, app, user, exp):
    token = sign(app, claims_for(app, user, exp=exp))
    response = client.get(f"{API}/users/me", headers=bearer(token))
    assert response.status_code == 200
