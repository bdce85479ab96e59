"""Domain errors. Handlers map these to HTTP status codes or document statuses."""

from __future__ import annotations

from typing import Any


class RaglineError(Exception):
    """Base class for every error ragline raises on purpose."""

    status_code = 500


class ConfigurationError(RaglineError):
    """A setting is missing or invalid; raised at cold start."""


class InvalidRequestError(RaglineError):
    """The caller sent something we cannot serve (HTTP 400)."""

    status_code = 400


class NotFoundError(RaglineError):
    """The requested resource does not exist (HTTP 404)."""

    status_code = 404


class UnsupportedDocumentError(RaglineError):
    """The object's type has no loader; the document is recorded as skipped."""


class DocumentParseError(RaglineError):
    """The object could not be parsed; the document is recorded as failed."""


class SupersededError(RaglineError):
    """A write was refused because the store or the bucket holds a newer version of the
    object than the one read; the newer version's own event brings it (or already did)."""

    status_code = 409


class EmbeddingDimensionError(RaglineError):
    """The embedder's dimension differs from the one the collection was built with."""

    status_code = 409


class ModelError(RaglineError):
    """A model call failed. ``retryable`` says whether trying again may help."""

    status_code = 502

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ModelUnavailableError(RaglineError):
    """Every model in the fallback chain failed (HTTP 503).

    ``failures`` pairs each model tried (``provider:model``) with why it failed, for the
    logs. ``citations`` are the passages retrieved for the question (as JSON objects), so
    the caller still gets the sources when no model could write the answer.
    """

    status_code = 503

    def __init__(
        self,
        message: str,
        *,
        failures: tuple[tuple[str, str], ...] = (),
        citations: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.failures = failures
        self.citations = citations or []

    def with_citations(self, citations: list[dict[str, Any]]) -> ModelUnavailableError:
        """The same failure, carrying the retrieved passages."""
        return ModelUnavailableError(str(self), failures=self.failures, citations=citations)
