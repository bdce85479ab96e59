"""The RDS Data API driver: the store's SQL over ``rds-data`` instead of a socket.

:class:`DataApiDatabase` stands where :class:`~ragline.store.database.Database` does, and
hands out a :class:`DataApiConnection` with the part of psycopg's connection the SQL
modules use: ``execute`` (psycopg ``%s`` / ``%(name)s`` placeholders, or a
``psycopg.sql`` composition), ``cursor`` (``fetchone``, ``fetchall``, iteration,
``rowcount``; ``row_factory=dict_row`` for rows by column name), ``transaction`` and
:meth:`DataApiConnection.insert_many` (the chunk writes, where psycopg uses COPY).

Records come back typed (``records`` with ``includeResultMetadata``), not as
``formatRecordsAs="JSON"``: the JSON form renders UUIDs, timestamps and numerics as bare
strings and keys rows by name only, while the column metadata's ``typeName`` lets a
value come back as the type psycopg would give, and rows stay positional.

boto3 is imported on first use, so the psycopg configuration never loads it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ragline.errors import ConfigurationError, DatabaseUnavailableError

if TYPE_CHECKING:
    from ragline.config import Settings

logger = logging.getLogger(__name__)

# BatchExecuteStatement: "the maximum size of the HTTP request submitted through the Data
# API is 4 MiB [...] includes the size of the HTTP headers and the JSON notation"; "the
# response size limit is 1 MiB" (RDS Data API reference, BatchExecuteStatement,
# https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_BatchExecuteStatement.html).
# A batch is cut at 3 MiB of parameter JSON, leaving room for headers and the statement;
# the chunk INSERT returns nothing, so the response stays far below 1 MiB.
REQUEST_LIMIT_BYTES = 4 * 1024 * 1024
BATCH_BYTES = 3 * 1024 * 1024
# How long to wait between tries while Aurora resumes from 0 ACU, first and at most.
RESUME_FIRST_WAIT_SECONDS = 0.5
RESUME_MAX_WAIT_SECONDS = 4.0

# Answers after which the database is out of reach for now, not the request wrong: 503.
_UNAVAILABLE_CODES = frozenset(
    {"DatabaseUnavailableException", "ServiceUnavailableError", "InternalServerErrorException"}
)

_PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?s|%%")


def translate(
    query: str, params: Sequence[Any] | dict[str, Any] | None
) -> tuple[str, list[dict[str, Any]]]:
    """A psycopg query and its parameters as Data API SQL (``:name``) and SqlParameters."""
    named: dict[str, Any] = {}
    position = 0

    def substitute(match: re.Match[str]) -> str:
        nonlocal position
        if match.group(0) == "%%":
            return "%"
        if match.group(1) is not None:
            if not isinstance(params, dict):
                raise TypeError("named placeholders need a mapping of parameters")
            named[match.group(1)] = params[match.group(1)]
            name = match.group(1)
        else:
            if params is None or isinstance(params, dict):
                raise TypeError("positional placeholders need a sequence of parameters")
            position += 1
            name = f"p{position}"
            named[name] = params[position - 1]
        return _cast(name, named[name])

    text = _PLACEHOLDER.sub(substitute, query)
    return text, [sql_parameter(name, value) for name, value in named.items()]


def _cast(name: str, value: Any) -> str:
    # The Data API has no array parameters (arrayValue is not supported as input): a list
    # travels as a PostgreSQL array literal in a string, cast to its element type's array.
    if isinstance(value, list | tuple):
        element = "uuid" if value and isinstance(value[0], UUID) else "bigint"
        if value and isinstance(value[0], str):
            element = "text"
        return f"CAST(:{name} AS {element}[])"
    return f":{name}"


def _array_literal(values: Sequence[Any]) -> str:
    items = []
    for value in values:
        if value is None:
            items.append("NULL")
        else:
            escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
            items.append(f'"{escaped}"')
    return "{" + ",".join(items) + "}"


def sql_parameter(name: str, value: Any) -> dict[str, Any]:
    """One ``SqlParameter``: the value in the field its type goes in, with the
    ``typeHint`` the Data API needs to send a string as something other than text."""
    from psycopg.types.json import Json, Jsonb

    field: dict[str, Any]
    hint: str | None = None
    if value is None:
        field = {"isNull": True}
    elif isinstance(value, bool):
        field = {"booleanValue": value}
    elif isinstance(value, int):
        field = {"longValue": value}
    elif isinstance(value, float):
        field = {"doubleValue": value}
    elif isinstance(value, Decimal):
        field, hint = {"stringValue": str(value)}, "DECIMAL"
    elif isinstance(value, UUID):
        field, hint = {"stringValue": str(value)}, "UUID"
    elif isinstance(value, datetime):
        # TIMESTAMP takes "YYYY-MM-DD HH:MM:SS[.FFF]" with no zone: the instant in UTC,
        # the zone the Data API's sessions run in.
        moment = value.astimezone(UTC) if value.tzinfo else value
        field, hint = {"stringValue": moment.strftime("%Y-%m-%d %H:%M:%S.%f")}, "TIMESTAMP"
    elif isinstance(value, date):
        field, hint = {"stringValue": value.isoformat()}, "DATE"
    elif isinstance(value, Json | Jsonb):
        field, hint = {"stringValue": json.dumps(value.obj)}, "JSON"
    elif isinstance(value, str):
        field = {"stringValue": value}
    elif isinstance(value, bytes):
        field = {"blobValue": value}
    elif isinstance(value, list | tuple):
        field = {"stringValue": _array_literal(value)}
    elif hasattr(value, "tolist"):  # a numpy vector: text, which the SQL casts to vector
        field = {"stringValue": "[" + ",".join(repr(float(x)) for x in value.tolist()) + "]"}
    else:
        raise TypeError(f"no Data API parameter for {type(value).__name__}")
    parameter: dict[str, Any] = {"name": name, "value": field}
    if hint:
        parameter["typeHint"] = hint
    return parameter


# --- results ---------------------------------------------------------------------------------


def _timestamp(text: str, zoned: bool) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if zoned and moment.tzinfo is None else moment


# Column typeName -> how its string value becomes the Python value psycopg would give.
_FROM_STRING: dict[str, Callable[[str], Any]] = {
    "uuid": UUID,
    "timestamptz": lambda text: _timestamp(text, True),
    "timestamp": lambda text: _timestamp(text, False),
    "date": date.fromisoformat,
    "numeric": Decimal,
    "json": json.loads,
    "jsonb": json.loads,
}


def _value(field: dict[str, Any], type_name: str) -> Any:
    if field.get("isNull"):
        return None
    if "arrayValue" in field:
        element = type_name.removeprefix("_")
        return _array(field["arrayValue"], element)
    for key in ("booleanValue", "longValue", "doubleValue", "blobValue"):
        if key in field:
            return field[key]
    text = field["stringValue"]
    convert = _FROM_STRING.get(type_name)
    return convert(text) if convert else text


def _array(array: dict[str, Any], element: str) -> list[Any]:
    for key, values in array.items():
        if key == "arrayValues":
            return [_array(inner, element) for inner in values]
        if key == "stringValues":
            convert = _FROM_STRING.get(element)
            return [convert(v) if convert and v is not None else v for v in values]
        return list(values)
    return []


class DataApiCursor:
    """The result of one statement, read like a psycopg cursor's."""

    def __init__(self, connection: DataApiConnection, *, as_dicts: bool = False) -> None:
        self._connection = connection
        self._as_dicts = as_dicts
        self._rows: list[Any] = []
        self._next = 0
        self.rowcount = -1

    def execute(
        self, query: Any, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> DataApiCursor:
        response = self._connection.run(query, params)
        columns = response.get("columnMetadata", [])
        names = [column["name"] for column in columns]
        types = [column.get("typeName", "") for column in columns]
        rows = []
        for record in response.get("records", []):
            values = [_value(field, kind) for field, kind in zip(record, types, strict=True)]
            rows.append(dict(zip(names, values, strict=True)) if self._as_dicts else tuple(values))
        self._rows, self._next = rows, 0
        self.rowcount = response.get("numberOfRecordsUpdated", len(rows)) if not rows else len(rows)
        return self

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Any]:
        rows, self._next = self._rows[self._next :], len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        while (row := self.fetchone()) is not None:
            yield row

    def __enter__(self) -> DataApiCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class DataApiConnection:
    """What the SQL modules use of a psycopg connection, over the Data API.

    Outside :meth:`transaction` each statement commits on its own (autocommit, as the
    psycopg driver runs); inside, every statement carries the transaction's id.
    """

    def __init__(self, database: DataApiDatabase) -> None:
        self._database = database
        self._transaction_id: str | None = None

    def execute(
        self, query: Any, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> DataApiCursor:
        return DataApiCursor(self).execute(query, params)

    def cursor(self, row_factory: Any = None) -> DataApiCursor:
        return DataApiCursor(self, as_dicts=row_factory is not None)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One Data API transaction; an inner one joins the outer (no savepoints: none of
        the store's writes catches an inner failure, so the whole transaction fails)."""
        if self._transaction_id is not None:
            yield
            return
        self._transaction_id = self._database.call("begin_transaction")["transactionId"]
        try:
            yield
        except BaseException:
            transaction_id, self._transaction_id = self._transaction_id, None
            self._database.call("rollback_transaction", transactionId=transaction_id)
            raise
        transaction_id, self._transaction_id = self._transaction_id, None
        self._database.call("commit_transaction", transactionId=transaction_id)

    def _text(self, query: Any) -> str:
        if isinstance(query, bytes):
            return query.decode("utf-8")
        if isinstance(query, str):
            return query
        return str(query.as_string(None))  # a psycopg.sql composition

    def run(self, query: Any, params: Sequence[Any] | dict[str, Any] | None) -> dict[str, Any]:
        """ExecuteStatement; a script of several statements (a migration) runs one by one."""
        text = self._text(query)
        if params is None:
            statements = split_statements(text)
            response: dict[str, Any] = {}
            for statement in statements:
                response = self._execute(statement, [])
            return response
        statement, parameters = translate(text, params)
        return self._execute(statement, parameters)

    def _execute(self, statement: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
        request: dict[str, Any] = {"sql": statement, "includeResultMetadata": True}
        if parameters:
            request["parameters"] = parameters
        if self._transaction_id is not None:
            request["transactionId"] = self._transaction_id
        return self._database.call("execute_statement", **request)

    def insert_many(self, query: str, rows: Sequence[Sequence[Any]]) -> None:
        """BatchExecuteStatement of ``query`` over ``rows``, cut to stay under the request
        limit; call it inside :meth:`transaction` so the batches commit together."""
        batch: list[list[dict[str, Any]]] = []
        size = 0
        statement = query
        for row in rows:
            statement, parameters = translate(query, row)
            weight = len(json.dumps(parameters, default=str))
            if batch and size + weight > BATCH_BYTES:
                self._batch(statement, batch)
                batch, size = [], 0
            batch.append(parameters)
            size += weight
        if batch:
            self._batch(statement, batch)

    def _batch(self, statement: str, parameter_sets: list[list[dict[str, Any]]]) -> None:
        request: dict[str, Any] = {"sql": statement, "parameterSets": parameter_sets}
        if self._transaction_id is not None:
            request["transactionId"] = self._transaction_id
        self._database.call("batch_execute_statement", **request)


def split_statements(script: str) -> list[str]:
    """A script's statements: split at semicolons outside quotes, dollar quotes and
    comments (ExecuteStatement runs one statement per call)."""
    statements, start, i, n = [], 0, 0, len(script)
    while i < n:
        char = script[i]
        if script.startswith("--", i):
            i = script.find("\n", i)
            i = n if i < 0 else i
        elif script.startswith("/*", i):
            end = script.find("*/", i + 2)
            i = n if end < 0 else end + 1
        elif char in "'\"":
            i = script.find(char, i + 1)
            i = n if i < 0 else i + 1
            continue
        elif char == "$" and (tag := re.match(r"\$\w*\$", script[i:])):
            end = script.find(tag.group(0), i + len(tag.group(0)))
            i = n if end < 0 else end + len(tag.group(0))
            continue
        elif char == ";":
            statements.append(script[start:i])
            start = i + 1
        i += 1
    statements.append(script[start:])
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(statement: str) -> bool:
    without_comments = re.sub(r"--[^\n]*|/\*.*?\*/", "", statement, flags=re.DOTALL)
    return bool(without_comments.strip())


class DataApiDatabase:
    """Hands out a connection over the Data API: one per thread, since a transaction id
    belongs to the thread that began it.

    ``client`` is an ``rds-data`` client (made from the settings when not given);
    ``sleep`` waits between tries while the cluster resumes, ``clock`` tells the time.
    """

    # Documents per page when iterating a listing: a response holds at most 1 MiB
    # (ExecuteStatement fails past it), so 100 rows leave each about 10 KB of metadata.
    page_rows = 100

    def __init__(
        self,
        settings: Settings,
        *,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (settings.database_cluster_arn and settings.database_secret_arn):
            raise ConfigurationError(
                "RAGLINE_DATABASE_DRIVER=data-api needs RAGLINE_DATABASE_CLUSTER_ARN and"
                " RAGLINE_DATABASE_SECRET_ARN"
            )
        self._settings = settings
        self._client = client
        self._sleep = sleep
        self._clock = clock
        self._local = threading.local()
        self._target = {
            "resourceArn": settings.database_cluster_arn,
            "secretArn": settings.database_secret_arn,
            "database": settings.database_name,
        }

    @property
    def client(self) -> Any:
        if self._client is None:
            from ragline.providers.clients import aws_client

            self._client = aws_client("rds-data", self._settings.database_connect_timeout_seconds)
        return self._client

    def call(self, operation: str, **request: Any) -> dict[str, Any]:
        """One Data API call. While the cluster resumes from 0 ACU
        (``DatabaseResumingException``) it is tried again with growing waits, within
        RAGLINE_DATABASE_CONNECT_TIMEOUT_SECONDS; past that, DatabaseUnavailableError (503 with
        Retry-After). Commit and rollback name only the transaction."""
        from botocore.exceptions import ClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        target = self._target
        if operation in ("commit_transaction", "rollback_transaction"):
            target = {"resourceArn": target["resourceArn"], "secretArn": target["secretArn"]}
        deadline = self._clock() + self._settings.database_connect_timeout_seconds
        wait = RESUME_FIRST_WAIT_SECONDS
        while True:
            try:
                response: dict[str, Any] = getattr(self.client, operation)(**target, **request)
                return response
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in _UNAVAILABLE_CODES:
                    logger.warning("the Data API cannot reach the database: %s", exc)
                    raise DatabaseUnavailableError() from exc
                if code != "DatabaseResumingException":
                    raise
                if self._clock() + wait > deadline:
                    logger.warning("the database is still resuming: %s", exc)
                    raise DatabaseUnavailableError("database resuming") from exc
                logger.info("the database is resuming; trying again in %.1f s", wait)
                self._sleep(wait)
                wait = min(wait * 2, RESUME_MAX_WAIT_SECONDS)
            except BotoConnectionError as exc:
                logger.warning("cannot reach the Data API: %s", exc)
                raise DatabaseUnavailableError() from exc

    def connection(self) -> DataApiConnection:
        conn: DataApiConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = DataApiConnection(self)
            self._local.conn = conn
        return conn

    def disconnected(self) -> bool:
        """Never: each call is its own HTTPS request, there is no connection to lose."""
        return False

    def close(self) -> None:
        self._local.conn = None
