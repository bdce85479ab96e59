"""Retries for model and embedding calls: exponential backoff with full jitter.

One policy for every provider: the SDKs' own retries are switched off (``max_retries=0``
for openai, one attempt for botocore) so a call is never retried twice over, and the
providers say what is worth retrying by raising :class:`ragline.errors.ModelError` with
``retryable`` set from :func:`retryable_status`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from ragline.errors import ModelError

if TYPE_CHECKING:
    from ragline.config import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

# HTTP statuses after which the same request may succeed: request timeout, too early,
# throttling, and every server-side error. Other 4xx (bad request, bad key, no such
# model) fail the same way every time.
_RETRYABLE_4XX = frozenset({408, 425, 429})


def retryable_status(status: int | None) -> bool:
    """Whether an HTTP status means "try again later" rather than "this will never work"."""
    if status is None:
        return False
    return status in _RETRYABLE_4XX or status >= 500


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``max_retries`` more attempts after the first, when the error is retryable.

    Before retry ``n`` (0-based) it waits a random time in ``[0, min(max_delay,
    base_delay * 2**n)]`` ("full jitter"), so clients throttled together do not come back
    together.
    """

    max_retries: int = 2
    base_delay: float = 0.25
    max_delay: float = 8.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    uniform: Callable[[float, float], float] = field(
        default=random.uniform, compare=False, repr=False
    )

    @classmethod
    def from_settings(cls, settings: Settings, *, max_retries: int | None = None) -> RetryPolicy:
        """The configured policy (``RAGLINE_LLM_MAX_RETRIES``), or ``max_retries`` when a
        caller on a tighter budget (the reranker) sets its own."""
        return cls(max_retries=settings.llm_max_retries if max_retries is None else max_retries)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        return self.uniform(0.0, min(self.max_delay, self.base_delay * 2**retry))

    def run(self, operation: Callable[[], T], *, what: str = "model call") -> tuple[T, int]:
        """Call ``operation`` until it succeeds or fails for good; return (result, attempts).

        Only :class:`ModelError` with ``retryable`` set is retried; the last error is
        raised when the retries are spent.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return operation(), attempt
            except ModelError as exc:
                if not exc.retryable or attempt > self.max_retries:
                    raise
                wait = self.delay(attempt - 1)
                logger.warning(
                    "%s failed (attempt %d of %d), retrying in %.2fs: %s",
                    what, attempt, self.max_retries + 1, wait, exc,
                )  # fmt: skip
                self.sleep(wait)
