"""The ingest use case: keep the store in step with the objects in the bucket.

``events`` reads S3 event notifications out of SQS messages, ``objects`` fetches objects
as the bucket holds them now, and ``pipeline`` parses, chunks, embeds and stores them.
"""

from __future__ import annotations

from ragline.ingest.events import ObjectChange, object_changes
from ragline.ingest.objects import ObjectReader, S3ObjectReader, StoredObject
from ragline.ingest.pipeline import DocumentFailedError, Ingestor, get_ingestor
from ragline.records import IngestResult

__all__ = [
    "DocumentFailedError",
    "IngestResult",
    "Ingestor",
    "ObjectChange",
    "ObjectReader",
    "S3ObjectReader",
    "StoredObject",
    "get_ingestor",
    "object_changes",
]
