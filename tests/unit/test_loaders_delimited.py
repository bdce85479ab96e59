"""CSV and TSV: the delimiter sniffed from the rows, quoting kept, one table per file."""

from __future__ import annotations

import pytest
from ragline.documents import Block, chunk_document, parse_document
from ragline.documents.loaders.delimited import sniff_delimiter
from ragline.errors import DocumentParseError


def test_a_csv_is_one_table_with_its_header_first() -> None:
    # GIVEN a CSV with a quoted field holding commas and a line break, and blank lines
    data = b'sku,name,notes\r\nA-12,Widget,"small, blue\r\nfits M4"\r\n\r\nB-7,Gadget,\r\n,,\r\n'
    # WHEN it is parsed
    parsed = parse_document("stock.csv", data)
    # THEN one table: rows on their lines, the quoted field whole, empty rows gone
    assert (parsed.title, parsed.format) == ("stock", "csv")
    assert parsed.blocks == [
        Block(
            "sku | name | notes\nA-12 | Widget | small, blue fits M4\nB-7 | Gadget |", (), "table"
        )
    ]


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        # semicolons with decimal commas (a spreadsheet in a German or French locale)
        ("name;price;stock\nWidget;1,50;3\nGadget;12,75;10\n", ";"),
        # commas, with semicolons and pipes inside the prose of a quoted cell
        ('id,comment\n1,"fine; no | issues"\n2,"late; again"\n3,ok\n', ","),
        ("a\tb\tc\n1\t2\t3\n", "\t"),
        ("a|b\n1|2\n3|4\n", "|"),
        # one column: nothing to split, commas by default
        ("title\nWar and Peace\nUlysses\n", ","),
        # prose cells, spaces in every row
        ("question,answer\nwhat is it,a tool\nwho made it,the team\n", ","),
    ],
)
def test_the_delimiter_is_the_one_giving_rows_of_one_width(text: str, delimiter: str) -> None:
    assert sniff_delimiter(text) == delimiter


def test_a_tsv_is_split_at_tabs_only() -> None:
    parsed = parse_document("people.tsv", b"name\tcity, country\nAda\tLondon, UK\n")
    assert parsed.format == "tsv"
    assert [b.text for b in parsed.blocks] == ["name | city, country\nAda | London, UK"]


def test_every_chunk_of_a_long_csv_repeats_the_header() -> None:
    rows = "\n".join(f"{n},customer {n},{n * 3}.00" for n in range(400))
    chunks = chunk_document(parse_document("orders.csv", f"order,customer,total\n{rows}".encode()))
    assert len(chunks) > 5
    assert all(c.text.startswith("order | customer | total\n") for c in chunks)


def test_a_field_over_the_csv_limit_fails_with_its_line() -> None:
    data = b"a,b\n1,2\n3," + b"x" * 200_000 + b"\n"
    with pytest.raises(DocumentParseError, match="unreadable CSV at line 3: field larger"):
        parse_document("huge.csv", data)
