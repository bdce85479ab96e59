"""The formats ragline reads, found by file suffix, and ``parse_document`` over them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import PurePosixPath

from ragline.documents.loaders import (
    delimited,
    docx,
    html,
    json,
    markdown,
    pdf,
    pptx,
    rst,
    text,
    xlsx,
)
from ragline.documents.loaders.base import Loader, ParsedDocument
from ragline.documents.sanitize import clean_text
from ragline.errors import EmptyDocumentError, UnsupportedDocumentError

# One line per format; its module says which suffixes it reads.
LOADERS: tuple[Loader, ...] = (
    text.LOADER,
    markdown.LOADER,
    rst.LOADER,
    html.LOADER,
    docx.LOADER,
    pptx.LOADER,
    xlsx.LOADER,
    delimited.CSV_LOADER,
    delimited.TSV_LOADER,
    json.JSON_LOADER,
    json.JSONL_LOADER,
    pdf.LOADER,
)

SIDECAR_SUFFIX = ".metadata.json"

_LOADERS = {loader.format: loader for loader in LOADERS}
_FORMATS_BY_SUFFIX = {suffix: loader.format for loader in LOADERS for suffix in loader.suffixes}


def format_for(name: str) -> str:
    """The format of an object from its key or file name; raises UnsupportedDocumentError.

    ``guide.rst.txt`` is read as reStructuredText (a common way to publish rst sources).
    A Bedrock Knowledge Bases metadata sidecar (``<key>.metadata.json``) describes another
    object and is no document of its own, though it is JSON.
    """
    path = PurePosixPath(name.lower())
    if path.name.endswith(SIDECAR_SUFFIX) and len(path.name) > len(SIDECAR_SUFFIX):
        raise UnsupportedDocumentError(
            f"{SIDECAR_SUFFIX!r} is the metadata sidecar of another object, not a document"
        )
    suffixes = path.suffixes
    for suffix in (suffixes[-2:-1] if len(suffixes) > 1 and suffixes[-1] == ".txt" else []) + [
        path.suffix
    ]:
        if suffix in _FORMATS_BY_SUFFIX:
            return _FORMATS_BY_SUFFIX[suffix]
    raise UnsupportedDocumentError(
        f"unsupported document type {path.suffix or '(no extension)'!r}; "
        f"supported: {', '.join(sorted(_FORMATS_BY_SUFFIX))}"
    )


def parse_document(name: str, data: bytes) -> ParsedDocument:
    """Parse an object's bytes by its name's extension.

    Raises UnsupportedDocumentError for types without a loader, EmptyDocumentError (an
    UnsupportedDocumentError: skipped) when it holds no text, and DocumentParseError for
    content that cannot be read as a document of its type, or over its budgets
    (BudgetExceededError; :mod:`ragline.documents.budgets`, current ones). The text is
    cleaned of what PostgreSQL cannot store (:mod:`ragline.documents.sanitize`).
    """
    parsed = _LOADERS[format_for(name)].read(data)
    parsed.title = clean_text(parsed.title)
    cleaned = (
        replace(b, text=clean_text(b.text), section=tuple(clean_text(s) for s in b.section))
        for b in parsed.blocks
    )
    parsed.blocks = [b for b in cleaned if b.text.strip()]
    if not parsed.blocks:
        raise EmptyDocumentError("the document contains no text to index")
    if not parsed.title:
        parsed.title = PurePosixPath(name).name.split(".")[0].replace("_", " ").replace("-", " ")
    return parsed
