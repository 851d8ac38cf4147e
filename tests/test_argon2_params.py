"""argon2id cost: the defaults are one of OWASP's settings, and stored hashes follow the
configured cost at the next log-in, up or down."""

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from helpers import PASSWORD, log_in

from api.config import SETTINGS
from api.extensions import db
from api.models import User

DEFAULTS = {name: SETTINGS[name][1] for name in SETTINGS if name.startswith("COFFER_ARGON2_")}
# OWASP Password Storage Cheat Sheet: equivalent argon2id settings, memory (KiB) -> passes, p=1.
OWASP_ARGON2ID = {47104: 1, 19456: 2, 12288: 3, 9216: 4, 7168: 5}
# Coffer's defaults before: RFC 9106's second recommendation. Hashes made then stay valid.
RFC_9106 = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4)
WEAK = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def test_default_cost_is_at_least_an_owasp_setting():
    memory = DEFAULTS["COFFER_ARGON2_MEMORY_KIB"]
    listed = [kib for kib in OWASP_ARGON2ID if kib <= memory]
    assert listed, f"{memory} KiB is below every OWASP setting"
    assert DEFAULTS["COFFER_ARGON2_TIME_COST"] >= OWASP_ARGON2ID[max(listed)]
    assert DEFAULTS["COFFER_ARGON2_PARALLELISM"] >= 1


def test_new_hashes_are_argon2id_at_the_default_cost(make_app):
    hasher = make_app(**DEFAULTS).extensions["coffer_hasher"]
    parameters = extract_parameters(hasher.hash(PASSWORD))
    assert parameters.type is Type.ID
    assert parameters.time_cost == DEFAULTS["COFFER_ARGON2_TIME_COST"]
    assert parameters.memory_cost == DEFAULTS["COFFER_ARGON2_MEMORY_KIB"]
    assert parameters.parallelism == DEFAULTS["COFFER_ARGON2_PARALLELISM"]


@pytest.mark.parametrize("older", [RFC_9106, WEAK], ids=["stronger", "weaker"])
def test_log_in_rehashes_a_hash_of_other_parameters_to_the_defaults(make_app, older):
    app = make_app(**DEFAULTS)
    email = "argon2@example.com"
    with app.app_context():
        db.session.add(User(email=email, password_hash=older.hash(PASSWORD)))
        db.session.commit()
    client = app.test_client()

    assert log_in(client, email, "not the password at all").status_code == 401
    assert older.verify(_stored_hash(app, email), PASSWORD)  # a failed log-in changes nothing
    assert log_in(client, email).status_code == 201
    rehashed = _stored_hash(app, email)
    assert not app.extensions["coffer_hasher"].check_needs_rehash(rehashed)
    assert log_in(client, email).status_code == 201
    assert _stored_hash(app, email) == rehashed  # rehashed once, not at every log-in


def _stored_hash(app, email: str) -> str:
    with app.app_context():
        return db.session.execute(db.select(User.password_hash).filter_by(email=email)).scalar()
