"""PowerPoint presentations (``.pptx``): a section per slide, its notes marked as such.

Each slide is a section headed by its title (``Slide N`` when it has none), and its
blocks carry the slide number as their page. The slide's shapes are read top to bottom,
then left to right, groups included: a text box with one paragraph is a ``text`` block,
with more a ``list`` block of one line per paragraph (indented two spaces per level); a
table is a ``table`` block, its first row first. Speaker notes follow the slide's
content as one block starting ``Speaker notes:``. The title is the presentation's title
property, else the first slide title. Pictures, charts and media are not read, nor are
the masters and layouts (their text is template, not content), nor a slide's footer,
date and slide number placeholders.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ragline.documents.loaders.base import Block, Loader, ParsedDocument
from ragline.documents.loaders.ooxml import check_package, parser_errors
from ragline.documents.loaders.tabular import cell_text, table_block

if TYPE_CHECKING:
    from pptx.shapes.base import BaseShape
    from pptx.table import Table
    from pptx.text.text import TextFrame

_NAME = "PowerPoint (.pptx)"
NOTES_PREFIX = "Speaker notes: "


def _reading_order(shapes: Iterable[BaseShape]) -> list[BaseShape]:
    return sorted(shapes, key=lambda shape: (shape.top or 0, shape.left or 0))


def _frame_block(frame: TextFrame, section: tuple[str, ...], page: int) -> Block | None:
    lines = [
        "  " * paragraph.level + text
        for paragraph in frame.paragraphs
        if (text := cell_text(paragraph.text))
    ]
    if not lines:
        return None
    return Block("\n".join(lines), section, "list" if len(lines) > 1 else "text", page)


def _table_block(table: Table, section: tuple[str, ...], page: int) -> Block | None:
    rows = (
        [cell_text(cell.text) for cell in row.cells if not cell.is_spanned] for row in table.rows
    )
    return table_block(rows, section, page)


def _shape_blocks(shape: BaseShape, section: tuple[str, ...], page: int) -> Iterator[Block]:
    from pptx.enum.shapes import PP_PLACEHOLDER
    from pptx.shapes.graphfrm import GraphicFrame
    from pptx.shapes.group import GroupShape

    # the footer, date and slide number a slide repeats: page furniture, not content
    furniture = {PP_PLACEHOLDER.FOOTER, PP_PLACEHOLDER.DATE, PP_PLACEHOLDER.SLIDE_NUMBER}

    if shape.is_placeholder and shape.placeholder_format.type in furniture:
        return
    if isinstance(shape, GroupShape):
        for inner in _reading_order(shape.shapes):
            yield from _shape_blocks(inner, section, page)
        return
    block = None
    if isinstance(shape, GraphicFrame) and shape.has_table:
        block = _table_block(shape.table, section, page)
    elif shape.has_text_frame:
        block = _frame_block(shape.text_frame, section, page)  # type: ignore[attr-defined]
    if block is not None:
        yield block


def parse_pptx(data: bytes) -> ParsedDocument:
    """A section per slide under its title (see the module docstring)."""
    check_package(data, _NAME, "ppt/presentation.xml")
    with parser_errors(_NAME):
        from pptx import Presentation

        presentation = Presentation(io.BytesIO(data))
        blocks: list[Block] = []
        first_title = ""
        for number, slide in enumerate(presentation.slides, 1):
            title_shape = slide.shapes.title
            title = ""
            if title_shape is not None and title_shape.has_text_frame:
                title = cell_text(title_shape.text_frame.text)
            first_title = first_title or title
            section = (title or f"Slide {number}",)
            for shape in _reading_order(slide.shapes):
                if title_shape is None or shape.shape_id != title_shape.shape_id:
                    blocks.extend(_shape_blocks(shape, section, number))
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                frame = slide.notes_slide.notes_text_frame
                notes = " ".join(
                    text for paragraph in frame.paragraphs if (text := cell_text(paragraph.text))
                )
                if notes:
                    blocks.append(Block(NOTES_PREFIX + notes, section, "text", number))
        title = (presentation.core_properties.title or "").strip()
    return ParsedDocument(title=title or first_title, format="pptx", blocks=blocks)


LOADER = Loader("pptx", (".pptx",), parse_bytes=parse_pptx)
