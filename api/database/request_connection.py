"""A request's Core connection: AUTOCOMMIT on PostgreSQL, and its first read run again, once,
when the server had dropped the connection."""

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from api.database.engine import is_closed


class RequestConnection(Connection):
    """A request's Core connection: on PostgreSQL in AUTOCOMMIT, and a first read that finds
    the connection dropped by the server is run again, once, on a new connection.

    A write of one statement commits at once (api/tokens.py), so AUTOCOMMIT changes no
    outcome, and saves the BEGIN and the ROLLBACK that also made psycopg forget its prepared
    statements; writes of several statements run in `transaction` (a record and its change).
    The retry is safe because nothing was written yet: the statement that failed is the
    connection's first in this request, and a SELECT.
    """

    _used = False

    def autocommit(self) -> "RequestConnection":
        if self.dialect.name == "postgresql":
            self.execution_options(isolation_level="AUTOCOMMIT")
        return self

    def start_request(self) -> "RequestConnection":
        """Ready a kept connection for a new request: its first read may be retried again,
        and one that the server closed since is replaced (the check at checkout, kept
        connections skip the checkout)."""
        self._used = False
        if is_closed(self.connection.dbapi_connection):
            self.invalidate()
            self.rollback()
        return self

    def dbapi(self):
        """The DB-API connection under this one, for `Statement`: the read it runs counts as
        this connection's statement (its first may be retried)."""
        self._used = True
        return self.connection.dbapi_connection

    def retry_read(self, first: bool, exc: Exception) -> bool:
        """After a DB-API error of a read run on `dbapi()`: True when the read may run again on
        a new connection (the request's first statement, on a connection the server dropped),
        which this then is."""
        if not (first and self.dialect.name == "postgresql"):
            return False
        if not isinstance(exc, self.dialect.loaded_dbapi.OperationalError):  # psycopg's
            return False
        if not is_closed(self.connection.dbapi_connection):
            return False
        self.invalidate()
        self.rollback()
        self.autocommit()
        return True

    def translated(self, exc: Exception, statement: str, params) -> Exception:
        """A DB-API error of a statement run on `dbapi()`, as SQLAlchemy raises it from its
        own executions (OperationalError …: a database that is down answers 503), with the
        connection invalidated when the database dropped it."""
        dbapi = self.dialect.loaded_dbapi
        if not isinstance(exc, dbapi.Error):
            return exc
        dropped = self.invalidated or self.dialect.is_disconnect(
            exc, self.connection.dbapi_connection, None
        )
        if dropped and not self.invalidated:
            self.invalidate()
        return DBAPIError.instance(
            statement,
            params,
            exc,
            dbapi.Error,
            connection_invalidated=dropped,
            dialect=self.dialect,
        )

    def _execute_context(self, *args, **kw):
        first, self._used = not self._used, True
        try:
            return super()._execute_context(*args, **kw)
        except DBAPIError as exc:
            if not (first and exc.connection_invalidated and _reads_only(exc.statement)):
                raise
        self.rollback()  # ends the failed connection's transaction; the next use reconnects
        return self.autocommit()._execute_context(*args, **kw)


def _reads_only(statement: str | None) -> bool:
    return bool(statement) and statement.lstrip()[:6].upper() == "SELECT"
