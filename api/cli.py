"""Flask commands: `flask --app wsgi create-admin EMAIL`, `flask --app wsgi purge`."""

import os
from datetime import timedelta

import click
import sqlalchemy as sa
from flask import Flask, current_app

from api import accounts
from api.extensions import db
from api.idempotency import RETENTION
from api.models import IdempotencyKey, Session, utcnow


@click.command("create-admin")
@click.argument("email")
def create_admin(email: str) -> None:
    """Create EMAIL as an admin, or promote and re-activate it (its password is kept).

    The password comes from COFFER_ADMIN_PASSWORD, else from a prompt.
    """
    password = os.environ.get("COFFER_ADMIN_PASSWORD") or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    try:
        user = accounts.ensure_admin(email, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"admin {user.email} ({user.id}) is ready")


@click.command("purge")
@click.option("--days", default=30, show_default=True, help="Keep ended sessions this long.")
def purge(days: int) -> None:
    """Delete ended sessions (with their refresh tokens) and expired idempotency keys."""
    cutoff = utcnow() - timedelta(days=days)
    ended = db.session.execute(
        db.delete(Session).where(sa.or_(Session.revoked_at < cutoff, Session.expires_at < cutoff))
    ).rowcount
    keys = db.session.execute(
        db.delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - RETENTION)
    ).rowcount
    db.session.commit()
    click.echo(f"purged {ended} sessions and {keys} idempotency keys")


def bootstrap_admin(app: Flask) -> None:
    """At start-up: ensure COFFER_ADMIN_EMAIL is an admin (skipped until the schema exists)."""
    email = app.config.get("COFFER_ADMIN_EMAIL")
    password = app.config.get("COFFER_ADMIN_PASSWORD")
    if not (email and password):
        return
    with app.app_context():
        if not sa.inspect(db.engine).has_table("users"):
            current_app.logger.warning("admin bootstrap skipped: run `flask db upgrade` first")
            return
        try:
            accounts.ensure_admin(email, password)
        except ValueError as exc:
            raise RuntimeError(f"COFFER_ADMIN_PASSWORD: {exc}") from None


def init_app(app: Flask) -> None:
    app.cli.add_command(create_admin)
    app.cli.add_command(purge)
