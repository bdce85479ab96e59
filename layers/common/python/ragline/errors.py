"""Domain errors. Handlers map these to HTTP status codes or document statuses.

Also :func:`redact`, the one place credentials are cut out of text: a model provider's
error message may echo the key it was sent, and :class:`ModelError` carries such messages
into logs and responses.
"""

from __future__ import annotations

import re
import threading
from typing import Any

REDACTED = "[redacted]"

# Credential shapes worth catching wherever they appear: OpenAI-style keys, bearer
# tokens, AWS access key ids, and a 40-character AWS secret written after its name.
_CREDENTIALS = (
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"), "sk-" + REDACTED),
    (re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=\-]{4,}", re.IGNORECASE), r"\1 " + REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), REDACTED),
    (
        re.compile(
            r"(aws_secret_access_key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}", re.IGNORECASE
        ),
        r"\1" + REDACTED,
    ),
)
# Keys too short to be secrets ("test", "x" for a local server) would blank out words.
_MIN_SECRET_LENGTH = 8
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def remember_secret(value: str | None) -> None:
    """Redact ``value`` (a configured API key) wherever :func:`redact` sees it from now on."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with the configured keys and anything shaped like a credential replaced."""
    # longest first, so a key that contains another is cut whole
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return text


class RaglineError(Exception):
    """Base class for every error ragline raises on purpose."""

    status_code = 500


class ConfigurationError(RaglineError):
    """A setting is missing or invalid; raised at cold start."""


class InvalidRequestError(RaglineError):
    """The caller sent something we cannot serve (HTTP 400)."""

    status_code = 400


class UnauthorizedError(RaglineError):
    """No API key, or one that is unknown, revoked or expired (HTTP 401)."""

    status_code = 401


class ForbiddenError(RaglineError):
    """The caller's key lacks the scope the request needs, on a resource of its own tenant
    (HTTP 403). Another tenant's resource is NotFoundError: its existence is not told."""

    status_code = 403


class NotFoundError(RaglineError):
    """The requested resource does not exist (HTTP 404)."""

    status_code = 404


class UnsupportedDocumentError(RaglineError):
    """The object's type has no loader; the document is recorded as skipped."""


class EmptyDocumentError(UnsupportedDocumentError):
    """The object parses but holds no text to index (a page of links only): skipped."""


class DocumentParseError(RaglineError):
    """The object could not be parsed; the document is recorded as failed."""


class SupersededError(RaglineError):
    """A write was refused because the store or the bucket holds a newer version of the
    object than the one read; the newer version's own event brings it (or already did)."""

    status_code = 409


class ConflictError(RaglineError):
    """The resource is not in a state that allows the action (a review item decided
    already, or claimed by another reviewer)."""

    status_code = 409


class EmbeddingDimensionError(RaglineError):
    """The embedder's dimension differs from the one the collection was built with."""

    status_code = 409


class DatabaseUnavailableError(RaglineError):
    """The database cannot be reached (HTTP 503): down, restarting, or the network is.

    ``retry_after_seconds`` is the wait the caller is told (``Retry-After``); the next
    request opens a new connection.
    """

    status_code = 503
    retry_after_seconds = 5

    def __init__(self, message: str = "database unavailable") -> None:
        super().__init__(message)


class ModelError(RaglineError):
    """A model call failed. ``retryable`` says whether trying again may help.

    The message is redacted (:func:`redact`): providers' messages may quote the key.
    """

    status_code = 502

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(redact(message))
        self.retryable = retryable


class ModelNotFoundError(ModelError):
    """The provider does not know the model (HTTP 404): the configuration names a model,
    or a base URL, that does not exist there. No retry or wait fixes it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class ModelWarmingUpError(ModelError):
    """The model's endpoint has no copy running (scaled to zero while idle); one is being
    started, which takes minutes, so retrying within the request cannot help."""

    retry_after_seconds = 120

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class ModelUnavailableError(RaglineError):
    """Every model in the fallback chain failed (HTTP 503).

    ``failures`` pairs each model tried (``provider:model``) with why it failed, for the
    logs. ``citations`` are the passages retrieved for the question (as JSON objects), so
    the caller still gets the sources when no model could write the answer.
    ``retry_after_seconds`` (``Retry-After``) is set when a model is known to be warming up.
    """

    status_code = 503

    def __init__(
        self,
        message: str,
        *,
        failures: tuple[tuple[str, str], ...] = (),
        citations: list[dict[str, Any]] | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(redact(message))
        self.failures = tuple((model, redact(reason)) for model, reason in failures)
        self.citations = citations or []
        self.retry_after_seconds = retry_after_seconds

    def with_citations(self, citations: list[dict[str, Any]]) -> ModelUnavailableError:
        """The same failure (of the same class), carrying the retrieved passages."""
        return type(self)(
            str(self),
            failures=self.failures,
            citations=citations,
            retry_after_seconds=self.retry_after_seconds,
        )


class ModelMisconfiguredError(ModelUnavailableError):
    """No model of the chain answered because none exists at its provider (HTTP 502): a
    deployment naming a wrong model, which retrying cannot fix (no ``Retry-After``)."""

    status_code = 502
