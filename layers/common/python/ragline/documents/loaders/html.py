"""HTML: the page's own text by block under h1-h6, with navigation and page furniture dropped.

What is dropped, with everything inside it (a small rule set, not per-site selectors):

1. Elements that are never content: ``script``, ``style``, ``noscript``, ``template``,
   ``svg``, ``iframe``, ``object``, ``canvas``, ``head`` (its ``<title>`` is still read),
   and anything with the ``hidden`` attribute.
2. Navigation and side content: ``nav``, ``aside``, ``search``, and any element whose
   ``role`` is ``navigation``, ``banner``, ``contentinfo``, ``complementary`` or ``search``.
3. The page's ``header`` and ``footer``: those not inside ``article``, ``section`` or
   ``main`` (the ones HTML maps to the banner and contentinfo roles). An article's own
   header holds its heading and is kept.
4. Elements with one of the class or id names that documentation generators give their
   navigation (:data:`DROPPED_NAMES`): DocBook's ``navheader``/``navfooter`` Prev / Up /
   Next bars and ``toc``, Sphinx's ``related`` bars, ``sphinxsidebar``, ``footer`` and
   ``headerlink`` pilcrows, AsciiDoc's ``#toc`` and ``#footer``, breadcrumbs, and
   Pygments' line-number gutters. Names match whole class tokens or the whole id,
   never a substring (``toc`` drops ``class="toc"``, not ``class="toctree-wrapper"``).

DocBook's admonition boxes (``<div class="note">``, ``tip``, ``warning``, ``important``,
``caution``) title themselves with an ``<h3 class="title">Note</h3>``: that heading is the
box's label, not a section, so it never enters the heading path; it opens the box's first
paragraph instead ("Note: Do not use local URLs here ..."), and the text after the box
stays under the section it belongs to.

AsciiDoc's ``#header`` is kept on purpose: on man pages it holds the page's h1 and the
NAME line ("git-reset - Reset current HEAD to the specified state").

What is kept: ``<pre>`` blocks verbatim with their line breaks (a ``code`` block), tables
as one ``table`` block with one line per row and its cells joined by `` | `` (header row
included), every other block element as a paragraph under its h1-h6 path. A table of a
single row is page layout, not data (AsciiDoc's admonitions, Pygments' line-numbered
code): its cells read as ordinary blocks. The title is the ``<title>``, else the first
``<h1>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

from ragline.documents import budgets
from ragline.documents.loaders.base import Block, Loader, ParsedDocument, open_section

DROPPED_TAGS = frozenset(
    {"script", "style", "noscript", "template", "svg", "iframe", "object", "canvas", "head"}
    | {"nav", "aside", "search"}
)
DROPPED_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
DROPPED_NAMES = frozenset(
    {
        "navheader", "navfooter", "navbar", "navigation", "breadcrumb", "breadcrumbs",
        "sphinxsidebar", "related", "toc", "footer", "headerlink", "linenos",
    }
)  # fmt: skip
CELL_SEPARATOR = " | "
# DocBook XSL's admonition boxes: a heading inside one is the box's title, not a section.
ADMONITION_NAMES = frozenset({"note", "tip", "warning", "important", "caution"})

# A page-level header or footer is furniture; inside these it belongs to the content.
_SECTIONING = frozenset({"article", "section", "main"})
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
     "source", "track", "wbr"}
)  # fmt: skip
_BLOCKS = frozenset(
    {"address", "article", "blockquote", "body", "caption", "dd", "details", "dialog", "div",
     "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "li",
     "main", "ol", "p", "pre", "section", "summary", "table", "ul"}
    | set(_HEADINGS)
)  # fmt: skip
# Start tags that close an open element whose end tag was left out, as browsers do:
# tag -> (the elements it closes, the elements that bound the search).
_IMPLIED_ENDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "li": (frozenset({"li"}), frozenset({"ul", "ol", "menu", "table"})),
    "dt": (frozenset({"dt", "dd"}), frozenset({"dl", "table"})),
    "dd": (frozenset({"dt", "dd"}), frozenset({"dl", "table"})),
    "tr": (frozenset({"tr", "td", "th"}), frozenset({"table"})),
    "td": (frozenset({"td", "th"}), frozenset({"tr", "table"})),
    "th": (frozenset({"td", "th"}), frozenset({"tr", "table"})),
    "thead": (frozenset({"thead", "tbody", "tfoot", "tr", "td", "th"}), frozenset({"table"})),
    "tbody": (frozenset({"thead", "tbody", "tfoot", "tr", "td", "th"}), frozenset({"table"})),
    "tfoot": (frozenset({"thead", "tbody", "tfoot", "tr", "td", "th"}), frozenset({"table"})),
}
_PARAGRAPH = frozenset({"p"})
_PARAGRAPH_BOUNDS = (_BLOCKS | {"td", "th", "tr", "button"}) - _PARAGRAPH


@dataclass
class _Table:
    """A table being read: its finished rows, each cell's blocks, and where it goes."""

    index: int  # its place in the open-element stack
    outer: list[Block]  # the blocks the table is read into
    rows: list[list[list[Block]]] = field(default_factory=list)
    cells: list[list[Block]] = field(default_factory=list)  # the open row's
    cell: int | None = None  # the open cell's place in the stack
    caption: list[Block] = field(default_factory=list)

    def blocks(self, section: tuple[str, ...]) -> list[Block]:
        if len(self.rows) == 1:  # layout: the cells' own blocks
            return self.caption + [block for cell in self.rows[0] for block in cell]
        lines = [_cell_text(self.caption)]
        lines += [CELL_SEPARATOR.join(_cell_text(cell) for cell in row) for row in self.rows]
        text = "\n".join(line.strip() for line in lines if line.strip())
        return [Block(text, section, "table")] if text else []


def _cell_text(blocks: list[Block]) -> str:
    # A table nested in a cell keeps its rows apart with "; " on the cell's one line.
    return " ".join(
        "; ".join(" ".join(line.split()) for line in block.text.split("\n"))
        if block.kind == "table"
        else " ".join(block.text.split())
        for block in blocks
    )


def _admonition(attrs: list[tuple[str, str | None]]) -> bool:
    return any(
        name == "class" and value and not ADMONITION_NAMES.isdisjoint(value.lower().split())
        for name, value in attrs
    )


def _dropped(tag: str, attrs: list[tuple[str, str | None]], ancestors: list[str]) -> bool:
    if tag in DROPPED_TAGS:
        return True
    if tag in ("header", "footer") and not _SECTIONING.intersection(ancestors):
        return True
    for name, value in attrs:
        if name == "hidden":
            return True
        if not value or name not in ("role", "class", "id"):
            continue
        if name == "class":
            if not DROPPED_NAMES.isdisjoint(value.lower().split()):
                return True
        elif value.strip().lower() in (DROPPED_ROLES if name == "role" else DROPPED_NAMES):
            return True
    return False


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title = ""
        self.first_h1 = ""
        self.first_heading = ""
        self._out = self.blocks  # where finished blocks go: the page, or a table cell
        self._buffer: list[str] = []  # the text of the block being read
        self._open: list[str] = []  # open elements; void ones are never pushed
        self._drop_from: int | None = None  # the dropped element's place in _open
        self._headings: list[tuple[int, str]] = []
        self._heading: tuple[int, int, list[str]] | None = None  # (place, level, text)
        self._admonitions: list[int] = []  # open admonition boxes' places in _open
        self._box_title: tuple[int, list[str]] | None = None  # (place, text) of a box's title
        self._label = ""  # a box's title, waiting for the box's first paragraph
        self._tables: list[_Table] = []
        self._pre_from: int | None = None
        self._title: list[str] | None = None
        self._max_depth = budgets.current().html_depth

    # Blocks

    def _section(self) -> tuple[str, ...]:
        return tuple(h for _, h in self._headings)

    def _flush(self) -> None:
        raw = "".join(self._buffer)
        self._buffer = []
        if self._pre_from is not None:
            text, kind = raw.strip("\n").rstrip(), "code"
        else:
            text, kind = " ".join(raw.split()), "text"
        if text.strip():
            if self._label and kind == "code":  # a listing keeps its lines: the label apart
                self._out.append(Block(f"{self._label}:", self._section(), "text"))
            elif self._label:
                text = f"{self._label}: {text}"
            self._label = ""
            self._out.append(Block(text, self._section(), kind))

    def _sink(self) -> list[str] | None:
        """Where text goes now: the heading or the block being read; None drops it."""
        if self._drop_from is not None:
            return None
        if self._heading is not None:
            return self._heading[2]
        if self._box_title is not None:
            return self._box_title[1]
        if self._tables and self._tables[-1].cell is None:
            return None  # whitespace between rows and cells
        return self._buffer

    # The open-element stack

    def _push(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        index = len(self._open)
        if index >= self._max_depth:
            raise budgets.BudgetExceededError(
                f"HTML elements nest more than {self._max_depth:,} deep (RAGLINE_MAX_HTML_DEPTH)"
            )
        if self._drop_from is None and _dropped(tag, attrs, self._open):
            self._open.append(tag)
            self._drop_from = index
            return
        self._open.append(tag)
        if self._drop_from is not None:
            return
        table = self._tables[-1] if self._tables else None
        if table is not None and table.cell is None:
            if tag in ("td", "th", "caption"):
                table.cell = index
                self._out = []
        elif tag == "table":
            self._flush()
            self._tables.append(_Table(index, self._out))
        elif tag in _HEADINGS and table is None and self._admonitions:
            self._flush()
            self._box_title = (index, [])
        elif tag in _HEADINGS and table is None:
            self._flush()
            self._heading = (index, _HEADINGS[tag], [])
        elif tag in _BLOCKS:
            self._flush()
            if tag == "pre" and self._pre_from is None:
                self._pre_from = index
        if _admonition(attrs):
            self._admonitions.append(index)

    def _pop(self) -> None:
        index = len(self._open) - 1
        tag = self._open.pop()
        if self._drop_from is not None:
            if index == self._drop_from:
                self._drop_from = None
            return
        if self._admonitions and index == self._admonitions[-1]:
            self._admonitions.pop()
            self._flush()
            self._label = ""  # a box with a title and nothing else
        table = self._tables[-1] if self._tables else None
        if self._box_title is not None and index == self._box_title[0]:
            self._label = " ".join("".join(self._box_title[1]).split())
            self._box_title = None
        elif table is not None and index == table.index:
            self._tables.pop()
            if any(table.cells):  # cells without a <tr> around them
                table.rows.append(table.cells)
            self._out = table.outer
            self._out.extend(table.blocks(self._section()))
        elif table is not None and index == table.cell:
            self._flush()
            if tag == "caption":
                table.caption = self._out
            else:
                table.cells.append(self._out)
            self._out, table.cell = table.outer, None
        elif table is not None and table.cell is None and tag == "tr":
            if any(table.cells):
                table.rows.append(table.cells)
            table.cells = []
        elif self._heading is not None and index == self._heading[0]:
            _, level, parts = self._heading
            self._heading = None
            heading = " ".join("".join(parts).split())
            if heading:
                open_section(self._headings, level, heading)
                self.first_heading = self.first_heading or heading
                if level == 1 and not self.first_h1:
                    self.first_h1 = heading
        elif tag in _BLOCKS:
            self._flush()
            if index == self._pre_from:
                self._pre_from = None

    def _close_to(self, index: int) -> None:
        while len(self._open) > index:
            self._pop()

    def _close_implied(self, tag: str) -> None:
        rules = [_IMPLIED_ENDS[tag]] if tag in _IMPLIED_ENDS else []
        if tag in _BLOCKS or tag in _IMPLIED_ENDS:  # a block start ends an open paragraph
            rules.append((_PARAGRAPH, _PARAGRAPH_BOUNDS))
        for closes, bounds in rules:
            # The outermost match below the bound: a <tr> ends the open cell and its row.
            outermost = None
            for index in range(len(self._open) - 1, -1, -1):
                if self._open[index] in closes:
                    outermost = index
                elif self._open[index] in bounds:
                    break
            if outermost is not None:
                self._close_to(outermost)

    # HTMLParser callbacks

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and self._title is None and "svg" not in self._open:
            self._title = []
        self._close_implied(tag)
        if tag == "br":
            sink = self._sink()
            if sink is not None and self._pre_from is not None:
                sink.append("\n")
            elif sink is self._buffer:
                self._flush()
            elif sink is not None:
                sink.append(" ")
        elif tag not in _VOID:
            self._push(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # XHTML's <a id="x"/> is closed at once (browsers would leave it open; generators
        # that write it mean an empty element, and an open one could drop a whole page).
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title is not None and not self.title:
            self.title = " ".join("".join(self._title).split())
        if tag in _VOID:
            return
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index] == tag:
                self._close_to(index)
                return
            if tag in ("td", "th", "tr") and self._open[index] == "table":
                return  # a stray cell end never closes the table around it

    def handle_data(self, data: str) -> None:
        if self._title is not None and not self.title and self._open[-1:] == ["title"]:
            self._title.append(data)
            return
        sink = self._sink()
        if sink is not None:
            sink.append(data)

    def finish(self) -> None:
        self.close()
        self._close_to(0)
        self._flush()


def parse_html(text: str) -> ParsedDocument:
    """Blocks under their h1-h6 path, navigation dropped; the <title>, else the first <h1>.

    Without either, the first heading of any level is the title. A page over
    RAGLINE_MAX_HTML_CHARS, or whose elements nest deeper than RAGLINE_MAX_HTML_DEPTH,
    fails with the reason.
    """
    limit = budgets.current().html_chars
    if len(text) > limit:
        raise budgets.BudgetExceededError(
            f"the page is {len(text):,} characters, over the limit of {limit:,}"
            " (RAGLINE_MAX_HTML_CHARS)"
        )
    parser = _HtmlText()
    parser.feed(text)
    parser.finish()
    title = parser.title or parser.first_h1 or parser.first_heading
    return ParsedDocument(title=title, format="html", blocks=parser.blocks)


LOADER = Loader("html", (".html", ".htm"), parse=parse_html)
