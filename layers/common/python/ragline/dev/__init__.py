"""The local stack and the ``ragline`` command line. Not shipped in the Lambda layer.

``LocalStack`` runs the repository's Lambda handlers on one machine: moto as the S3 +
SQS endpoint, a poller playing the SQS event source mapping, and an HTTP server
playing API Gateway. Imported lazily, so ``ragline ask`` does not pay for moto.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragline.dev.stack import Endpoints, LocalStack, StackOptions

__all__ = ["Endpoints", "LocalStack", "StackOptions"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ragline.dev import stack

        return getattr(stack, name)
    raise AttributeError(f"module 'ragline.dev' has no attribute {name!r}")
