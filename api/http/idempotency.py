"""`Idempotency-Key` on creating POSTs, with Stripe's semantics, scoped to the caller.

A retry with the same key and body within 24 hours replays the first (successful) response
without running the request again; the same key with another request is 422; a retry while the
first is still running is 409. Failed requests release their key so that they can be retried.
"""

import functools
import hashlib
import re
from datetime import timedelta

import orjson
from flask import g, request
from flask_restful.utils import unpack
from sqlalchemy.exc import IntegrityError

from api.extensions import db
from api.http.operation import declare
from api.http.problems import Problem
from api.http.web import client_ip, json_response, request_body
from api.models import IdempotencyKey, utcnow

RETENTION = timedelta(hours=24)
# A claim this old without a response belongs to a request that died; it may be taken over.
ABANDONED_AFTER = timedelta(minutes=5)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_REPLAYED_HEADERS = ("Location", "ETag")


def _caller_scope() -> str:
    caller = g.get("caller")
    return f"user:{caller.id}" if caller is not None else f"ip:{client_ip()}"


def _fingerprint() -> bytes:
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.query_string.decode()):
        digest.update(part.encode() + b"\0")
    digest.update(request_body())
    return digest.digest()


def _claim(scope: str, key: str, fingerprint: bytes) -> tuple[IdempotencyKey, bool]:
    """Insert the key as running (-> claim, True); on conflict -> (the row holding it, False)."""
    for _ in range(2):
        claim = IdempotencyKey(scope=scope, key=key, fingerprint=fingerprint)
        db.session.add(claim)
        try:
            db.session.commit()
            return claim, True
        except IntegrityError:
            db.session.rollback()
        held = db.session.execute(
            db.select(IdempotencyKey).filter_by(scope=scope, key=key)
        ).scalar_one_or_none()
        if held is None:
            continue  # released between our insert and our read
        age = utcnow() - held.created_at
        if age > RETENTION or (held.status is None and age > ABANDONED_AFTER):
            db.session.delete(held)
            db.session.commit()
            continue
        return held, False
    raise Problem(409, "This Idempotency-Key is contended; retry shortly.")


def _replay(held: IdempotencyKey, fingerprint: bytes):
    if held.fingerprint != fingerprint:
        raise Problem(422, "This Idempotency-Key was already used with a different request.")
    if held.status is None:
        raise Problem(409, "A request with this Idempotency-Key is still being processed.")
    headers = dict(held.headers or {})
    headers["Idempotent-Replayed"] = "true"
    return json_response(orjson.loads(held.body), held.status, headers)


def _release(claim_id) -> None:
    db.session.rollback()
    db.session.execute(db.delete(IdempotencyKey).where(IdempotencyKey.id == claim_id))
    db.session.commit()


def idempotent(view):
    """Make a creating POST safe to retry when the client sends `Idempotency-Key`."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        if not _KEY.match(key):
            raise Problem(400, "Idempotency-Key must be 1 to 255 visible ASCII characters.")
        fingerprint = _fingerprint()
        claim, claimed = _claim(_caller_scope(), key, fingerprint)
        if not claimed:
            return _replay(claim, fingerprint)
        claim_id = claim.id
        try:
            result = view(*args, **kwargs)
        except BaseException:
            _release(claim_id)
            raise
        body, status, headers = unpack(result)
        if not 200 <= status < 300:
            _release(claim_id)
            return result
        kept = {name: headers[name] for name in _REPLAYED_HEADERS if name in (headers or {})}
        db.session.execute(
            db.update(IdempotencyKey)
            .where(IdempotencyKey.id == claim_id)
            .values(status=status, body=orjson.dumps(body), headers=kept)
        )
        db.session.commit()
        return result

    declare(wrapper).idempotent = True
    return wrapper
