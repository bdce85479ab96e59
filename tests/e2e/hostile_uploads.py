"""Hostile files uploaded through S3 to a running ``ragline dev``, each followed by a
control document: what became of each, how long it took, and the memory of the dev
process's tree meanwhile. Used by tests/e2e/test_hostile_uploads.py (small files over
lowered budgets) and bench/hostile_uploads.py (the full-size files of issue 18).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from tests.e2e.support import http_json, wait_until
from tests.support import hostile
from tests.support.process_tree import MIB, TreeMemorySampler

# A document is settled once it has one of these statuses.
SETTLED = frozenset({"ingested", "failed", "skipped"})


@dataclass(frozen=True)
class Upload:
    """What became of one hostile object and of the control document after it."""

    title: str
    key: str
    size: int
    status: str
    reason: str | None
    seconds: float  # from the upload to the settled status
    control_seconds: float  # from the control's upload to an answer citing it
    peak_pss_mb: float  # the tree's peak from the upload until the control answered
    peak_rss_mb: float


def files(scale: str) -> dict[str, tuple[str, bytes]]:
    """The hostile files of issue 18: ``full`` size, or ``small`` ones that exceed the
    lowered budgets of :data:`SMALL_BUDGETS`."""
    full = scale == "full"
    return {
        "PDF, a page inflating to 1 GiB" if full else "PDF, a page inflating to 64 MiB": (
            "bomb.pdf",
            hostile.flate_bomb_pdf((1024 if full else 64) * MIB),
        ),
        "DOCX declaring 400 MiB" if full else "DOCX declaring 32 MiB": (
            "bomb.docx",
            hostile.docx_declaring((400 if full else 32) * MIB),
        ),
        "XLSX, cells in A and XFD x 5,000 rows" if full else "XLSX, A and XFD x 200 rows": (
            "wide.xlsx",
            hostile.xlsx_wide(5000 if full else 200),
        ),
        "CSV, one line of 125 MB" if full else "CSV, one line of 2 MB": (
            "line.csv",
            hostile.csv_one_line((125 if full else 2) * 1000 * 1000),
        ),
        "HTML table bomb, 10 MB" if full else "HTML table bomb, 200 KB": (
            "tables.html",
            hostile.html_table_bomb((10_000 if full else 200) * 1000),
        ),
        "JSON with NUL": ("nul.json", hostile.json_with("Kayak tariff is 99 euros.\u0000")),
        "JSON with a lone surrogate": ("surrogate.json", hostile.json_with("Kayak \ud800")),
        "JSON, 100,000-digit number": ("number.json", hostile.json_big_number(100_000)),
    }


# Budgets the small files exceed as the full-size ones exceed the defaults (the XLSX's
# 16,384 columns, the CSV's line and the HTML's depth exceed the defaults already).
SMALL_BUDGETS = {
    "RAGLINE_MAX_INFLATED_BYTES": str(4 * MIB),
    "RAGLINE_MAX_UNPACKED_BYTES": str(4 * MIB),
}


def _documents(api: str) -> dict[str, dict[str, Any]]:
    status, body = http_json("GET", f"{api}/documents?limit=200")
    assert status == 200, body
    return {document["source"]: document for document in body["documents"]}


def _settled(api: str, source: str) -> dict[str, Any] | None:
    document = _documents(api).get(source)
    return document if document and document["status"] in SETTLED else None


def _cited(api: str, source: str, question: str) -> bool:
    status, body = http_json("POST", f"{api}/query", {"question": question})
    assert status == 200, body
    return source in {citation["source"] for citation in body["citations"]}


def upload_each(
    endpoints: Mapping[str, str],
    s3: Any,
    sampler: TreeMemorySampler,
    hostile_files: Mapping[str, tuple[str, bytes]],
    *,
    settle_timeout: float,
    control_timeout: float,
) -> list[Upload]:
    """Upload each file, wait for its settled status, then upload a control document
    and wait for an answer citing it; the tree's peak memory over both."""
    api, bucket = endpoints["api"], endpoints["bucket"]
    results = []
    for number, (title, (name, data)) in enumerate(hostile_files.items()):
        key = f"hostile/{name}"
        source = f"s3://{bucket}/{key}"
        sampler.reset()
        started = time.monotonic()
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        document = wait_until(
            partial(_settled, api, source),
            timeout=settle_timeout,
            what=f"{key} to be ingested, failed or skipped",
            interval=0.1,
        )
        seconds = time.monotonic() - started
        control_key = f"control/after-{name}.md"
        control_source = f"s3://{bucket}/{control_key}"
        place = f"Quay{number}berth"
        control_started = time.monotonic()
        s3.put_object(
            Bucket=bucket,
            Key=control_key,
            Body=f"# Moorings\n\nThe {place} mooring opens at {number + 6}:30.\n".encode(),
        )
        wait_until(
            partial(_cited, api, control_source, f"When does the {place} mooring open?"),
            timeout=control_timeout,
            what=f"an answer citing {control_key}",
            interval=0.25,
        )
        control_seconds = time.monotonic() - control_started
        sampler.sample()
        results.append(
            Upload(
                title=title,
                key=key,
                size=len(data),
                status=document["status"],
                reason=document.get("error"),
                seconds=seconds,
                control_seconds=control_seconds,
                peak_pss_mb=sampler.peak_pss / MIB,
                peak_rss_mb=sampler.peak_rss / MIB,
            )
        )
    return results


def table(results: list[Upload], baseline_pss_mb: float) -> str:
    """The results as a plain-text table."""
    lines = [
        f"idle tree before the uploads: {baseline_pss_mb:.0f} MB (PSS)",
        f"{'file':38} {'size':>9} {'peak PSS':>8} {'peak RSS':>8} {'seconds':>7} "
        f"{'control':>7}  {'status':8} reason",
    ]
    for r in results:
        size = f"{r.size / MIB:.1f} MiB" if r.size >= MIB else f"{r.size >> 10} KiB"
        lines.append(
            f"{r.title:38} {size:>9} {r.peak_pss_mb:8.0f} {r.peak_rss_mb:8.0f} "
            f"{r.seconds:7.1f} {r.control_seconds:7.1f}  {r.status:8} {(r.reason or '')[:100]}"
        )
    return "\n".join(lines)
