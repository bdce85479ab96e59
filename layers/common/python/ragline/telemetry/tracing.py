"""X-Ray tracing for the handlers, created lazily and only where it is on.

The Powertools Tracer imports the X-Ray SDK and patches boto3 when created; off (the
default outside Lambda) neither happens, so local runs and tests stay quick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ragline.config import Settings

Handler = TypeVar("Handler", bound=Callable[..., Any])


def trace_handler(settings: Settings) -> Callable[[Handler], Handler]:
    """A decorator tracing a Lambda handler with X-Ray when ``settings.tracing`` is on."""
    if not settings.tracing:
        return lambda handler: handler
    from aws_lambda_powertools import Tracer

    tracer = Tracer(service=settings.service_name)
    return tracer.capture_lambda_handler  # type: ignore[return-value]
