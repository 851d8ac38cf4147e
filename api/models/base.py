"""What every model shares: timestamps in UTC, to the millisecond, on every database."""

from datetime import UTC, datetime

import sqlalchemy as sa

from api import clock


def utcnow() -> datetime:
    """Now in UTC, truncated to the millisecond: what is stored is exactly what clients see."""
    now = clock.now()
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


class UTCDateTime(sa.TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value
