"""Users: registration and the password policy, the own profile, and admin management."""

import re
import uuid

import pytest
from helpers import (
    API,
    PASSWORD,
    UNKNOWN_ID,
    assert_problem,
    bearer,
    log_in,
    register,
)
from sql_capture import captured_statements

from api.extensions import db
from api.models import Record, RefreshToken, Session, User

USERS = f"{API}/users"
ME = f"{USERS}/me"
NEW_PASSWORD = "tangerine umbrella orbit"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
USER_FIELDS = {
    "id",
    "email",
    "email_verified",
    "pending_email",
    "mfa_enabled",
    "name",
    "role",
    "is_active",
    "created_at",
    "updated_at",
}


def assert_public_user(body: dict) -> None:
    assert set(body) == USER_FIELDS
    uuid.UUID(body["id"])
    assert TIMESTAMP.match(body["created_at"]) and TIMESTAMP.match(body["updated_at"])


# --- registration ---------------------------------------------------------------------------


def test_registration_creates_a_user_without_exposing_the_password(client, admin):
    response = register(client, "ada@example.com", name="Ada")
    assert response.status_code == 201
    body = response.get_json()
    assert_public_user(body)
    assert body["email"] == "ada@example.com"
    assert body["name"] == "Ada"
    assert body["role"] == "user" and body["is_active"] is True
    assert PASSWORD not in response.get_data(as_text=True)
    assert "argon2" not in response.get_data(as_text=True)
    assert response.headers["Location"].endswith(f"{USERS}/{body['id']}")
    fetched = client.get(f"{USERS}/{body['id']}", headers=admin.headers)
    assert fetched.get_json() == body


def test_registered_user_can_log_in(client):
    register(client, "ada@example.com")
    assert log_in(client, "ada@example.com").status_code == 201


def test_registration_normalises_the_email(client):
    response = register(client, "  Ada.Lovelace@Example.COM \n")
    assert response.status_code == 201
    assert response.get_json()["email"] == "ada.lovelace@example.com"
    assert log_in(client, "ADA.LOVELACE@example.com").status_code == 201


@pytest.mark.parametrize("again", ["ada@example.com", "ADA@Example.com", " ada@example.com "])
def test_registration_with_a_registered_email_is_409(client, again):
    assert register(client, "ada@example.com").status_code == 201
    assert_problem(register(client, again, password="another fine passphrase"), 409)


@pytest.mark.parametrize(
    "field, value",
    [
        ("role", "admin"),
        ("id", "0191d7a2-0000-7000-8000-000000000000"),
        ("is_active", False),
        ("created_at", "2020-01-01T00:00:00.000Z"),
        ("password_hash", "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA"),
    ],
)
def test_registration_rejects_unknown_fields(client, field, value):
    response = register(client, "ada@example.com", **{field: value})
    body = assert_problem(response, 422)
    assert field in body["errors"]
    assert_problem(log_in(client, "ada@example.com"), 401)  # nothing was created


@pytest.mark.parametrize(
    "password",
    [
        "short pass1",  # 11 characters
        "x9#" * 85 + "kq",  # 257 characters
        "\U0001f434\U0001f50b\U0001f4ce" * 3 + "\U0001f434\U0001f50b",  # 11 emoji, 44 bytes
    ],
    ids=["too-short", "too-long", "eleven-emoji"],
)
def test_registration_enforces_password_length_in_code_points(client, password):
    body = assert_problem(register(client, "ada@example.com", password=password), 422)
    assert "password" in body["errors"]


def test_password_of_256_code_points_is_accepted(client):
    password = "x9#q" * 64
    assert register(client, "ada@example.com", password=password).status_code == 201
    assert log_in(client, "ada@example.com", password).status_code == 201


def test_twelve_emoji_pass_the_length_rule(client):
    password = "\U0001f434\U0001f50b\U0001f4ce\U0001f40e" * 3
    assert register(client, "ada@example.com", password=password).status_code == 201
    assert log_in(client, "ada@example.com", password).status_code == 201


def test_long_passwords_are_not_truncated(client):
    prefix = "the same long prefix " * 10
    assert register(client, "ada@example.com", password=prefix + "one").status_code == 201
    assert_problem(log_in(client, "ada@example.com", prefix + "two"), 401)
    assert log_in(client, "ada@example.com", prefix + "one").status_code == 201


def test_password_minimum_length_is_configurable(make_app):
    client = make_app(COFFER_PASSWORD_MIN_LENGTH=20).test_client()
    body = assert_problem(register(client, "ada@example.com", password="q7#Lm2vX9pZr4"), 422)
    assert "password" in body["errors"]
    relaxed = make_app(COFFER_PASSWORD_MIN_LENGTH=8).test_client()
    assert register(relaxed, "bob@example.com", password="q7#Lm2vX").status_code == 201


@pytest.mark.parametrize("password", ["longaddress@example.com", "LongAddress@Example.com"])
def test_password_equal_to_the_email_is_refused(client, password):
    body = assert_problem(register(client, "longaddress@example.com", password=password), 422)
    assert "password" in body["errors"]


@pytest.mark.parametrize("password", ["qwerty123456", "1qaz2wsx3edc", "QWERTY123456"])
def test_common_passwords_are_refused(client, password):
    body = assert_problem(register(client, "ada@example.com", password=password), 422)
    assert "password" in body["errors"]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": 42, "password": PASSWORD}, "email"),
        ({"password": PASSWORD}, "email"),
        ({"email": "ada@example.com"}, "password"),
        ({"email": "ada@example.com", "password": 123456789012345}, "password"),
        ({"email": "ada@example.com", "password": PASSWORD, "name": "x" * 201}, "name"),
    ],
)
def test_registration_validation_errors_name_the_field(client, payload, field):
    body = assert_problem(client.post(USERS, json=payload), 422)
    assert field in body["errors"]


def test_registration_with_a_json_array_is_422(client):
    response = client.post(USERS, json=[{"email": "ada@example.com", "password": PASSWORD}])
    assert_problem(response, 422)


def test_registration_needs_a_json_content_type(client):
    response = client.post(USERS, data={"email": "ada@example.com", "password": PASSWORD})
    assert_problem(response, 415)
    response = client.post(USERS, data='{"email": "a@example.com"}', content_type="text/plain")
    assert_problem(response, 415)


def test_registration_with_malformed_json_is_400(client):
    response = client.post(USERS, data='{"email": "ada@', content_type="application/json")
    assert_problem(response, 400)


def test_registration_with_a_body_over_the_limit_is_413(make_app):
    client = make_app(COFFER_MAX_BODY_BYTES=1024).test_client()
    response = register(client, "ada@example.com", name="x" * 2000)
    assert_problem(response, 413)


# --- the own profile ------------------------------------------------------------------------


def test_get_me_returns_the_own_profile(client, user):
    response = client.get(ME, headers=user.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert_public_user(body)
    assert body["id"] == user.id and body["email"] == user.email
    assert response.headers["Cache-Control"] == "no-store"


def test_get_me_reads_the_database_once_and_shows_a_pending_change(app, client, user):
    with app.app_context():
        db.session.execute(
            db.update(User).where(User.id == uuid.UUID(user.id)).values(pending_email="n@x.org")
        )
        db.session.commit()
    with captured_statements(app) as statements:
        body = client.get(ME, headers=user.headers).get_json()
    assert body["pending_email"] == "n@x.org" and body["email_verified"] is False
    assert len([s for s, _ in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_patch_me_changes_the_name(client, user):
    response = client.patch(ME, json={"name": "Ada"}, headers=user.headers)
    assert response.status_code == 200
    assert response.get_json()["name"] == "Ada"
    assert client.get(ME, headers=user.headers).get_json()["name"] == "Ada"


def test_patch_me_email_change_needs_current_password(client, user):
    response = client.patch(ME, json={"email": "new@example.com"}, headers=user.headers)
    body = assert_problem(response, 422)
    assert "current_password" in body["errors"]
    assert client.get(ME, headers=user.headers).get_json()["email"] == user.email


def test_patch_me_email_change_with_a_wrong_password_is_422(client, user):
    changes = {"email": "new@example.com", "current_password": "not my password at all"}
    body = assert_problem(client.patch(ME, json=changes, headers=user.headers), 422)
    assert "current_password" in body["errors"]
    assert client.get(ME, headers=user.headers).get_json()["email"] == user.email


def test_patch_me_email_change_with_the_password_starts_a_change(client, user):
    """The address changes once the new one is confirmed (tests/test_email_change.py)."""
    changes = {"email": " New@Example.com ", "current_password": user.password}
    response = client.patch(ME, json=changes, headers=user.headers)
    assert response.status_code == 202
    assert response.get_json()["email"] == user.email
    assert response.get_json()["pending_email"] == "new@example.com"
    assert log_in(client, user.email).status_code == 201
    assert_problem(log_in(client, "new@example.com"), 401)


def test_patch_me_to_a_registered_email_is_409(client, accounts, user):
    other = accounts.create()
    changes = {"email": other.email.upper(), "current_password": user.password}
    assert_problem(client.patch(ME, json=changes, headers=user.headers), 409)
    assert client.get(ME, headers=user.headers).get_json()["email"] == user.email


@pytest.mark.parametrize(
    "field, value",
    [("role", "admin"), ("is_active", False), ("id", UNKNOWN_ID), ("password", "x" * 20)],
)
def test_patch_me_rejects_unknown_fields(client, user, field, value):
    body = assert_problem(client.patch(ME, json={field: value}, headers=user.headers), 422)
    assert field in body["errors"]
    assert client.get(ME, headers=user.headers).get_json()["role"] == "user"


def test_delete_me_with_a_wrong_password_is_422(client, user):
    response = client.delete(ME, json={"password": "not my password at all"}, headers=user.headers)
    body = assert_problem(response, 422)
    assert "password" in body["errors"]
    assert client.get(ME, headers=user.headers).status_code == 200


def test_delete_me_without_a_password_is_422(client, user):
    body = assert_problem(client.delete(ME, json={}, headers=user.headers), 422)
    assert "password" in body["errors"]


def test_delete_me_removes_the_account_its_sessions_and_records(app, client, user):
    refresh_token = log_in(client, user.email).get_json()["refresh_token"]
    with app.app_context():
        db.session.add(Record(owner_id=uuid.UUID(user.id), collection="notes", data={"a": 1}))
        db.session.commit()
    response = client.delete(ME, json={"password": user.password}, headers=user.headers)
    assert response.status_code == 204
    assert response.get_data() == b""
    assert_problem(client.get(ME, headers=user.headers), 401)
    assert_problem(log_in(client, user.email), 401)
    refreshed = client.post(f"{API}/sessions/refresh", json={"refresh_token": refresh_token})
    assert_problem(refreshed, 401)
    owner = uuid.UUID(user.id)
    with app.app_context():
        assert db.session.get(User, owner) is None
        assert db.session.scalars(db.select(Session).filter_by(user_id=owner)).all() == []
        assert db.session.scalars(db.select(Record).filter_by(owner_id=owner)).all() == []
        assert db.session.scalars(db.select(RefreshToken)).all() == []


# --- the own password -----------------------------------------------------------------------


def _change_password(client, headers, current, new):
    body = {"current_password": current, "new_password": new}
    return client.put(f"{ME}/password", json=body, headers=headers)


def test_password_change_with_a_wrong_current_password_is_422(client, user):
    response = _change_password(client, user.headers, "not my password at all", NEW_PASSWORD)
    body = assert_problem(response, 422)
    assert "current_password" in body["errors"]
    assert log_in(client, user.email).status_code == 201


@pytest.mark.parametrize("new", ["short pass1", "qwerty123456", "{email}", "x" * 257])
def test_password_change_to_a_weak_password_is_422(client, user, new):
    new = new.format(email=user.email)
    body = assert_problem(_change_password(client, user.headers, user.password, new), 422)
    assert "new_password" in body["errors"]
    assert log_in(client, user.email).status_code == 201


@pytest.mark.parametrize(
    "body, field",
    [
        ({"new_password": NEW_PASSWORD}, "current_password"),
        ({"current_password": PASSWORD}, "new_password"),
        ({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm": "x"}, "confirm"),
    ],
)
def test_password_change_validation_errors_name_the_field(client, user, body, field):
    response = client.put(f"{ME}/password", json=body, headers=user.headers)
    assert field in assert_problem(response, 422)["errors"]
    assert log_in(client, user.email).status_code == 201


def test_password_change_keeps_this_session_and_revokes_the_others(client, user):
    this = log_in(client, user.email).get_json()
    other = log_in(client, user.email).get_json()
    response = _change_password(client, bearer(this["access_token"]), PASSWORD, NEW_PASSWORD)
    assert response.status_code == 204
    assert client.get(ME, headers=bearer(this["access_token"])).status_code == 200
    assert_problem(client.get(ME, headers=bearer(other["access_token"])), 401)
    assert_problem(client.get(ME, headers=user.headers), 401)
    refresh = f"{API}/sessions/refresh"
    assert_problem(client.post(refresh, json={"refresh_token": other["refresh_token"]}), 401)
    assert client.post(refresh, json={"refresh_token": this["refresh_token"]}).status_code == 200
    assert log_in(client, user.email, NEW_PASSWORD).status_code == 201
    assert_problem(log_in(client, user.email, PASSWORD), 401)


# --- admin: listing -------------------------------------------------------------------------


def test_admin_lists_users_newest_first(client, accounts, admin):
    first, second = accounts.create(), accounts.create()
    response = client.get(USERS, headers=admin.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert [item["id"] for item in body["items"]] == [second.id, first.id, admin.id]
    assert body["next_cursor"] is None
    for item in body["items"]:
        assert_public_user(item)


def test_admin_pages_through_users(client, accounts, admin):
    created = [accounts.create().id for _ in range(4)]
    expected = list(reversed([admin.id, *created]))
    seen, url = [], f"{USERS}?limit=2"
    while url:
        response = client.get(url, headers=admin.headers)
        assert response.status_code == 200
        body = response.get_json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        if body["next_cursor"] is None:
            assert "Link" not in response.headers
            url = None
        else:
            link = re.match(r'^<([^>]+)>; rel="next"$', response.headers["Link"])
            assert link and body["next_cursor"] in link.group(1)
            url = f"{USERS}?limit=2&cursor={body['next_cursor']}"
    assert seen == expected


def test_admin_filters_users_by_email_role_and_activity(client, accounts, admin):
    ada = accounts.create(email="ada@example.com")
    service = accounts.create(role="service")
    inactive = accounts.create()
    client.patch(f"{USERS}/{inactive.id}", json={"is_active": False}, headers=admin.headers)

    def ids(query):
        response = client.get(f"{USERS}?{query}", headers=admin.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return {item["id"] for item in response.get_json()["items"]}

    assert ids("email=ADA@example.com") == {ada.id}
    assert ids("role=service") == {service.id}
    assert ids("role=admin") == {admin.id}
    assert ids("is_active=false") == {inactive.id}
    assert ids("is_active=true") == {admin.id, ada.id, service.id}
    assert ids("role=user&is_active=true") == {ada.id}


@pytest.mark.parametrize(
    "query, statuses",
    [
        ("is_active=maybe", {400}),
        ("limit=abc", {400}),
        ("cursor=not-a-cursor", {400}),
        ("colour=blue", {400}),
        ("role=wizard", {400, 422}),
        ("limit=0", {422}),
        ("limit=101", {422}),
    ],
)
def test_user_list_rejects_bad_query_parameters(client, admin, query, statuses):
    response = client.get(f"{USERS}?{query}", headers=admin.headers)
    assert response.status_code in statuses
    assert_problem(response, response.status_code)


# --- admin: one user ------------------------------------------------------------------------


def test_admin_gets_any_user(client, user, admin):
    response = client.get(f"{USERS}/{user.id}", headers=admin.headers)
    assert response.status_code == 200
    assert response.get_json()["email"] == user.email


def test_user_gets_itself_by_id(client, user):
    response = client.get(f"{USERS}/{user.id}", headers=user.headers)
    assert response.status_code == 200
    assert response.get_json()["id"] == user.id


def test_user_gets_404_for_another_user(client, accounts, user):
    other = accounts.create()
    assert_problem(client.get(f"{USERS}/{other.id}", headers=user.headers), 404)


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_user_id_is_404(client, admin, method):
    response = getattr(client, method)(
        f"{USERS}/{uuid.uuid4()}", json={"name": "x"}, headers=admin.headers
    )
    assert_problem(response, 404)


def test_admin_renames_a_user_without_ending_its_sessions(client, user, admin):
    response = client.patch(f"{USERS}/{user.id}", json={"name": "Renamed"}, headers=admin.headers)
    assert response.status_code == 200
    assert response.get_json()["name"] == "Renamed"
    assert client.get(ME, headers=user.headers).status_code == 200


def test_admin_role_change_revokes_the_users_sessions(client, user, admin):
    tokens = log_in(client, user.email).get_json()
    response = client.patch(f"{USERS}/{user.id}", json={"role": "service"}, headers=admin.headers)
    assert response.status_code == 200
    assert response.get_json()["role"] == "service"
    assert_problem(client.get(ME, headers=user.headers), 401)
    assert_problem(client.get(ME, headers=bearer(tokens["access_token"])), 401)
    refreshed = client.post(
        f"{API}/sessions/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert_problem(refreshed, 401)
    again = log_in(client, user.email).get_json()
    assert again["user"]["role"] == "service"
    assert client.get(ME, headers=bearer(again["access_token"])).get_json()["role"] == "service"


def test_admin_deactivation_revokes_sessions_and_blocks_log_in(client, user, admin):
    response = client.patch(f"{USERS}/{user.id}", json={"is_active": False}, headers=admin.headers)
    assert response.status_code == 200
    assert response.get_json()["is_active"] is False
    assert_problem(client.get(ME, headers=user.headers), 401)
    assert_problem(log_in(client, user.email), 401)
    client.patch(f"{USERS}/{user.id}", json={"is_active": True}, headers=admin.headers)
    assert log_in(client, user.email).status_code == 201


def test_admin_changes_a_users_email(client, user, admin):
    url = f"{USERS}/{user.id}"
    response = client.patch(url, json={"email": "Moved@Example.com"}, headers=admin.headers)
    assert response.status_code == 200
    assert response.get_json()["email"] == "moved@example.com"
    assert log_in(client, "moved@example.com").status_code == 201


def test_admin_email_change_to_a_registered_email_is_409(client, user, admin):
    response = client.patch(
        f"{USERS}/{user.id}", json={"email": admin.email}, headers=admin.headers
    )
    assert_problem(response, 409)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"password": "a whole new passphrase"}, "password"),
        ({"password_hash": "x"}, "password_hash"),
        ({"id": UNKNOWN_ID}, "id"),
        ({"created_at": "2020-01-01T00:00:00.000Z"}, "created_at"),
        ({"is_active": "false"}, "is_active"),
        ({"is_active": 0}, "is_active"),
        ({"is_active": None}, "is_active"),
        ({"role": "root"}, "role"),
        ({"email": "not-an-email"}, "email"),
    ],
)
def test_admin_patch_rejects_invalid_changes(client, user, admin, changes, field):
    response = client.patch(f"{USERS}/{user.id}", json=changes, headers=admin.headers)
    body = assert_problem(response, 422)
    assert field in body["errors"]
    assert client.get(ME, headers=user.headers).get_json()["is_active"] is True


def test_admin_deletes_a_user(app, client, user, admin):
    with app.app_context():
        db.session.add(Record(owner_id=uuid.UUID(user.id), collection="notes", data={}))
        db.session.commit()
    assert client.delete(f"{USERS}/{user.id}", headers=admin.headers).status_code == 204
    assert_problem(client.get(f"{USERS}/{user.id}", headers=admin.headers), 404)
    assert_problem(client.delete(f"{USERS}/{user.id}", headers=admin.headers), 404)
    assert_problem(client.get(ME, headers=user.headers), 401)
    assert_problem(log_in(client, user.email), 401)
    with app.app_context():
        owner = uuid.UUID(user.id)
        assert db.session.scalars(db.select(Record).filter_by(owner_id=owner)).all() == []
        assert db.session.scalars(db.select(Session).filter_by(user_id=owner)).all() == []


# --- roles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["user", "service"])
@pytest.mark.parametrize(
    "method, target, body",
    [
        ("get", "", None),
        ("patch", "/{id}", {"role": "admin"}),
        ("delete", "/{id}", None),
    ],
)
def test_admin_routes_are_403_for_other_roles(client, accounts, role, method, target, body):
    caller = accounts.create(role=role)
    victim = accounts.create()
    url = USERS + target.format(id=victim.id)
    response = getattr(client, method)(url, json=body, headers=caller.headers)
    assert_problem(response, 403)
    assert client.get(ME, headers=victim.headers).get_json()["role"] == "user"


@pytest.mark.parametrize("role", ["user", "service"])
def test_a_non_admin_cannot_promote_itself(client, accounts, role):
    caller = accounts.create(role=role)
    url = f"{USERS}/{caller.id}"
    assert_problem(client.patch(url, json={"role": "admin"}, headers=caller.headers), 403)
    assert client.get(ME, headers=caller.headers).get_json()["role"] == role


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", ME),
        ("patch", ME),
        ("delete", ME),
        ("put", f"{ME}/password"),
        ("get", USERS),
        ("get", f"{USERS}/{UNKNOWN_ID}"),
        ("patch", f"{USERS}/{UNKNOWN_ID}"),
        ("delete", f"{USERS}/{UNKNOWN_ID}"),
    ],
)
def test_user_routes_need_a_token(client, method, path):
    response = getattr(client, method)(path, json={})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
