"""What the Word, PowerPoint and Excel loaders share: checking the package, mapping errors.

Office files are ZIP packages of XML parts. Before a parser library sees one, the bytes
must be a ZIP holding the format's main part, and unpack to a bounded size (a small file
can declare gigabytes of XML); a password-protected file is not a ZIP at all but an OLE
compound file, and so is a legacy ``.doc``/``.xls``/``.ppt`` saved under the new suffix.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager

from ragline.errors import DocumentParseError

# Declared unpacked size of all parts together. Text-heavy packages unpack to about ten
# times their size; 512 MiB is far beyond any document within RAGLINE_MAX_DOCUMENT_BYTES.
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
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
    unpacked = sum(part.file_size for part in parts)
    if unpacked > MAX_UNPACKED_BYTES:
        raise DocumentParseError(
            f"the package unpacks to {unpacked} bytes, over the limit of {MAX_UNPACKED_BYTES}"
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
