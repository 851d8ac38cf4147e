"""Mail transports, from COFFER_MAIL_URL:

- `smtp://user:pass@host:587`: STARTTLS whenever the server offers it; `?starttls=required`
  refuses to send in clear to a server that does not.
- `smtps://user:pass@host:465`: implicit TLS.
- `console://` (the default): each mail goes to the log, so a developer copies its link.

TLS always verifies the server's certificate against the system's CAs, or against the CAs of
`?cafile=/path.pem` (a private CA). Every socket operation times out (`?timeout=`, 10 s).
"""

import logging
import os
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from flask import Flask, current_app

TIMEOUT = 10.0
DEFAULT_PORTS = {"smtp": 587, "smtps": 465}
OPTIONS = {"starttls", "cafile", "timeout"}
ERROR_LENGTH = 500

log = logging.getLogger(__name__)


class MailError(Exception):
    """A mail was not sent. Its text names the cause and is safe to log: no secret in it."""


class Unavailable(MailError):
    """The mail server cannot be reached, or refuses the session: no mail goes now."""


class Connection:
    """One session with the mail server, for a batch of mail."""

    def send(self, message: EmailMessage) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Console(Connection):
    """Writes each mail to the log: recipient, subject and the plain-text part, links included.
    In production (`COFFER_ENV=production`) the text stays out of the log: links are secrets."""

    with_text: bool = True

    def connect(self) -> Connection:
        return self

    def send(self, message: EmailMessage) -> None:
        if not self.with_text:
            log.info("mail (console://) to %s: %s", message["To"], message["Subject"])
            return
        text = message.get_body(("plain",)).get_content()
        log.info("mail (console://) to %s: %s\n\n%s", message["To"], message["Subject"], text)


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    implicit_tls: bool = False
    starttls_required: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None
    timeout: float = TIMEOUT

    def connect(self) -> Connection:
        """A logged-in session, over TLS unless the server offers none and none is required;
        Unavailable when that cannot be had."""
        context = ssl.create_default_context(cafile=self.cafile)
        try:
            if self.implicit_tls:
                client = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=context
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise Unavailable(self.describe(exc)) from None
        try:
            self._start_session(client, context)
        except (OSError, smtplib.SMTPException) as exc:
            client.close()
            raise Unavailable(self.describe(exc)) from None
        except Unavailable:
            client.close()
            raise
        return SmtpConnection(client, self)

    def _start_session(self, client: smtplib.SMTP, context: ssl.SSLContext) -> None:
        client.ehlo()
        if not self.implicit_tls:
            if client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            elif self.starttls_required:
                raise Unavailable(
                    f"{self.host}:{self.port} offers no STARTTLS and the URL says "
                    "starttls=required: nothing is sent in clear"
                )
        if self.username:
            client.login(self.username, self.password or "")

    def describe(self, exc: BaseException) -> str:
        """One line about `exc` for the log and the outbox row, with the password masked."""
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            detail = "; ".join(_reply(code, text) for code, text in exc.recipients.values())
        elif isinstance(exc, smtplib.SMTPResponseException):
            detail = _reply(exc.smtp_code, exc.smtp_error)
        else:
            detail = str(exc)
        text = " ".join(f"{type(exc).__name__}: {detail}".split())
        if self.password:
            text = text.replace(self.password, "***")
        return text[:ERROR_LENGTH]


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return f"{code} {text}"


class SmtpConnection(Connection):
    def __init__(self, client: smtplib.SMTP, transport: Smtp):
        self.client = client
        self.transport = transport

    def send(self, message: EmailMessage) -> None:
        try:
            self.client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(self.transport.describe(exc)) from None

    def close(self) -> None:
        try:
            self.client.quit()
        except (OSError, smtplib.SMTPException):
            self.client.close()


Transport = Console | Smtp


def from_url(url: str, *, production: bool = False) -> Transport:
    """The transport that COFFER_MAIL_URL names; RuntimeError (at start-up) when it names none.
    The messages never repeat the URL: it may hold a password."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "console":
        return Console(with_text=not production)
    if scheme not in DEFAULT_PORTS:
        raise RuntimeError(
            f"COFFER_MAIL_URL: the scheme {scheme!r} is none of smtp://, smtps://, console://"
        )
    if not parts.hostname:
        raise RuntimeError("COFFER_MAIL_URL: no host (smtp://user:pass@host:587)")
    options = _options(parts.query, scheme)
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise RuntimeError("COFFER_MAIL_URL: the port is not a number") from None
    return Smtp(
        host=parts.hostname,
        port=port,
        implicit_tls=scheme == "smtps",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        **options,
    )


def _options(query: str, scheme: str) -> dict:
    raw = {name: values[-1] for name, values in parse_qs(query, keep_blank_values=True).items()}
    unknown = set(raw) - OPTIONS
    if unknown:
        raise RuntimeError(f"COFFER_MAIL_URL: unknown options {sorted(unknown)}, not {OPTIONS}")
    options: dict = {}
    if "starttls" in raw:
        if scheme != "smtp" or raw["starttls"] not in ("required", "auto"):
            raise RuntimeError("COFFER_MAIL_URL: starttls=required (or auto) goes with smtp://")
        options["starttls_required"] = raw["starttls"] == "required"
    if "cafile" in raw:
        if not os.path.isfile(raw["cafile"]):
            raise RuntimeError(f"COFFER_MAIL_URL: cafile {raw['cafile']!r} is no file")
        options["cafile"] = raw["cafile"]
    if "timeout" in raw:
        try:
            options["timeout"] = float(raw["timeout"])
        except ValueError:
            raise RuntimeError("COFFER_MAIL_URL: timeout is a number of seconds") from None
    return options


def current_transport() -> Transport:
    """The current app's transport."""
    return current_app.extensions["coffer_mail_transport"]


def init_app(app: Flask) -> None:
    production = app.config["COFFER_ENV"] == "production"
    chosen = from_url(app.config["COFFER_MAIL_URL"], production=production)
    app.extensions["coffer_mail_transport"] = chosen
    if production and isinstance(chosen, Console):
        app.logger.warning(
            "COFFER_MAIL_URL is console://: mail is only logged (recipient and subject), "
            "nobody receives it; set an smtp:// or smtps:// URL"
        )
