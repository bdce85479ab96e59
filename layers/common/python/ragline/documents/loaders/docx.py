"""Word documents (``.docx``): the body's paragraphs, lists and tables in document order.

- Headings come from paragraph styles: ``Title`` heads the path, ``Heading 1``..``9`` (or
  a custom style based on one, or any paragraph with an outline level) nest under it.
- A run of list paragraphs (numbered by Word, or in a ``List ...`` style) is one ``list``
  block, an item per line: ``- `` for bullets, ``1. ``, ``2. `` for numbered items, two
  spaces of indent per level.
- A table is one ``table`` block, a row per line, cells joined by `` | ``, its first row
  (the header) first; a merged cell is read once per row, a nested table on its cell's
  line with rows apart by ``; ``.
- The title is the document's title property, else its ``Title`` paragraph, else its
  first heading.

Paragraph text includes tracked insertions, hyperlinks, smart tags and field results,
not deleted text or field codes; content controls are read, except a generated table of
contents. Page headers and footers, footnotes, comments and text boxes are not read.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from ragline.documents.loaders.base import Block, Loader, ParsedDocument, open_section
from ragline.documents.loaders.ooxml import check_package, parser_errors
from ragline.documents.loaders.tabular import cell_text, table_block

if TYPE_CHECKING:
    from docx.document import Document
    from docx.oxml.xmlchemy import BaseOxmlElement
    from docx.styles.style import BaseStyle
    from docx.table import Table, _Cell
    from docx.text.paragraph import Paragraph

_NAME = "Word (.docx)"
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_HEADING_STYLE = re.compile(r"heading (\d)\Z", re.IGNORECASE)
_UNNUMBERED_FORMATS = {"bullet", "none"}
_RUN_CONTENT = (
    ".//w:r[not(ancestor::w:moveFrom) and not(ancestor::w:txbxContent)]"
    "/*[self::w:t or self::w:tab or self::w:br or self::w:cr or self::w:noBreakHyphen]"
)
_TABLE_OF_CONTENTS = "./w:sdtPr/w:docPartObj/w:docPartGallery[@w:val='Table of Contents']"


def _style_chain(paragraph: Paragraph) -> list[BaseStyle]:
    """The paragraph's style and the styles it is based on, nearest first."""
    chain: list[BaseStyle] = []
    style = paragraph.style
    while style is not None and len(chain) < 10 and style not in chain:
        chain.append(style)
        style = style.base_style
    return chain


def _heading_level(paragraph: Paragraph, chain: list[BaseStyle]) -> int | None:
    """0 for Title, 1-9 for headings, None for body text."""
    for style in chain:
        name = style.name or ""
        if name.lower() == "title":
            return 0
        if match := _HEADING_STYLE.match(name):
            return int(match.group(1))
    for element in [paragraph._p, *(style.element for style in chain)]:
        levels = _xpath(element, "./w:pPr/w:outlineLvl/@w:val")
        if levels and levels[0].isdigit() and int(levels[0]) < 9:
            return int(levels[0]) + 1
    return None


class _Lists:
    """Numbers list items as Word shows them, from the document's numbering definitions."""

    def __init__(self, document: Document) -> None:
        self._formats: dict[tuple[str, str], str] = {}
        numbering = _numbering_element(document)
        if numbering is not None:
            abstract = {
                node.get(_w("abstractNumId")): {
                    lvl.get(_w("ilvl")): (_xpath(lvl, "./w:numFmt/@w:val") or ["decimal"])[0]
                    for lvl in _xpath(node, "./w:lvl")
                }
                for node in _xpath(numbering, "./w:abstractNum")
            }
            for num in _xpath(numbering, "./w:num"):
                ids = _xpath(num, "./w:abstractNumId/@w:val")
                for level, fmt in abstract.get(ids[0] if ids else None, {}).items():
                    self._formats[(num.get(_w("numId")), level)] = fmt
        self._counters: dict[tuple[str, str], int] = {}

    def item(self, paragraph: Paragraph, chain: list[BaseStyle], text: str) -> str | None:
        """The list line for a paragraph, or None when it is not a list item."""
        num_id, level = None, "0"
        for element in [paragraph._p, *(style.element for style in chain)]:
            ids = _xpath(element, "./w:pPr/w:numPr/w:numId/@w:val")
            levels = _xpath(element, "./w:pPr/w:numPr/w:ilvl/@w:val")
            if level == "0" and levels:
                level = levels[0]
            if ids:
                num_id = ids[0]
                break
        style_name = (chain[0].name or "") if chain else ""
        if num_id is None or num_id == "0":
            # Word's list styles without numbering of their own; not "List Paragraph" or
            # "List Continue", which only indent
            if not style_name.lower().startswith(("list bullet", "list number")):
                return None
            ordered = style_name.lower().startswith("list number")
            num_id = style_name
        else:
            # A level the list does not define (single-level lists) numbers like its first.
            fmt = self._formats.get((num_id, level)) or self._formats.get((num_id, "0"), "bullet")
            ordered = fmt not in _UNNUMBERED_FORMATS
        indent = "  " * (int(level) if level.isdigit() else 0)
        if not ordered:
            return f"{indent}- {text}"
        for key in [k for k in self._counters if k[0] == num_id and k[1] > level]:
            del self._counters[key]  # a deeper list restarts after its parent's next item
        number = self._counters[(num_id, level)] = self._counters.get((num_id, level), 0) + 1
        return f"{indent}{number}. {text}"


def _w(name: str) -> str:
    return "{" + _W + "}" + name


@cache
def _compiled(expression: str) -> Any:
    from lxml import etree

    return etree.XPath(expression, namespaces={"w": _W})


def _xpath(element: Any, expression: str) -> list[Any]:
    """``expression`` on any element of the package (python-docx's own ``xpath`` knows
    the ``w:`` prefix only on the element classes it defines)."""
    return list(_compiled(expression)(element))


def _numbering_element(document: Document) -> BaseOxmlElement | None:
    from docx.opc.constants import RELATIONSHIP_TYPE

    try:
        part = document.part.part_related_by(RELATIONSHIP_TYPE.NUMBERING)
    except KeyError:
        return None
    element: BaseOxmlElement = part.element  # type: ignore[attr-defined]  # an XmlPart
    return element


def _paragraph_text(paragraph: Paragraph) -> str:
    """What a reader sees of a paragraph: its text, tabs and breaks as spaces.

    Tracked insertions (``w:ins``), smart tags and simple fields are read, though
    python-docx's ``Paragraph.text`` leaves them out; deleted text (``w:delText``), field
    codes (``w:instrText``), the old place of moved text (``w:moveFrom``) and text boxes
    (``w:txbxContent``) are not.
    """
    parts = []
    for node in _xpath(paragraph._p, _RUN_CONTENT):
        tag = node.tag.rsplit("}", 1)[-1]
        parts.append((node.text or "") if tag == "t" else "-" if tag == "noBreakHyphen" else " ")
    return cell_text("".join(parts))


def _body_items(container: BaseOxmlElement, parent: Any) -> Iterator[Paragraph | Table]:
    """The paragraphs and tables of a body in order, those inside content controls too
    (python-docx's ``iter_inner_content`` skips them), but not a table of contents."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in container.iterchildren():
        if child.tag == _w("p"):
            yield Paragraph(child, parent)
        elif child.tag == _w("tbl"):
            yield Table(child, parent)
        elif child.tag == _w("sdt") and not _xpath(child, _TABLE_OF_CONTENTS):
            for content in _xpath(child, "./w:sdtContent"):
                yield from _body_items(content, parent)


def _cell_text(cell: _Cell) -> str:
    from docx.table import Table

    parts = []
    for item in cell.iter_inner_content():
        if isinstance(item, Table):
            parts.append("; ".join(" ".join(_cells(row.cells)) for row in item.rows))
        else:
            parts.append(_paragraph_text(item))
    return cell_text(" ".join(parts))


def _cells(cells: list[_Cell]) -> list[str]:
    """A row's cells, a merged cell (repeated by python-docx per grid column) once."""
    kept: list[_Cell] = []
    for cell in cells:
        if not kept or cell._tc is not kept[-1]._tc:
            kept.append(cell)
    return [_cell_text(cell) for cell in kept]


def _table(table: Table, section: tuple[str, ...]) -> Block | None:
    return table_block((_cells(row.cells) for row in table.rows), section)


def parse_docx(data: bytes) -> ParsedDocument:
    """Blocks under their heading path in body order (see the module docstring)."""
    check_package(data, _NAME, "word/document.xml")
    with parser_errors(_NAME):
        import docx
        from docx.table import Table

        document = docx.Document(io.BytesIO(data))
        lists = _Lists(document)
        blocks: list[Block] = []
        headings: list[tuple[int, str]] = []
        items: list[str] = []
        title_paragraph = first_heading = ""

        def section() -> tuple[str, ...]:
            return tuple(heading for _, heading in headings)

        def end_list() -> None:
            if items:
                blocks.append(Block("\n".join(items), section(), "list"))
                items.clear()

        for item in _body_items(document.element.body, document._body):
            if isinstance(item, Table):
                end_list()
                if (block := _table(item, section())) is not None:
                    blocks.append(block)
                continue
            text = _paragraph_text(item)
            if not text:
                continue
            chain = _style_chain(item)
            level = _heading_level(item, chain)
            if level is not None:
                end_list()
                open_section(headings, level, text)
                if level == 0:
                    title_paragraph = title_paragraph or text
                first_heading = first_heading or text
            elif (line := lists.item(item, chain, text)) is not None:
                items.append(line)
            else:
                end_list()
                blocks.append(Block(text, section()))
        end_list()
        title = (document.core_properties.title or "").strip()
    return ParsedDocument(
        title=title or title_paragraph or first_heading, format="docx", blocks=blocks
    )


LOADER = Loader("docx", (".docx",), parse_bytes=parse_docx)
