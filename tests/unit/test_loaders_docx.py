"""Word documents: heading styles, lists, tables and body order, on files python-docx writes."""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING

import docx
import pytest
from docx.oxml import OxmlElement, parse_xml
from docx.oxml.ns import nsdecls, qn
from ragline.documents import Block, chunk_document, parse_document
from ragline.errors import DocumentParseError

if TYPE_CHECKING:
    from docx.document import Document
    from docx.text.paragraph import Paragraph


def _saved(document: Document) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _nest(paragraph: Paragraph, level: int) -> None:
    """Put a list paragraph one level down in its style's list, as Word's Tab key does."""
    assert paragraph.style is not None
    style_num = paragraph.style.element.xpath("./w:pPr/w:numPr/w:numId/@w:val")[0]
    num_pr = paragraph._p.get_or_add_pPr().get_or_add_numPr()
    num_pr.get_or_add_ilvl().val = level
    num_pr.get_or_add_numId().val = int(style_num)


def _handbook() -> bytes:
    document = docx.Document()
    document.add_paragraph("Employee Handbook", style="Title")
    document.add_paragraph("Read this first.")
    document.add_heading("Leave", level=1)
    document.add_paragraph("Everyone gets leave.")
    document.add_paragraph("Annual leave", style="List Bullet")
    document.add_paragraph("Sick leave", style="List Bullet")
    document.add_heading("Allowances", level=2)
    table = document.add_table(rows=3, cols=3)
    for row, values in enumerate(
        [("Grade", "Days", "Carry over"), ("A", "25", "5"), ("B", "28", "")]
    ):
        for column, value in enumerate(values):
            table.cell(row, column).text = value
    document.add_paragraph("Booking:", style="List Paragraph")  # indented, not an item
    document.add_paragraph("Open the HR portal", style="List Number")
    document.add_paragraph("Pick the days", style="List Number")
    _nest(document.add_paragraph("Weekends are free", style="List Number"), 1)
    document.add_paragraph("Submit", style="List Number")
    document.add_heading("Pay", level=1)
    document.add_paragraph("Paid monthly.")
    return _saved(document)


def test_headings_lists_and_tables_in_body_order() -> None:
    # GIVEN a handbook with a title, two heading levels, a bulleted and a numbered list
    # (one item nested) and a table between paragraphs
    # WHEN it is parsed
    parsed = parse_document("handbook.docx", _handbook())

    # THEN the blocks come in body order under their heading path, each list one block
    # of item lines, the table one block of rows with its header row first
    root = ("Employee Handbook",)
    assert (parsed.title, parsed.format) == ("Employee Handbook", "docx")
    assert parsed.blocks == [
        Block("Read this first.", root),
        Block("Everyone gets leave.", (*root, "Leave")),
        Block("- Annual leave\n- Sick leave", (*root, "Leave"), "list"),
        Block(
            "Grade | Days | Carry over\nA | 25 | 5\nB | 28 |",
            (*root, "Leave", "Allowances"),
            "table",
        ),
        Block("Booking:", (*root, "Leave", "Allowances")),
        Block(
            "1. Open the HR portal\n2. Pick the days\n  1. Weekends are free\n3. Submit",
            (*root, "Leave", "Allowances"),
            "list",
        ),
        Block("Paid monthly.", (*root, "Pay")),
    ]


def test_the_title_property_wins_and_custom_heading_styles_count() -> None:
    # GIVEN a document with a title property and a custom style based on Heading 1
    document = docx.Document()
    document.core_properties.title = "Release notes"
    custom = document.styles.add_style("Chapter", 1)  # WD_STYLE_TYPE.PARAGRAPH
    custom.base_style = document.styles["Heading 1"]
    document.add_paragraph("Version 2", style="Chapter")
    document.add_paragraph("Faster imports.")
    # AND a paragraph given an outline level directly (how some writers mark headings)
    outlined = document.add_paragraph("Known issues")
    level = OxmlElement("w:outlineLvl")
    level.set(qn("w:val"), "1")
    outlined._p.get_or_add_pPr().append(level)
    document.add_paragraph("None yet.")

    # WHEN it is parsed
    parsed = parse_document("notes.docx", _saved(document))

    # THEN the property is the title and both count as headings
    assert parsed.title == "Release notes"
    assert [(b.section, b.text) for b in parsed.blocks] == [
        (("Version 2",), "Faster imports."),
        (("Version 2", "Known issues"), "None yet."),
    ]


def test_merged_cells_are_read_once() -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    for column, value in enumerate(("Region", "Q1", "Q2")):
        table.cell(0, column).text = value
    table.cell(1, 0).text = "North"
    table.cell(1, 1).merge(table.cell(1, 2)).text = "closed"
    parsed = parse_document("t.docx", _saved(document))
    assert [b.text for b in parsed.blocks] == ["Region | Q1 | Q2\nNorth | closed"]


def test_a_long_table_keeps_its_header_in_every_chunk() -> None:
    # GIVEN a table of 80 rows
    document = docx.Document()
    table = document.add_table(rows=81, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Part number", "Description"
    for row in range(1, 81):
        table.cell(row, 0).text = f"P-{row:04d}"
        table.cell(row, 1).text = f"spare part number {row} for the pump"
    # WHEN it is parsed and chunked
    chunks = chunk_document(parse_document("parts.docx", _saved(document)), max_tokens=64)
    # THEN every chunk starts with the header row
    assert len(chunks) > 3
    assert all(c.text.startswith("Part number | Description\n") for c in chunks)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.7 not a word file", "not a ZIP package"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "password-protected or legacy"),
    ],
)
def test_a_file_that_is_not_a_word_package_fails_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DocumentParseError, match=reason):
        parse_document("broken.docx", data)


def test_a_zip_without_a_document_or_with_broken_xml_fails_with_the_reason() -> None:
    # GIVEN a ZIP that is not a Word package, and a Word package whose body is cut short
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as package:
        package.writestr("hello.txt", "hi")
    damaged = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(_handbook())) as source, zipfile.ZipFile(damaged, "w") as out:
        for item in source.infolist():
            content = source.read(item)
            out.writestr(item, content[:200] if item.filename == "word/document.xml" else content)
    # THEN each fails as unreadable, with the reason
    with pytest.raises(DocumentParseError, match=r"no word/document\.xml"):
        parse_document("other.docx", other.getvalue())
    with pytest.raises(
        DocumentParseError, match=r"unreadable Word \(\.docx\) file \(XMLSyntaxError"
    ):
        parse_document("damaged.docx", damaged.getvalue())


def test_tracked_insertions_links_fields_and_content_controls_are_read() -> None:
    # GIVEN a paragraph with a tracked insertion and deletion, a hyperlink, a smart tag,
    # a simple field, a moved-away run, and a tab and a line break
    document = docx.Document()
    paragraph = document.add_paragraph("Start")
    ns = nsdecls("w")
    for xml in (
        f'<w:ins {ns} w:id="1" w:author="a"><w:r><w:t xml:space="preserve"> inserted</w:t>'
        "</w:r></w:ins>",
        f'<w:del {ns} w:id="2" w:author="a"><w:r><w:delText> deleted</w:delText></w:r></w:del>',
        f'<w:moveFrom {ns} w:id="3" w:author="a"><w:r><w:t> moved away</w:t></w:r></w:moveFrom>',
        f'<w:hyperlink {ns}><w:r><w:t xml:space="preserve"> a link</w:t></w:r></w:hyperlink>',
        f'<w:smartTag {ns} w:uri="u" w:element="place"><w:r><w:t> Paris</w:t></w:r></w:smartTag>',
        f'<w:fldSimple {ns} w:instr="NUMPAGES"><w:r><w:t> 7</w:t></w:r></w:fldSimple>',
    ):
        paragraph._p.append(parse_xml(xml))
    run = paragraph.add_run(" tab")
    run.add_tab()
    run.add_text("after")
    run.add_break()
    run.add_text("next line")
    # AND a content control holding a paragraph, and a generated table of contents
    body = document.element.body
    body.insert(
        len(body) - 1,
        parse_xml(
            f"<w:sdt {ns}><w:sdtPr/><w:sdtContent><w:p><w:r><w:t>In a control</w:t></w:r></w:p>"
            "</w:sdtContent></w:sdt>"
        ),
    )
    body.insert(
        len(body) - 1,
        parse_xml(
            f'<w:sdt {ns}><w:sdtPr><w:docPartObj><w:docPartGallery w:val="Table of Contents"/>'
            "</w:docPartObj></w:sdtPr><w:sdtContent><w:p><w:r><w:t>Contents 1</w:t></w:r></w:p>"
            "</w:sdtContent></w:sdt>"
        ),
    )
    # WHEN it is parsed
    parsed = parse_document("tracked.docx", _saved(document))
    # THEN what a reader sees is there, the deleted and moved-away text and contents not
    assert [b.text for b in parsed.blocks] == [
        "Start inserted a link Paris 7 tab after next line",
        "In a control",
    ]
