"""Documents: one loader per format, and token-aware chunking that keeps the heading path."""

from ragline.documents.chunking import Chunk, chunk_document, count_tokens
from ragline.documents.loaders import Block, ParsedDocument, format_for, parse_document

__all__ = [
    "Block",
    "Chunk",
    "ParsedDocument",
    "chunk_document",
    "count_tokens",
    "format_for",
    "parse_document",
]
