"""Records over HTTP: CRUD, ETags and conditional requests, merge patch, validation, ownership,
idempotent creation and concurrent writers."""

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import assert_problem

BASE = "/api/v1/data"


def create(client, account, data, collection="tasks", headers=None):
    response = client.post(
        f"{BASE}/{collection}", json={"data": data}, headers={**account.headers, **(headers or {})}
    )
    assert response.status_code == 201, response.get_json()
    return response


def url_of(response) -> str:
    return response.headers["Location"]


def nested_lists(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def with_headers(account, **extra) -> dict:
    return {**account.headers, **{name.replace("_", "-"): v for name, v in extra.items()}}


# --- create, read, replace, delete ----------------------------------------------------------


def test_create_returns_the_record_with_location_and_etag(client, user):
    response = create(client, user, {"title": "Buy milk", "done": False})
    body = response.get_json()
    assert set(body) == {
        "id",
        "collection",
        "owner_id",
        "data",
        "version",
        "created_at",
        "updated_at",
        "access",
    }
    assert body["access"] == "owner"
    assert body["collection"] == "tasks" and body["owner_id"] == user.id
    assert body["data"] == {"title": "Buy milk", "done": False} and body["version"] == 1
    assert body["created_at"] == body["updated_at"] and body["created_at"].endswith("Z")
    assert uuid.UUID(body["id"]).version == 7
    assert response.headers["Location"] == f"{BASE}/tasks/{body['id']}"
    assert response.headers["ETag"] == f'"{body["id"]}.1"'


def test_get_returns_the_record_and_its_etag(client, user):
    created = create(client, user, {"n": 1})
    response = client.get(url_of(created), headers=user.headers)
    assert response.status_code == 200
    assert response.get_json() == created.get_json()
    assert response.headers["ETag"] == created.headers["ETag"]
    assert response.headers["Cache-Control"] == "no-store"


def test_put_replaces_data_and_bumps_version_updated_at_and_etag(client, user):
    created = create(client, user, {"a": 1, "b": 2})
    response = client.put(url_of(created), json={"data": {"c": 3}}, headers=user.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["data"] == {"c": 3} and body["version"] == 2
    assert body["updated_at"] >= created.get_json()["updated_at"]
    assert body["created_at"] == created.get_json()["created_at"]
    assert response.headers["ETag"] == f'"{body["id"]}.2"'
    assert client.get(url_of(created), headers=user.headers).get_json() == body


def test_every_write_moves_updated_at_forward(client, user):
    created = create(client, user, {"n": 0})
    stamps = [created.get_json()["updated_at"]]
    for n in range(1, 4):
        response = client.patch(url_of(created), json={"data": {"n": n}}, headers=user.headers)
        stamps.append(response.get_json()["updated_at"])
    assert stamps == sorted(stamps)
    assert response.get_json()["version"] == 4


def test_put_to_a_missing_record_is_404_not_an_upsert(client, user):
    missing = f"{BASE}/tasks/{uuid.uuid4()}"
    assert client.put(missing, json={"data": {}}, headers=user.headers).status_code == 404
    assert client.get(f"{BASE}/tasks", headers=user.headers).get_json()["items"] == []


def test_delete_removes_the_record(client, user):
    created = create(client, user, {"n": 1})
    response = client.delete(url_of(created), headers=user.headers)
    assert response.status_code == 204 and response.data == b""
    assert "Content-Type" not in response.headers
    assert client.get(url_of(created), headers=user.headers).status_code == 404
    assert client.delete(url_of(created), headers=user.headers).status_code == 404


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_a_record_id_that_is_not_a_uuid_is_404(client, user, method):
    for record_id in ("42", "not-a-uuid", "0" * 31):
        response = getattr(client, method)(
            f"{BASE}/tasks/{record_id}", json={"data": {}}, headers=user.headers
        )
        assert response.status_code == 404, record_id
        assert response.mimetype == "application/problem+json"


def test_a_record_is_found_only_in_its_own_collection(client, user):
    created = create(client, user, {"n": 1}, collection="notes")
    record_id = created.get_json()["id"]
    assert client.get(f"{BASE}/tasks/{record_id}", headers=user.headers).status_code == 404


# --- conditional requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "*", "W/{etag}", '"other", {etag}', '"a", W/{etag}, "b"'],
)
def test_if_none_match_of_the_current_etag_is_304_without_a_body(client, user, if_none_match):
    created = create(client, user, {"n": 1})
    etag = created.headers["ETag"]
    response = client.get(
        url_of(created), headers=with_headers(user, If_None_Match=if_none_match.format(etag=etag))
    )
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag


def test_if_none_match_of_a_stale_etag_returns_the_record(client, user):
    created = create(client, user, {"n": 1})
    stale = created.headers["ETag"]
    client.put(url_of(created), json={"data": {"n": 2}}, headers=user.headers)
    response = client.get(url_of(created), headers=with_headers(user, If_None_Match=stale))
    assert response.status_code == 200 and response.get_json()["data"] == {"n": 2}


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_if_match_of_a_stale_etag_is_412_and_changes_nothing(client, user, method):
    created = create(client, user, {"n": 1})
    stale = created.headers["ETag"]
    client.put(url_of(created), json={"data": {"n": 2}}, headers=user.headers)
    response = getattr(client, method)(
        url_of(created), json={"data": {"n": 3}}, headers=with_headers(user, If_Match=stale)
    )
    assert response.status_code == 412
    assert response.mimetype == "application/problem+json"
    current = client.get(url_of(created), headers=user.headers).get_json()
    assert current["data"] == {"n": 2} and current["version"] == 2


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.parametrize("if_match", ["{etag}", "*", '"nope", {etag}'])
def test_if_match_of_the_current_etag_or_star_lets_the_write_through(
    client, user, method, if_match
):
    created = create(client, user, {"n": 1})
    header = if_match.format(etag=created.headers["ETag"])
    response = getattr(client, method)(
        url_of(created), json={"data": {"n": 5}}, headers=with_headers(user, If_Match=header)
    )
    assert response.status_code == (204 if method == "delete" else 200)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_if_match_compares_strongly_so_a_weak_tag_never_matches(client, user, method):
    created = create(client, user, {"n": 1})
    weak = "W/" + created.headers["ETag"]
    response = getattr(client, method)(
        url_of(created), json={"data": {"n": 5}}, headers=with_headers(user, If_Match=weak)
    )
    assert response.status_code == 412


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_an_empty_entity_tag_in_if_match_is_412(client, user, method):
    created = create(client, user, {"n": 1})
    response = getattr(client, method)(
        url_of(created), json={"data": {"n": 5}}, headers=with_headers(user, If_Match='""')
    )
    assert response.status_code == 412
    assert client.get(url_of(created), headers=user.headers).get_json()["version"] == 1


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.parametrize(
    "if_match", ["garbage", ",", " ", "{tag}", '"{tag}" "{tag}"', '"{tag}",', "W/{tag}", "**"]
)
def test_a_malformed_if_match_is_400_saying_so_and_changes_nothing(client, user, method, if_match):
    created = create(client, user, {"n": 1})
    tag = created.headers["ETag"].strip('"')
    headers = with_headers(user, If_Match=if_match.format(tag=tag))
    response = getattr(client, method)(url_of(created), json={"data": {"n": 5}}, headers=headers)
    assert_problem(response, 400)
    assert "If-Match" in response.get_json()["detail"]
    assert client.get(url_of(created), headers=user.headers).get_json()["version"] == 1


def test_if_match_of_another_records_etag_is_412(client, user):
    first, second = create(client, user, {"n": 1}), create(client, user, {"n": 2})
    response = client.put(
        url_of(first),
        json={"data": {}},
        headers=with_headers(user, If_Match=second.headers["ETag"]),
    )
    assert response.status_code == 412


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_if_match_on_a_missing_record_is_404(client, user, method):
    response = getattr(client, method)(
        f"{BASE}/tasks/{uuid.uuid4()}", json={"data": {}}, headers=with_headers(user, If_Match="*")
    )
    assert response.status_code == 404


def test_every_write_returns_the_new_etag_which_the_next_write_can_use(client, user):
    created = create(client, user, {"n": 0})
    etag = created.headers["ETag"]
    for n in range(1, 4):
        response = client.patch(
            url_of(created), json={"data": {"n": n}}, headers=with_headers(user, If_Match=etag)
        )
        assert response.status_code == 200
        assert response.headers["ETag"] != etag
        etag = response.headers["ETag"]
    deleted = client.delete(url_of(created), headers=with_headers(user, If_Match=etag))
    assert deleted.status_code == 204


# --- JSON Merge Patch -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "patch", "after"),
    [
        ({"a": 1, "b": 2}, {"a": None}, {"b": 2}),
        ({"a": 1}, {"missing": None}, {"a": 1}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"y": None, "z": 3}}, {"a": {"x": 1, "z": 3}}),
        ({"a": {"b": {"c": 1}}}, {"a": {"b": {"d": 2}}}, {"a": {"b": {"c": 1, "d": 2}}}),
        ({"tags": ["a", "b"]}, {"tags": ["c"]}, {"tags": ["c"]}),
        ({"a": {"x": 1}}, {"a": 5}, {"a": 5}),
        ({"a": 5}, {"a": {"x": None, "y": 1}}, {"a": {"y": 1}}),
        ({"a": [{"x": 1}]}, {"a": [{"y": None}]}, {"a": [{"y": None}]}),
        ({"a": 1}, {}, {"a": 1}),
    ],
)
def test_patch_applies_a_json_merge_patch(client, user, before, patch, after):
    created = create(client, user, before)
    response = client.patch(url_of(created), json={"data": patch}, headers=user.headers)
    assert response.status_code == 200
    assert response.get_json()["data"] == after
    assert response.get_json()["version"] == 2


def test_patch_accepts_the_merge_patch_media_type(client, user):
    created = create(client, user, {"a": 1})
    response = client.patch(
        url_of(created),
        data='{"data": {"b": 2}}',
        headers=with_headers(user, Content_Type="application/merge-patch+json"),
    )
    assert response.status_code == 200 and response.get_json()["data"] == {"a": 1, "b": 2}


@pytest.mark.parametrize("patch", [[1, 2], "text", 3, None, True])
def test_a_patch_that_is_not_an_object_is_422(client, user, patch):
    created = create(client, user, {"a": 1})
    response = client.patch(url_of(created), json={"data": patch}, headers=user.headers)
    assert response.status_code == 422
    assert "data" in response.get_json()["errors"]


def test_a_patch_whose_result_is_too_large_is_422_and_changes_nothing(make_app, user):
    client = make_app(COFFER_MAX_RECORD_BYTES=64).test_client()
    created = create(client, user, {"a": "x" * 40})
    response = client.patch(url_of(created), json={"data": {"b": "y" * 20}}, headers=user.headers)
    assert response.status_code == 422
    assert "data" in response.get_json()["errors"]
    assert client.get(url_of(created), headers=user.headers).get_json()["version"] == 1


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("data", [[1, 2], "text", 3, None, True])
@pytest.mark.parametrize("method", ["post", "put"])
def test_data_must_be_a_json_object(client, user, data, method):
    created = create(client, user, {"a": 1})
    url = f"{BASE}/tasks" if method == "post" else url_of(created)
    response = getattr(client, method)(url, json={"data": data}, headers=user.headers)
    assert response.status_code == 422
    assert response.get_json()["errors"]["data"]


@pytest.mark.parametrize(
    "body", [{}, {"data": {}, "owner_id": "x"}, {"data": {}, "version": 3}, {"record": {}}]
)
def test_a_missing_data_or_an_unknown_field_is_422(client, user, body):
    response = client.post(f"{BASE}/tasks", json=body, headers=user.headers)
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert set(errors) == (set(body) - {"data"}) | ({"data"} - set(body))


@pytest.mark.parametrize(
    "data",
    [
        {"a": "nul\u0000inside"},
        {"nul\u0000key": 1},
        {"big": 2**63},
        {"small": -(2**64)},
        {"huge": 1e19},
        {"deep": nested_lists(70)},
    ],
)
def test_values_that_cannot_be_stored_identically_everywhere_are_422(client, user, data):
    response = client.post(f"{BASE}/tasks", json={"data": data}, headers=user.headers)
    assert response.status_code == 422
    assert response.get_json()["errors"]["data"]


def test_the_largest_numbers_and_unicode_round_trip(client, user):
    data = {"max": 2**63 - 1, "min": -(2**63), "pi": 3.141592653589793, "s": "Zürich 😀 ∑"}
    created = create(client, user, data)
    assert client.get(url_of(created), headers=user.headers).get_json()["data"] == data


def test_data_over_the_record_limit_is_422(make_app, user):
    client = make_app(COFFER_MAX_RECORD_BYTES=100).test_client()
    ok = client.post(f"{BASE}/tasks", json={"data": {"s": "x" * 90}}, headers=user.headers)
    assert ok.status_code == 201  # {"s":"xxx…"} is 8 + 90 bytes as compact JSON
    response = client.post(f"{BASE}/tasks", json={"data": {"s": "x" * 93}}, headers=user.headers)
    assert response.status_code == 422
    assert "100 bytes" in response.get_json()["errors"]["data"][0]


def test_a_body_over_the_request_limit_is_413(make_app, user):
    client = make_app(COFFER_MAX_BODY_BYTES=1024).test_client()
    response = client.post(f"{BASE}/tasks", json={"data": {"s": "x" * 2000}}, headers=user.headers)
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "content_type"),
    [
        ("post", "text/plain"),
        ("post", "application/merge-patch+json"),
        ("put", "application/x-www-form-urlencoded"),
        ("put", "application/merge-patch+json"),
        ("patch", "text/plain"),
    ],
)
def test_a_wrong_content_type_is_415(client, user, method, content_type):
    created = create(client, user, {"a": 1})
    url = f"{BASE}/tasks" if method == "post" else url_of(created)
    response = getattr(client, method)(
        url, data='{"data": {}}', headers=with_headers(user, Content_Type=content_type)
    )
    assert response.status_code == 415


def test_malformed_json_is_400(client, user):
    response = client.post(
        f"{BASE}/tasks",
        data='{"data": {',
        headers=with_headers(user, Content_Type="application/json"),
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("post", ""), ("delete", ""), ("get", "/{id}"), ("put", "/{id}")]
    + [("patch", "/{id}"), ("delete", "/{id}")],
)
def test_an_invalid_collection_name_is_400_on_every_verb(client, user, method, suffix):
    names = ["Tasks", "1tasks", "_tasks", "tâches", "a" * 65, "has space", "dot.ted", "tasks%0A"]
    for name in names:
        path = f"{BASE}/{name}" + suffix.format(id=uuid.uuid4())
        response = getattr(client, method)(path, json={"data": {}}, headers=user.headers)
        assert response.status_code == 400, name
        assert "collection" in response.get_json()["detail"]


def test_the_longest_valid_collection_name_works(client, user):
    name = "a" + "b_-9" * 15 + "xyz"
    assert len(name) == 64
    create(client, user, {}, collection=name)


def test_write_routes_take_no_query_parameters(client, user):
    created = create(client, user, {"a": 1})
    response = client.put(url_of(created) + "?force=1", json={"data": {}}, headers=user.headers)
    assert response.status_code == 400
    assert "force" in response.get_json()["errors"]


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("post", ""), ("delete", ""), ("get", "/x"), ("put", "/x"), ("patch", "/x")]
    + [("delete", "/x")],
)
def test_data_routes_need_a_token(client, method, suffix):
    response = getattr(client, method)(f"{BASE}/tasks{suffix}", json={"data": {}})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- ownership ------------------------------------------------------------------------------


@pytest.fixture
def intruder(accounts):
    return accounts.create()


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_another_users_record_is_404_on_every_verb(client, user, intruder, method):
    created = create(client, user, {"secret": 1})
    response = getattr(client, method)(
        url_of(created), json={"data": {"stolen": True}}, headers=intruder.headers
    )
    assert response.status_code == 404
    intact = client.get(url_of(created), headers=user.headers).get_json()
    assert intact["data"] == {"secret": 1} and intact["version"] == 1


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_another_users_record_is_404_even_with_if_match(client, user, intruder, method):
    created = create(client, user, {"secret": 1})
    response = getattr(client, method)(
        url_of(created),
        json={"data": {}},
        headers=with_headers(intruder, If_Match=created.headers["ETag"]),
    )
    assert response.status_code == 404


def test_lists_and_collections_show_only_the_callers_records(client, user, intruder):
    create(client, user, {"mine": True})
    create(client, intruder, {"theirs": True})
    create(client, intruder, {"theirs": True}, collection="private")
    items = client.get(f"{BASE}/tasks", headers=user.headers).get_json()["items"]
    assert [item["data"] for item in items] == [{"mine": True}]
    collections = client.get(BASE, headers=user.headers).get_json()["items"]
    assert [c["name"] for c in collections] == ["tasks"] and collections[0]["count"] == 1


def test_deleting_a_collection_deletes_only_the_callers_records(client, user, intruder):
    create(client, user, {"n": 1})
    create(client, user, {"n": 2})
    create(client, user, {"n": 3}, collection="notes")
    create(client, intruder, {"n": 4})
    response = client.delete(f"{BASE}/tasks", headers=user.headers)
    assert response.status_code == 204 and response.data == b""
    assert client.get(f"{BASE}/tasks", headers=user.headers).get_json()["items"] == []
    assert len(client.get(f"{BASE}/notes", headers=user.headers).get_json()["items"]) == 1
    assert len(client.get(f"{BASE}/tasks", headers=intruder.headers).get_json()["items"]) == 1


def test_deleting_an_empty_collection_is_204(client, user):
    assert client.delete(f"{BASE}/nothing", headers=user.headers).status_code == 204


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", "/tasks"), ("post", "/tasks"), ("delete", "/tasks"), ("get", "")]
    + [("get", "/tasks/{id}"), ("put", "/tasks/{id}"), ("patch", "/tasks/{id}")]
    + [("delete", "/tasks/{id}")],
)
def test_owner_id_from_a_non_admin_is_403_everywhere(client, user, intruder, method, suffix):
    created = create(client, user, {"n": 1})
    for owner_id in (user.id, intruder.id, "garbage"):
        path = BASE + suffix.format(id=created.get_json()["id"]) + f"?owner_id={owner_id}"
        response = getattr(client, method)(path, json={"data": {}}, headers=user.headers)
        assert response.status_code == 403, owner_id
    assert client.get(url_of(created), headers=user.headers).get_json()["version"] == 1


def test_admins_read_any_users_records_with_owner_id(client, user, admin):
    created = create(client, user, {"n": 1})
    record_id = created.get_json()["id"]
    query = f"?owner_id={user.id}"
    one = client.get(f"{BASE}/tasks/{record_id}{query}", headers=admin.headers)
    assert one.status_code == 200 and one.get_json() == {**created.get_json(), "access": "write"}
    listed = client.get(f"{BASE}/tasks{query}", headers=admin.headers).get_json()["items"]
    assert [item["id"] for item in listed] == [record_id]
    collections = client.get(f"{BASE}{query}", headers=admin.headers).get_json()["items"]
    assert [(c["name"], c["count"]) for c in collections] == [("tasks", 1)]
    # Admins read (and write) every record, so one record needs no owner_id either.
    assert client.get(f"{BASE}/tasks/{record_id}", headers=admin.headers).status_code == 200


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("post", ""), ("delete", ""), ("put", "/{id}"), ("patch", "/{id}"), ("delete", "/{id}")],
)
def test_owner_id_on_a_write_is_400_even_for_admins(client, user, admin, method, suffix):
    created = create(client, user, {"n": 1})
    path = f"{BASE}/tasks" + suffix.format(id=created.get_json()["id"]) + f"?owner_id={user.id}"
    response = getattr(client, method)(path, json={"data": {}}, headers=admin.headers)
    assert response.status_code == 400
    assert client.get(url_of(created), headers=user.headers).get_json()["version"] == 1


def test_a_malformed_owner_id_from_an_admin_is_400(client, admin):
    response = client.get(f"{BASE}/tasks?owner_id=nope", headers=admin.headers)
    assert response.status_code == 400


# --- collections ----------------------------------------------------------------------------


def test_collections_list_names_counts_and_last_update_by_name(client, user):
    create(client, user, {"n": 1}, collection="zebra")
    create(client, user, {"n": 1}, collection="apple")
    last = create(client, user, {"n": 2}, collection="apple")
    updated = client.patch(url_of(last), json={"data": {"n": 3}}, headers=user.headers)
    body = client.get(BASE, headers=user.headers).get_json()
    assert body["next_cursor"] is None
    assert body["items"] == [
        {"name": "apple", "count": 2, "updated_at": updated.get_json()["updated_at"]},
        {"name": "zebra", "count": 1, "updated_at": body["items"][1]["updated_at"]},
    ]


def test_a_user_without_records_has_no_collections(client, user):
    assert client.get(BASE, headers=user.headers).get_json() == {"items": [], "next_cursor": None}


# --- idempotent creation --------------------------------------------------------------------


def test_a_retry_with_the_same_idempotency_key_replays_the_first_response(client, user):
    headers = {"Idempotency-Key": "create-task-1"}
    first = create(client, user, {"title": "once"}, headers=headers)
    again = client.post(
        f"{BASE}/tasks",
        json={"data": {"title": "once"}},
        headers=with_headers(user, Idempotency_Key="create-task-1"),
    )
    assert again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["ETag"] == first.headers["ETag"]
    assert len(client.get(f"{BASE}/tasks", headers=user.headers).get_json()["items"]) == 1


def test_the_same_idempotency_key_with_another_body_is_422(client, user):
    create(client, user, {"title": "once"}, headers={"Idempotency-Key": "k-2"})
    response = client.post(
        f"{BASE}/tasks",
        json={"data": {"title": "twice"}},
        headers=with_headers(user, Idempotency_Key="k-2"),
    )
    assert response.status_code == 422
    assert len(client.get(f"{BASE}/tasks", headers=user.headers).get_json()["items"]) == 1


def test_idempotency_keys_belong_to_their_caller(client, user, intruder):
    create(client, user, {"title": "mine"}, headers={"Idempotency-Key": "shared"})
    theirs = create(client, intruder, {"title": "mine"}, headers={"Idempotency-Key": "shared"})
    assert theirs.get_json()["owner_id"] == intruder.id


def test_a_failed_creation_does_not_burn_its_idempotency_key(client, user):
    headers = with_headers(user, Idempotency_Key="retry-me")
    bad = client.post(f"{BASE}/tasks", json={"data": [1]}, headers=headers)
    assert bad.status_code == 422
    create(client, user, {"ok": True}, headers={"Idempotency-Key": "retry-me"})


# --- concurrent writers ---------------------------------------------------------------------


def _race(app, count, request):
    """Run `request(client, n)` from `count` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def run(n):
        client = app.test_client()
        barrier.wait()
        return request(client, n)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_twelve_concurrent_patches_with_one_if_match_let_exactly_one_through(app, client, user):
    created = create(client, user, {"winner": None})
    headers = with_headers(user, If_Match=created.headers["ETag"])

    def patch(client, n):
        response = client.patch(url_of(created), json={"data": {"winner": n}}, headers=headers)
        return response.status_code, n

    results = _race(app, 12, patch)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [412] * 11
    (winner,) = [n for status, n in results if status == 200]
    final = client.get(url_of(created), headers=user.headers).get_json()
    assert final["data"] == {"winner": winner} and final["version"] == 2


def test_concurrent_patches_without_if_match_lose_no_update(app, client, user):
    created = create(client, user, {})

    def patch(client, n):
        return client.patch(url_of(created), json={"data": {f"k{n}": n}}, headers=user.headers)

    responses = _race(app, 6, patch)
    assert [r.status_code for r in responses] == [200] * 6
    final = client.get(url_of(created), headers=user.headers).get_json()
    assert final["data"] == {f"k{n}": n for n in range(6)}
    assert final["version"] == 7
    assert sorted(r.get_json()["version"] for r in responses) == list(range(2, 8))


def test_filters_that_python_deems_equal_keep_their_json_types(client, user):
    """1, 1.0 and true are equal in Python; each first-page query must still select its own."""
    for value in (1, True, "1"):
        create(client, user, {"x": value})

    def xs(operand: str) -> list[str]:  # as JSON text: in Python, [True] == [1]
        response = client.get(f"{BASE}/tasks?data.x=eq.{operand}", headers=user.headers)
        assert response.status_code == 200
        return [json.dumps(item["data"]["x"]) for item in response.get_json()["items"]]

    for _ in range(2):  # the second round runs on statements built by the first
        assert xs("true") == ["true"]
        assert xs("1") == ["1"]
        assert xs("1.0") == ["1"]
        assert xs('"1"') == ['"1"']
