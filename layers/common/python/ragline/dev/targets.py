"""Where ``ragline sync`` and ``ragline dlq`` act: the local stack, or a deployed one.

The local stack is found by the ``endpoints.json`` that ``ragline dev`` writes in its
data directory; a deployed stack by its CloudFormation outputs, with the caller's AWS
credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

# The CloudFormation outputs of stacks/ragline_stack.py and stacks/ingestion.py read here.
BUCKET_OUTPUT = "BucketName"
DLQ_OUTPUT = "DeadLetterQueueUrl"
RECONCILE_OUTPUT = "ReconcileFunctionName"


class TargetError(RuntimeError):
    """The stack asked for cannot be found or lacks what the command needs."""


@dataclass(frozen=True)
class Target:
    """A stack's documents bucket and ingest queues, and the clients that reach them."""

    name: str
    bucket: str
    dlq_url: str
    s3: Any
    sqs: Any
    queue_url: str | None = None  # found from the DLQ when not known
    reconcile_function: str | None = None
    lambda_client: Any = None
    local: bool = False

    def ingest_queue_url(self) -> str:
        """The queue whose dead letters land in the DLQ (its redrive policy names it)."""
        if self.queue_url:
            return self.queue_url
        sources = self.sqs.list_dead_letter_source_queues(QueueUrl=self.dlq_url)["queueUrls"]
        if len(sources) != 1:
            raise TargetError(
                f"expected one queue sending dead letters to {self.dlq_url}, found {len(sources)}"
            )
        return str(sources[0])


def local_target(data_dir: Path) -> Target:
    """The ``ragline dev`` stack running on ``data_dir``."""
    from ragline.dev.aws import client
    from ragline.dev.stack import ENDPOINTS_FILE, Endpoints

    try:
        endpoints = Endpoints.read(data_dir)
    except FileNotFoundError as exc:
        raise TargetError(
            f"no local stack on {data_dir} ({ENDPOINTS_FILE} is missing): start `ragline dev`"
            " first, or name a deployed stack with --stack"
        ) from exc
    return Target(
        name=f"ragline dev ({endpoints.s3})",
        bucket=endpoints.bucket,
        dlq_url=endpoints.dlq,
        queue_url=endpoints.queue,
        s3=client("s3", endpoints.s3),
        sqs=client("sqs", endpoints.s3),
        local=True,
    )


def deployed_target(stack: str, region: str | None = None) -> Target:
    """The deployed stack named ``stack``, from its CloudFormation outputs."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.session.Session(region_name=region)
    try:
        described = session.client("cloudformation").describe_stacks(StackName=stack)
    except (BotoCoreError, ClientError) as exc:
        raise TargetError(f"cannot read the stack {stack!r}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}
    missing = [key for key in (BUCKET_OUTPUT, DLQ_OUTPUT) if key not in outputs]
    if missing:
        raise TargetError(f"the stack {stack!r} has no output {', '.join(missing)}")
    return Target(
        name=f"stack {stack}",
        bucket=outputs[BUCKET_OUTPUT],
        dlq_url=outputs[DLQ_OUTPUT],
        s3=session.client("s3"),
        sqs=session.client("sqs"),
        reconcile_function=outputs.get(RECONCILE_OUTPUT),
        # A reconcile runs for up to the function's 15 minutes; retrying one would run it twice.
        lambda_client=session.client(
            "lambda", config=Config(read_timeout=910, retries={"total_max_attempts": 1})
        ),
    )
