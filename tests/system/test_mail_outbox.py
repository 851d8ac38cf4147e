"""The mail outbox under faults: the mail server down or hung, two instances on one database,
processes killed between the commit of an action and the send of its mail. Every mail of a
committed action arrives at the real SMTP server exactly once, and no request waits for it.

Each test runs on a schema of its own (own_postgres_url), so that no other instance of the
run takes its mail, and reads the outbox table to tell "nothing left to send" from "not yet".
"""

import os
import signal
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from harness import METRICS, instance_env, tcp_client_of, wait_for
from helpers import API, PASSWORD
from smtp_sink import SmtpSink, token_in
from sqlalchemy.pool import NullPool
from traffic import log_in, new_email

from api.mail.background import POLL_SECONDS
from api.mail.sender import LEASE

pytestmark = [pytest.mark.system, pytest.mark.xdist_group("system")]

USERS = f"{API}/users"
RESETS = f"{API}/password-resets"
VERIFY = f"{API}/email-verification"
VERIFY_SUBJECT = "Confirm your e-mail address"
RESET_SUBJECT = "Reset your password"
NEW_PASSWORD = "a brand new passphrase 42"
# How long a test keeps listening after the last expected mail arrived: past two polls of an
# idle sender (2 s each) and the first retry of a failed send (4–5 s), so that a second send
# of anything would have come. The outbox table then shows that nothing is left to send.
AFTER_ARRIVAL = 6.0
# A mail whose sender was killed mid-send goes again once the sender's lease on it has run
# out. The lease is no setting, so the test that kills a sender mid-send waits for it.
LEASE_SECONDS = LEASE.total_seconds()


class Outbox:
    """The mail_outbox table of one test's schema, read as an operator would."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(url, poolclass=NullPool)

    def rows(self) -> list:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT recipient, template, attempts, sent_at, failed_at, next_attempt_at,"
                    " claimed_until, last_error FROM mail_outbox ORDER BY created_at, id"
                )
            ).all()

    def wait(self, predicate, *, timeout: float) -> list:
        """The rows, once `predicate(rows)` holds; AssertionError with the rows if it never does."""

        def there() -> list | None:
            rows = self.rows()
            return rows if rows and predicate(rows) else None

        found = wait_for(there, timeout=timeout)
        assert found, f"outbox never got there: {self.rows()}"
        return found

    def assert_settled(self, *, sent: int, dropped: int = 0) -> list:
        """Nothing left to do: `sent` rows sent, `dropped` dropped unsent, none due, leased or
        given up."""
        rows = self.rows()
        assert all(row.next_attempt_at is None and row.claimed_until is None for row in rows), rows
        assert not [row for row in rows if row.failed_at is not None], rows
        assert sum(row.sent_at is not None for row in rows) == sent, rows
        assert sum(row.sent_at is None for row in rows) == dropped, rows
        return rows


@pytest.fixture
def outbox(own_postgres_url):
    reader = Outbox(own_postgres_url)
    yield reader
    reader.engine.dispose()


@pytest.fixture
def sink():
    """A sink with a port of its own, not yet started: nothing listens there until .start()."""
    server = SmtpSink()
    yield server
    server.stop()


class Unresponsive:
    """A mail server whose host takes the connection and never says a word (hung, or behind a
    broken proxy): the kernel completes each handshake, nobody ever reads or writes."""

    def __init__(self, port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", port), backlog=64)

    def close(self) -> None:
        self.listener.close()


def mail_env(url: str, redis_url: str, sink: SmtpSink, *, timeout: float = 2, **settings):
    """An instance that mails `sink`, giving up on a silent server after `timeout` seconds, and
    lets each address have plenty of mail."""
    return instance_env(
        database_url=url,
        redis_url=redis_url,
        COFFER_MAIL_URL=f"{sink.url}?timeout={timeout:g}",
        COFFER_RATE_LIMIT_MAIL="1000/minute",
        **settings,
    )


def register(instance, email: str) -> None:
    reply = instance.call("POST", USERS, json_body={"email": email, "password": PASSWORD})
    assert reply.status == 201, (reply.status, reply.body)


def request_reset(instance, email: str) -> float:
    """POST /password-resets → 202; how long the answer took, in seconds."""
    started = time.monotonic()
    reply = instance.call("POST", RESETS, json_body={"email": email})
    elapsed = time.monotonic() - started
    assert reply.status == 202, (reply.status, reply.body)
    return elapsed


def mail_by_subject(sink: SmtpSink) -> Counter:
    return Counter((message["To"], message["Subject"]) for message in sink.messages)


def assert_distinct_messages(sink: SmtpSink) -> None:
    """No message arrived twice (each send composes a new Message-ID, so the recipients'
    counts are what catch a mail sent twice)."""
    ids = Counter(message["Message-ID"] for message in sink.messages)
    assert None not in ids and max(ids.values()) == 1, ids


def the_mail(sink: SmtpSink, email: str, subject: str):
    (message,) = [m for m in sink.to(email) if m["Subject"] == subject]
    return message


def reset_with(instance, message) -> None:
    """Complete the reset with the mailed link's token; the new password logs in."""
    body = {"token": token_in(message), "new_password": NEW_PASSWORD}
    reply = instance.call("POST", f"{RESETS}/confirm", json_body=body)
    assert reply.status == 204, (reply.status, reply.body)
    body = {"email": message["To"], "password": NEW_PASSWORD}
    assert instance.call("POST", f"{API}/sessions", json_body=body).status == 201


@pytest.mark.parametrize("outage", ["refused", "silent"])
def test_a_reset_asked_for_while_the_mail_server_is_down_arrives_once_it_is_back(
    outage, outbox, fleet, sink, redis_url
):
    # "refused": nothing listens on the mail port; "silent": something takes the connection
    # and never answers, so a request that waited on the server would take the 2 s timeout.
    silent = Unresponsive(sink.port) if outage == "silent" else None
    try:
        instance = fleet.start(("mail-down", mail_env(outbox.url, redis_url, sink)))
        email = new_email("reset")
        register(instance, email)
        elapsed = request_reset(instance, email)
        assert elapsed < 1.0, f"the reset took {elapsed:.2f} s: it waited on the mail server"

        # Both mails (verification, reset) were tried, failed, and wait for their retry.
        outbox.wait(
            lambda rows: (
                len(rows) == 2
                and all(row.attempts >= 1 and row.claimed_until is None for row in rows)
            ),
            timeout=15,
        )
        assert not sink.messages
    finally:
        if silent is not None:
            silent.close()
    sink.start()
    back = time.monotonic()
    sink.wait_for(2, timeout=20)
    arrival = time.monotonic() - back
    time.sleep(AFTER_ARRIVAL)

    assert mail_by_subject(sink) == {(email, VERIFY_SUBJECT): 1, (email, RESET_SUBJECT): 1}
    assert_distinct_messages(sink)
    outbox.assert_settled(sent=2)
    reset_with(instance, the_mail(sink, email, RESET_SUBJECT))
    assert not instance.crashes(), instance.crashes()
    METRICS.append(
        f"mail server down ({outage}): POST /password-resets answered 202 in "
        f"{elapsed * 1000:.0f} ms; the mail arrived {arrival:.1f} s after the server came back"
    )


def test_two_instances_on_one_database_send_every_mail_exactly_once(outbox, fleet, sink, redis_url):
    sink.reply_delay = 0.02  # each send takes a moment, so that the senders' batches overlap
    sink.start()
    env = mail_env(outbox.url, redis_url, sink)
    # The From header tells which instance sent a mail.
    a, b = fleet.start(
        ("outbox-a", {**env, "COFFER_MAIL_FROM": "Coffer <no-reply@a.example>"}),
        ("outbox-b", {**env, "COFFER_MAIL_FROM": "Coffer <no-reply@b.example>"}),
    )
    assert len(a.wait_for_workers(2)) == len(b.wait_for_workers(2)) == 2
    users = [new_email(f"pair{index}") for index in range(24)]
    strangers = [new_email(f"nobody{index}") for index in range(6)]  # no account: no mail
    pool = ThreadPoolExecutor(8)

    # 1. Registrations on both instances at once, 8 at a time: each commit wakes the sender
    # of its worker, and the four senders race for the new rows.
    started = time.monotonic()
    list(pool.map(lambda i: register((a, b)[i % 2], users[i]), range(len(users))))
    sink.wait_until(lambda server: {m["To"] for m in server.messages} >= set(users), timeout=30)
    registered_in = time.monotonic() - started

    # 2. The server goes down; resets on both instances (each to the instance that did not
    # register the address, the strangers' to both) pile up in the outbox, tried once.
    sink.stop()
    resets = [((b, a)[i % 2], email) for i, email in enumerate(users + strangers)]
    list(pool.map(lambda pair: request_reset(*pair), resets))
    pool.shutdown()
    outbox.wait(
        lambda rows: (
            len(rows) == 2 * len(users) + len(strangers)
            and all(row.claimed_until is None for row in rows)
            and all(row.attempts >= 1 for row in rows if row.next_attempt_at is not None)
        ),
        timeout=20,
    )

    # 3. A sender elsewhere (another instance, `flask mail send`) locked every waiting row to
    # claim it, and stalls before its commit. The server is back and the rows come due, and
    # every sender polls them at least twice: none may send a row that another one locked.
    with outbox.engine.connect() as conn:
        stalled = conn.begin()
        due = conn.execute(
            sa.text(
                "SELECT next_attempt_at FROM mail_outbox WHERE next_attempt_at IS NOT NULL"
                " FOR UPDATE"
            )
        ).scalars()
        until = max(due) + timedelta(seconds=2 * POLL_SECONDS + 1)
        before = len(sink.messages)
        sink.start()
        time.sleep(max((until - datetime.now(UTC)).total_seconds(), 0))
        assert len(sink.messages) == before, "a sender sent a row that another one had locked"
        stalled.rollback()  # ... and dies: its claim never committed

    # 4. The four senders drain the backlog together.
    back = time.monotonic()
    expected = 2 * len(users)
    sink.wait_for(expected, timeout=30)
    drained_in = time.monotonic() - back
    time.sleep(AFTER_ARRIVAL)

    assert len(sink.messages) == expected, mail_by_subject(sink)
    assert_distinct_messages(sink)
    wanted = {(email, subject): 1 for email in users for subject in (VERIFY_SUBJECT, RESET_SUBJECT)}
    assert mail_by_subject(sink) == wanted
    assert Counter(tuple(delivery.rcpt_tos) for delivery in sink.deliveries) == Counter(
        {(email,): 2 for email in users}
    )
    outbox.assert_settled(sent=expected, dropped=len(strangers))
    senders = Counter(message["From"].addresses[0].domain for message in sink.messages)
    assert senders["a.example"] and senders["b.example"], senders  # both took part
    assert not a.crashes() and not b.crashes(), (a.crashes(), b.crashes())
    METRICS.append(
        f"two instances x 2 workers, one outbox: {expected} mails, each delivered once "
        f"({len(users)} as they were made, in {registered_in:.1f} s; {len(users)} after an "
        f"outage and a stalled claim, in {drained_in:.1f} s); sent by a: "
        f"{senders['a.example']}, b: {senders['b.example']}"
    )


def test_mail_committed_before_the_instance_is_killed_is_sent_after_its_restart(
    outbox, fleet, sink, redis_url
):
    env = mail_env(outbox.url, redis_url, sink)
    first = fleet.start(("before-kill", env))
    email = new_email("crash")
    register(first, email)
    request_reset(first, email)
    # Committed, tried against a server that is down, waiting for a retry: kill -9 it all.
    outbox.wait(
        lambda rows: (
            len(rows) == 2 and all(row.attempts >= 1 and row.claimed_until is None for row in rows)
        ),
        timeout=15,
    )
    first.kill()
    assert not first.workers()

    sink.start()
    second = fleet.start(("after-kill", env))
    restarted = time.monotonic()
    sink.wait_for(2, timeout=20)
    arrival = time.monotonic() - restarted
    time.sleep(AFTER_ARRIVAL)

    assert mail_by_subject(sink) == {(email, VERIFY_SUBJECT): 1, (email, RESET_SUBJECT): 1}
    assert_distinct_messages(sink)
    outbox.assert_settled(sent=2)
    reset_with(second, the_mail(sink, email, RESET_SUBJECT))
    METRICS.append(
        f"kill -9 of a whole instance with 2 mails unsent: delivered {arrival:.1f} s after "
        "the restart"
    )


def test_a_worker_killed_in_the_middle_of_a_send_leaves_the_mail_to_another_sender(
    outbox, fleet, sink, redis_url
):
    sink.start()
    sink.hold()  # the server takes the whole message and does not answer its end of DATA
    instance = fleet.start(("killed-mid-send", mail_env(outbox.url, redis_url, sink, timeout=30)))
    workers = instance.wait_for_workers(2)
    email = new_email("midsend")
    register(instance, email)

    sink.wait_until(lambda server: len(server.waiting) == 1, timeout=15)
    sender = tcp_client_of(workers, sink.waiting[0][1])
    assert sender in workers, (sender, workers)
    os.kill(sender, signal.SIGKILL)
    killed = time.monotonic()
    # The connection dropped before the server's reply: the message was never accepted.
    sink.wait_until(lambda server: server.abandoned == 1, timeout=10)
    sink.release()
    assert not sink.messages
    replaced = instance.wait_for_workers(2)
    assert sender not in replaced
    # Requests reach the workers, whose senders start with their first request.
    for _ in range(6):
        assert instance.call("GET", "/readyz").status == 200

    sink.wait_for(1, timeout=LEASE_SECONDS + 20)
    arrival = time.monotonic() - killed
    time.sleep(AFTER_ARRIVAL)

    assert mail_by_subject(sink) == {(email, VERIFY_SUBJECT): 1}
    outbox.assert_settled(sent=1)
    token = token_in(sink.messages[0])
    verified = instance.call("POST", VERIFY, json_body={"token": token})
    assert verified.status == 200, (verified.status, verified.body)
    assert verified.json()["email_verified"] is True
    assert log_in(instance, email).status == 201
    METRICS.append(
        f"kill -9 of the worker mid-send: the mail went again {arrival:.1f} s later, once "
        f"(the lease is {LEASE_SECONDS:.0f} s)"
    )
