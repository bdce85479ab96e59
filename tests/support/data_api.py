"""The RDS Data API in front of the embedded PostgreSQL, for the Data API driver's tests.

A botocore ``before-call`` hook answers ``rds-data`` calls itself: it reads the request
body botocore serialized (after checking the parameters against the service model),
checks it again and its own response against botocore's ``rds-data`` model with
``botocore.validate.validate_parameters``, and runs the statement with psycopg. Like the
service it imitates:

- ``:name`` parameters from ``SqlParameter``s: a string is text unless its ``typeHint``
  says UUID, TIMESTAMP, DECIMAL, DATE or JSON; there are no array parameters;
- results are typed ``records`` with ``columnMetadata`` (``typeName``), timestamps as UTC
  text, JSON and numerics as strings, arrays as ``arrayValue``;
- ``BeginTransaction`` hands out an id that later calls carry; outside one each call
  commits on its own; one statement per ``ExecuteStatement``;
- SQL errors are ``DatabaseErrorException``; ``resume_after`` makes the next calls
  fail with ``DatabaseResumingException``, as Aurora waking from 0 ACU does.

moto's ``rds-data`` returns canned results, so it cannot run the store's SQL.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit

import botocore.session
import psycopg
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.validate import validate_parameters
from ragline.config import Settings

CLUSTER_ARN = "arn:aws:rds:us-east-1:123456789012:cluster:ragline"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ragline-db-AbCdEf"

_MODEL = botocore.session.get_session().get_service_model("rds-data")
_HINT_CASTS = {"UUID": "uuid", "TIMESTAMP": "timestamp", "DECIMAL": "numeric",
               "DATE": "date", "TIME": "time", "JSON": "json"}  # fmt: skip
_PARAMETER = re.compile(r"(?<!:):(\w+)")


class DataApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DataApiAdapter:
    """Serves the Data API for one database of the embedded server."""

    # The adapters attached now, in every session: a call in a transaction is answered by
    # the adapter that began it, whichever of them botocore asks first.
    _attached: ClassVar[list[DataApiAdapter]] = []

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.database = urlsplit(database_url).path.lstrip("/")
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.resume_after = 0  # how many coming calls answer DatabaseResumingException
        self.errors: list[str] = []  # error codes the next calls answer, one each
        self._lock = threading.Lock()
        self._idle: list[psycopg.Connection[Any]] = []
        self._idle_transactional: list[psycopg.Connection[Any]] = []
        self._transactions: dict[str, psycopg.Connection[Any]] = {}
        self._type_names: dict[int, str] = {}

    # --- plumbing into botocore ---------------------------------------------------------------

    def attach(self, events: Any) -> None:
        """Answer the rds-data calls of clients made with this event emitter."""
        events.register_first("before-call.rds-data", self._before_call, unique_id=id(self))
        DataApiAdapter._attached.append(self)

    def detach(self, events: Any) -> None:
        events.unregister("before-call.rds-data", unique_id=id(self))
        DataApiAdapter._attached.remove(self)

    def _claims(self, request: dict[str, Any]) -> bool:
        """Whether this adapter answers ``request``: its database's, or its transaction's."""
        transaction_id = request.get("transactionId")
        if transaction_id is None:
            return request.get("database") in (None, self.database)
        # A commit or rollback names no database; a transaction no adapter began is
        # answered here, TransactionNotFoundException, as the service would.
        return not any(
            transaction_id in other._transactions for other in self._attached if other is not self
        )

    def _before_call(self, model: Any, params: dict[str, Any], **_: Any) -> Any:
        request = json.loads(params["body"] or b"{}")
        if not self._claims(request):
            return None  # another adapter's database or transaction
        validate_parameters(request, model.input_shape)
        with self._lock:
            self.calls.append((model.name, request))
        try:
            if self.errors:
                raise DataApiError(self.errors.pop(0), "injected")
            if self.resume_after > 0:
                self.resume_after -= 1
                raise DataApiError("DatabaseResumingException", "The database is resuming")
            self._check_target(request)
            response = getattr(self, "_" + re.sub(r"(?<!^)([A-Z])", r"_\1", model.name).lower())(
                request
            )
        except DataApiError as exc:
            error = {"Error": {"Code": exc.code, "Message": str(exc)},
                     "ResponseMetadata": {"HTTPStatusCode": 400}}  # fmt: skip
            return AWSResponse("https://rds-data", 400, HTTPHeaders(), None), error
        validate_parameters(response, model.output_shape)
        response["ResponseMetadata"] = {"HTTPStatusCode": 200}
        return AWSResponse("https://rds-data", 200, HTTPHeaders(), None), response

    def _check_target(self, request: dict[str, Any]) -> None:
        if request["resourceArn"] != CLUSTER_ARN or request["secretArn"] != SECRET_ARN:
            raise DataApiError("BadRequestException", "unknown cluster or secret")

    def close(self) -> None:
        for conn in [*self._idle, *self._idle_transactional, *self._transactions.values()]:
            conn.close()

    # --- connections ------------------------------------------------------------------------

    def _open(self, autocommit: bool) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.database_url, autocommit=autocommit)
        conn.execute("SET TIME ZONE 'UTC'")  # the Data API's sessions run in UTC
        if not autocommit:
            conn.commit()
        return conn

    def _borrow(self) -> psycopg.Connection[Any]:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._open(autocommit=True)

    def _transaction(self, transaction_id: str) -> psycopg.Connection[Any]:
        with self._lock:
            conn = self._transactions.get(transaction_id)
        if conn is None:
            raise DataApiError("TransactionNotFoundException", f"no transaction {transaction_id}")
        return conn

    # --- operations -------------------------------------------------------------------------

    def _begin_transaction(self, request: dict[str, Any]) -> dict[str, Any]:
        transaction_id = uuid.uuid4().hex
        # Sessions are reused, as the service's own pool does: opening one per transaction
        # would put PostgreSQL's connection setup into every figure bench/ prints.
        with self._lock:
            conn = self._idle_transactional.pop() if self._idle_transactional else None
        conn = conn or self._open(autocommit=False)
        with self._lock:
            self._transactions[transaction_id] = conn
        return {"transactionId": transaction_id}

    def _end(self, request: dict[str, Any], commit: bool) -> psycopg.Connection[Any]:
        conn = self._transaction(request["transactionId"])
        with self._lock:
            del self._transactions[request["transactionId"]]
        try:
            conn.commit() if commit else conn.rollback()
        except psycopg.Error:
            conn.close()
            raise
        with self._lock:
            self._idle_transactional.append(conn)
        return conn

    def _commit_transaction(self, request: dict[str, Any]) -> dict[str, Any]:
        self._end(request, commit=True)
        return {"transactionStatus": "Transaction Committed"}

    def _rollback_transaction(self, request: dict[str, Any]) -> dict[str, Any]:
        self._end(request, commit=False)
        return {"transactionStatus": "Rollback Complete"}

    def _execute_statement(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("formatRecordsAs", "NONE") != "NONE":
            raise DataApiError("BadRequestException", "the adapter returns typed records only")
        return self._run(request, [request.get("parameters", [])], results=True)

    def _batch_execute_statement(self, request: dict[str, Any]) -> dict[str, Any]:
        self._run(request, request.get("parameterSets", [[]]), results=False)
        return {"updateResults": [{} for _ in request.get("parameterSets", [])]}

    def _run(
        self, request: dict[str, Any], parameter_sets: list[list[dict[str, Any]]], *, results: bool
    ) -> dict[str, Any]:
        transaction_id = request.get("transactionId")
        conn = self._transaction(transaction_id) if transaction_id else self._borrow()
        response: dict[str, Any] = {"numberOfRecordsUpdated": 0}
        try:
            with conn.cursor() as cur:
                for parameters in parameter_sets:
                    statement, values = _statement(request["sql"], parameters)
                    cur.execute(statement, values)
                    if results and cur.description is not None:
                        response = self._results(conn, cur, request)
                    elif cur.rowcount >= 0:
                        response["numberOfRecordsUpdated"] = cur.rowcount
        except psycopg.Error as exc:
            raise DataApiError("DatabaseErrorException", f"ERROR: {exc}") from exc
        finally:
            if not transaction_id:
                with self._lock:
                    self._idle.append(conn)
        return response

    def _results(
        self, conn: psycopg.Connection[Any], cur: Any, request: dict[str, Any]
    ) -> dict[str, Any]:
        columns = [
            (column.name, self._type_name(conn, column.type_code)) for column in cur.description
        ]
        response: dict[str, Any] = {
            "records": [
                [_field(value, kind) for value, (_, kind) in zip(row, columns, strict=True)]
                for row in cur.fetchall()
            ],
            "numberOfRecordsUpdated": 0,
        }
        if request.get("includeResultMetadata"):
            response["columnMetadata"] = [
                {"name": name, "label": name, "typeName": kind} for name, kind in columns
            ]
        return response

    def _type_name(self, conn: psycopg.Connection[Any], oid: int) -> str:
        if oid not in self._type_names:
            row = conn.execute("SELECT typname FROM pg_type WHERE oid = %s", (oid,)).fetchone()
            self._type_names[oid] = row[0] if row else "unknown"
        return self._type_names[oid]


def _statement(text: str, parameters: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """``:name`` SQL and SqlParameters as psycopg SQL and values, each typed as the Data
    API types it: text unless hinted, bigint, float8, boolean."""
    values: dict[str, Any] = {}
    casts: dict[str, str] = {}
    for parameter in parameters:
        name, field = parameter["name"], parameter["value"]
        ((kind, value),) = field.items()
        if kind == "isNull":
            values[name], casts[name] = None, ""
        elif kind == "stringValue":
            values[name] = value
            casts[name] = "::" + _HINT_CASTS.get(parameter.get("typeHint", ""), "text")
        elif kind in ("longValue", "doubleValue", "booleanValue"):
            values[name], casts[name] = value, ""
        else:
            raise DataApiError("BadRequestException", f"unsupported parameter value {kind}")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        return f"%({name})s{casts[name]}"

    return _PARAMETER.sub(substitute, text.replace("%", "%%")), values


def _field(value: Any, type_name: str) -> dict[str, Any]:
    if value is None:
        return {"isNull": True}
    if type_name in ("json", "jsonb"):
        return {"stringValue": json.dumps(value)}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"blobValue": value}
    if isinstance(value, datetime):
        return {"stringValue": value.replace(tzinfo=None).isoformat(sep=" ")}  # the session's UTC
    if isinstance(value, date | Decimal | uuid.UUID):
        return {"stringValue": str(value)}
    if isinstance(value, dict):
        return {"stringValue": json.dumps(value)}
    if isinstance(value, list):
        return {"arrayValue": _array(value)}
    return {"stringValue": str(value)}


def _array(values: list[Any]) -> dict[str, Any]:
    if values and isinstance(values[0], list):
        return {"arrayValues": [_array(v) for v in values]}
    if values and isinstance(values[0], bool):
        return {"booleanValues": values}
    if values and isinstance(values[0], int):
        return {"longValues": values}
    if values and isinstance(values[0], float):
        return {"doubleValues": values}
    return {"stringValues": [str(v) for v in values]}


DRIVERS = ["psycopg", "data-api"]


def driver_environment(settings: Settings) -> dict[str, str]:
    """The ``RAGLINE_`` variables a handler reads to reach the store of ``settings``."""
    if settings.database_driver == "psycopg":
        assert settings.database_url is not None
        return {"RAGLINE_DATABASE_URL": settings.database_url}
    assert settings.database_cluster_arn is not None and settings.database_secret_arn is not None
    return {
        "RAGLINE_DATABASE_DRIVER": settings.database_driver,
        "RAGLINE_DATABASE_CLUSTER_ARN": settings.database_cluster_arn,
        "RAGLINE_DATABASE_SECRET_ARN": settings.database_secret_arn,
        "RAGLINE_DATABASE_NAME": settings.database_name,
    }


@contextmanager
def driver_settings(database_url: str, driver: str) -> Iterator[Settings]:
    """Settings for a store on ``database_url`` through ``driver``; with ``data-api``, every
    rds-data client made meanwhile is answered by a :class:`DataApiAdapter`."""
    if driver == "psycopg":
        yield Settings(database_url=database_url)
        return
    import boto3
    from ragline.providers import clients

    adapter = DataApiAdapter(database_url)
    events = boto3._get_default_session().events
    adapter.attach(events)
    clients.aws_client.cache_clear()  # a client made before would not carry the hook
    try:
        yield Settings(
            database_driver="data-api",
            database_cluster_arn=CLUSTER_ARN,
            database_secret_arn=SECRET_ARN,
            database_name=adapter.database,
        )
    finally:
        adapter.detach(events)
        clients.aws_client.cache_clear()
        adapter.close()
