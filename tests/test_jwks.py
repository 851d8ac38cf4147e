"""GET /.well-known/jwks.json: the public keys that let other services verify access tokens."""

import os

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hand_signed import b64_json
from helpers import register_and_log_in

from api import signing

JWKS = "/.well-known/jwks.json"
PUBLIC_MEMBERS = {
    "EdDSA": {"kid", "kty", "alg", "use", "crv", "x"},
    "ES256": {"kid", "kty", "alg", "use", "crv", "x", "y"},
    "RS256": {"kid", "kty", "alg", "use", "n", "e"},
}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture
def served(signed_app, serve):
    """The app on a real HTTP server: what another service would fetch the JWKS from."""
    return serve(signed_app)


# --- the document ---------------------------------------------------------------------------


def test_jwks_is_empty_under_hs256(client):
    response = client.get(JWKS)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"keys": []}


def test_jwks_lists_the_public_key_of_each_algorithm(signed_app, algorithm, key_dir):
    response = signed_app.test_client().get(JWKS)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    [key] = response.get_json()["keys"]
    assert set(key) == PUBLIC_MEMBERS[algorithm]
    assert not set(key) & PRIVATE_MEMBERS
    [kid] = [name[:-4] for name in os.listdir(key_dir) if name.endswith(".pem")]
    assert key["kid"] == kid
    assert key["alg"] == algorithm
    assert key["use"] == "sig"
    assert key["kty"] == {"EdDSA": "OKP", "ES256": "EC", "RS256": "RSA"}[algorithm]
    if algorithm != "RS256":
        assert key["crv"] == {"EdDSA": "Ed25519", "ES256": "P-256"}[algorithm]


def test_the_jwk_is_the_public_half_of_the_key_file(signed_app, key_dir):
    [key] = signed_app.test_client().get(JWKS).get_json()["keys"]
    with open(os.path.join(key_dir, f"{key['kid']}.pem"), "rb") as handle:
        private_key = serialization.load_pem_private_key(handle.read(), password=None)
    from_jwk = jwt.PyJWK(key).key
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert from_jwk.public_bytes(serialization.Encoding.DER, spki) == (
        private_key.public_key().public_bytes(serialization.Encoding.DER, spki)
    )


def test_jwks_is_public_and_cacheable(signed_app):
    client = signed_app.test_client()
    response = client.get(JWKS)
    cache_control = response.headers["Cache-Control"]
    assert "public" in cache_control and "max-age=300" in cache_control
    assert "no-store" not in cache_control
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(JWKS, headers={"Authorization": "Bearer garbage"}).status_code == 200


def test_jwks_allows_cross_origin_reads(signed_app):
    response = signed_app.test_client().get(JWKS, headers={"Origin": "https://app.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_jwks_takes_only_get(signed_app):
    response = signed_app.test_client().post(JWKS, json={})
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"


def test_jwks_is_computed_once_at_start_up(signed_app, key_dir):
    client = signed_app.test_client()
    before = client.get(JWKS).get_data()
    signing.write_key_file(key_dir, signed_app.config["COFFER_JWT_ALGORITHM"])
    assert client.get(JWKS).get_data() == before  # a new key appears once the app restarts


# --- a separate microservice verifies Coffer's tokens with PyJWT alone ------------------------


def test_another_service_verifies_tokens_with_the_jwks_over_http(signed_app, algorithm, served):
    tokens = register_and_log_in(signed_app.test_client())
    token = tokens["access_token"]

    keys = jwt.PyJWKClient(f"{served}{JWKS}")
    key = keys.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key, algorithms=[algorithm], audience="coffer-api", issuer="coffer")
    assert claims["sub"] == tokens["user"]["id"]
    assert claims["sid"] == tokens["session"]["id"]
    assert claims["role"] == "user"


def test_another_service_rejects_forged_tokens(signed_app, algorithm, served):
    token = register_and_log_in(signed_app.test_client())["access_token"]
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    keys = jwt.PyJWKClient(f"{served}{JWKS}")

    other_key = jwt.encode(
        claims, signing.generate_private_key(algorithm), algorithm=algorithm, headers=header
    )
    head, _, signature = token.split(".")
    tampered = f"{head}.{b64_json({**claims, 'role': 'admin'})}.{signature}"
    for forged in (other_key, tampered):
        key = keys.get_signing_key_from_jwt(forged)  # the kid is Coffer's own
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(forged, key, algorithms=[algorithm], audience="coffer-api", issuer="coffer")


def test_the_spec_documents_every_member_of_the_served_key(signed_app, algorithm):
    """The answer is dumped through the PublicKey schema, which the spec publishes: a member
    that the schema did not name would not be served, and one it names is documented."""
    [key] = signed_app.test_client().get(JWKS).get_json()["keys"]
    spec = signed_app.test_client().get("/api/v1/openapi.json").get_json()
    public_key = spec["components"]["schemas"]["PublicKey"]
    assert set(key) <= set(public_key["properties"])
    assert set(public_key["required"]) == {"kid", "kty", "alg", "use"}
    assert key["alg"] in public_key["properties"]["alg"]["enum"]
