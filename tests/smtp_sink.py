"""A real SMTP server for tests (aiosmtpd on 127.0.0.1 and a free port) that keeps what it is
sent. A pytest plugin (tests/conftest.py lists it in `pytest_plugins`):

    def test_reset_mail(make_app, smtp_sink):
        app = make_app(**smtp_sink.config)            # COFFER_MAIL_URL=smtp://127.0.0.1:<port>
        ...                                           # an action that enqueues mail
        (message,) = smtp_sink.deliver(app, count=1)  # deliver_due(), then wait for it
        token, code = token_in(message), code_in(message)

`smtp_sink.stop()` / `.start()` simulate an outage (same port); `.hold()` keeps every client
waiting for the reply to its end of DATA until `.release()` (a message whose client leaves
meanwhile was never accepted: it counts in `.abandoned`, not in `.messages`), and
`.reply_delay` slows each reply down. `make_smtp_sink(starttls=True)`,
`(implicit_tls=True)` and `(credentials=("user", "pass"))` serve TLS with a test CA, whose
file is `sink.cafile` (pass it as `?cafile=`, as `sink.config` does).

The plugin also turns the background sender off for the whole run (COFFER_MAIL_SENDER=off):
an app with TESTING off would otherwise start one on its first request, and it would take
other tests' mail. Tests deliver with deliver_due() themselves.
"""

import asyncio
import email
import email.policy
import errno
import gc
import ipaddress
import os
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"
PORT_ATTEMPTS = 5  # free ports tried by a sink whose port was taken before it bound it
AKI = x509.AuthorityKeyIdentifier
TOKEN_IN_LINK = re.compile(r"#token=([A-Za-z0-9_~.%-]+)")
CODE = re.compile(r"\b(\d{6})\b")


def pytest_configure(config):
    os.environ["COFFER_MAIL_SENDER"] = "off"


def text_of(message: EmailMessage) -> str:
    """The plain-text part, with \n line ends (SMTP carries \r\n)."""
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


def html_of(message: EmailMessage) -> str:
    """The HTML part, with \n line ends."""
    return message.get_body(("html",)).get_content().replace("\r\n", "\n")


def token_in(message: EmailMessage) -> str:
    """The token of the first `#token=` link in the plain-text part."""
    match = TOKEN_IN_LINK.search(text_of(message))
    assert match, f"no #token= link in:\n{text_of(message)}"
    return match.group(1)


def code_in(message: EmailMessage) -> str:
    """The first 6-digit code of the plain-text part."""
    match = CODE.search(text_of(message))
    assert match, f"no 6-digit code in:\n{text_of(message)}"
    return match.group(1)


@dataclass(frozen=True)
class Delivery:
    """What the server saw beside the message: the envelope and how the session went."""

    mail_from: str
    rcpt_tos: list[str]
    tls: bool
    login: str | None


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        try:
            await self.sink._before_reply(session.peer)
        except asyncio.CancelledError:  # the client went away before the reply
            self.sink._abandoned()
            raise
        self.sink._received(server, session, envelope)
        return "250 2.0.0 OK"


class SmtpSink:
    """An SMTP server that keeps every message it accepts, in order."""

    def __init__(self, *, tls=None, starttls=False, implicit_tls=False, credentials=None):
        self.tls = tls
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.credentials = credentials
        self.port = _free_port()
        self._port_told = False  # once `url` has been read, the port is the sink's for good
        self.messages: list[EmailMessage] = []
        self.deliveries: list[Delivery] = []
        self.logins: list[tuple[str, str]] = []
        self.reply_delay = 0.0  # seconds each end of DATA waits for its reply
        self.abandoned = 0  # messages whose client left before the reply: never accepted
        self.waiting: list[tuple[str, int]] = []  # (host, port) of the clients held now
        self._holding = False
        self._arrived = threading.Condition()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        self._port_told = True
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = ":".join(quote(part, safe="") for part in self.credentials or ())
        user += "@" if user else ""
        query = f"?cafile={self.tls.cafile}" if self.tls else ""
        return f"{scheme}://{user}{HOST}:{self.port}{query}"

    @property
    def cafile(self) -> str:
        return self.tls.cafile

    @property
    def config(self) -> dict:
        """make_app(**sink.config) sends this sink the app's mail."""
        return {"COFFER_MAIL_URL": self.url}

    def start(self) -> "SmtpSink":
        options = {}
        if self.implicit_tls:
            options["ssl_context"] = self.tls.server_context()
        if self.starttls:
            options["tls_context"] = self.tls.server_context()
        if self.credentials:
            options["authenticator"] = self._authenticate
            options["auth_require_tls"] = True
        attempts = 1
        while True:
            controller = Controller(_Handler(self), hostname=HOST, port=self.port, **options)
            _hold_garbage_collection()  # before the server's thread exists
            try:
                controller.start()
            except OSError as exc:
                controller.stop(no_assert=True)  # its loop and thread, with any socket
                _release_garbage_collection()
                # The free port was taken meanwhile (another test's server): take another,
                # unless a client was already told this one.
                if exc.errno != errno.EADDRINUSE or self._port_told or attempts == PORT_ATTEMPTS:
                    raise
                attempts += 1
                self.port = _free_port()
                continue
            except BaseException:
                _release_garbage_collection()
                raise
            self._controller = controller
            return self

    def stop(self) -> None:
        self.release()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
            _release_garbage_collection()

    def clear(self) -> None:
        with self._arrived:
            self.messages.clear()
            self.deliveries.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:
        """The first `count` messages, once they arrived (AssertionError after `timeout` s)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.messages)} of {count} messages arrived")
                self._arrived.wait(left)
            return list(self.messages[:count])

    def hold(self) -> None:
        """From now on, each client waits for the reply to its end of DATA until release()."""
        self._holding = True

    def release(self) -> None:
        """Reply to the held clients (and the next ones at once): 250, their mail accepted."""
        self._holding = False

    def wait_until(self, predicate, timeout: float = 5.0) -> None:
        """Wait until `predicate(sink)` holds (AssertionError after `timeout` s)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"sink: {len(self.messages)} accepted, {len(self.waiting)} held, "
                        f"{self.abandoned} abandoned"
                    )
                self._arrived.wait(left)

    def deliver(self, app, *, count: int | None = None, now=None) -> list[EmailMessage]:
        """Run the app's deliver_due() once; the messages that arrived (at least `count`)."""
        from api.mail import deliver_due

        with app.app_context():
            deliver_due(now=now)
        return self.wait_for(count) if count is not None else list(self.messages)

    def to(self, address: str) -> list[EmailMessage]:
        """The messages whose To is `address`."""
        return [message for message in self.messages if message["To"] == address]

    async def _before_reply(self, peer: tuple[str, int]) -> None:
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        if not self._holding:
            return
        with self._arrived:
            self.waiting.append(peer)
            self._arrived.notify_all()
        try:
            while self._holding:
                await asyncio.sleep(0.02)
        finally:
            with self._arrived:
                self.waiting.remove(peer)
                self._arrived.notify_all()

    def _abandoned(self) -> None:
        with self._arrived:
            self.abandoned += 1
            self._arrived.notify_all()

    def _received(self, server, session, envelope) -> None:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        login = session.auth_data.login.decode() if session.authenticated else None
        tls = server.transport.get_extra_info("ssl_object") is not None
        delivery = Delivery(envelope.mail_from, list(envelope.rcpt_tos), tls, login)
        with self._arrived:
            self.messages.append(message)
            self.deliveries.append(delivery)
            self._arrived.notify_all()

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        ok = (login, password) == tuple(self.credentials)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


# Earlier tests' apps are garbage in reference cycles, and a collection runs on whichever
# thread happens to allocate: on the server's thread, it would finalize their per-thread SQLite
# handles (api/counters.py) away from the thread that opened them, which sqlite3 refuses (an
# unraisable error that fails some later test). So while a sink runs, what existed before it
# is out of the collector's reach: collected first, on the test's thread, then frozen until
# the last sink stops.
_running_sinks = 0


def _hold_garbage_collection() -> None:
    global _running_sinks
    if _running_sinks == 0:
        gc.collect()
        gc.freeze()
    _running_sinks += 1


def _release_garbage_collection() -> None:
    global _running_sinks
    _running_sinks -= 1
    if _running_sinks == 0:
        gc.unfreeze()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class SinkCA:
    """A throwaway CA and a certificate it signed for 127.0.0.1 and localhost."""

    def __init__(self, folder):
        now = datetime.now(UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Coffer test CA")])
        ca = (
            _builder(ca_name, ca_name, ca_key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
        leaf = (
            _builder(name, ca_name, key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(AKI.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        self.cafile = str(folder / "ca.pem")
        self.certfile = str(folder / "server.pem")
        self.keyfile = str(folder / "server.key")
        _write(self.cafile, ca.public_bytes(serialization.Encoding.PEM))
        _write(self.certfile, leaf.public_bytes(serialization.Encoding.PEM))
        _write(
            self.keyfile,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context


def _builder(subject, issuer, public_key, now):
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


@pytest.fixture(scope="session")
def smtp_tls(tmp_path_factory):
    """A test CA and a server certificate for 127.0.0.1 (made once per test run)."""
    return SinkCA(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def make_smtp_sink(smtp_tls):
    """make_smtp_sink(starttls=…, implicit_tls=…, credentials=(user, password)): a started sink,
    stopped after the test."""
    sinks = []

    def factory(*, starttls=False, implicit_tls=False, credentials=None) -> SmtpSink:
        tls = smtp_tls if (starttls or implicit_tls) else None
        sink = SmtpSink(
            tls=tls, starttls=starttls, implicit_tls=implicit_tls, credentials=credentials
        )
        sinks.append(sink)
        return sink.start()

    yield factory
    for sink in sinks:
        sink.stop()


@pytest.fixture
def smtp_sink(make_smtp_sink):
    """A plain SMTP server (no TLS, no AUTH) on 127.0.0.1, collecting what it is sent."""
    return make_smtp_sink()
