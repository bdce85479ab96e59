"""Loaders: bytes of one object -> a title and blocks of text, each under its heading path.

A loader keeps what a reader of the rendered document would read and drops markup that
only shapes it. Text formats are pure Python; Office formats import their parser library
(python-docx, python-pptx, openpyxl) only when a file of theirs is read.

One module per format defines its ``LOADER``; ``registry.LOADERS`` lists them. Adding a
format is a module and a line there.
"""

from ragline.documents.loaders.base import Block, Loader, ParsedDocument
from ragline.documents.loaders.registry import LOADERS, format_for, parse_document

__all__ = ["LOADERS", "Block", "Loader", "ParsedDocument", "format_for", "parse_document"]
