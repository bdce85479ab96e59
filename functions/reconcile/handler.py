"""Reconcile Lambda: on a schedule, make the store match the documents bucket.

It repairs what lost events leave behind (an outage past the queue's retries, messages
left in the DLQ): objects the store lacks or holds at another version are ingested,
documents whose object is gone are deleted. The schedule's input names the bucket;
``ragline sync --stack`` invokes it the same way and prints the report it returns.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field
from ragline.config import get_settings
from ragline.ingest import S3ObjectReader, get_ingestor
from ragline.ingest.reconcile import reconcile
from ragline.ledger import get_ledger
from ragline.telemetry.tracing import trace_handler

settings = get_settings()
logger = Logger(service=f"{settings.service_name}-reconcile")
ingestor = get_ingestor(settings)
reader = S3ObjectReader()
ledger = get_ledger(settings)


class ReconcileRequest(BaseModel):
    """The event: which bucket (and which keys of it) to reconcile."""

    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = ""


@logger.inject_lambda_context
@trace_handler(settings)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = ReconcileRequest.model_validate(event)
    report = reconcile(
        ingestor, reader, request.bucket, prefix=request.prefix, on_result=ledger.ingest
    )
    summary = report.to_dict()
    logger.info(f"reconciled: {report.summary()}", extra=summary)
    return summary
