"""Key material: the algorithm a key serves, new keys, PEM, and public keys as JWKs."""

import hashlib
import json
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from api.keys import b64url_encode

RSA_BITS = 3072  # the 128-bit security level of P-256 and Ed25519
RSA_MIN_BITS = 2048
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


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


def pem(private_key: object) -> bytes:
    """A private key as unencrypted PKCS #8 PEM."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_pem(data: bytes, where: str) -> object:
    """The private key of PEM `data`; RuntimeError naming `where` for a key that cannot sign."""
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise RuntimeError(f"{where}: not an unencrypted PEM private key") from None
    if algorithm_of(private_key) is None:
        raise RuntimeError(
            f"{where}: only Ed25519, P-256 and RSA (>= {RSA_MIN_BITS} bits) keys can sign tokens"
        )
    return private_key


def _uint(number: int, length: int | None = None) -> str:
    return b64url_encode(number.to_bytes(length or max(1, (number.bit_length() + 7) // 8), "big"))


def public_jwk_members(public_key: object) -> dict:
    """The public members of a key as a JWK (RFC 7517/7518/8037); never a private part."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": _uint(numbers.x, 32), "y": _uint(numbers.y, 32)}
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}


def thumbprint(public_key: object) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, without whitespace."""
    canonical = json.dumps(public_jwk_members(public_key), sort_keys=True, separators=(",", ":"))
    return b64url_encode(hashlib.sha256(canonical.encode()).digest())


def parse_pem_bundle(text: str) -> list[tuple[str, object]]:
    """(kid, private key) of each PEM block in COFFER_JWT_PRIVATE_KEYS, in the given order."""
    text = text.replace("\\n", "\n")  # one-line variables often carry escaped newlines
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(text)]
    if not blocks:
        raise RuntimeError("COFFER_JWT_PRIVATE_KEYS holds no PEM private key")
    found = []
    for number, block in enumerate(blocks, 1):
        private_key = load_pem(block.encode(), f"COFFER_JWT_PRIVATE_KEYS key #{number}")
        found.append((thumbprint(private_key.public_key()), private_key))
    return found
