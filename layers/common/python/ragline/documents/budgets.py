"""What one document may cost to parse, checked before the heavy work.

A small file can unpack into gigabytes: a PDF page whose content stream inflates to
1 GiB, an Office package declaring 400 MiB of XML, a sheet with cells in columns A and
XFD, a CSV of one 125 MB line, HTML nested half a million tables deep. Each loader checks
the budget of its kind before (or while, for what only reading reveals) it builds
anything large, and fails the document with the reason ("a PDF stream inflates past
256 MiB", "sheet 'Data' spans 16,384 columns"): :class:`BudgetExceededError`, a
DocumentParseError, so the document is recorded as failed.

What no check can foresee (native code running away) is contained by
:mod:`ragline.documents.isolation`: the parse runs in a child process with a memory
limit (``memory_mb``) and a deadline (``seconds``).

The budgets are settings (``RAGLINE_MAX_*``, see the README); :func:`applied` makes a set
current for the parses inside it, and loaders read :func:`current`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragline.errors import DocumentParseError

if TYPE_CHECKING:
    from ragline.config import Settings

MIB = 1024 * 1024


class BudgetExceededError(DocumentParseError):
    """A document needs more than its budget to parse; it is recorded as failed."""


@dataclass(frozen=True)
class Budgets:
    """The limits on one document's parse (defaults: the settings' defaults)."""

    # One compressed stream of a PDF (a page's content, an image, an object stream).
    inflated_bytes: int = 256 * MIB
    pages: int = 5_000
    # Office packages: the XML parts' declared unpacked size, and any large part's ratio
    # of unpacked to packed size (text XML deflates about 10:1, DEFLATE at most 1,032:1).
    unpacked_bytes: int = 128 * MIB
    compression_ratio: int = 500
    # Spreadsheets: the widest row and the cells of all sheets, as declared and as read.
    sheet_columns: int = 2_048
    sheet_cells: int = 2_000_000
    # Rows of all tables of a document (sheets, CSV).
    table_rows: int = 100_000
    # The longest line of a CSV or TSV file, in characters.
    line_chars: int = MIB
    # HTML: the page's size in characters and how deep its elements nest.
    html_chars: int = 16 * MIB
    html_depth: int = 512
    # Chunks one document may make (each is a vector to compute and store).
    chunks: int = 5_000
    # The parse's wall time and the memory it may add, when isolated in a child process.
    seconds: float = 60.0
    memory_mb: int = 512
    isolate: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> Budgets:
        return cls(
            inflated_bytes=settings.max_inflated_bytes,
            pages=settings.max_pages,
            unpacked_bytes=settings.max_unpacked_bytes,
            compression_ratio=settings.max_compression_ratio,
            sheet_columns=settings.max_sheet_columns,
            sheet_cells=settings.max_sheet_cells,
            table_rows=settings.max_table_rows,
            line_chars=settings.max_line_chars,
            html_chars=settings.max_html_chars,
            html_depth=settings.max_html_depth,
            chunks=settings.max_chunks,
            seconds=settings.parse_timeout_seconds,
            memory_mb=settings.parse_memory_mb,
            isolate=settings.parse_isolation,
        )


_DEFAULTS = Budgets()
_CURRENT: ContextVar[Budgets | None] = ContextVar("ragline_budgets", default=None)


def current() -> Budgets:
    """The budgets of the parse under way (the defaults outside :func:`applied`)."""
    return _CURRENT.get() or _DEFAULTS


@contextmanager
def applied(budgets: Budgets) -> Iterator[Budgets]:
    """Make ``budgets`` current for the parses inside the block."""
    token = _CURRENT.set(budgets)
    try:
        yield budgets
    finally:
        _CURRENT.reset(token)


def size(count: float) -> str:
    """A byte count as a reader says it: ``256 MiB``, ``12 KiB``, ``800 bytes``."""
    for unit, scale in (("GiB", MIB * 1024), ("MiB", MIB), ("KiB", 1024)):
        if count >= scale:
            value = count / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{int(count)} bytes"


def longest_line(text: str, limit: int) -> int:
    """The length of ``text``'s longest line, or the first past ``limit`` (scanning stops)."""
    longest, start = 0, 0
    while start <= len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        longest = max(longest, end - start)
        if longest > limit:
            break
        start = end + 1
    return longest
