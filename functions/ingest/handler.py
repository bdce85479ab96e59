"""Ingest Lambda: SQS batches of S3 event notifications -> documents in pgvector.

Each SQS message is processed on its own; a failed one is reported in the partial batch
response, so SQS redelivers it (and, past maxReceiveCount, moves it to the DLQ) while the
others in its batch are done.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from ragline.config import get_settings
from ragline.ingest import DocumentFailedError, S3ObjectReader, get_ingestor, object_changes
from ragline.ledger import get_ledger
from ragline.telemetry.tracing import trace_handler

settings = get_settings()
# Each function logs as its own service: two handlers in one process (ragline dev) must not
# share a Powertools logger, whose Lambda context and correlation id are per logger.
logger = Logger(service=f"{settings.service_name}-ingest")
# A batch whose every record failed is reported item by item too (not as a Lambda error),
# so the dev poller, logs and metrics see the same partial response in every case.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
ingestor = get_ingestor(settings)
reader = S3ObjectReader()
ledger = get_ledger(settings)


def record_handler(record: SQSRecord) -> None:
    """Bring the store in step with every object the message names."""
    for change in object_changes(record.body):
        logger.set_correlation_id(f"s3://{change.bucket}/{change.key}")
        try:
            result = ingestor.sync_object(reader, change.bucket, change.key, event=change)
        except DocumentFailedError as exc:
            logger.warning("document failed", extra=exc.result.to_dict())
            ledger.ingest(exc.result)
            raise
        logger.info(f"document {result.status}", extra=result.to_dict())
        ledger.ingest(result)


@logger.inject_lambda_context
@trace_handler(settings)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
