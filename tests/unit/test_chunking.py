"""Chunking: bounded size, overlap between neighbours, one heading path per chunk."""

from __future__ import annotations

import itertools

from ragline.documents import Block, ParsedDocument, chunk_document


def _sentences(count: int, prefix: str) -> str:
    return " ".join(f"{prefix} sentence number {i} says something useful." for i in range(count))


def test_chunks_respect_the_budget_and_overlap() -> None:
    # GIVEN one long section
    doc = ParsedDocument("T", "text", [Block(_sentences(60, "Alpha"), ("T", "S"))])

    # WHEN it is chunked with a 64-token budget and 16 tokens of overlap
    chunks = chunk_document(doc, max_tokens=64, overlap=16)

    # THEN no chunk is over budget, every sentence survives, and neighbours share text
    assert len(chunks) > 5
    assert all(c.token_count <= 64 for c in chunks)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    joined = " ".join(c.text for c in chunks)
    for i in range(60):
        assert f"number {i} says" in joined
    for before, after in itertools.pairwise(chunks):
        assert before.text.split(". ")[-1].rstrip(".") in after.text


def test_chunks_never_span_sections() -> None:
    doc = ParsedDocument(
        "Guide",
        "markdown",
        [
            Block("Short intro.", ("Guide",)),
            Block("Install with pip.", ("Guide", "Install")),
            Block("Run it.", ("Guide", "Usage")),
        ],
    )
    chunks = chunk_document(doc, max_tokens=200, overlap=20)
    assert [(c.section, c.text) for c in chunks] == [
        (("Guide",), "Short intro."),
        (("Guide", "Install"), "Install with pip."),
        (("Guide", "Usage"), "Run it."),
    ]
    assert chunks[1].heading == "Guide > Install"
    assert chunks[1].embedding_text("Guide") == "Guide > Install\nInstall with pip."


def test_an_overlong_sentence_is_split_by_words() -> None:
    doc = ParsedDocument("T", "text", [Block("word " * 500)])
    chunks = chunk_document(doc, max_tokens=50, overlap=0)
    assert all(c.token_count <= 50 for c in chunks)
    assert sum(c.text.count("word") for c in chunks) == 500


def test_an_oversized_code_block_is_cut_between_lines_and_keeps_them() -> None:
    # GIVEN a code block far over budget, one of its lines itself over budget
    lines = [f"    call_number_{i}(argument, other_argument)" for i in range(80)]
    lines[40] = "x " * 120
    doc = ParsedDocument("T", "markdown", [Block("\n".join(lines), ("T",), kind="code")])

    # WHEN it is chunked
    chunks = chunk_document(doc, max_tokens=48, overlap=0)

    # THEN chunks hold whole lines on their own lines, the long one cut by words
    assert all(c.token_count <= 48 for c in chunks)
    text = "\n".join(c.text for c in chunks)
    for line in lines[:40] + lines[41:]:
        assert f"{line}\n" in f"{text}\n"
    assert text.count("x") == 120


def test_chunks_fit_what_the_embedder_reads() -> None:
    from ragline.config import Settings
    from ragline.embeddings.hash import HashEmbedder
    from ragline.ingest import Ingestor

    class ShortReader(HashEmbedder):
        max_input_tokens = 48

    settings = Settings(chunk_tokens=256, chunk_overlap=40)
    ingestor = Ingestor(settings, store=None, embedder=ShortReader())  # type: ignore[arg-type]
    assert (ingestor.chunk_tokens, ingestor.chunk_overlap) == (48, 24)
    plain = Ingestor(settings, store=None, embedder=HashEmbedder())  # type: ignore[arg-type]
    assert (plain.chunk_tokens, plain.chunk_overlap) == (256, 40)


def test_every_chunk_of_a_long_table_starts_with_its_header_row() -> None:
    # GIVEN a paragraph, then a table of 60 rows far over budget, then a paragraph
    header = "sku | name | price | warehouse"
    rows = [f"A-{i:03d} | widget model {i} | {i}.50 | north" for i in range(60)]
    doc = ParsedDocument(
        "Stock",
        "csv",
        [
            Block("Stock levels by product.", ("Sheet1",)),
            Block("\n".join([header, *rows]), ("Sheet1",), kind="table"),
            Block("Prices include tax.", ("Sheet1",)),
        ],
    )

    # WHEN it is chunked with overlap
    chunks = chunk_document(doc, max_tokens=64, overlap=16)

    # THEN every chunk holding a row starts with the header (the first after the intro
    # paragraph), no chunk is over budget, and every row survives on its own line
    assert len(chunks) > 5
    assert all(c.token_count <= 64 for c in chunks)
    for chunk in chunks:
        if "| widget model" in chunk.text:
            assert header in chunk.text.split("\n")
            assert chunk.text.startswith(header) or chunk.ordinal == 0
    text = "\n".join(c.text for c in chunks)
    assert all(f"{row}\n" in f"{text}\n" for row in rows)
    assert chunks[-1].text.endswith("Prices include tax.")


def test_a_table_that_fits_and_other_line_blocks_are_not_given_a_header() -> None:
    # GIVEN a list and a flattened record over budget, and a table that fits
    items = "\n".join(f"- step {i}: run the command number {i}" for i in range(40))
    record = "\n".join(f"order.items[{i}].sku: A-{i}" for i in range(40))
    doc = ParsedDocument(
        "T",
        "docx",
        [
            Block(items, ("List",), kind="list"),
            Block(record, ("Record",), kind="record"),
            Block("a | b\n1 | 2", ("Small",), kind="table"),
        ],
    )

    # WHEN it is chunked
    chunks = chunk_document(doc, max_tokens=40, overlap=0)

    # THEN the list and the record are cut between lines, their first line not repeated
    lists = [c.text for c in chunks if c.section == ("List",)]
    records = [c.text for c in chunks if c.section == ("Record",)]
    assert len(lists) > 1 and len(records) > 1
    assert "\n".join(lists).split("\n") == items.split("\n")
    assert "\n".join(records).split("\n") == record.split("\n")
    assert [c.text for c in chunks if c.section == ("Small",)] == ["a | b\n1 | 2"]


def test_chunks_keep_their_first_and_last_page_and_end_at_a_gap_in_pages() -> None:
    # GIVEN one section printed on pages 4 and 5, then resumed on page 9
    section = ("Manual", "Mooring")
    doc = ParsedDocument(
        "Manual",
        "pdf",
        [
            Block("Ships moor at the north quay.", section, page=4),
            Block("Tugs are booked a day ahead.", section, page=5),
            Block("Lines are doubled in a gale.", section, page=9),
        ],
    )

    # WHEN it is chunked with room for all three blocks
    chunks = chunk_document(doc, max_tokens=200, overlap=40)

    # THEN pages 4-5 are one chunk and page 9 another, nothing carried over the gap
    assert [(c.pages, c.text) for c in chunks] == [
        ((4, 5), "Ships moor at the north quay.\n\nTugs are booked a day ahead."),
        ((9, 9), "Lines are doubled in a gale."),
    ]
    assert chunks[0].metadata == {"page": 4, "last_page": 5}


def test_chunks_of_formats_without_pages_have_no_page_metadata() -> None:
    doc = ParsedDocument("T", "markdown", [Block("Plain text.", ("T",))])
    assert [(c.pages, c.metadata) for c in chunk_document(doc)] == [(None, {})]


def test_a_chunk_on_several_pages_records_where_each_page_starts() -> None:
    # GIVEN one section printed on pages 12 and 13, two paragraphs on 13
    section = ("Manual", "Mooring")
    doc = ParsedDocument(
        "Manual",
        "pdf",
        [
            Block("Ships moor at the north quay.", section, page=12),
            Block("Tugs are booked a day ahead.", section, page=13),
            Block("Lines are doubled in a gale.", section, page=13),
        ],
    )
    # WHEN it is chunked into one chunk
    (chunk,) = chunk_document(doc, max_tokens=200, overlap=40)
    # THEN the chunk records the one place its text turns to page 13, and keeps it in its row
    assert chunk.page_breaks == ((31, 13),)
    assert chunk.text[31:].startswith("Tugs are booked")
    assert chunk.row_metadata == {"page": 12, "last_page": 13, "page_breaks": [[31, 13]]}
    # AND a chunk on one page, or without pages, records none
    single = chunk_document(ParsedDocument("M", "pdf", [Block("One page.", section, page=3)]))
    assert single[0].page_breaks == () and single[0].row_metadata == {"page": 3, "last_page": 3}
