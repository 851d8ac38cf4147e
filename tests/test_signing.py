"""Asymmetric access tokens (EdDSA, ES256, RS256): keys, rotation, the CLI, and forgeries."""

import base64
import hashlib
import hmac
import json
import os
import threading
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hand_signed import b64, b64_json
from helpers import API, ASYMMETRIC, assert_unauthorized, bearer, register_and_log_in

from api import signing
from api.signing.files import create_first_key

ME = f"{API}/users/me"


# --- helpers --------------------------------------------------------------------------------


def get_me(client, token: str):
    return client.get(ME, headers=bearer(token))


def pem(private_key) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def key_files(directory) -> list[str]:
    return sorted(name[:-4] for name in os.listdir(directory) if name.endswith(".pem"))


def load_key(directory, kid: str):
    with open(os.path.join(directory, f"{kid}.pem"), "rb") as handle:
        return serialization.load_pem_private_key(handle.read(), password=None)


def claims_for(app, tokens: dict, **overrides) -> dict:
    """The claims of the token in a tokens response, some replaced (a valid set by default)."""
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    claims.update(overrides)
    return claims


def header_of(token: str) -> dict:
    return jwt.get_unverified_header(token)


def cli(app, *args: str):
    result = app.test_cli_runner().invoke(args=list(args))
    return result


# --- the log-in flow ------------------------------------------------------------------------


def test_log_in_refresh_and_log_out_work_with_each_algorithm(signed_app, algorithm, key_dir):
    client = signed_app.test_client()
    tokens = register_and_log_in(client)
    header = header_of(tokens["access_token"])
    assert header == {"alg": algorithm, "kid": key_files(key_dir)[0], "typ": "at+jwt"}
    assert get_me(client, tokens["access_token"]).status_code == 200

    refreshed = client.post(
        f"{API}/sessions/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    access = refreshed.get_json()["access_token"]
    assert get_me(client, access).status_code == 200

    logout = client.delete(f"{API}/sessions/current", headers=bearer(access))
    assert logout.status_code == 204
    assert_unauthorized(get_me(client, access))


def test_the_token_verifies_with_the_public_key_and_the_pinned_algorithm(
    signed_app, algorithm, key_dir
):
    tokens = register_and_log_in(signed_app.test_client())
    public_key = load_key(key_dir, key_files(key_dir)[0]).public_key()
    claims = jwt.decode(
        tokens["access_token"],
        public_key,
        algorithms=[algorithm],
        audience="coffer-api",
        issuer="coffer",
    )
    assert claims["sub"] == tokens["user"]["id"]
    assert claims["sid"] == tokens["session"]["id"]
    assert set(claims) == {"iss", "aud", "sub", "sid", "role", "iat", "nbf", "exp", "jti", "amr"}


def test_hs256_stays_the_default_and_its_tokens_are_unchanged(app, client):
    tokens = register_and_log_in(client)
    assert app.config["COFFER_JWT_ALGORITHM"] == "HS256"
    assert header_of(tokens["access_token"]) == {"alg": "HS256", "typ": "at+jwt"}
    claims = jwt.decode(
        tokens["access_token"],
        app.config["COFFER_SECRET_KEY"],
        algorithms=["HS256"],
        audience="coffer-api",
        issuer="coffer",
    )
    assert claims["sub"] == tokens["user"]["id"]


def test_the_algorithm_name_is_read_case_insensitively(make_app, key_dir):
    app = make_app(COFFER_JWT_ALGORITHM="eddsa", COFFER_JWT_KEY_DIR=key_dir)
    assert app.config["COFFER_JWT_ALGORITHM"] == "EdDSA"


@pytest.mark.parametrize("name", ["HS512", "PS256", "none", "ES512"])
def test_an_unsupported_algorithm_refuses_to_start(make_app, key_dir, name):
    with pytest.raises(RuntimeError, match="COFFER_JWT_ALGORITHM must be one of"):
        make_app(COFFER_JWT_ALGORITHM=name, COFFER_JWT_KEY_DIR=key_dir)


# --- where keys come from -------------------------------------------------------------------


def test_development_creates_the_first_key_readable_by_the_owner_only(signed_app, key_dir):
    [kid] = key_files(key_dir)
    assert signing.KID.match(kid) and kid[:16].endswith("Z")
    assert os.stat(os.path.join(key_dir, f"{kid}.pem")).st_mode & 0o777 == 0o600
    assert os.stat(key_dir).st_mode & 0o777 == 0o700


def test_workers_starting_together_create_a_single_first_key(signed_app, algorithm, tmp_path):
    directory = str(tmp_path / "race")
    barrier = threading.Barrier(8)
    failures = []

    def start():
        barrier.wait()
        try:
            create_first_key(signed_app, directory, algorithm)
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(key_files(directory)) == 1


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_production_refuses_to_start_without_a_key(make_app, algorithm, key_dir):
    with pytest.raises(RuntimeError, match=f"COFFER_JWT_ALGORITHM={algorithm} needs a private"):
        make_app(
            COFFER_ENV="production", COFFER_JWT_ALGORITHM=algorithm, COFFER_JWT_KEY_DIR=key_dir
        )
    assert not os.path.exists(key_dir)


def test_production_starts_with_a_key_file(make_app, key_dir):
    os.makedirs(key_dir, mode=0o700)
    kid = signing.write_key_file(key_dir, "ES256")
    app = make_app(
        COFFER_ENV="production", COFFER_JWT_ALGORITHM="ES256", COFFER_JWT_KEY_DIR=key_dir
    )
    tokens = register_and_log_in(app.test_client())
    assert header_of(tokens["access_token"])["kid"] == kid


def test_keys_from_the_environment_sign_with_the_last_one(make_app, key_dir):
    first, last = signing.generate_private_key("EdDSA"), signing.generate_private_key("EdDSA")
    app = make_app(
        COFFER_ENV="production",
        COFFER_JWT_ALGORITHM="EdDSA",
        COFFER_JWT_KEY_DIR=key_dir,
        COFFER_JWT_PRIVATE_KEYS=pem(first) + pem(last),
    )
    client = app.test_client()
    tokens = register_and_log_in(client)
    assert header_of(tokens["access_token"])["kid"] == signing.thumbprint(last.public_key())
    kids = [key["kid"] for key in client.get("/.well-known/jwks.json").get_json()["keys"]]
    assert kids == [signing.thumbprint(last.public_key()), signing.thumbprint(first.public_key())]
    assert not os.path.exists(key_dir)  # nothing was generated


def test_environment_keys_may_carry_escaped_newlines(make_app, key_dir):
    private_key = signing.generate_private_key("ES256")
    one_line = pem(private_key).replace("\n", "\\n")
    app = make_app(
        COFFER_JWT_ALGORITHM="ES256", COFFER_JWT_KEY_DIR=key_dir, COFFER_JWT_PRIVATE_KEYS=one_line
    )
    tokens = register_and_log_in(app.test_client())
    assert header_of(tokens["access_token"])["kid"] == signing.thumbprint(private_key.public_key())


def test_environment_keys_verify_beside_the_files_and_sign(make_app, key_dir):
    file_kid = signing.write_key_file(key_dir, "EdDSA")
    env_key = signing.generate_private_key("EdDSA")
    old = make_app(COFFER_JWT_ALGORITHM="EdDSA", COFFER_JWT_KEY_DIR=key_dir)
    old_tokens = register_and_log_in(old.test_client())
    assert header_of(old_tokens["access_token"])["kid"] == file_kid

    app = make_app(
        COFFER_JWT_ALGORITHM="EdDSA",
        COFFER_JWT_KEY_DIR=key_dir,
        COFFER_JWT_PRIVATE_KEYS=pem(env_key),
    )
    client = app.test_client()
    assert get_me(client, old_tokens["access_token"]).status_code == 200
    tokens = register_and_log_in(client)
    assert header_of(tokens["access_token"])["kid"] == signing.thumbprint(env_key.public_key())


def test_rfc_7638_thumbprint_example():
    """The RSA key and thumbprint of RFC 7638, section 3.1."""
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    modulus = int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big")
    public_key = rsa.RSAPublicNumbers(65537, modulus).public_key()
    assert signing.thumbprint(public_key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize(
    "configured, other", [("EdDSA", "ES256"), ("ES256", "RS256"), ("RS256", "EdDSA")]
)
def test_a_key_of_another_algorithm_refuses_to_start(make_app, key_dir, configured, other):
    kid = signing.write_key_file(key_dir, other)
    with pytest.raises(RuntimeError, match=f"key {kid} is an {other} key"):
        make_app(COFFER_JWT_ALGORITHM=configured, COFFER_JWT_KEY_DIR=key_dir)


@pytest.mark.parametrize(
    "name, content",
    [
        ("garbage.pem", b"not a key"),
        ("bad name!.pem", None),
        ("weak-rsa.pem", "rsa-1024"),
    ],
)
def test_unusable_key_files_refuse_to_start(make_app, key_dir, name, content):
    os.makedirs(key_dir)
    if content is None:
        content = pem(signing.generate_private_key("EdDSA")).encode()
    elif content == "rsa-1024":
        content = pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)).encode()
    with open(os.path.join(key_dir, name), "wb") as handle:
        handle.write(content)
    with pytest.raises(RuntimeError, match=name.replace("!", "\\!").replace(".", "\\.")):
        make_app(COFFER_JWT_ALGORITHM="EdDSA", COFFER_JWT_KEY_DIR=key_dir)


def test_a_file_without_a_time_in_its_kid_counts_from_its_modification_time(tmp_path):
    directory = str(tmp_path)
    timed = signing.write_key_file(directory, "EdDSA")
    with open(os.path.join(directory, "legacy.pem"), "w") as handle:
        handle.write(pem(signing.generate_private_key("EdDSA")))
    os.utime(os.path.join(directory, "legacy.pem"), (1_500_000_000, 1_500_000_000))  # 2017
    assert [key.kid for key in signing.read_key_files(directory)] == ["legacy", timed]
    os.utime(os.path.join(directory, "legacy.pem"))  # now: no older than the timed key
    assert [key.kid for key in signing.read_key_files(directory)] == [timed, "legacy"]


# --- forgeries ------------------------------------------------------------------------------


def test_a_hand_signed_token_with_the_real_key_and_kid_is_accepted(signed_app, algorithm, key_dir):
    """The control for the forgeries below."""
    client = signed_app.test_client()
    tokens = register_and_log_in(client)
    kid = key_files(key_dir)[0]
    token = jwt.encode(
        claims_for(signed_app, tokens, jti=uuid.uuid4().hex),
        load_key(key_dir, kid),
        algorithm=algorithm,
        headers={"typ": "at+jwt", "kid": kid},
    )
    assert get_me(client, token).status_code == 200


@pytest.mark.parametrize("kid", ["unknown-kid", None, "", 42])
def test_an_unknown_or_missing_kid_is_401_even_with_the_right_key(
    signed_app, algorithm, key_dir, kid
):
    client = signed_app.test_client()
    tokens = register_and_log_in(client)
    headers = {"typ": "at+jwt"} if kid is None else {"typ": "at+jwt", "kid": kid}
    real_key = load_key(key_dir, key_files(key_dir)[0])
    if isinstance(kid, int):  # PyJWT refuses to write a non-string kid: build the token by hand
        unsigned = jwt.encode(claims_for(signed_app, tokens), real_key, algorithm=algorithm)
        _, payload, signature = unsigned.split(".")
        header = b64_json({"alg": algorithm, "typ": "at+jwt", "kid": kid})
        token = f"{header}.{payload}.{signature}"
    else:
        token = jwt.encode(
            claims_for(signed_app, tokens), real_key, algorithm=algorithm, headers=headers
        )
    assert_unauthorized(get_me(client, token))


def test_another_key_of_the_same_type_claiming_the_kid_is_401(signed_app, algorithm, key_dir):
    client = signed_app.test_client()
    tokens = register_and_log_in(client)
    forged = jwt.encode(
        claims_for(signed_app, tokens),
        signing.generate_private_key(algorithm),
        algorithm=algorithm,
        headers={"typ": "at+jwt", "kid": key_files(key_dir)[0]},
    )
    assert_unauthorized(get_me(client, forged))


def test_a_tampered_payload_is_401(signed_app):
    client = signed_app.test_client()
    tokens = register_and_log_in(client)
    header, _, signature = tokens["access_token"].split(".")
    payload = b64_json(claims_for(signed_app, tokens, role="admin"))
    assert_unauthorized(get_me(client, f"{header}.{payload}.{signature}"))


@pytest.mark.parametrize("encoding", ["pem", "der", "jwk"])
def test_hs256_signed_with_the_public_key_is_401(signed_app, key_dir, encoding):
    """Algorithm confusion: the public key, which anyone can fetch, used as an HMAC secret."""
    client = signed_app.test_client()
    tokens = register_and_log_in(client)
    kid = key_files(key_dir)[0]
    public_key = load_key(key_dir, kid).public_key()
    if encoding == "jwk":
        secret = json.dumps(client.get("/.well-known/jwks.json").get_json()["keys"][0]).encode()
    else:
        secret = public_key.public_bytes(
            serialization.Encoding.PEM if encoding == "pem" else serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    header = b64_json({"alg": "HS256", "typ": "at+jwt", "kid": kid})
    signing_input = f"{header}.{b64_json(claims_for(signed_app, tokens))}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    assert_unauthorized(get_me(client, f"{signing_input}.{b64(signature)}"))


def test_a_token_of_another_algorithm_is_401(signed_app, algorithm, key_dir):
    client = signed_app.test_client()
    tokens = register_and_log_in(client)
    kid = key_files(key_dir)[0]
    for other in ASYMMETRIC:
        if other != algorithm:
            token = jwt.encode(
                claims_for(signed_app, tokens),
                signing.generate_private_key(other),
                algorithm=other,
                headers={"typ": "at+jwt", "kid": kid},
            )
            assert_unauthorized(get_me(client, token))
    hs256 = jwt.encode(
        claims_for(signed_app, tokens),
        signed_app.config["COFFER_SECRET_KEY"],
        algorithm="HS256",
        headers={"typ": "at+jwt", "kid": kid},
    )
    assert_unauthorized(get_me(client, hs256))


def test_alg_none_is_401(signed_app, key_dir):
    client = signed_app.test_client()
    tokens = register_and_log_in(client)
    header = b64_json({"alg": "none", "typ": "at+jwt", "kid": key_files(key_dir)[0]})
    assert_unauthorized(get_me(client, f"{header}.{b64_json(claims_for(signed_app, tokens))}."))


def test_an_hs256_app_refuses_an_asymmetric_token(app, client):
    tokens = register_and_log_in(client)
    token = jwt.encode(
        claims_for(app, tokens),
        signing.generate_private_key("EdDSA"),
        algorithm="EdDSA",
        headers={"typ": "at+jwt", "kid": "any"},
    )
    assert_unauthorized(get_me(client, token))


# --- rotation and the CLI -------------------------------------------------------------------


def test_rotation_keeps_old_tokens_working_until_the_old_key_is_pruned(
    make_app, algorithm, key_dir
):
    first = make_app(COFFER_JWT_ALGORITHM=algorithm, COFFER_JWT_KEY_DIR=key_dir)
    [old_kid] = key_files(key_dir)
    old_token = register_and_log_in(first.test_client())["access_token"]

    result = cli(first, "jwt-keys", "generate")
    assert result.exit_code == 0, result.output
    new_kid = result.output.strip()
    assert key_files(key_dir) == sorted([old_kid, new_kid])

    rotated = make_app(COFFER_JWT_ALGORITHM=algorithm, COFFER_JWT_KEY_DIR=key_dir)
    client = rotated.test_client()
    assert get_me(client, old_token).status_code == 200
    new_token = register_and_log_in(client)["access_token"]
    assert header_of(new_token)["kid"] == new_kid
    jwks = client.get("/.well-known/jwks.json").get_json()
    assert [key["kid"] for key in jwks["keys"]] == [new_kid, old_kid]

    listing = cli(rotated, "jwt-keys", "list")
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    assert lines[0].split() == ["KID", "ALGORITHM", "CREATED"]
    assert lines[1].split()[:2] == [old_kid, algorithm] and "(signing)" not in lines[1]
    assert lines[2].split()[:2] == [new_kid, algorithm] and lines[2].endswith("(signing)")

    pruned = cli(rotated, "jwt-keys", "prune", "--keep", "1")
    assert pruned.exit_code == 0, pruned.output
    assert pruned.output.strip() == f"removed {old_kid}"
    assert key_files(key_dir) == [new_kid]

    restarted = make_app(COFFER_JWT_ALGORITHM=algorithm, COFFER_JWT_KEY_DIR=key_dir)
    client = restarted.test_client()
    assert_unauthorized(get_me(client, old_token))
    assert get_me(client, new_token).status_code == 200


def _write_key(directory: str, kid: str, algorithm: str = "EdDSA") -> None:
    with open(os.path.join(directory, f"{kid}.pem"), "w") as handle:
        handle.write(pem(signing.generate_private_key(algorithm)))
    os.chmod(os.path.join(directory, f"{kid}.pem"), 0o600)


def test_prune_older_than_counts_from_when_a_newer_key_replaced_a_key(make_app, key_dir):
    os.makedirs(key_dir, mode=0o700)
    _write_key(key_dir, "20200101T000000Z-aaaa0001")  # replaced in 2020
    _write_key(key_dir, "20200101T010000Z-aaaa0002")  # replaced just now
    newest = signing.write_key_file(key_dir, "EdDSA")
    app = make_app(COFFER_JWT_ALGORITHM="EdDSA", COFFER_JWT_KEY_DIR=key_dir)

    result = cli(app, "jwt-keys", "prune", "--older-than", "3600")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "removed 20200101T000000Z-aaaa0001"
    assert key_files(key_dir) == ["20200101T010000Z-aaaa0002", newest]

    again = cli(app, "jwt-keys", "prune", "--older-than", "3600")
    assert again.output.strip() == "nothing to remove"


def test_prune_never_removes_the_newest_key(make_app, key_dir):
    os.makedirs(key_dir, mode=0o700)
    _write_key(key_dir, "20200101T000000Z-aaaa0001")
    _write_key(key_dir, "20200101T010000Z-aaaa0002")
    app = make_app(COFFER_JWT_ALGORITHM="EdDSA", COFFER_JWT_KEY_DIR=key_dir)
    result = cli(app, "jwt-keys", "prune", "--older-than", "0")
    assert result.output.strip() == "removed 20200101T000000Z-aaaa0001"
    result = cli(app, "jwt-keys", "prune", "--keep", "1", "--older-than", "0")
    assert result.output.strip() == "nothing to remove"
    assert key_files(key_dir) == ["20200101T010000Z-aaaa0002"]


def test_prune_with_keep_and_older_than_removes_only_what_both_allow(make_app, key_dir):
    os.makedirs(key_dir, mode=0o700)
    for kid in ["20200101T000000Z-a1", "20200102T000000Z-a2", "20200103T000000Z-a3"]:
        _write_key(key_dir, kid)
    newest = signing.write_key_file(key_dir, "EdDSA")
    app = make_app(COFFER_JWT_ALGORITHM="EdDSA", COFFER_JWT_KEY_DIR=key_dir)
    result = cli(app, "jwt-keys", "prune", "--keep", "3", "--older-than", "3600")
    assert result.output.strip() == "removed 20200101T000000Z-a1"
    assert key_files(key_dir) == ["20200102T000000Z-a2", "20200103T000000Z-a3", newest]


@pytest.mark.parametrize("args", [[], ["--keep", "0"], ["--older-than", "-1"]])
def test_prune_needs_a_valid_rule(make_app, key_dir, args):
    app = make_app(COFFER_JWT_ALGORITHM="EdDSA", COFFER_JWT_KEY_DIR=key_dir)
    result = cli(app, "jwt-keys", "prune", *args)
    assert result.exit_code == 2
    assert len(key_files(key_dir)) == 1


def test_generate_under_hs256_is_an_error(app):
    result = cli(app, "jwt-keys", "generate")
    assert result.exit_code == 1
    assert "HS256" in result.output


def test_list_under_hs256_shows_the_files_but_none_signs(make_app, key_dir):
    kid = signing.write_key_file(key_dir, "ES256")
    app = make_app(COFFER_JWT_KEY_DIR=key_dir)
    result = cli(app, "jwt-keys", "list")
    assert result.exit_code == 0
    assert kid in result.output and "ES256" in result.output
    assert "(signing)" not in result.output
