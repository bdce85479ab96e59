"""The HTML loader: text by block under its headings, scripts and navigation dropped."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from ragline.documents import chunk_document, parse_document
from ragline.documents.loaders.base import Block

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "html"


def test_html_skips_scripts_and_tracks_headings() -> None:
    source = b"""<html><head><title>Benefits</title><style>p{}</style></head>
<body><nav>Home | About</nav><h1>Benefits</h1><p>Dental &amp; vision.</p>
<h2>Leave</h2><ul><li>25 days of vacation</li><li>10 sick days</li></ul>
<script>track()</script></body></html>"""
    doc = parse_document("benefits.html", source)
    assert doc.title == "Benefits"
    assert [(b.section, b.text) for b in doc.blocks] == [
        (("Benefits",), "Dental & vision."),
        (("Benefits", "Leave"), "25 days of vacation"),
        (("Benefits", "Leave"), "10 sick days"),
    ]


def _texts(html: str) -> list[str]:
    return [block.text for block in parse_document("page.html", html.encode()).blocks]


# Rule 1: elements that are never content.


def test_elements_that_are_never_content_are_dropped() -> None:
    # GIVEN a body with script, style, noscript, template, svg, iframe and a hidden element
    html = """<body><p>Kept.</p><script>var nav = "Prev";</script><style>p{}</style>
    <noscript><p>Enable JavaScript</p></noscript><template><p>row</p></template>
    <svg><title>icon</title><text>logo</text></svg><iframe>frame</iframe>
    <div hidden><p>Secret</p></div><p>Also kept.</p></body>"""

    # WHEN it is parsed / THEN only the two paragraphs remain
    assert _texts(html) == ["Kept.", "Also kept."]


# Rule 2: navigation and side content.


@pytest.mark.parametrize(
    "element",
    [
        "<nav><a>Home</a> | <a>Next</a></nav>",
        "<aside><h3>See also</h3><p>Other pages</p></aside>",
        '<div role="navigation"><a>Prev</a></div>',
        '<div role="banner"><p>Site name</p></div>',
        '<div role="contentinfo"><p>Copyright</p></div>',
        '<div role="complementary"><p>Related links</p></div>',
        '<form role="search"><label>Search the docs</label></form>',
        "<search><label>Quick search</label></search>",
    ],
)
def test_navigation_and_side_content_are_dropped(element: str) -> None:
    # GIVEN a navigation or side element between two paragraphs, under a heading
    html = f"<body><h1>Guide</h1><p>Before.</p>{element}<h2>Usage</h2><p>After.</p></body>"

    # WHEN it is parsed
    doc = parse_document("page.html", html.encode())

    # THEN its text and any heading inside it are gone; the section path is the page's
    assert [(b.section, b.text) for b in doc.blocks] == [
        (("Guide",), "Before."),
        (("Guide", "Usage"), "After."),
    ]


# Rule 3: the page's header and footer, not an article's.


def test_page_header_and_footer_are_dropped_but_an_articles_header_is_kept() -> None:
    # GIVEN a page banner and footer, and an article with its own header and footer
    html = """<body><header><p>Example Docs</p><a>Home</a></header>
    <main><article><header><h1>Release notes</h1><p>Published in May.</p></header>
    <p>Version 2 drops Python 3.8.</p><footer><p>Filed under releases.</p></footer>
    </article></main><footer><p>Copyright Example</p></footer></body>"""

    # WHEN it is parsed
    doc = parse_document("page.html", html.encode())

    # THEN the article's header and footer stay and the page's go
    assert doc.title == "Release notes"
    assert [b.text for b in doc.blocks] == [
        "Published in May.",
        "Version 2 drops Python 3.8.",
        "Filed under releases.",
    ]


# Rule 4: the class and id names generators give their navigation.


@pytest.mark.parametrize(
    "element",
    [
        '<div class="navheader"><table><tr><td><a>Prev</a></td><td><a>Next</a></td></tr>'
        "</table></div>",
        '<div class="navfooter"><table><tr><td>Prev</td><td>Home</td><td>Next</td></tr>'
        "<tr><td>Chapter 1</td><td></td><td>Chapter 3</td></tr></table></div>",
        '<div class="related"><h3>Navigation</h3><ul><li>next</li><li>previous</li></ul></div>',
        '<div class="sphinxsidebar"><h3>Table of Contents</h3><ul><li>Usage</li></ul></div>',
        '<div class="toc"><p><b>Table of Contents</b></p><dl class="toc"><dt>1. Usage</dt></dl>'
        "</div>",
        '<div id="toc"><div id="toctitle">Table of Contents</div></div>',
        '<div id="footer"><div id="footer-text">Last updated 2024-05-31</div></div>',
        '<div class="footer">Created using Sphinx.</div>',
        '<ol class="Breadcrumb"><li>Docs</li><li>Guide</li></ol>',
        '<div class="wy-nav-top navbar"><a>Menu</a></div>',
    ],
)
def test_generator_navigation_names_are_dropped(element: str) -> None:
    # GIVEN a generator's navigation element (matched by a whole class token or the id)
    html = f"<body><h1>Guide</h1><p>Before.</p>{element}<p>After.</p></body>"

    # WHEN it is parsed / THEN only the page's own paragraphs remain
    assert _texts(html) == ["Before.", "After."]


def test_names_match_whole_tokens_and_asciidoc_header_is_kept() -> None:
    # GIVEN AsciiDoc's #header with the NAME line, and classes that only contain a name
    html = """<body><div id="header"><h1>git-reset(1) Manual Page</h1><h2>NAME</h2>
    <div class="sectionbody"><p>git-reset - Reset current HEAD</p></div></div>
    <div class="toctree-wrapper"><ul><li>Installation</li></ul></div>
    <div class="sidebarblock"><p>A sidebar in the text.</p></div>
    <h2>NOTES<a class="headerlink" href="#notes">¶</a></h2><p>Body.</p></body>"""

    # WHEN it is parsed
    doc = parse_document("git-reset.html", html.encode())

    # THEN all of it is kept, except the pilcrow link in the heading
    assert doc.title == "git-reset(1) Manual Page"
    assert [(b.section, b.text) for b in doc.blocks] == [
        (("git-reset(1) Manual Page", "NAME"), "git-reset - Reset current HEAD"),
        (("git-reset(1) Manual Page", "NAME"), "Installation"),
        (("git-reset(1) Manual Page", "NAME"), "A sidebar in the text."),
        (("git-reset(1) Manual Page", "NOTES"), "Body."),
    ]


# What is kept: code, tables, headings and the title.


def test_pre_blocks_keep_their_lines() -> None:
    # GIVEN a listing with indentation, highlighting spans, a blank line and a <br>
    html = """<body><div class="listingblock"><pre><code>
$ git reset --soft HEAD^
<span class="c">  # the index is untouched</span>

$ git commit -c ORIG_HEAD<br>$ git log</code></pre></div></body>"""

    # WHEN it is parsed
    [block] = parse_document("page.html", html.encode()).blocks

    # THEN it is one code block with every line as it was
    assert block.kind == "code"
    assert block.text == (
        "$ git reset --soft HEAD^\n  # the index is untouched\n\n"
        "$ git commit -c ORIG_HEAD\n$ git log"
    )


def test_a_table_is_one_block_of_rows_with_its_header() -> None:
    # GIVEN a table with a caption, a header row, cells whose end tags are left out,
    # a paragraph in a cell, an empty row and a table nested in a cell
    html = """<body><h1>Modes</h1><table><caption>Reset modes</caption>
    <thead><tr><th>mode</th><th>index</th><th>working tree</th></tr></thead>
    <tbody><tr><td>--soft<td>kept<td>kept
    <tr><td><p>--hard</p></td><td>reset</td><td>reset</td></tr>
    <tr><td></td><td> </td></tr>
    <tr><td>--merge</td><td><table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>
    </td><td></td></tr></tbody></table><p>After.</p></body>"""

    # WHEN it is parsed
    doc = parse_document("page.html", html.encode())

    # THEN the table is one block, one line per row, cells joined by " | "
    assert [(b.kind, b.section, b.text) for b in doc.blocks] == [
        (
            "table",
            ("Modes",),
            "Reset modes\n"
            "mode | index | working tree\n"
            "--soft | kept | kept\n"
            "--hard | reset | reset\n"
            "--merge | a | b; c |",
        ),
        ("text", ("Modes",), "After."),
    ]


def test_a_single_row_table_is_layout_and_reads_as_blocks() -> None:
    # GIVEN an AsciiDoc admonition: a one-row table of an icon cell and a content cell
    html = """<body><h2>Options</h2><div class="admonitionblock"><table><tr>
    <td class="icon"><div class="title">Note</div></td>
    <td class="content"><div class="paragraph"><p>This rewrites history.</p></div>
    <div class="listingblock"><pre><code>git push --force-with-lease
git log</code></pre></div></td></tr></table></div></body>"""

    # WHEN it is parsed
    doc = parse_document("page.html", html.encode())

    # THEN its cells are ordinary blocks, the code keeping its lines
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("text", "Note"),
        ("text", "This rewrites history."),
        ("code", "git push --force-with-lease\ngit log"),
    ]


def test_pygments_line_numbers_are_dropped() -> None:
    # GIVEN a line-numbered code block: a one-row table of the numbers and the code
    html = """<body><table class="highlighttable"><tr><td class="linenos"><pre>1
2</pre></td><td class="code"><pre>import os
print(os.sep)</pre></td></tr></table></body>"""

    # WHEN it is parsed / THEN only the code is left
    assert _texts(html) == ["import os\nprint(os.sep)"]


@pytest.mark.parametrize(
    ("html", "title"),
    [
        ("<title>From the title</title><h1>Heading</h1><p>x</p>", "From the title"),
        ("<title> </title><h2>Second level</h2><h1>First h1</h1><p>x</p>", "First h1"),
        ("<h3>Only <em>a</em> h3</h3><p>x</p>", "Only a h3"),
        ("<svg><title>icon</title></svg><h1>Page</h1><p>x</p>", "Page"),
    ],
)
def test_the_title_is_the_title_element_else_the_first_h1(html: str, title: str) -> None:
    # GIVEN a page / WHEN it is parsed / THEN its title is as the rule says
    assert parse_document("page.html", html.encode()).title == title


def test_headings_build_the_section_path() -> None:
    # GIVEN nested headings, one closing a deeper one
    html = """<h1>Git</h1><p>a</p><h2>Reset</h2><h3>Modes</h3><p>b</p>
    <h2>Revert</h2><p>c</p>"""

    # WHEN it is parsed / THEN each block carries its h1-h6 path
    assert [b.section for b in parse_document("page.html", html.encode()).blocks] == [
        ("Git",),
        ("Git", "Reset", "Modes"),
        ("Git", "Revert"),
    ]


def test_omitted_end_tags_and_self_closing_elements_do_not_swallow_text() -> None:
    # GIVEN list items and paragraphs without end tags, a dropped item without its end
    # tag, and an XHTML-style self-closed table of contents
    html = """<body><ul><li>one<li class="toc">contents<li>two</ul>
    <p>first<p>second<div class="toc"/><p>third</body>"""

    # WHEN it is parsed / THEN the dropped item ends where the next one starts
    assert _texts(html) == ["one", "two", "first", "second", "third"]


# Real pages, before and after.


class _AllText(HTMLParser):
    """What a loader without these rules keeps: every text outside script and style."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _visible_text(data: bytes) -> str:
    parser = _AllText()
    parser.feed(data.decode())
    return " ".join(" ".join(parser.parts).split())


# (fixture, navigation that must go, body text, code lines, table rows with their header)
REAL_PAGES = [
    (
        "git-reset.html",
        ["Last updated", "2024-05-31 00:35:55 UTC"],
        ["git-reset - Reset current HEAD to the specified state", "Undo add"],
        ["$ git add frotz.c filfre.c\n$ mailx                                    <2>"],
        [],
    ),
    (
        "user-manual.html",
        ["Table of Contents", "How to check out a different version of a project"],
        ["Git is a fast distributed revision control system."],
        [
            "$ git clone git://git.kernel.org/pub/scm/git/git.git\n"
            "        # the Linux kernel (approx. 640MB download):"
        ],
        [],
    ),
    (
        "reftable.html",
        ["Last updated"],
        ["Space used, packed-refs vs. reftable:"],
        [],
        [
            "repository | packed-refs | reftable | % original | avg ref | avg obj\n"
            "android | 62.2 M | 36.1 M | 58.0% | 33 bytes | 5 bytes"
        ],
    ),
    (
        "docbook-chunk.html",
        ["Prev", "Next", "Home", "Table of Contents", "Chapter 4. Remotes"],
        ["A stash records the state of the working directory"],
        ['$ tool stash push -m "half-done parser"\n$ tool stash list'],
        ["Option | Effect\n--keep-index | Leaves the staged changes in the index."],
    ),
    (
        "sphinx.html",
        ["previous", "index", "Table of Contents", "Quick search", "Copyright", "¶"],
        ["The client retries a request that failed with a connection error"],
        [
            "from example_client import Client, RetryPolicy\n\n"
            "client = Client(retries=RetryPolicy(attempts=5))"
        ],
        [],
    ),
]


@pytest.mark.parametrize(
    ("name", "navigation", "body", "code", "table"),
    REAL_PAGES,
    ids=[page[0] for page in REAL_PAGES],
)
def test_real_pages_chunk_without_their_navigation(
    name: str, navigation: list[str], body: list[str], code: list[str], table: list[str]
) -> None:
    # GIVEN a real page (or one in a generator's exact shape) whose text, read without
    # these rules, carries its navigation
    data = (FIXTURES / name).read_bytes()
    before = _visible_text(data)
    for text in navigation:
        assert text in before

    # WHEN it is parsed and chunked as ingestion does
    doc = parse_document(name, data)
    chunks = chunk_document(doc, max_tokens=256, overlap=40)
    embedded = [chunk.embedding_text(doc.title) for chunk in chunks]

    # THEN no chunk (nor its heading path) holds the navigation, and the body text, the
    # code lines (line breaks kept) and the table rows under their header are all there
    for text in navigation:
        assert not [chunk for chunk in embedded if text in chunk], text
    for text in body + code + table:
        assert [chunk for chunk in chunks if text in chunk.text], text


def test_an_oversized_table_is_chunked_between_rows() -> None:
    # GIVEN a parsed table far over the chunk budget
    rows = "\n".join(f"option-{i} | sets value {i} of the tool" for i in range(200))
    cells = "".join(
        f"<tr><td>option-{i}</td><td>sets value {i} of the tool</td></tr>" for i in range(200)
    )
    html = f"<h1>Options</h1><table><tr><th>name</th><th>effect</th></tr>{cells}</table>"
    doc = parse_document("page.html", html.encode())
    assert doc.blocks == [Block(f"name | effect\n{rows}", ("Options",), "table")]

    # WHEN it is chunked
    chunks = chunk_document(doc, max_tokens=64, overlap=0)

    # THEN every chunk is whole rows, one per line
    assert len(chunks) > 5
    for chunk in chunks:
        for line in chunk.text.split("\n"):
            assert line == "name | effect" or line.startswith("option-"), line
            assert line.count(" | ") == 1


def test_docbook_admonition_titles_are_not_section_headings() -> None:
    # GIVEN a DocBook XSL chapter whose sections hold Note, Warning, Tip, Important and
    # Caution boxes, each titled by an <h3 class="title"> (as git's user manual is)
    doc = parse_document("ch05.html", (FIXTURES / "docbook-admonitions.html").read_bytes())

    # WHEN it is parsed, THEN no box title enters a heading path: the text around and
    # inside each box stays under the section it is in, and the box's title opens its text
    chapter, adding = "Chapter 5. Submodules", "Adding a submodule"
    pitfalls = (chapter, adding, "Pitfalls with submodules")
    updating = (chapter, "Updating submodules")
    assert [(b.section, b.kind, b.text) for b in doc.blocks] == [
        ((chapter, adding), "text",
         "A submodule records another repository at a fixed commit inside this one."),
        ((chapter, adding), "code", "$ tool submodule add ../lib lib"),
        ((chapter, adding), "text",
         "Note: Do not use local URLs here if you plan to publish the project."),
        ((chapter, adding), "text",
         "See what files the command created with a listing of the directory."),
        ((chapter, adding), "text", "Warning:"),
        ((chapter, adding), "code", "$ tool submodule deinit --force lib"),
        ((chapter, adding), "text", "This throws away local changes in the submodule."),
        (pitfalls, "text",
         "Tip: Always publish the submodule change before the superproject change."),
        (pitfalls, "text", "A superproject that refers to an unpublished commit cannot be cloned."),
        (updating, "text", "Important: Updating checks out a detached HEAD in each submodule."),
        (updating, "text", "Run the update after every pull."),
    ]  # fmt: skip
    # AND a real h3 inside the section is still a heading, and chunks carry the real path
    chunks = chunk_document(doc, max_tokens=256, overlap=40)
    headings = {chunk.heading for chunk in chunks}
    assert not any(
        word in heading.split(" > ")
        for heading in headings
        for word in ("Note", "Warning", "Tip", "Important", "Caution")
    )
    assert " > ".join(pitfalls) in headings
