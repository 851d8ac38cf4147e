"""Mail (api/mail): the outbox commits with its action, the sender delivers each mail once over
real SMTP (aiosmtpd, tests/smtp_sink.py), retries with backoff while the server is down, and
gives up after COFFER_MAIL_RETRY_FOR; templates, transports, TLS, the thread and the CLI."""

import logging
import smtplib
import threading
import uuid
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
import sqlalchemy as sa
from flask_migrate.cli import db as db_commands
from gunicorn_run import coffer_env, free_port, migrate, start_gunicorn, stop_gunicorn
from smtp_sink import code_in, html_of, text_of, token_in

from api import mail
from api.extensions import db
from api.http.logs import JsonFormatter
from api.mail import background, sender
from api.mail.outbox import PREPARERS, OutboxMail
from api.mail.transport import Smtp, from_url
from api.models import utcnow

LINK = "https://app.example.org/verify-email#token=tok-en_1"


@pytest.fixture
def mail_log(caplog):
    """The records of api.mail's loggers (the app's logger does not propagate to the root)."""
    logger = logging.getLogger("api.mail")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.fixture
def mail_app(make_app, smtp_sink):
    return make_app(COFFER_APP_URL="https://app.example.org/", **smtp_sink.config)


def enqueue_verification(to: str = "ada@example.com", **extra) -> None:
    context = {
        "link": mail.link("/verify-email", "tok-en_1"),
        "code": "246810",
        "email": to,
        "expires_minutes": 1440,
        **extra,
    }
    mail.enqueue(to=to, template="verify_email", context=context)


def outbox_rows() -> list[OutboxMail]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(OutboxMail).order_by(OutboxMail.id)))


def test_a_waiting_mail_keeps_its_token_and_code_encrypted(mail_app, smtp_sink):
    with mail_app.app_context():
        enqueue_verification()
        db.session.commit()
        raw = db.session.execute(sa.text("SELECT context FROM mail_outbox")).scalar_one()
        assert "tok-en_1" not in str(raw) and "246810" not in str(raw)
        assert mail.deliver_due() == 1
    (message,) = smtp_sink.messages
    assert "tok-en_1" in message.as_string() and "246810" in message.as_string()


def test_committed_mail_is_delivered_once_with_both_parts_and_headers(make_app, smtp_sink):
    app = make_app(
        COFFER_APP_URL="https://app.example.org",
        COFFER_MAIL_FROM="Coffer <no-reply@mail.example.org>",
        **smtp_sink.config,
    )
    with app.app_context():
        enqueue_verification()
        db.session.commit()
        assert mail.deliver_due() == 1
        assert mail.deliver_due() == 0
        (row,) = outbox_rows()
        assert row.sent_at is not None and row.next_attempt_at is None and row.claimed_until is None
        assert row.attempts == 0 and row.failed_at is None
        assert row.context == {}, "the link is not kept once the mail is sent"
    (message,) = smtp_sink.messages
    assert message["From"] == "Coffer <no-reply@mail.example.org>"
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Confirm your e-mail address"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@mail.example.org>")
    assert abs(parsedate_to_datetime(message["Date"]) - utcnow()) < timedelta(minutes=1)
    assert message.get_content_type() == "multipart/alternative"
    assert LINK in text_of(message) and LINK in html_of(message)
    assert token_in(message) == "tok-en_1" and code_in(message) == "246810"
    assert "24 hours" in text_of(message)
    assert smtp_sink.deliveries[0].rcpt_tos == ["ada@example.com"]
    assert smtp_sink.deliveries[0].mail_from == "no-reply@mail.example.org"


def test_link_puts_the_token_in_the_fragment_of_the_app_url(make_app):
    with make_app(COFFER_APP_URL="https://app.example.org/").app_context():
        assert mail.link("/reset-password", "abc_-1") == (
            "https://app.example.org/reset-password#token=abc_-1"
        )


def test_mail_of_a_rolled_back_action_is_never_sent(mail_app, smtp_sink):
    with mail_app.app_context():
        enqueue_verification()
        db.session.rollback()
        assert mail.deliver_due() == 0
        assert outbox_rows() == []
    assert smtp_sink.messages == []


@pytest.mark.parametrize(
    ("template", "context", "expected"),
    [
        ("verify_email", {"link": LINK, "code": "123456", "email": "a@example.com",
                          "expires_minutes": 1440}, ["a@example.com", LINK, "123456"]),
        ("reset_password", {"link": LINK, "code": "123456", "email": "a@example.com",
                            "expires_minutes": 60}, ["a@example.com", LINK, "123456", "1 hour"]),
        ("email_change_confirm", {"link": LINK, "code": "123456", "email": "new@example.com",
                                  "old_email": "old@example.com", "expires_minutes": 1440},
         ["new@example.com", "old@example.com", LINK, "123456"]),
        ("email_change_notice", {"email": "old@example.com", "new_email": "new@example.com"},
         ["old@example.com", "new@example.com"]),
    ],
)  # fmt: skip
def test_every_built_in_template_renders_its_documented_context(
    mail_app, smtp_sink, monkeypatch, template, context, expected
):
    monkeypatch.delitem(PREPARERS, template, raising=False)  # the context as given, sent as is
    with mail_app.app_context():
        mail.enqueue(to="a@example.com", template=template, context=context)
        db.session.commit()
        assert mail.deliver_due() == 1
    (message,) = smtp_sink.messages
    assert message["Subject"]
    for value in expected:
        assert value in text_of(message) and value in html_of(message)
    if template == "email_change_notice":
        assert "#token=" not in message.as_string()


def test_html_part_is_autoescaped_and_the_text_part_is_not(mail_app, smtp_sink):
    with mail_app.app_context():
        enqueue_verification(name="<script>alert(1)</script>")
        db.session.commit()
        mail.deliver_due()
    (message,) = smtp_sink.messages
    assert "<script>" not in html_of(message)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_of(message)
    assert "Hello <script>alert(1)</script>," in text_of(message)


def test_a_template_folder_overrides_single_files(make_app, smtp_sink, tmp_path):
    folder = tmp_path / "mail-templates"
    folder.mkdir()
    (folder / "verify_email.subject.txt").write_text("Welcome aboard, {{ email }}\n")
    (folder / "verify_email.txt").write_text("Your code: {{ code }}\n{{ link }}\n")
    app = make_app(COFFER_MAIL_TEMPLATES=str(folder), **smtp_sink.config)
    with app.app_context():
        enqueue_verification()
        db.session.commit()
        mail.deliver_due()
    (message,) = smtp_sink.messages
    assert message["Subject"] == "Welcome aboard, ada@example.com"
    assert text_of(message).startswith("Your code: 246810\n")
    assert "Confirm my address" in html_of(message), "the built-in HTML part still serves"


def test_an_unknown_template_fails_the_caller_not_the_sender(mail_app):
    with mail_app.app_context(), pytest.raises(ValueError, match="no mail template"):
        mail.enqueue(to="a@example.com", template="welcome", context={})


def test_console_transport_logs_each_mail_with_its_link(make_app, mail_log):
    app = make_app(COFFER_APP_URL="https://app.example.org", COFFER_MAIL_URL="console://")
    with app.app_context():
        enqueue_verification()
        db.session.commit()
        assert mail.deliver_due() == 1
    (record,) = [r for r in mail_log.records if r.name == "api.mail.transport"]
    assert "ada@example.com" in record.getMessage() and LINK in record.getMessage()
    line = JsonFormatter().format(record)
    assert "\n" not in line and LINK in line


def test_console_transport_keeps_links_out_of_production_logs(make_app, mail_log):
    app = make_app(COFFER_ENV="production", COFFER_MAIL_URL="console://")
    with app.app_context():
        enqueue_verification()
        db.session.commit()
        assert mail.deliver_due() == 1
    (record,) = [r for r in mail_log.records if r.name == "api.mail.transport"]
    assert "ada@example.com" in record.getMessage()
    assert "token" not in record.getMessage() and "246810" not in record.getMessage()


def test_starttls_required_refuses_a_server_without_starttls(make_app, smtp_sink):
    app = make_app(COFFER_MAIL_URL=f"{smtp_sink.url}?starttls=required")
    with app.app_context():
        enqueue_verification()
        db.session.commit()
        assert mail.deliver_due() == 0
        (row,) = outbox_rows()
        assert row.sent_at is None and row.attempts == 1 and row.next_attempt_at is not None
        assert "STARTTLS" in row.last_error
    assert smtp_sink.messages == []


def test_starttls_when_offered_then_login(make_app, make_smtp_sink):
    sink = make_smtp_sink(starttls=True, credentials=("mailer", "p@ss:w/rd%"))
    app = make_app(COFFER_MAIL_URL=sink.url.replace("?", "?starttls=required&"))
    with app.app_context():
        enqueue_verification()
        db.session.commit()
        assert mail.deliver_due() == 1
    assert sink.deliveries[0].tls and sink.deliveries[0].login == "mailer"
    assert sink.logins == [("mailer", "p@ss:w/rd%")]


def test_a_refused_login_is_retried_and_the_password_stored_nowhere(make_app, make_smtp_sink):
    sink = make_smtp_sink(starttls=True, credentials=("mailer", "right-password"))
    url = sink.url.replace("right-password", "wrong-password")
    app = make_app(COFFER_MAIL_URL=url)
    with app.app_context():
        enqueue_verification()
        db.session.commit()
        assert mail.deliver_due() == 0
        (row,) = outbox_rows()
    assert row.attempts == 1 and row.last_error.startswith("SMTPAuthenticationError: 535")
    assert "wrong-password" not in row.last_error
    assert sink.messages == []


def test_smtps_implicit_tls_with_a_trusted_ca(make_app, make_smtp_sink):
    sink = make_smtp_sink(implicit_tls=True)
    assert sink.url.startswith("smtps://")
    app = make_app(**sink.config)
    with app.app_context():
        enqueue_verification()
        db.session.commit()
        assert mail.deliver_due() == 1
    assert sink.deliveries[0].tls


def test_tls_verifies_the_server_certificate(make_app, make_smtp_sink):
    sink = make_smtp_sink(implicit_tls=True)
    app = make_app(COFFER_MAIL_URL=f"smtps://127.0.0.1:{sink.port}")  # the system's CAs only
    with app.app_context():
        enqueue_verification()
        db.session.commit()
        assert mail.deliver_due() == 0
        (row,) = outbox_rows()
    assert "CERTIFICATE_VERIFY_FAILED" in row.last_error and row.sent_at is None
    assert sink.messages == []


def test_while_the_server_is_down_retries_back_off_then_it_is_sent_once(mail_app, smtp_sink):
    smtp_sink.stop()
    with mail_app.app_context():
        enqueue_verification()
        db.session.commit()
        now = utcnow()
        delays = []
        for _ in range(12):
            assert mail.deliver_due(now=now) == 0
            (row,) = outbox_rows()
            delays.append((row.next_attempt_at - now).total_seconds())
            now = row.next_attempt_at
        assert row.attempts == 12 and "Connection refused" in row.last_error
        assert 4 <= delays[0] <= 5, "the first retry comes within seconds"
        assert sum(delays[:4]) < 80 and sum(delays[:3]) < 60
        assert all(later >= earlier for earlier, later in zip(delays[:5], delays[1:6], strict=True))
        assert max(delays) <= 300 and min(delays[-4:]) >= 240, "capped at five minutes"
        assert mail.deliver_due(now=now - timedelta(seconds=1)) == 0, "not due before its time"

        smtp_sink.start()
        assert mail.deliver_due(now=now) == 1
        assert mail.deliver_due(now=now + timedelta(hours=1)) == 0
        (row,) = outbox_rows()
        assert row.sent_at is not None and row.last_error is None
    assert len(smtp_sink.messages) == 1


def test_a_batch_connects_once_while_the_server_is_down(mail_app, smtp_sink, monkeypatch):
    smtp_sink.stop()
    connects = []
    real_connect = Smtp.connect
    monkeypatch.setattr(Smtp, "connect", lambda self: connects.append(1) or real_connect(self))
    with mail_app.app_context():
        for number in range(3):
            enqueue_verification(f"user{number}@example.com")
        db.session.commit()
        outcome = sender.deliver()
        assert (outcome.claimed, outcome.sent, outcome.retrying) == (3, 0, 3)
        assert [row.attempts for row in outbox_rows()] == [1, 1, 1]
    assert len(connects) == 1


def test_concurrent_senders_never_send_one_mail_twice(mail_app, smtp_sink):
    with mail_app.app_context():
        for number in range(30):
            enqueue_verification(f"user{number}@example.com")
        db.session.commit()
    start = threading.Barrier(3)
    errors = []

    def worker():
        try:
            start.wait()
            with mail_app.app_context():
                while mail.deliver_due(limit=4):
                    pass
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    recipients = sorted(message["To"] for message in smtp_sink.messages)
    assert recipients == sorted(f"user{number}@example.com" for number in range(30))
    with mail_app.app_context():
        assert all(row.sent_at is not None for row in outbox_rows())


def test_a_row_that_another_postgres_connection_locks_is_skipped_not_awaited(mail_app, smtp_sink):
    with mail_app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("FOR UPDATE SKIP LOCKED is the PostgreSQL path")
        enqueue_verification("first@example.com")
        enqueue_verification("second@example.com")
        db.session.commit()
        first = min(row.id for row in outbox_rows())
        other = db.engine.connect()
        transaction = other.begin()
        try:
            other.execute(sa.select(OutboxMail.id).where(OutboxMail.id == first).with_for_update())
            sent = []
            attempt = threading.Thread(target=_deliver_in_context, args=(mail_app, sent))
            attempt.start()
            attempt.join(timeout=10)
            assert not attempt.is_alive(), "the sender waited for the locked row"
            assert sent == [1]
        finally:
            transaction.rollback()
            other.close()
        assert mail.deliver_due() == 1
    assert [message["To"] for message in smtp_sink.messages] == [
        "second@example.com",
        "first@example.com",
    ]


def _deliver_in_context(app, results: list) -> None:
    with app.app_context():
        results.append(mail.deliver_due())


def test_a_lease_left_by_a_crashed_sender_expires_and_the_mail_is_retried(mail_app, smtp_sink):
    with mail_app.app_context():
        enqueue_verification()
        db.session.commit()
        now = utcnow()
        assert len(sender._claim(10, now)) == 1  # …and the sender dies before sending
        assert mail.deliver_due(now=now + timedelta(seconds=30)) == 0, "the lease still holds"
        assert mail.deliver_due(now=now + sender.LEASE + timedelta(seconds=1)) == 1
        assert mail.deliver_due(now=now + timedelta(minutes=10)) == 0
    assert len(smtp_sink.messages) == 1


def test_a_sender_whose_lease_was_taken_over_sends_nothing(mail_app, smtp_sink):
    with mail_app.app_context():
        enqueue_verification()
        db.session.commit()
        now = utcnow()
        ((row_id, stale_lease),) = sender._claim(10, now)
        later = now + sender.LEASE + timedelta(seconds=1)
        assert mail.deliver_due(now=later) == 1  # another sender took the expired lease
        outcome = sender.Outcome()
        batch = sender._Batch(sender.current_transport())
        sender._deliver_one(row_id, stale_lease, lambda: later, batch, outcome)
        assert outcome.sent == 0
    assert len(smtp_sink.messages) == 1


def test_mail_is_given_up_after_retry_for(make_app, smtp_sink, mail_log):
    app = make_app(COFFER_MAIL_RETRY_FOR=600, **smtp_sink.config)
    smtp_sink.stop()
    with app.app_context():
        enqueue_verification()
        db.session.commit()
        (row,) = outbox_rows()
        deadline = row.created_at + timedelta(seconds=600)
        assert mail.deliver_due(now=deadline - timedelta(seconds=2)) == 0
        (row,) = outbox_rows()
        assert row.next_attempt_at == deadline, "the last try comes at the deadline"
        assert mail.deliver_due(now=deadline) == 0
        (row,) = outbox_rows()
        assert row.failed_at == deadline and row.next_attempt_at is None and row.attempts == 2
        assert row.context == {}
        smtp_sink.start()
        assert mail.deliver_due(now=deadline + timedelta(hours=1)) == 0
    errors = [r for r in mail_log.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "given up after 2 attempts" in errors[0].getMessage()
    assert smtp_sink.messages == []


def _note_templates(tmp_path):
    folder = tmp_path / "note-templates"
    folder.mkdir()
    (folder / "note.subject.txt").write_text("A note")
    (folder / "note.txt").write_text("{{ greeting }}, {{ email }}")
    (folder / "note.html").write_text("<p>{{ greeting }}, {{ email }}</p>")
    return str(folder)


def test_a_preparer_completes_the_context_at_send_time(make_app, smtp_sink, tmp_path, monkeypatch):
    calls = []

    def prepare(recipient: str, context: dict, retry: bool) -> dict:
        calls.append((recipient, context, retry))
        return {"greeting": "Hi", "email": recipient}

    monkeypatch.setitem(PREPARERS, "note", prepare)
    app = make_app(COFFER_MAIL_TEMPLATES=_note_templates(tmp_path), **smtp_sink.config)
    with app.app_context():
        mail.enqueue(to="bob@example.com", template="note", context={"asked": True})
        db.session.commit()
        assert calls == [], "nothing is prepared at enqueue time"
        assert mail.deliver_due() == 1
    assert calls == [("bob@example.com", {"asked": True}, False)]
    assert text_of(smtp_sink.messages[0]) == "Hi, bob@example.com\n"


def test_a_preparer_returning_none_drops_the_mail(make_app, smtp_sink, tmp_path, monkeypatch):
    monkeypatch.setitem(PREPARERS, "note", lambda recipient, context, retry: None)
    app = make_app(COFFER_MAIL_TEMPLATES=_note_templates(tmp_path), **smtp_sink.config)
    with app.app_context():
        mail.enqueue(to="nobody@example.com", template="note", context={})
        db.session.commit()
        outcome = sender.deliver()
        assert (outcome.sent, outcome.dropped) == (0, 1)
        (row,) = outbox_rows()
        assert row.next_attempt_at is None and row.sent_at is None and row.failed_at is None
        assert mail.deliver_due(now=utcnow() + timedelta(hours=1)) == 0
    assert smtp_sink.messages == []


def test_a_template_has_one_preparer():
    @mail.preparer("test_only_template")
    def first(recipient, context):
        return context

    try:
        assert mail.preparer("test_only_template")(first) is first
        with pytest.raises(ValueError, match="has a preparer already"):
            mail.preparer("test_only_template")(lambda recipient, context: context)
    finally:
        PREPARERS.pop("test_only_template")


def test_flask_mail_send_delivers_everything_due(mail_app, smtp_sink):
    with mail_app.app_context():
        for number in range(sender.BATCH + 2):
            enqueue_verification(f"user{number}@example.com")
        db.session.commit()
    result = mail_app.test_cli_runner().invoke(args=["mail", "send"])
    assert result.exit_code == 0, result.output
    assert result.output == f"sent {sender.BATCH + 2} mails\n"
    assert len(smtp_sink.messages) == sender.BATCH + 2
    again = mail_app.test_cli_runner().invoke(args=["mail", "send"])
    assert again.output == "sent 0 mails\n"


def test_flask_mail_send_reports_mail_to_retry(mail_app, smtp_sink):
    smtp_sink.stop()
    with mail_app.app_context():
        enqueue_verification()
        db.session.commit()
    result = mail_app.test_cli_runner().invoke(args=["mail", "send"])
    assert result.output == "sent 0 mails, 1 to retry\n"


def test_flask_mail_purge_deletes_only_finished_mail(mail_app, smtp_sink):
    with mail_app.app_context():
        enqueue_verification("sent@example.com")
        db.session.commit()
        mail.deliver_due()
        enqueue_verification("pending@example.com")
        db.session.commit()
        old = utcnow() - timedelta(days=31)
        db.session.execute(sa.update(OutboxMail).values(created_at=old))
        db.session.commit()
    result = mail_app.test_cli_runner().invoke(args=["mail", "purge"])
    assert result.output == "purged 1 mails\n"
    with mail_app.app_context():
        assert [row.recipient for row in outbox_rows()] == ["pending@example.com"]


def test_the_sender_thread_starts_on_a_first_request_and_wakes_on_commit(
    make_app, smtp_sink, monkeypatch
):
    monkeypatch.setattr(background, "POLL_SECONDS", 30.0)  # only the commit's wake-up is quick
    app = make_app(TESTING=False, COFFER_MAIL_SENDER="on", **smtp_sink.config)
    thread = app.extensions["coffer_mail_sender"]
    assert thread.thread is None, "create_app starts no thread (gunicorn's master runs it)"
    try:
        app.test_client().get("/healthz")
        first = thread.thread
        assert first.is_alive()
        app.test_client().get("/healthz")
        assert thread.thread is first
        with app.app_context():
            enqueue_verification()
            db.session.commit()
        smtp_sink.wait_for(1, timeout=5)
    finally:
        thread.stop()
    assert not first.is_alive()
    assert len(smtp_sink.messages) == 1


def test_no_sender_thread_under_testing_or_when_switched_off(make_app):
    assert "coffer_mail_sender" not in make_app().extensions
    assert "coffer_mail_sender" not in make_app(TESTING=False).extensions  # env: off in tests
    assert "coffer_mail_sender" not in make_app(TESTING=False, COFFER_MAIL_SENDER="no").extensions


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("COFFER_MAIL_URL", "http://user:s3cret@mail.example.org", "scheme"),
        ("COFFER_MAIL_URL", "smtp://user:s3cret@mail.example.org?tls=yes", "unknown options"),
        ("COFFER_MAIL_URL", "smtp://user:s3cret@mail.example.org?starttls=maybe", "starttls"),
        ("COFFER_MAIL_URL", "smtps://user:s3cret@mail.example.org?starttls=required", "starttls"),
        ("COFFER_MAIL_URL", "smtp://mail.example.org?cafile=/no/such/ca.pem", "cafile"),
        ("COFFER_MAIL_URL", "smtp://user:s3cret@:25", "no host"),
        ("COFFER_MAIL_SENDER", "sometimes", "on or off"),
        ("COFFER_APP_URL", "localhost:5173", "COFFER_APP_URL"),
        ("COFFER_MAIL_FROM", "Coffer", "COFFER_MAIL_FROM"),
        ("COFFER_MAIL_TEMPLATES", "/no/such/folder", "COFFER_MAIL_TEMPLATES"),
    ],
)
def test_a_mail_setting_that_cannot_work_stops_start_up(make_app, setting, value, message):
    with pytest.raises(RuntimeError, match=message) as raised:
        make_app(**{setting: value})
    assert "s3cret" not in str(raised.value)


def test_smtp_urls_parse_ports_credentials_and_options(tmp_path):
    cafile = tmp_path / "ca.pem"
    cafile.write_text("")
    plain = from_url("smtp://mail.example.org")
    assert (plain.port, plain.implicit_tls, plain.username) == (587, False, None)
    tls = from_url(f"smtps://us%40er:p%3Ass@mail.example.org?cafile={cafile}&timeout=3")
    assert (tls.port, tls.implicit_tls, tls.username, tls.password) == (465, True, "us@er", "p:ss")
    assert (tls.cafile, tls.timeout) == (str(cafile), 3.0)
    assert "p:ss" not in repr(tls)
    assert from_url("smtp://h:2525?starttls=required").starttls_required


def test_errors_never_repeat_the_password():
    transport = Smtp(host="mail.example.org", port=587, username="u", password="hunter2")
    refused = smtplib.SMTPAuthenticationError(535, b"5.7.8 hunter2 is wrong\r\nbye")
    assert transport.describe(refused) == "SMTPAuthenticationError: 535 5.7.8 *** is wrong bye"


def test_backoff_doubles_from_five_seconds_to_at_most_five_minutes():
    for attempts, low, high in [(1, 4, 5), (2, 8, 10), (3, 16, 20), (4, 32, 40), (7, 240, 300)]:
        for _ in range(20):
            assert low <= sender.backoff(attempts).total_seconds() <= high
    assert sender.backoff(500).total_seconds() <= 300


def test_the_outbox_model_matches_its_migration(app):
    result = app.test_cli_runner().invoke(db_commands, ["check"])
    assert result.exit_code == 0, result.output


def test_a_started_instance_sends_waiting_mail_before_any_request(tmp_path, smtp_sink):
    """gunicorn's workers start their senders at boot: mail left in the outbox by an instance
    that went down is sent by the next one even while no request has come in."""
    database_url = f"sqlite:///{tmp_path / 'coffer.db'}"
    env = coffer_env(
        DATABASE_URL=database_url,
        COFFER_BIND=f"127.0.0.1:{free_port()}",
        COFFER_MAIL_URL=smtp_sink.url,
        WEB_CONCURRENCY="1",
        XDG_RUNTIME_DIR=str(tmp_path),
    )
    migrate(env)
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:  # what an instance committed before it went down
        now = utcnow().replace(tzinfo=None)
        conn.execute(
            sa.insert(OutboxMail.__table__),
            {
                "id": uuid.uuid4(),
                "recipient": "waiting@example.com",
                "template": "email_change_notice",
                "context": {"email": "waiting@example.com", "new_email": "new@example.com"},
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            },
        )
    engine.dispose()
    with open(tmp_path / "gunicorn.log", "wb") as log:
        process = start_gunicorn(env, log)
        try:
            (message,) = smtp_sink.wait_for(1, timeout=30)
        finally:
            stop_gunicorn(process)
    assert message["To"] == "waiting@example.com"
