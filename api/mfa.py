"""Multi-factor authentication: a TOTP factor (RFC 6238, by pyotp) with recovery codes, and
the confirmations that sensitive changes ask of a user who has one (API.md: Multi-factor
authentication).

- The secret is stored only encrypted (Fernet, under a key derived from the server secret
  for this purpose only); recovery codes only as HMACs under another derived key.
- A code is accepted for the current 30-second step or one step either side, and only for a
  step later than the last one accepted for that user, on any route: the compare-and-set of
  `last_step` in the database settles two requests racing with one code.
- Every code attempt counts under the account's log-in limit, as password confirmations do.
"""

import base64
import hashlib
import hmac
import io
import secrets
import uuid

import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import current_app
from marshmallow import ValidationError

from api import clock, ratelimit
from api.errors import Conflict, NotFound
from api.events import emit
from api.extensions import db
from api.keys import derive_key
from api.models import MfaFactor, RecoveryCode, User, utcnow
from api.passwords import require_password

ISSUER = "Coffer"  # what authenticator apps show above the account's address
STEP = 30  # seconds per TOTP code
DRIFT = 1  # steps accepted either side of the current one
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
_RECOVERY_GROUPS = 3  # of 4 characters: "k7dq-2mzp-x4ht", 59 bits
WRONG_CODE = "The code is incorrect or was used already."


# --- the secret at rest -----------------------------------------------------------------------


def _fernet() -> Fernet:
    key = derive_key(current_app.config["COFFER_SECRET_KEY"], "coffer totp secret v1")
    return Fernet(base64.urlsafe_b64encode(key))


def _secret_of(factor: MfaFactor) -> str:
    return _fernet().decrypt(factor.secret).decode()


def _recovery_hash(user_id: uuid.UUID, code: str) -> bytes:
    key = derive_key(current_app.config["COFFER_SECRET_KEY"], "coffer recovery code v1")
    return hmac.new(key, user_id.bytes + code.encode(), hashlib.sha256).digest()


def _normalised_recovery_code(code: str) -> str:
    """What a user types, as it was issued: case, spaces and dashes do not matter."""
    plain = "".join(code.split()).replace("-", "").lower()
    return "-".join(plain[i : i + 4] for i in range(0, len(plain), 4))


# --- codes ------------------------------------------------------------------------------------


def factor_of(user_id: uuid.UUID) -> MfaFactor | None:
    return db.session.get(MfaFactor, user_id)


def _matching_step(factor: MfaFactor, code: str) -> int | None:
    """The time step within the drift window whose code `code` is, or None."""
    if len(code) != 6 or not code.isdigit():
        return None
    import pyotp  # MFA's libraries load at their first use, not in every worker at start

    totp = pyotp.TOTP(_secret_of(factor), interval=STEP)
    current = int(clock.timestamp() // STEP)
    for step in range(current - DRIFT, current + DRIFT + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def accept_totp(factor: MfaFactor, code: str) -> bool:
    """Whether `code` is right for a step later than the last accepted one; if so, that step
    is the last accepted one now (flushed, so a racing request with the same code fails)."""
    step = _matching_step(factor, code)
    if step is None:
        return False
    claimed = db.session.execute(
        sa.update(MfaFactor)
        .where(
            MfaFactor.user_id == factor.user_id,
            sa.or_(MfaFactor.last_step.is_(None), MfaFactor.last_step < step),
        )
        .values(last_step=step)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return False
    factor.last_step = step
    return True


def accept_recovery_code(user_id: uuid.UUID, code: str) -> bool:
    """Spend one of the user's unused recovery codes, if `code` is one."""
    spent = db.session.execute(
        sa.update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == _recovery_hash(user_id, _normalised_recovery_code(code)),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return spent.rowcount == 1


def require_code(user: User, code: str | None, *, recovery: bool = False) -> None:
    """A current code of the user's active factor (or, with `recovery`, an unused recovery
    code); 422 naming `code` when it is missing or wrong. Counts under the log-in limit."""
    if not code:
        raise ValidationError({"code": ["A code of your authenticator app is required."]})
    ratelimit.enforce_account_limit(ratelimit.LOG_IN, user.email)
    factor = factor_of(user.id)
    if factor is not None and factor.confirmed_at is not None and accept_totp(factor, code):
        return
    if recovery and accept_recovery_code(user.id, code):
        emit("recovery_code_used", user_id=user.id)  # commits: a code shown is a code spent
        return
    emit("mfa_failed", user_id=user.id, step="confirmation")
    raise ValidationError({"code": [WRONG_CODE]})


def confirm_identity(
    user: User, *, password: str | None, code: str | None, password_field: str = "password"
) -> None:
    """What a sensitive change asks: the password, and for a user with MFA a current code
    too (422 naming the field that is missing or wrong)."""
    require_password(user, password, password_field)
    if user.mfa_enabled:
        require_code(user, code)


# --- the factor's life ------------------------------------------------------------------------


def start_enrolment(user: User, *, password: str | None) -> dict:
    """A new, not yet active factor (replacing an unconfirmed one): its secret, the
    `otpauth://` URI that authenticator apps scan, and that URI as an SVG QR code."""
    import pyotp

    require_password(user, password, "password")
    if user.mfa_enabled:
        raise Conflict("Two-factor authentication is on already: disable it first.")
    secret = pyotp.random_base32()  # 160 bits, as RFC 4226 recommends
    factor = factor_of(user.id) or MfaFactor(user_id=user.id)
    factor.secret = _fernet().encrypt(secret.encode())
    factor.created_at, factor.confirmed_at, factor.last_step = utcnow(), None, None
    db.session.add(factor)
    db.session.commit()
    uri = pyotp.TOTP(secret, interval=STEP).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": _qr_svg(uri)}


def _qr_svg(uri: str) -> str:
    """A standalone SVG document (with its namespace: it shows inline and as an <img>)."""
    import segno  # the QR code's only use: enrolment

    svg = io.BytesIO()
    segno.make(uri, error="m").save(
        svg, kind="svg", xmldecl=False, scale=4, svgclass=None, lineclass=None
    )
    return svg.getvalue().decode()


def confirm_enrolment(user: User, *, code: str | None) -> list[str]:
    """Turn the pending factor on with a first code; the recovery codes, shown this once."""
    factor = factor_of(user.id)
    if user.mfa_enabled:
        raise Conflict("Two-factor authentication is on already.")
    if factor is None:
        raise Conflict("No factor awaits confirmation: start with POST /users/me/mfa/totp.")
    ratelimit.enforce_account_limit(ratelimit.LOG_IN, user.email)
    if not code or not accept_totp(factor, code):
        emit("mfa_failed", user_id=user.id, step="enrolment")
        raise ValidationError({"code": [WRONG_CODE]})
    factor.confirmed_at = utcnow()
    user.mfa_enabled = True
    codes = _new_recovery_codes(user)
    db.session.commit()
    emit("mfa_enabled", user_id=user.id)
    return codes


def regenerate_recovery_codes(user: User, *, password: str | None, code: str | None) -> list[str]:
    """A new set of recovery codes; the old set dies."""
    _require_enabled(user)
    confirm_identity(user, password=password, code=code)
    codes = _new_recovery_codes(user)
    db.session.commit()
    emit("recovery_codes_regenerated", user_id=user.id)
    return codes


def disable(user: User, *, password: str | None, code: str | None) -> None:
    """Turn MFA off with the password and a code (a recovery code serves too)."""
    _require_enabled(user)
    require_password(user, password, "password")
    require_code(user, code, recovery=True)
    remove(user)
    db.session.commit()
    emit("mfa_disabled", user_id=user.id)


def remove(user: User) -> None:
    """Delete the factor and the recovery codes; the caller commits."""
    db.session.execute(sa.delete(MfaFactor).where(MfaFactor.user_id == user.id))
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    user.mfa_enabled = False


def _require_enabled(user: User) -> None:
    if not user.mfa_enabled:
        raise NotFound("Two-factor authentication is not on for this account.")


def _new_recovery_codes(user: User) -> list[str]:
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
    db.session.add_all(
        RecoveryCode(user_id=user.id, code_hash=_recovery_hash(user.id, code)) for code in codes
    )
    return codes


def _recovery_code() -> str:
    plain = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(4 * _RECOVERY_GROUPS))
    return _normalised_recovery_code(plain)
