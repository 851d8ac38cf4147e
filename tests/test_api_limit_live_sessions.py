"""A request whose token is invalid or revoked never spends its user's API limit (API.md:
Sessions): else whoever holds a stolen, since revoked, token could lock the user out."""

from helpers import API, assert_unauthorized, bearer, log_in


def test_a_revoked_token_does_not_spend_its_users_api_limit(make_app, user):
    client = make_app(COFFER_RATE_LIMIT_API="3/minute").test_client()
    live = bearer(log_in(client, user.email, user.password).get_json()["access_token"])
    revoked = user.headers
    assert client.delete(f"{API}/sessions/current", headers=revoked).status_code == 204
    for _ in range(10):
        assert_unauthorized(client.get(f"{API}/users/me", headers=revoked))
    assert client.get(f"{API}/users/me", headers=live).status_code == 200


def test_live_requests_still_spend_the_api_limit(make_app, user):
    client = make_app(COFFER_RATE_LIMIT_API="3/minute").test_client()
    for _ in range(3):
        assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200
    refused = client.get(f"{API}/users/me", headers=user.headers)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
