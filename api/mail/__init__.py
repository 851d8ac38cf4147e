"""Mail that Coffer sends itself: `enqueue` a mail in the transaction of the action that
causes it; a sender delivers it after the commit and retries while the server is down.

    outbox.py     the `mail_outbox` table, enqueue(), @preparer
    render.py     Jinja templates (COFFER_MAIL_TEMPLATES first, templates/ second), link()
    transport.py  smtp://, smtps://, console:// from COFFER_MAIL_URL
    sender.py     deliver_due(): claim, send, retry with backoff
    background.py the sender thread of each process that serves requests
    commands.py   `flask mail send`, `flask mail purge`
"""

from flask import Flask

from api.mail import background, render, transport
from api.mail.outbox import enqueue, preparer
from api.mail.render import link
from api.mail.sender import deliver_due

__all__ = ["deliver_due", "enqueue", "init_app", "link", "preparer"]


def init_app(app: Flask) -> None:
    transport.init_app(app)
    render.init_app(app)
    background.init_app(app)
