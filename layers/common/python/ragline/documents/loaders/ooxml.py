"""What the Word, PowerPoint and Excel loaders share: checking the package, mapping errors.

Office files are ZIP packages of XML parts. Before a parser library sees one, the bytes
must be a ZIP holding the format's main part, and its XML must unpack to a bounded size
(a small file can declare gigabytes of XML: RAGLINE_MAX_UNPACKED_BYTES and
RAGLINE_MAX_COMPRESSION_RATIO); a password-protected file is not a ZIP at all but an OLE
compound file, and so is a legacy ``.doc``/``.xls``/``.ppt`` saved under the new suffix.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager

from ragline.documents import budgets
from ragline.errors import DocumentParseError

# Parts a parser reads as XML; media (images, embedded files) are never unpacked.
_XML_SUFFIXES = (".xml", ".rels", ".vml")
# A part smaller than this unpacked is never a bomb, whatever its ratio.
_RATIO_FLOOR = 1024 * 1024
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def check_package(data: bytes, name: str, main_part: str) -> None:
    """Raise DocumentParseError, with the reason, unless ``data`` is a readable package.

    ``name`` is the format as a reader knows it ("Word (.docx)"); ``main_part`` the part
    every file of the format has (``word/document.xml``).
    """
    if data.startswith(_OLE_SIGNATURE):
        raise DocumentParseError(
            f"not a valid {name} file: a password-protected or legacy binary Office file; "
            "save it without a password in the current format"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            parts = package.infolist()
    # what zipfile raises on a damaged directory, or one it cannot read (NotImplementedError:
    # a member needing a newer ZIP version)
    except (zipfile.BadZipFile, ValueError, NotImplementedError, EOFError) as exc:
        raise DocumentParseError(f"not a valid {name} file (not a ZIP package: {exc})") from exc
    if main_part not in {part.filename for part in parts}:
        raise DocumentParseError(f"not a valid {name} file (the package has no {main_part})")
    check_unpacked(parts)


def check_unpacked(parts: list[zipfile.ZipInfo]) -> None:
    """Raise BudgetExceededError when the package's XML declares more than its budget.

    The declared sizes are what a parser will inflate (zipfile refuses to read past a
    part's declared size); a part's ratio of unpacked to packed size above the budget is a
    bomb whatever the total.
    """
    budget = budgets.current()
    xml = [part for part in parts if part.filename.lower().endswith(_XML_SUFFIXES)]
    unpacked = sum(part.file_size for part in xml)
    if unpacked > budget.unpacked_bytes:
        raise budgets.BudgetExceededError(
            f"the package's XML unpacks to {budgets.size(unpacked)}, over the limit of "
            f"{budgets.size(budget.unpacked_bytes)} (RAGLINE_MAX_UNPACKED_BYTES)"
        )
    for part in xml:
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > _RATIO_FLOOR and ratio > budget.compression_ratio:
            raise budgets.BudgetExceededError(
                f"part {part.filename} unpacks {ratio:,.0f} times its packed size, over the "
                f"limit of {budget.compression_ratio} (RAGLINE_MAX_COMPRESSION_RATIO)"
            )


@contextmanager
def parser_errors(name: str) -> Iterator[None]:
    """Report whatever a parser library raises on a damaged package as DocumentParseError.

    The libraries raise many types (KeyError for a missing part, lxml's syntax errors,
    ValueError for bad attribute values); for a file that passed check_package each means
    the same thing: this file cannot be read, and retrying will not change that.
    """
    try:
        yield
    except DocumentParseError:
        raise
    except Exception as exc:
        raise DocumentParseError(f"unreadable {name} file ({type(exc).__name__}: {exc})") from exc
