"""The ingest use case: keep the store in step with the objects in the bucket.

``events`` reads S3 event notifications out of SQS messages, ``objects`` fetches objects
as the bucket holds them now, ``versions`` decides whether an event is still current,
``pipeline`` parses, chunks, embeds and stores them, ``reconcile`` makes the store match
a whole bucket, and ``redrive`` moves dead letters back to the ingest queue.
"""

from __future__ import annotations

from ragline.ingest.events import ObjectChange, object_changes
from ragline.ingest.objects import ListedObject, ObjectReader, S3ObjectReader, StoredObject
from ragline.ingest.pipeline import DocumentFailedError, Ingestor, get_ingestor
from ragline.outcomes import IngestResult

__all__ = [
    "DocumentFailedError",
    "IngestResult",
    "Ingestor",
    "ListedObject",
    "ObjectChange",
    "ObjectReader",
    "S3ObjectReader",
    "StoredObject",
    "get_ingestor",
    "object_changes",
]
