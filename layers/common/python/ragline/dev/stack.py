"""The local stack: moto (S3 + SQS), the ingest poller and the API gateway in one process.

It runs the repository's Lambda handlers unchanged, with the events AWS would send
them. The store is the library's own: with ``RAGLINE_DATABASE_URL`` unset it starts
embedded PostgreSQL under the data directory.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from ragline.dev.aws import FAKE_CREDENTIALS, MotoEndpoint, Resources, client, provision
from ragline.dev.context import REGION, Handler, LambdaFunction
from ragline.dev.gateway import ApiGateway, Authorizer
from ragline.dev.poller import SqsPoller

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

ENDPOINTS_FILE = "endpoints.json"
# The development key of a data directory: the default tenant's, with every scope, made
# once and kept here (mode 0600) so it survives restarts; printed by ``ragline dev``.
DEV_KEY_FILE = "dev-key"


@dataclass(frozen=True)
class Endpoints:
    """Where a running stack listens; written to ``<data dir>/endpoints.json``."""

    api: str
    s3: str
    bucket: str
    queue: str
    dlq: str
    # The RAGLINE_EMBEDDING* variables the stack runs with: what wrote the store's
    # vectors, so `ragline sync` embeds with the same model whatever the shell says.
    embedding_environment: dict[str, str] = field(default_factory=dict)
    api_key: str = ""  # the development key, sent as x-api-key

    def to_json(self) -> str:
        """The JSON document clients read."""
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, data_dir: Path) -> Endpoints:
        """The endpoints a stack running on ``data_dir`` wrote (keys it does not know, from
        another version, ignored)."""
        written = json.loads((data_dir / ENDPOINTS_FILE).read_text())
        return cls(**{f.name: written[f.name] for f in fields(cls) if f.name in written})


@dataclass(frozen=True)
class StackOptions:
    """The knobs of the local stack, with the command line's defaults."""

    host: str = "127.0.0.1"
    api_port: int = 8000
    aws_port: int = 4566
    data_dir: Path = Path(".ragline")
    bucket: str = "ragline-documents"
    queue: str = "ragline-ingest"
    dlq: str = "ragline-ingest-dlq"
    batch_size: int = 10
    max_receive_count: int = 3
    visibility_timeout: int = 5
    ingest_timeout_seconds: float = 300.0
    query_timeout_seconds: float = 29.0  # API Gateway's integration timeout
    # Asked before endpoints.json is written: it starts the database (and, on a fresh data
    # directory, creates it), so the first real request is not the slow one.
    health_path: str | None = "/health"
    health_timeout_seconds: float = 120.0


def embedding_environment() -> dict[str, str]:
    """The variables naming the embedder this process's handlers use (its settings)."""
    from ragline.config import Settings, variable

    settings = Settings.from_env()
    values = {
        "embeddings": settings.embeddings,
        "embedding_dimensions": settings.embedding_dimensions,
    }
    return {variable(name): str(value) for name, value in values.items() if value is not None}


def prepare_environment(data_dir: Path, s3_endpoint: str | None = None) -> None:
    """Set what the handlers read at cold start; call before importing them.

    Credentials and region are only defaulted, so real ones (for a hosted model) stay.
    """
    os.environ["RAGLINE_DATA_DIR"] = str(data_dir.resolve())
    os.environ.setdefault("AWS_ACCESS_KEY_ID", FAKE_CREDENTIALS["aws_access_key_id"])
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", FAKE_CREDENTIALS["aws_secret_access_key"])
    region = os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ.setdefault("AWS_REGION", region)
    if s3_endpoint is not None:
        # boto3's default S3 client, the one the ingest handler makes, reads this.
        os.environ["AWS_ENDPOINT_URL_S3"] = s3_endpoint


class StackStartError(RuntimeError):
    """The stack came up but its API is not healthy."""


def check_health(url: str, timeout_seconds: float) -> None:
    """GET ``url`` through the gateway; raise StackStartError unless it answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:500]
        raise StackStartError(f"health check {url} answered {exc.code}: {detail}") from exc
    except OSError as exc:
        raise StackStartError(f"health check {url} failed: {exc}") from exc


def key_authorizer(api_key: str | None) -> dict[str, str]:
    """The gateway's authorizer: the ``tenancy`` use case's identity of the key, as the
    context API Gateway passes on; UnauthorizedError (a 401 with its reason) for a
    missing, malformed, unknown, revoked or expired key. It reads the store on every
    request: a revoked key is refused at once."""
    from ragline.config import get_settings
    from ragline.tenancy import get_keys

    return get_keys(get_settings()).authenticate(api_key).to_authorizer()


def ensure_dev_key(data_dir: Path) -> str:
    """The data directory's development key (the default tenant's, every scope): the one
    in ``<data dir>/dev-key``, registered again if the database no longer knows it (a new
    database), or a new one if it was revoked or the file is missing."""
    from ragline.config import get_settings
    from ragline.tenancy import get_keys, key_digest

    keys = get_keys(get_settings())
    path = data_dir / DEV_KEY_FILE
    kept = path.read_text().strip() if path.exists() else ""
    if kept:
        record = keys.store.key_by_digest(key_digest(kept))
        if record is None:
            keys.create("default", name="ragline dev", key=kept)
            return kept
        if record.revoked_at is None and record.expires_at is None:
            return kept
    created = keys.create("default", name="ragline dev")
    path.touch(mode=0o600)
    path.write_text(created.key + "\n")
    return created.key


class LocalStack:
    """Start with :meth:`start` (or ``with LocalStack(...) as stack``), stop with :meth:`stop`.

    ``ingest_handler`` and ``query_handler`` default to the repository's
    ``functions/ingest`` and ``functions/query``; tests pass fakes. With the repository's
    query handler the gateway requires API keys (``authorizer`` defaults to
    :func:`key_authorizer`) and the stack makes the data directory's development key.
    """

    def __init__(
        self,
        options: StackOptions | None = None,
        *,
        ingest_handler: Handler | None = None,
        query_handler: Handler | None = None,
        authorizer: Authorizer | None = None,
    ) -> None:
        self.options = options or StackOptions()
        self._ingest_handler = ingest_handler
        self._query_handler = query_handler
        self._authorizer = authorizer or (key_authorizer if query_handler is None else None)
        self._functions: list[LambdaFunction] = []
        self._moto: MotoEndpoint | None = None
        self._poller: SqsPoller | None = None
        self._gateway: ApiGateway | None = None
        self._endpoints: Endpoints | None = None
        self.resources: Resources | None = None

    @property
    def endpoints(self) -> Endpoints:
        """Where the running stack listens."""
        if self._endpoints is None:
            raise RuntimeError("the local stack is not running")
        return self._endpoints

    @property
    def endpoints_file(self) -> Path:
        """``<data dir>/endpoints.json``, present while the stack runs."""
        return self.options.data_dir / ENDPOINTS_FILE

    def start(self) -> Endpoints:
        """Start every part, then write ``endpoints.json``; on failure, stop what started."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Endpoints:
        options = self.options
        options.data_dir.mkdir(parents=True, exist_ok=True)
        self.endpoints_file.unlink(missing_ok=True)

        self._moto = MotoEndpoint(options.host, options.aws_port)
        s3_url = self._moto.start()
        prepare_environment(options.data_dir, s3_url)
        self.resources = provision(
            s3_url,
            bucket=options.bucket,
            queue_name=options.queue,
            dlq_name=options.dlq,
            max_receive_count=options.max_receive_count,
            visibility_timeout=options.visibility_timeout,
        )
        logger.info("S3 + SQS on %s: bucket %s -> %s", s3_url, options.bucket, options.queue)

        ingest, query, query_stream = self._load_handlers()
        ingest_function = LambdaFunction(
            "ragline-ingest", ingest, timeout_seconds=options.ingest_timeout_seconds
        )
        query_function = LambdaFunction(
            "ragline-query",
            query,
            timeout_seconds=options.query_timeout_seconds,
            stream_handler=query_stream,
        )
        self._functions = [ingest_function, query_function]
        sqs: SQSClient = client("sqs", s3_url)
        self._poller = SqsPoller(
            sqs=sqs,
            queue_url=self.resources.queue_url,
            queue_arn=self.resources.queue_arn,
            function=ingest_function,
            batch_size=options.batch_size,
        )
        self._gateway = ApiGateway(
            query_function, options.host, options.api_port, authorizer=self._authorizer
        )
        api_url = self._gateway.start()
        if options.health_path:
            check_health(api_url + options.health_path, options.health_timeout_seconds)
        api_key = ensure_dev_key(options.data_dir) if self._authorizer is key_authorizer else ""
        self._poller.start()

        self._endpoints = Endpoints(
            api=api_url,
            s3=s3_url,
            bucket=options.bucket,
            queue=self.resources.queue_url,
            dlq=self.resources.dlq_url,
            api_key=api_key,
            embedding_environment=embedding_environment(),
        )
        # Written last, atomically: its presence tells clients everything is ready.
        partial = self.endpoints_file.with_suffix(".json.tmp")
        partial.write_text(self._endpoints.to_json())
        partial.replace(self.endpoints_file)
        return self._endpoints

    def _load_handlers(self) -> tuple[Handler, Handler, Handler | None]:
        """The ingest and query handlers, and the query function's streaming entry point
        (none for an injected query handler: its requests are answered buffered)."""
        from ragline.dev.handlers import STREAM_HANDLER_NAME, load_handler

        ingest = self._ingest_handler or load_handler("ingest")
        if self._query_handler is not None:
            return ingest, self._query_handler, None
        query = load_handler("query")
        return ingest, query, load_handler("query", name=STREAM_HANDLER_NAME)

    def stop(self) -> None:
        """Stop taking requests, finish the batch in hand, stop moto, remove endpoints.json."""
        if self._endpoints is not None:
            self.endpoints_file.unlink(missing_ok=True)
            self._endpoints = None
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        for function in self._functions:
            function.close()
        self._functions = []
        if self._moto is not None:
            self._moto.stop()
            self._moto = None

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
