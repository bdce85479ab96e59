"""SDK clients for the model providers, created once per process, and their errors.

Chat models, embedders and rerankers of one provider share a client (one connection pool, one
credential lookup). The SDKs are imported inside the functions, so importing this module
costs nothing; only the provider actually configured pulls in its SDK.

Each SDK's own retries are off: :class:`ragline.providers.retry.RetryPolicy` is the one
retry loop, and the functions here turn SDK exceptions into
:class:`ragline.errors.ModelError` with ``retryable`` set.

Secrets: the keys in use are handed to :func:`ragline.errors.remember_secret`, and a
ModelError's message is redacted. The SDK exception is raised ``from None``: a traceback
would print its unredacted text (an upstream 401 may echo the key) under the ModelError.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ragline.errors import (
    ConfigurationError,
    ModelError,
    ModelNotFoundError,
    ModelWarmingUpError,
    remember_secret,
)
from ragline.providers.retry import retryable_status

if TYPE_CHECKING:
    import openai

# How long a key read from Secrets Manager is reused before it is read again: a rotated
# key is picked up within this many seconds without a call per request.
SECRET_MAX_AGE_SECONDS = 300
# Keys a JSON secret may hold the OpenAI key under.
_SECRET_KEY_FIELDS = ("api_key", "OPENAI_API_KEY", "apiKey", "key")

# AWS error codes after which the same request may succeed.
_RETRYABLE_AWS_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalServerException",
        "InternalFailure",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "RequestTimeout",
    }
)


# --- AWS ------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def aws_client(service: str, timeout_seconds: float) -> Any:
    """A boto3 client for ``service`` (``bedrock-runtime``, ``sagemaker-runtime``).

    Region and endpoint come from the standard AWS variables (``AWS_REGION``,
    ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` for a local stand-in).
    """
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=min(timeout_seconds, 10.0),
        read_timeout=timeout_seconds,
        retries={"total_max_attempts": 1, "mode": "standard"},
        user_agent_extra="ragline",
    )
    return boto3.client(service, config=config)  # type: ignore[call-overload]


def is_aws_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the AWS SDK's (a service's refusal or the SDK's own failure)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - botocore ships with every deployment
        return False
    return isinstance(exc, BotoCoreError | ClientError)


def s3_client() -> Any:
    """A boto3 S3 client with the SDK's own retries (the ingest reader keeps one per
    process; model clients above retry in ModelChain instead)."""
    import boto3

    return boto3.client("s3")


# What SageMaker says when an inference component has 0 copies (scaled to zero): "Inference
# Component has no capacity to process this request. ApplicationAutoScaling may be
# in-progress (if configured) or try to increase the capacity ...".
_NO_CAPACITY = "has no capacity to process this request"


def aws_error(exc: Exception, what: str) -> ModelError:
    """A botocore exception as a ModelError; throttling, 5xx and timeouts are retryable."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        # SageMaker wraps the container's own error as ModelError (HTTP 424) and passes
        # the container's status on: that status says whether a retry can help.
        original: Any = exc.response.get("OriginalStatusCode")
        retryable = (
            code in _RETRYABLE_AWS_CODES
            or retryable_status(status)
            or (original is not None and retryable_status(int(original)))
        )
        shown = f"HTTP {original} from the model container" if original else f"HTTP {status}"
        message = error.get("Message", "")
        if code == "ValidationError" and _NO_CAPACITY in message.lower():
            return ModelWarmingUpError(f"{what}: no copy of the model is running: {message}")
        # Bedrock's unknown model id; SageMaker's "Endpoint x of account y not found."
        if code == "ResourceNotFoundException" or (
            code == "ValidationError" and message.lower().rstrip(".").endswith("not found")
        ):
            return ModelNotFoundError(f"{what}: not found at the provider ({code}): {message}")
        return ModelError(f"{what}: {code} ({shown}): {message}", retryable=retryable)
    if isinstance(exc, HTTPClientError | BotoConnectionError):
        return ModelError(f"{what}: {type(exc).__name__}: {exc}", retryable=True)
    return ModelError(f"{what}: {type(exc).__name__}: {exc}", retryable=False)


# --- HTTP -----------------------------------------------------------------------------------


def invoke_endpoint(
    client: Any,
    endpoint: str,
    payload: Any,
    what: str,
    inference_component: str | None = None,
) -> bytes:
    """POST ``payload`` as JSON to a SageMaker endpoint (to ``inference_component`` on
    it, if given) and return the raw answer; SDK errors become ModelError (chat models,
    embedders and rerankers all call it)."""
    from botocore.exceptions import BotoCoreError, ClientError

    target = {"InferenceComponentName": inference_component} if inference_component else {}
    try:
        response = client.invoke_endpoint(
            EndpointName=endpoint,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(payload),
            **target,
        )
        raw: bytes = response["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, what) from None
    return raw


def invoke_endpoint_stream(
    client: Any,
    endpoint: str,
    payload: Any,
    what: str,
    inference_component: str | None = None,
) -> Generator[bytes, None, None]:
    """POST ``payload`` to a SageMaker endpoint with a streamed response and yield the
    bytes of each payload part as it arrives (a part may split a line; the caller
    reassembles them). SDK errors, before or during the stream, become ModelError;
    closing the iterator closes the connection."""
    from botocore.exceptions import BotoCoreError, ClientError

    target = {"InferenceComponentName": inference_component} if inference_component else {}
    try:
        response = client.invoke_endpoint_with_response_stream(
            EndpointName=endpoint,
            ContentType="application/json",
            Accept="text/event-stream",
            Body=json.dumps(payload),
            **target,
        )
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, what) from None
    events = response["Body"]
    try:
        for event in events:  # a ModelStreamError event raises here
            part = event.get("PayloadPart")
            if part and part.get("Bytes"):
                yield part["Bytes"]
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, what) from None
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def post_json(
    url: str, body: Any, *, timeout_seconds: float, what: str, api_key: str | None = None
) -> Any:
    """POST ``body`` as JSON and return the parsed JSON answer, for model servers that
    have no SDK (a ``/rerank`` server).

    The standard library's client: one request per call, nothing to install. Failures
    are ModelErrors: 429, 5xx, timeouts and refused connections retryable, other
    statuses and an answer that is not JSON not.
    """
    import http.client
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    remember_secret(api_key)
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            raw: bytes = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode("utf-8", "replace")
        raise ModelError(
            f"{what}: HTTP {exc.code}: {detail}", retryable=retryable_status(exc.code)
        ) from None
    except (http.client.HTTPException, OSError) as exc:  # refused, reset, timed out
        reason = getattr(exc, "reason", exc)
        raise ModelError(f"{what}: {type(exc).__name__}: {reason}", retryable=True) from None
    try:
        return json.loads(raw)
    except ValueError as exc:
        snippet = raw[:200].decode("utf-8", "replace")
        raise ModelError(f"{what}: the answer is not JSON: {snippet}") from exc


# --- OpenAI ---------------------------------------------------------------------------------


def _key_from_secret(value: Any, secret_arn: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str) and value.lstrip().startswith("{"):
        value = json.loads(value)
    if isinstance(value, dict):
        value = next((value[k] for k in _SECRET_KEY_FIELDS if value.get(k)), None)
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"secret {secret_arn} (RAGLINE_OPENAI_SECRET_ARN) holds no API key: store the key "
            f"as the secret string, or as JSON with one of {', '.join(_SECRET_KEY_FIELDS)}"
        )
    return value.strip()


def openai_key_from_secret(secret_arn: str) -> str:
    """The OpenAI key in a Secrets Manager secret, cached by Powertools for a while."""
    from aws_lambda_powertools.utilities.parameters import get_secret

    return _key_from_secret(get_secret(secret_arn, max_age=SECRET_MAX_AGE_SECONDS), secret_arn)


class OpenAIConnection:
    """One ``openai.OpenAI`` client for the process, with its key kept current.

    The key comes from ``OPENAI_API_KEY`` (read by the SDK), or on AWS from the secret in
    ``RAGLINE_OPENAI_SECRET_ARN``; then :meth:`client` re-reads the (cached) secret and
    swaps the key in when it was rotated. ``OPENAI_BASE_URL`` (read by the SDK) points
    the client at any OpenAI-compatible server.
    """

    def __init__(self, timeout_seconds: float, secret_arn: str | None = None) -> None:
        import openai

        self.secret_arn = secret_arn
        key = openai_key_from_secret(secret_arn) if secret_arn else None
        try:
            self._client = openai.OpenAI(api_key=key, timeout=timeout_seconds, max_retries=0)
        except openai.OpenAIError as exc:
            raise ConfigurationError(
                "the openai provider needs an API key: set OPENAI_API_KEY (any value for a "
                "local server that ignores it) or RAGLINE_OPENAI_SECRET_ARN"
            ) from exc
        self.timeout_seconds = timeout_seconds
        remember_secret(self._client.api_key)

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    def client(self) -> openai.OpenAI:
        """The client, with the current key."""
        if self.secret_arn:
            key = openai_key_from_secret(self.secret_arn)
            if key != self._client.api_key:
                remember_secret(key)
                self._client = self._client.with_options(api_key=key)
        return self._client


@lru_cache(maxsize=4)
def openai_connection(timeout_seconds: float, secret_arn: str | None = None) -> OpenAIConnection:
    """The process's OpenAI connection for these options, shared by chat and embeddings."""
    return OpenAIConnection(timeout_seconds, secret_arn)


def openai_error(exc: Exception, what: str) -> ModelError:
    """An openai SDK exception as a ModelError; 429, 5xx, timeouts and resets are retryable."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        message = getattr(exc, "message", str(exc))
        if exc.status_code == 404:
            return ModelNotFoundError(
                f"{what}: not found at the provider (HTTP 404: {message}); check the model "
                "name and OPENAI_BASE_URL"
            )
        return ModelError(
            f"{what}: HTTP {exc.status_code}: {message}",
            retryable=retryable_status(exc.status_code),
        )
    if isinstance(exc, openai.APITimeoutError):
        return ModelError(f"{what}: no response within the timeout", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return ModelError(f"{what}: connection failed: {exc}", retryable=True)
    return ModelError(f"{what}: {type(exc).__name__}: {exc}", retryable=False)
