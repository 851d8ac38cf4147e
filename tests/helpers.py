"""What many test modules share: the test password, bearer headers, problem+json checks."""

API = "/api/v1"
PASSWORD = "correct horse battery staple"
PROBLEM_FIELDS = ("type", "title", "detail")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response, status: int) -> dict:
    """`response` is an RFC 9457 problem of `status`, as every Coffer error is; its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    text = response.get_data(as_text=True)
    assert "<html" not in text.lower() and "Traceback" not in text
    body = response.get_json()
    assert isinstance(body, dict)
    for name in PROBLEM_FIELDS:
        assert isinstance(body[name], str) and body[name], (name, body)
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body
