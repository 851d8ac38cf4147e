"""Flask commands: `flask --app wsgi create-admin EMAIL`, `purge`, `jwt-keys …`, `data-index …`."""

import os
from datetime import timedelta

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup

from api import accounts, changes, indexes, signing
from api.extensions import db
from api.http.idempotency import RETENTION
from api.mail.commands import mail
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
    click.echo(f"pruned {changes.expire()} changes older than COFFER_CHANGES_RETENTION")


@click.command("openapi")
def openapi() -> None:
    """Print the OpenAPI document (`make openapi` writes it to openapi.yaml)."""
    import yaml  # the command's alone: kept out of the workers' memory

    from api.http.spec import build_spec

    click.echo(
        yaml.safe_dump(build_spec(current_app), sort_keys=False, allow_unicode=True), nl=False
    )


jwt_keys = AppGroup(
    "jwt-keys", help="Key files that sign access tokens under EdDSA, ES256 or RS256."
)


def _asymmetric_keyring() -> signing.Keyring:
    ring = signing.keyring()
    if ring.algorithm == signing.HS256:
        raise click.ClickException(
            "COFFER_JWT_ALGORITHM is HS256: tokens are signed with COFFER_SECRET_KEY"
        )
    return ring


def _key_files(directory: str) -> list[signing.KeyFile]:
    try:
        return signing.read_key_files(directory)
    except RuntimeError as exc:  # an unusable file, while COFFER_JWT_ALGORITHM is HS256
        raise click.ClickException(str(exc)) from None


@jwt_keys.command("generate")
def generate_jwt_key() -> None:
    """Write a new key for COFFER_JWT_ALGORITHM and print its kid.

    It signs new tokens once the workers restart (`kill -HUP` gunicorn); the older keys keep
    verifying theirs until `prune` removes them.
    """
    ring = _asymmetric_keyring()
    click.echo(signing.write_key_file(ring.key_dir, ring.algorithm))
    if current_app.config.get("COFFER_JWT_PRIVATE_KEYS"):
        click.echo("note: the last key of COFFER_JWT_PRIVATE_KEYS still signs", err=True)


@jwt_keys.command("list")
def list_jwt_keys() -> None:
    """Every key: kid, algorithm, created (UTC), and which one signs."""
    ring = signing.keyring()
    rows = [
        (key.kid, signing.algorithm_of(key.private_key), f"{key.created:%Y-%m-%dT%H:%M:%SZ}")
        for key in _key_files(ring.key_dir)
    ]
    bundle = current_app.config.get("COFFER_JWT_PRIVATE_KEYS")
    rows += [
        (kid, signing.algorithm_of(key), "COFFER_JWT_PRIVATE_KEYS")
        for kid, key in (signing.parse_pem_bundle(bundle) if bundle else [])
    ]
    width = max([len(row[0]) for row in rows] + [3])
    click.echo(f"{'KID':<{width}}  {'ALGORITHM':<9}  CREATED")
    for kid, algorithm, created in rows:
        marker = "  (signing)" if kid == ring.signing_kid else ""
        click.echo(f"{kid:<{width}}  {algorithm:<9}  {created}{marker}")
    if ring.algorithm == signing.HS256:
        click.echo("note: COFFER_JWT_ALGORITHM is HS256, so none of these keys is used", err=True)


@jwt_keys.command("prune")
@click.option("--keep", type=click.IntRange(min=1), help="Keep this many of the newest keys.")
@click.option(
    "--older-than",
    type=click.IntRange(min=0),
    metavar="SECONDS",
    help="Remove only keys that a newer key replaced more than SECONDS ago; their tokens have "
    "expired once SECONDS exceeds COFFER_ACCESS_TOKEN_TTL + 30 plus the time until the "
    "workers restarted with the newer key.",
)
def prune_jwt_keys(keep: int | None, older_than: int | None) -> None:
    """Remove old key files, never the newest; tokens they signed stop working."""
    if keep is None and older_than is None:
        raise click.UsageError("give --keep N, --older-than SECONDS, or both")
    files = _key_files(signing.keyring().key_dir)
    doomed = signing.prunable(files, keep=keep, older_than=older_than, now=utcnow())
    for key_file in doomed:
        os.unlink(key_file.path)
        click.echo(f"removed {key_file.kid}")
    if not doomed:
        click.echo("nothing to remove")


data_index = AppGroup(
    "data-index",
    help="Indexes that make ?sort=data.<path> an index scan, on SQLite and PostgreSQL alike.",
)


def _data_index(action, field: str) -> str:
    try:
        return action(field)
    except indexes.DataIndexError as exc:
        raise click.ClickException(str(exc)) from None
    except sa.exc.DBAPIError as exc:  # e.g. a failed concurrent build: `add` again retries it
        raise click.ClickException(f"{field}: {exc.orig}") from None


@data_index.command("add")
@click.argument("field", metavar="data.<path>")
def add_data_index(field: str) -> None:
    """Index a data key for sorts on it; does nothing when it is indexed already.

    On PostgreSQL the index is built concurrently: writes go on meanwhile.
    """
    click.echo(_data_index(indexes.add, field))


@data_index.command("drop")
@click.argument("field", metavar="data.<path>")
def drop_data_index(field: str) -> None:
    """Drop the index of a data key; sorts on it go back to sorting every matching record."""
    click.echo(_data_index(indexes.drop, field))


@data_index.command("list")
def list_data_indexes() -> None:
    """Every indexed data key, its index, and whether the index is ready."""
    rows = [(row.field, row.index_name, row.status) for row in indexes.declared()]
    if not rows:
        click.echo("no data key is indexed")
        return
    width = max(len(row[0]) for row in rows + [("FIELD",)])
    click.echo(f"{'FIELD':<{width}}  {'INDEX':<36}  STATUS")
    for field, name, status in rows:
        click.echo(f"{field:<{width}}  {name:<36}  {status}")


def init_app(app: Flask) -> None:
    app.cli.add_command(create_admin)
    app.cli.add_command(purge)
    app.cli.add_command(openapi)
    app.cli.add_command(jwt_keys)
    app.cli.add_command(data_index)
    app.cli.add_command(mail)
