"""Schemathesis hooks for .ci/schemathesis: log in as a real user (or admin), and log in
again whenever a test case ends its own session, deletes its own account or demotes itself.

Environment: COFFER_ST_URL (server origin), COFFER_ST_EMAIL, COFFER_ST_PASSWORD,
COFFER_ST_ROLE (`user` or `admin`).
"""

import os
import subprocess
import sys

import requests
import schemathesis

BASE = os.environ.get("COFFER_ST_URL", "http://127.0.0.1:8030")
EMAIL = os.environ.get("COFFER_ST_EMAIL", "schemathesis@example.com")
PASSWORD = os.environ.get("COFFER_ST_PASSWORD", "schemathesis runs as this user")
ROLE = os.environ.get("COFFER_ST_ROLE", "user")


def _log_in() -> requests.Response:
    return requests.post(
        f"{BASE}/api/v1/sessions", json={"email": EMAIL, "password": PASSWORD}, timeout=10
    )


def _restore_account() -> None:
    """Recreate the test account after a test case deleted it (or an admin demoted it)."""
    if ROLE == "admin":
        # The same command an operator runs: creates, promotes and re-activates the admin.
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "create-admin", EMAIL],
            check=True,
            env={**os.environ, "COFFER_ADMIN_PASSWORD": PASSWORD},
            capture_output=True,
        )
    else:
        requests.post(
            f"{BASE}/api/v1/users", json={"email": EMAIL, "password": PASSWORD}, timeout=10
        )


@schemathesis.auth(refresh_interval=60, retry_on=[401, 403])
class CofferLogin:
    """A bearer token from a real log-in; refetched after any 401 (or 403 for the admin)."""

    def get(self, case, context):
        response = _log_in()
        user = response.json().get("user", {}) if response.status_code == 201 else {}
        if response.status_code != 201 or user.get("role") != ROLE or not user.get("is_active"):
            _restore_account()
            response = _log_in()
        response.raise_for_status()
        return response.json()["access_token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
