"""What the account e-mail tests share: the routes, a reader's view of a delivered mail (its
link and its code), and the security events an admin reads."""

from helpers import API
from smtp_sink import code_in, token_in

VERIFY = f"{API}/email-verification"
RESEND = f"{API}/users/me/email-verification"
RESETS = f"{API}/password-resets"
RESET_CONFIRM = f"{RESETS}/confirm"
ME = f"{API}/users/me"
INVALID_LINK = "The link or code is invalid, used or expired."
NEW_PASSWORD = "a brand new passphrase 42"


def mailed(app, sink, address: str) -> list:
    """Deliver what is due; every message that `address` has received so far."""
    sink.deliver(app)
    return sink.to(address)


def last_mail(app, sink, address: str):
    """The newest message to `address`, after delivering what is due."""
    received = mailed(app, sink, address)
    assert received, f"no mail to {address}"
    return received[-1]


def proof(message) -> tuple[str, str]:
    """(token, code) of a mail: what a reader copies out of it."""
    return token_in(message), code_in(message)


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def event_types(client, admin, user_id: str) -> list[str]:
    """The user's security events, oldest first, as an admin reads them."""
    response = client.get(f"{API}/users/{user_id}/events?limit=100", headers=admin.headers)
    assert response.status_code == 200
    return [event["type"] for event in reversed(response.get_json()["items"])]


def events_of(client, admin, user_id: str) -> list[dict]:
    response = client.get(f"{API}/users/{user_id}/events?limit=100", headers=admin.headers)
    return list(reversed(response.get_json()["items"]))


def assert_no_secret_in(events: list[dict], *secrets: str) -> None:
    text = str(events)
    for secret in secrets:
        assert secret not in text
