"""Access-token signing keys: the HS256 secret, or Ed25519 / P-256 / RSA key pairs that rotate.

Under an asymmetric COFFER_JWT_ALGORITHM the private keys come from two places:

- COFFER_JWT_KEY_DIR: one unencrypted PEM private key per `<kid>.pem` file;
- COFFER_JWT_PRIVATE_KEYS: concatenated PEM private keys, each named by its RFC 7638 thumbprint.

Every loaded key verifies (the token's `kid` picks it), and the newest one signs: the last key
of COFFER_JWT_PRIVATE_KEYS when that is set, else the file created last. A file's creation time
is the UTC time its kid starts with (`20261121T150000Z-3f9a0c1e`, as `jwt-keys generate` names
them) or, failing that, its modification time; a tie goes to the file written last. Keys are
read once at start-up, so a new key signs once the workers restart, and tokens signed by the
old one keep verifying until the operator removes it.
"""

import base64
import hashlib
import json
import os
import re
import secrets
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import jwt
import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import Flask, current_app

try:
    import fcntl
except ImportError:  # Windows: no gunicorn workers racing to create the first key
    fcntl = None

HS256 = "HS256"
ASYMMETRIC = ("EdDSA", "ES256", "RS256")
RSA_BITS = 3072  # the 128-bit security level of P-256 and Ed25519
RSA_MIN_BITS = 2048
KID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_KID_TIME = re.compile(r"^(\d{8}T\d{6}Z)")
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


@dataclass(frozen=True)
class KeyFile:
    kid: str
    path: str
    private_key: object
    created: datetime
    order: tuple  # sorts files oldest first


@dataclass(frozen=True)
class Keyring:
    """What start-up loaded: the key that signs, the keys that verify, the JWKS document."""

    algorithm: str
    signing_key: object  # the HS256 secret, or a private key object
    signing_kid: str | None = None
    verification_keys: dict = field(default_factory=dict)  # kid -> public key object
    key_dir: str | None = None
    jwks: bytes = b'{"keys":[]}'

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


# --- keys -----------------------------------------------------------------------------------


def algorithm_of(private_key: object) -> str | None:
    """The JWS algorithm a private key serves, or None for a key Coffer does not use."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return "ES256" if isinstance(private_key.curve, ec.SECP256R1) else None
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "RS256" if private_key.key_size >= RSA_MIN_BITS else None
    return None


def generate_private_key(algorithm: str) -> object:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise ValueError(f"{algorithm} has no key pairs")


def _pem(private_key: object) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_pem(data: bytes, where: str) -> object:
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise RuntimeError(f"{where}: not an unencrypted PEM private key") from None
    if algorithm_of(private_key) is None:
        raise RuntimeError(
            f"{where}: only Ed25519, P-256 and RSA (>= {RSA_MIN_BITS} bits) keys can sign tokens"
        )
    return private_key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(number: int, length: int | None = None) -> str:
    return _b64(number.to_bytes(length or max(1, (number.bit_length() + 7) // 8), "big"))


def public_jwk_members(public_key: object) -> dict:
    """The public members of a key as a JWK (RFC 7517/7518/8037); never a private part."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": _uint(numbers.x, 32), "y": _uint(numbers.y, 32)}
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}


def thumbprint(public_key: object) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, without whitespace."""
    canonical = json.dumps(public_jwk_members(public_key), sort_keys=True, separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode()).digest())


def parse_pem_bundle(text: str) -> list[tuple[str, object]]:
    """(kid, private key) of each PEM block in COFFER_JWT_PRIVATE_KEYS, in the given order."""
    text = text.replace("\\n", "\n")  # one-line variables often carry escaped newlines
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(text)]
    if not blocks:
        raise RuntimeError("COFFER_JWT_PRIVATE_KEYS holds no PEM private key")
    found = []
    for number, block in enumerate(blocks, 1):
        private_key = _load_pem(block.encode(), f"COFFER_JWT_PRIVATE_KEYS key #{number}")
        found.append((thumbprint(private_key.public_key()), private_key))
    return found


# --- the key directory ----------------------------------------------------------------------


def new_kid(now: datetime | None = None) -> str:
    """A kid that sorts by creation time: `20261121T150000Z-3f9a0c1e`."""
    return f"{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def write_key_file(directory: str, algorithm: str) -> str:
    """Write a new key as `<kid>.pem`, complete or not at all, readable by the owner only."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    kid = new_kid()
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".new-key-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(_pem(generate_private_key(algorithm)))
        os.link(tmp, os.path.join(directory, f"{kid}.pem"))  # never replaces a key
    finally:
        os.unlink(tmp)
    return kid


def _created(kid: str, mtime: float) -> datetime:
    match = _KID_TIME.match(kid)
    if match:
        try:
            return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.fromtimestamp(int(mtime), UTC)


def read_key_files(directory: str) -> list[KeyFile]:
    """Every `<kid>.pem` of the directory, oldest first (the last one signs)."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        if not name.endswith(".pem") or name.startswith("."):
            continue
        kid, path = name[: -len(".pem")], os.path.join(directory, name)
        if not KID.match(kid):
            raise RuntimeError(f"{path}: a kid may hold only A-Z a-z 0-9 . _ - (128 at most)")
        with open(path, "rb") as handle:
            private_key = _load_pem(handle.read(), path)
        stat = os.stat(path)
        created = _created(kid, stat.st_mtime)
        found.append(KeyFile(kid, path, private_key, created, (created, stat.st_mtime_ns, kid)))
    return sorted(found, key=lambda key_file: key_file.order)


def prunable(
    files: list[KeyFile], *, keep: int | None, older_than: int | None, now: datetime
) -> list[KeyFile]:
    """The key files to remove (`files` oldest first); never the newest one.

    `keep`: all but the `keep` newest. `older_than`: only keys that a newer key replaced (was
    created) more than that many seconds ago. Both: only keys that both rules would remove.
    """
    candidates = files[: len(files) - max(keep or 1, 1)]
    if older_than is not None:
        replaced = {old.kid: new.created for old, new in zip(files, files[1:], strict=False)}
        candidates = [
            key_file
            for key_file in candidates
            if (now - replaced[key_file.kid]).total_seconds() > older_than
        ]
    return candidates


@contextmanager
def _directory_lock(directory: str):
    fd = os.open(os.path.join(directory, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor closes
        yield
    finally:
        os.close(fd)


def _create_first_key(app: Flask, directory: str, algorithm: str) -> None:
    """Development: create one key, even when several workers start at the same moment."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with _directory_lock(directory):
        if not read_key_files(directory):
            kid = write_key_file(directory, algorithm)
            app.logger.info("created JWT signing key %s in %s", kid, directory)


# --- start-up -------------------------------------------------------------------------------


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
        _create_first_key(app, directory, algorithm)
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


def _jwks(algorithm: str, keys: list[tuple[str, object]]) -> bytes:
    documents = [
        {"kid": kid, **public_jwk_members(private_key.public_key()), "alg": algorithm, "use": "sig"}
        for kid, private_key in reversed(keys)  # the signing key first
    ]
    return orjson.dumps({"keys": documents})


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
            jwks=_jwks(algorithm, keys),
        )
    app.extensions["coffer_signing"] = ring
