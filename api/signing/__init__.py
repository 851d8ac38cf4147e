"""Access-token signing keys: the HS256 secret, or Ed25519 / P-256 / RSA key pairs that rotate.

Under an asymmetric COFFER_JWT_ALGORITHM the private keys come from two places:

- COFFER_JWT_KEY_DIR: one unencrypted PEM private key per `<kid>.pem` file (files.py);
- COFFER_JWT_PRIVATE_KEYS: concatenated PEM private keys, each named by its RFC 7638 thumbprint
  (keys.py).

Every loaded key verifies (the token's `kid` picks it), and the newest one signs: the last key
of COFFER_JWT_PRIVATE_KEYS when that is set, else the file created last. A file's creation time
is the UTC time its kid starts with (`20261121T150000Z-3f9a0c1e`, as `jwt-keys generate` names
them) or, failing that, its modification time; a tie goes to the file written last. Keys are
read once at start-up (this module's `init_app`), so a new key signs once the workers restart,
and tokens signed by the old one keep verifying until the operator removes it.
"""

import os
from dataclasses import dataclass, field

import jwt
from flask import Flask, current_app

from api.constants import ASYMMETRIC, HS256
from api.signing.files import (
    KID,
    KeyFile,
    create_first_key,
    prunable,
    read_key_files,
    write_key_file,
)
from api.signing.keys import (
    algorithm_of,
    generate_private_key,
    parse_pem_bundle,
    public_jwk_members,
    thumbprint,
)

__all__ = [
    "ASYMMETRIC",
    "HS256",
    "KID",
    "KeyFile",
    "Keyring",
    "algorithm_of",
    "configured_algorithm",
    "generate_private_key",
    "init_app",
    "keyring",
    "parse_pem_bundle",
    "prunable",
    "public_jwk_members",
    "read_key_files",
    "thumbprint",
    "write_key_file",
]


@dataclass(frozen=True)
class Keyring:
    """What start-up loaded: the key that signs, the keys that verify, their public JWKs."""

    algorithm: str
    signing_key: object  # the HS256 secret, or a private key object
    signing_kid: str | None = None
    verification_keys: dict = field(default_factory=dict)  # kid -> public key object
    key_dir: str | None = None
    public_keys: tuple[dict, ...] = ()  # JWKs (RFC 7517), the signing key first

    def verification_key(self, token: str) -> object:
        """The key for this token's `kid`; raises jwt.InvalidTokenError for an unknown kid."""
        if self.algorithm == HS256:
            return self.signing_key
        kid = jwt.get_unverified_header(token).get("kid")
        key = self.verification_keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise jwt.InvalidTokenError("unknown key id")
        return key


def keyring() -> Keyring:
    return current_app.extensions["coffer_signing"]


def configured_algorithm(name: str) -> str:
    for algorithm in (HS256, *ASYMMETRIC):
        if name.lower() == algorithm.lower():
            return algorithm
    raise RuntimeError(
        f"COFFER_JWT_ALGORITHM must be one of {', '.join((HS256, *ASYMMETRIC))}, got {name!r}"
    )


def _no_key_error(algorithm: str, directory: str) -> RuntimeError:
    return RuntimeError(
        f"COFFER_JWT_ALGORITHM={algorithm} needs a private key, but {directory} holds none and "
        "COFFER_JWT_PRIVATE_KEYS is unset. Provide one before starting with "
        "COFFER_ENV=production: set COFFER_JWT_PRIVATE_KEYS, or let a development start-up "
        "create a key file: `COFFER_ENV=development flask --app wsgi jwt-keys list`."
    )


def _load_keys(app: Flask, algorithm: str, directory: str) -> list[tuple[str, object]]:
    """(kid, private key), the signing key last: files oldest first, then the env keys."""
    env = app.config.get("COFFER_JWT_PRIVATE_KEYS")
    env_keys = parse_pem_bundle(env) if env else []
    files = read_key_files(directory)
    if not files and not env_keys:
        if app.config["COFFER_ENV"] == "production":
            raise _no_key_error(algorithm, directory)
        create_first_key(app, directory, algorithm)
        files = read_key_files(directory)
    for key_file in files:
        if os.stat(key_file.path).st_mode & 0o077:
            app.logger.warning("%s is readable by other users; chmod 600 it", key_file.path)
    keys = [(key_file.kid, key_file.private_key) for key_file in files] + env_keys
    for kid, private_key in keys:
        if algorithm_of(private_key) != algorithm:
            raise RuntimeError(
                f"key {kid} is an {algorithm_of(private_key)} key, but "
                f"COFFER_JWT_ALGORITHM={algorithm}; move it out of the way or switch back"
            )
    if len({kid for kid, _ in keys}) != len(keys):
        raise RuntimeError("two JWT signing keys share one kid")
    return keys


def _public_keys(algorithm: str, keys: list[tuple[str, object]]) -> tuple[dict, ...]:
    return tuple(
        {"kid": kid, **public_jwk_members(private_key.public_key()), "alg": algorithm, "use": "sig"}
        for kid, private_key in reversed(keys)  # the signing key first
    )


def init_app(app: Flask) -> None:
    """Load the signing keys once; under HS256 the secret from api/keys.py signs."""
    algorithm = configured_algorithm(app.config["COFFER_JWT_ALGORITHM"])
    directory = app.config.get("COFFER_JWT_KEY_DIR") or os.path.join(app.instance_path, "jwt-keys")
    app.config["COFFER_JWT_ALGORITHM"] = algorithm
    app.config["COFFER_JWT_KEY_DIR"] = directory
    if algorithm == HS256:
        ring = Keyring(HS256, app.config["COFFER_SECRET_KEY"], key_dir=directory)
    else:
        keys = _load_keys(app, algorithm, directory)
        ring = Keyring(
            algorithm,
            signing_key=keys[-1][1],
            signing_kid=keys[-1][0],
            verification_keys={kid: private_key.public_key() for kid, private_key in keys},
            key_dir=directory,
            public_keys=_public_keys(algorithm, keys),
        )
    app.extensions["coffer_signing"] = ring
