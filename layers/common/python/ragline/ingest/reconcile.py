"""Reconcile: make the store match a bucket, whatever events were lost on the way.

Events go missing in ways no retry repairs: a local stack restarted with an empty
bucket, a crash mid-batch, an outage that sent every event to the dead-letter queue.
This walks the bucket's listing and the store's documents of that bucket side by side:
objects the store lacks, or holds at another version, go through the same pipeline as
an event would send them; documents whose object is gone are deleted. An object whose
listing matches the stored version (ETag, size, last modified) is left alone, so a run
over an unchanged bucket reads no object and embeds nothing.

Metadata sidecars are not documents: a document is synced again when its sidecar
appeared, changed or went. Object tags are not in a listing: a tag-only change is read
with the object's next event, or its sidecar's.

``ragline sync`` and the scheduled reconcile Lambda both call :func:`reconcile`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragline.ingest.attributes import document_key, is_sidecar
from ragline.ingest.pipeline import DocumentFailedError
from ragline.ingest.versions import listing_unchanged
from ragline.outcomes import IngestResult

if TYPE_CHECKING:
    from ragline.ingest.objects import S3ObjectReader
    from ragline.ingest.pipeline import Ingestor

logger = logging.getLogger(__name__)

# The counts every report shows, in this order, even when zero.
REPORTED = ("ingested", "unchanged", "deleted", "failed")


@dataclass
class ReconcileReport:
    """What one reconcile run did: how many objects ended in each status, and why each
    failure failed."""

    bucket: str
    prefix: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def add(self, result: IngestResult) -> None:
        """Count one object's outcome."""
        self.counts[result.status] += 1
        if result.status == "failed":
            self.failures.append((result.source, result.error or "no reason given"))

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON: the bucket, a count per status, the failures."""
        counts = {status: self.counts[status] for status in REPORTED}
        counts.update(self.counts)
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "counts": counts,
            "failures": [{"source": s, "error": e} for s, e in self.failures],
        }

    def summary(self) -> str:
        """One line: ``ingested 2, unchanged 10, deleted 1, failed 0`` (+ other statuses)."""
        extra = sorted(status for status in self.counts if status not in REPORTED)
        return ", ".join(f"{status} {self.counts[status]}" for status in (*REPORTED, *extra))


def reconcile(
    ingestor: Ingestor,
    reader: S3ObjectReader,
    bucket: str,
    *,
    prefix: str = "",
    on_result: Callable[[IngestResult], None] | None = None,
) -> ReconcileReport:
    """Make the store's documents from ``s3://bucket/prefix`` match the bucket.

    Every object's outcome goes to ``on_result`` (the ledger, a progress bar). One
    object's failure never stops the others: it is counted, with its reason.
    """
    report = ReconcileReport(bucket, prefix)
    root = f"s3://{bucket}/"
    stored = {doc.source: doc for doc in ingestor.store.iter_documents(root + prefix)}

    def sync(key: str) -> None:
        result = _attempt(root + key, lambda: ingestor.sync_object(reader, bucket, key))
        report.add(result)
        if on_result is not None:
            on_result(result)

    sidecars = {  # the sidecar ETag each stored document was made with
        doc.source: doc.metadata["sidecar"].get("etag")
        for doc in stored.values()
        if isinstance(doc.metadata.get("sidecar"), dict)
    }
    for listed in reader.list_objects(bucket, prefix):
        if is_sidecar(listed.key):
            # Not a document: its document is synced when the sidecar is not the one it
            # was made with (the pipeline reads the sidecar with the document).
            made_with = sidecars.pop(root + document_key(listed.key), None)
            if made_with != listed.etag:
                sync(listed.key)
            continue
        document = stored.pop(root + listed.key, None)
        if document is not None and listing_unchanged(document, listed, ingestor.embedder.name):
            report.counts["unchanged"] += 1
            continue
        sync(listed.key)
    # Whatever the listing did not show is gone; the pipeline deletes it only if a HEAD
    # agrees (it may have been uploaded again since the listing). So are the sidecars of
    # the documents still listed: those lose the sidecar's attributes.
    for source in stored:
        sync(source.removeprefix(root))
        sidecars.pop(source, None)
    for source in sidecars:
        sync(source.removeprefix(root))
    logger.info("reconciled s3://%s/%s: %s", bucket, prefix, report.summary())
    return report


def _attempt(source: str, sync: Callable[[], IngestResult]) -> IngestResult:
    try:
        return sync()
    except DocumentFailedError as exc:  # recorded as failed in the store, with the reason
        return exc.result
    except Exception as exc:  # one object's failure (provider, database) must not stop the rest
        logger.warning("reconcile of %s failed: %s", source, exc, exc_info=True)
        return IngestResult(source, "failed", error=f"{type(exc).__name__}: {exc}")
