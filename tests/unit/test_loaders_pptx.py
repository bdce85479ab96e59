"""PowerPoint: a section per slide under its title, tables, notes, on files python-pptx writes."""

from __future__ import annotations

import io

import pytest
from pptx import Presentation
from pptx.enum.shapes import PP_PLACEHOLDER
from pptx.util import Inches
from ragline.documents import Block, parse_document
from ragline.errors import DocumentParseError

TITLE_AND_CONTENT, BLANK = 1, 6


def _deck() -> bytes:
    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[TITLE_AND_CONTENT])
    first.shapes.title.text = "Quarterly results"
    body = first.placeholders[1].text_frame
    body.text = "Revenue grew 12%"
    detail = body.add_paragraph()
    detail.text, detail.level = "North led the growth", 1
    first.notes_slide.notes_text_frame.text = "Mention the new region.\nKeep it short."
    layout = deck.slide_layouts[TITLE_AND_CONTENT]
    for placeholder in list(layout.placeholders):
        if placeholder.placeholder_format.type in (
            PP_PLACEHOLDER.FOOTER,
            PP_PLACEHOLDER.SLIDE_NUMBER,
        ):
            first.shapes.clone_placeholder(placeholder)
    for shape in first.placeholders:
        if shape.placeholder_format.type == PP_PLACEHOLDER.FOOTER:
            shape.text_frame.text = "Confidential"
        elif shape.placeholder_format.type == PP_PLACEHOLDER.SLIDE_NUMBER:
            shape.text_frame.text = "1"

    second = deck.slides.add_slide(deck.slide_layouts[BLANK])  # no title placeholder
    table = second.shapes.add_table(3, 2, Inches(1), Inches(3), Inches(4), Inches(2)).table
    for row, values in enumerate([("Region", "Revenue"), ("North", "1.2M"), ("South", "0.8M")]):
        for column, value in enumerate(values):
            table.cell(row, column).text = value
    below = second.shapes.add_textbox(Inches(1), Inches(6), Inches(3), Inches(1))
    below.text_frame.text = "Figures in euros."
    above = second.shapes.add_textbox(Inches(1), Inches(1), Inches(3), Inches(1))
    above.text_frame.text = "Revenue by region"

    third = deck.slides.add_slide(deck.slide_layouts[TITLE_AND_CONTENT])
    third.shapes.title.text = "Next steps"
    third.placeholders[1].text_frame.text = "Hire two engineers."
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def test_a_section_per_slide_with_its_title_tables_and_notes() -> None:
    # GIVEN a deck: a titled slide with nested bullets, speaker notes, a footer and a
    # slide number, an untitled slide
    # with a table between two text boxes (added out of reading order), a third slide
    # WHEN it is parsed
    parsed = parse_document("results.pptx", _deck())

    # THEN each slide is a section under its title ("Slide 2" without one), its shapes
    # read top to bottom, its notes marked, and every block carries its slide number; the
    # footer and slide number are left out
    assert (parsed.title, parsed.format) == ("Quarterly results", "pptx")
    assert parsed.blocks == [
        Block("Revenue grew 12%\n  North led the growth", ("Quarterly results",), "list", 1),
        Block(
            "Speaker notes: Mention the new region. Keep it short.",
            ("Quarterly results",),
            "text",
            1,
        ),
        Block("Revenue by region", ("Slide 2",), "text", 2),
        Block("Region | Revenue\nNorth | 1.2M\nSouth | 0.8M", ("Slide 2",), "table", 2),
        Block("Figures in euros.", ("Slide 2",), "text", 2),
        Block("Hire two engineers.", ("Next steps",), "text", 3),
    ]


def test_a_file_that_is_not_a_presentation_fails_with_the_reason() -> None:
    with pytest.raises(
        DocumentParseError, match=r"not a valid PowerPoint \(\.pptx\) file \(not a ZIP package"
    ):
        parse_document("deck.pptx", b"just some text, renamed")
