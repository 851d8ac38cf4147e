"""Mail from templates: a subject, a plain-text part and an HTML part per mail, each a Jinja
template found in COFFER_MAIL_TEMPLATES first and in api/mail/templates second, so that an
operator overrides any one file (`verify_email.subject.txt`, `verify_email.txt`,
`verify_email.html`) and keeps the others. HTML is autoescaped; the text parts are not.

Links put the token in the URL fragment: browsers send no fragment to any server, so the
token reaches neither a server log nor a Referer; the app reads it and posts it to the API.
"""

import os
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from urllib.parse import quote, urlsplit

from flask import Flask, current_app
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

BUILT_IN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
SUBJECT, TEXT, HTML = "subject.txt", "txt", "html"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def link(path: str, token: str) -> str:
    """`{COFFER_APP_URL}{path}#token={token}`: the page of the app that posts the token."""
    base = current_app.config["COFFER_APP_URL"].rstrip("/")
    return f"{base}{path}#token={quote(token, safe='')}"


def duration(minutes: int) -> str:
    """`expires_minutes|duration`: 15 → "15 minutes", 60 → "1 hour", 4320 → "3 days"."""
    if minutes % 1440 == 0 and minutes > 2880:
        count, unit = minutes // 1440, "day"
    elif minutes % 60 == 0 and minutes >= 60:
        count, unit = minutes // 60, "hour"
    else:
        count, unit = minutes, "minute"
    return f"{count} {unit}{'' if count == 1 else 's'}"


def environment(folder: str | None) -> Environment:
    loaders = [FileSystemLoader(folder)] if folder else []
    env = Environment(
        loader=ChoiceLoader([*loaders, FileSystemLoader(BUILT_IN)]),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,  # a missing `link` fails the mail instead of sending a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = duration
    return env


def _templates() -> Environment:
    return current_app.extensions["coffer_mail_templates"]


def check(template: str) -> None:
    """ValueError unless `template` has its three parts (mistakes fail the request, not mail)."""
    for part in (SUBJECT, TEXT, HTML):
        try:
            _templates().get_template(f"{template}.{part}")
        except TemplateNotFound:
            raise ValueError(f"no mail template {template}.{part}") from None


def render(template: str, context: dict) -> Rendered:
    env = _templates()
    subject = env.get_template(f"{template}.{SUBJECT}").render(context)
    return Rendered(
        subject=" ".join(subject.split()),
        text=env.get_template(f"{template}.{TEXT}").render(context),
        html=env.get_template(f"{template}.{HTML}").render(context),
    )


def compose(*, to: str, template: str, context: dict, now: datetime) -> EmailMessage:
    """The complete message: headers, a text/plain and a text/html alternative."""
    rendered = render(template, context)
    sender = current_app.config["COFFER_MAIL_FROM"]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(now)
    # A new id per send: a retry may carry a new token, and must not be taken for a duplicate.
    message["Message-ID"] = make_msgid(domain=_domain(sender))
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    message["X-Auto-Response-Suppress"] = "All"  # the same, for Exchange
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2]


def init_app(app: Flask) -> None:
    """Check the settings that mail depends on, so that a mistake stops start-up."""
    app_url = urlsplit(app.config["COFFER_APP_URL"])
    if app_url.scheme not in ("http", "https") or not app_url.netloc:
        raise RuntimeError("COFFER_APP_URL must be an http(s) URL, e.g. https://app.example.org")
    if "@" not in parseaddr(app.config["COFFER_MAIL_FROM"])[1]:
        raise RuntimeError("COFFER_MAIL_FROM must hold an address: Coffer <no-reply@example.org>")
    folder = app.config.get("COFFER_MAIL_TEMPLATES")
    if folder and not os.path.isdir(folder):
        raise RuntimeError(f"COFFER_MAIL_TEMPLATES: {folder!r} is no folder")
    app.extensions["coffer_mail_templates"] = environment(folder)
