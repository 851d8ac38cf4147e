"""Look-alike addresses: every path normalises an email the same way (trim, NFKC, lower-case)
and refuses one with invisible format characters, so two spellings are never two accounts."""

import pytest
from helpers import API, PASSWORD, register

from api.email_address import InvalidEmail, normalise_email

USERS = f"{API}/users"
ADA = "ada@example.com"
FULL_WIDTH_ADA = "ａｄａ@ｅｘａｍｐｌｅ.ｃｏｍ"  # U+FF41 …: NFKC folds these into ASCII
INVISIBLE = ["\u200b", "\u200d", "\ufeff", "\u2060", "\u00ad"]  # ZWSP, ZWJ, BOM, WJ, SHY


def log_in(client, email: str, ip: str = "127.0.0.1"):
    return client.post(
        f"{API}/sessions",
        json={"email": email, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": ip},
    )


def assert_refused_naming(response, status: int, field: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("  Ada@Example.COM ", ADA),
        (FULL_WIDTH_ADA, ADA),
        ("ａdmin＠example.com", "admin@example.com"),
        ("\u3000ada@example.com\u3000", ADA),  # an ideographic space is trimmed too
        ("A\u0301da@example.com", "áda@example.com"),  # combining accent: composed
    ],
)
def test_normalise_email_trims_folds_and_lower_cases(value, normalised):
    assert normalise_email(value) == normalised


@pytest.mark.parametrize("char", INVISIBLE)
def test_normalise_email_refuses_format_characters(char):
    with pytest.raises(InvalidEmail):
        normalise_email(f"ada{char}@example.com")


def test_registering_a_full_width_twin_of_an_address_is_409(client):
    assert register(client, ADA).status_code == 201
    response = register(client, FULL_WIDTH_ADA)
    assert response.status_code == 409, response.get_data(as_text=True)


@pytest.mark.parametrize("char", INVISIBLE)
def test_registering_an_address_with_an_invisible_character_is_422(client, char):
    assert register(client, ADA).status_code == 201
    for email in (f"{ADA}{char}", f"ada{char}@example.com"):
        assert_refused_naming(register(client, email), 422, "email")


def test_a_full_width_address_is_stored_folded(client):
    assert register(client, FULL_WIDTH_ADA).get_json()["email"] == ADA


def test_log_in_with_the_full_width_form_opens_the_same_account(client):
    user_id = register(client, ADA).get_json()["id"]
    response = log_in(client, FULL_WIDTH_ADA)
    assert response.status_code == 201
    assert response.get_json()["user"]["id"] == user_id


def test_log_in_with_an_invisible_character_is_422(client):
    register(client, ADA)
    assert_refused_naming(log_in(client, "ada\u200b@example.com"), 422, "email")


def test_the_log_in_limit_counts_both_forms_as_one_account(make_app):
    client = make_app(COFFER_RATE_LIMIT_AUTH="3/minute").test_client()
    assert register(client, ADA).status_code == 201
    # A new client IP each time: only the per-account counter can refuse.
    forms = [ADA, FULL_WIDTH_ADA, ADA.upper()]
    for n, email in enumerate(forms):
        assert log_in(client, email, ip=f"203.0.113.{n}").status_code == 201
    refused = log_in(client, FULL_WIDTH_ADA, ip="203.0.113.99")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1


def test_changing_the_own_email_to_a_full_width_twin_of_another_is_409(client, accounts):
    assert register(client, ADA).status_code == 201
    user = accounts.create()
    changes = {"email": FULL_WIDTH_ADA, "current_password": user.password}
    response = client.patch(f"{USERS}/me", json=changes, headers=user.headers)
    assert response.status_code == 409, response.get_data(as_text=True)


def test_an_admin_cannot_set_an_address_with_an_invisible_character(client, admin, user):
    changes = {"email": "ada\u2060@example.com"}
    response = client.patch(f"{USERS}/{user.id}", json=changes, headers=admin.headers)
    assert_refused_naming(response, 422, "email")


def test_the_admin_list_filter_finds_the_account_by_a_full_width_form(client, admin):
    user_id = register(client, ADA).get_json()["id"]
    response = client.get(USERS, query_string={"email": FULL_WIDTH_ADA}, headers=admin.headers)
    assert response.status_code == 200
    assert [user["id"] for user in response.get_json()["items"]] == [user_id]


def test_a_password_that_is_the_email_in_full_width_is_refused(client):
    assert_refused_naming(register(client, ADA, password=FULL_WIDTH_ADA), 422, "password")
