"""Documents: one loader per format, and token-aware chunking that keeps the heading path."""

from ragline.documents.chunking import Chunk, chunk_document
from ragline.documents.loaders import Block, ParsedDocument, format_for, parse_document
from ragline.tokens import count_tokens

__all__ = [
    "Block",
    "Chunk",
    "ParsedDocument",
    "chunk_document",
    "count_tokens",
    "format_for",
    "parse_document",
]
