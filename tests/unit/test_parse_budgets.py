"""Parse budgets: each hostile file of issue 18, small, over a lowered budget, fails at once
with its reason; the parse in a child process survives a runaway parser; parsed text is
cleaned of what PostgreSQL cannot store."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from ragline.documents import budgets, parse_document
from ragline.documents.budgets import BudgetExceededError, Budgets
from ragline.documents.isolation import parse_within_budgets, stop_workers
from ragline.documents.loaders import registry
from ragline.documents.loaders.base import Block, Loader, ParsedDocument
from ragline.documents.sanitize import REPLACEMENT, clean_value
from ragline.errors import DocumentParseError
from ragline.ingest.attributes import SidecarError, parse_sidecar

from tests.support import hostile
from tests.support.pdfs import build_pdf, text_page

MIB = 1024 * 1024


def _parse(name: str, data: bytes, **limits: Any) -> ParsedDocument:
    with budgets.applied(Budgets(**limits)):
        return parse_document(name, data)


# --- each budget ------------------------------------------------------------------------


def test_a_pdf_stream_that_inflates_past_its_budget_fails_before_pdfium_reads_it() -> None:
    # GIVEN a PDF of a few KB whose one page inflates to 8 MiB
    bomb = hostile.flate_bomb_pdf(8 * MIB)
    assert len(bomb) < 64 * 1024
    # THEN under the default budget it reads; over a 1 MiB budget it fails with the reason
    assert "Harbour fees" in _parse("bomb.pdf", bomb).text
    started = time.perf_counter()
    with pytest.raises(BudgetExceededError, match=r"^a PDF stream inflates past 1 MiB "):
        _parse("bomb.pdf", bomb, inflated_bytes=MIB)
    assert time.perf_counter() - started < 2


def test_a_pdf_of_more_pages_than_its_budget_fails() -> None:
    pdf = build_pdf([text_page([f"Page {word} text."]) for word in ("one", "two", "six")])
    with pytest.raises(BudgetExceededError, match=r"the PDF has 3 pages, over the limit of 2"):
        _parse("pages.pdf", pdf, pages=2)


def test_a_pdf_whose_pages_all_print_the_same_text_keeps_it() -> None:
    # GIVEN a PDF of five pages printing the same two lines (the running-header rule would
    # take them as a header and a footer on every page)
    page = text_page(["Kayak tariff is 40 euros per day.", "Canoe tariff is 30 euros."])
    pdf = build_pdf([page] * 5)
    # WHEN it is parsed THEN its text is kept, not "no text layer"
    parsed = parse_document("same.pdf", pdf)
    assert "Kayak tariff is 40 euros per day." in parsed.text


def test_an_office_package_declaring_more_xml_than_its_budget_fails() -> None:
    # GIVEN a Word file declaring 3 MiB of XML (a few KB on disk)
    docx = hostile.docx_declaring(3 * MIB)
    # THEN over a 2 MiB budget it fails with the size; over a ratio of 10:1, with the ratio
    with pytest.raises(BudgetExceededError, match=r"XML unpacks to 3\.0 MiB, over .* 2 MiB"):
        _parse("big.docx", docx, unpacked_bytes=2 * MIB)
    with pytest.raises(BudgetExceededError, match=r"word/document\.xml unpacks [\d,]+ times"):
        _parse("big.docx", docx, compression_ratio=10)
    assert "Kayak tariff" in _parse("big.docx", docx).text


@pytest.mark.parametrize("declared", [True, False])
def test_a_sheet_with_cells_in_a_and_xfd_fails_on_its_width(declared: bool) -> None:
    # GIVEN a workbook whose rows have cells in columns A and XFD, its <dimension> saying so
    # or missing (then only reading the rows shows the width)
    workbook = hostile.xlsx_wide(50, dimension=declared)
    # THEN it fails at once with the width it spans
    started = time.perf_counter()
    with pytest.raises(BudgetExceededError, match=r"sheet 'Data' spans 16,384 columns"):
        _parse("wide.xlsx", workbook)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("declared", [True, False])
def test_a_workbook_of_more_cells_than_its_budget_fails(declared: bool) -> None:
    # GIVEN 60 rows from A to J (600 cells), declared or not
    workbook = hostile.xlsx_wide(60, last_column="J", dimension=declared)
    assert "row 60" in _parse("cells.xlsx", workbook).text
    with pytest.raises(BudgetExceededError, match=r"limit of 500 cells|more than 500 cells"):
        _parse("cells.xlsx", workbook, sheet_cells=500)


def test_a_csv_of_one_line_longer_than_its_budget_fails() -> None:
    line = hostile.csv_one_line(20_000)
    with pytest.raises(BudgetExceededError, match=r"a line is longer than 10,000 characters"):
        _parse("one.csv", line, line_chars=10_000)
    with pytest.raises(BudgetExceededError, match=r"a line is longer than 10,000 characters"):
        _parse("one.tsv", line, line_chars=10_000)
    assert "kayak" in _parse("one.csv", line).text


def test_html_nested_deeper_than_its_budget_fails() -> None:
    bomb = hostile.html_table_bomb(40_000)  # 2,500 tables deep
    with pytest.raises(BudgetExceededError, match=r"nest more than 512 deep"):
        _parse("bomb.html", bomb)
    page = b"<html><body>" + b"<div>" * 50 + b"Kayaks" + b"</div>" * 50 + b"</body></html>"
    assert _parse("ok.html", page).text == "Kayaks"


def test_html_larger_than_its_budget_fails() -> None:
    page = b"<p>" + b"kayak " * 20_000 + b"</p>"
    with pytest.raises(BudgetExceededError, match=r"120,007 characters, over the limit of 65,536"):
        _parse("large.html", page, html_chars=65_536)


def test_the_budgets_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from ragline.config import Settings

    monkeypatch.setenv("RAGLINE_MAX_SHEET_COLUMNS", "100")
    monkeypatch.setenv("RAGLINE_PARSE_TIMEOUT_SECONDS", "7.5")
    monkeypatch.setenv("RAGLINE_MAX_CHUNKS", "12")
    loaded = Budgets.from_settings(Settings.from_env())
    assert (loaded.sheet_columns, loaded.seconds, loaded.chunks) == (100, 7.5, 12)
    assert Budgets.from_settings(Settings()) == Budgets()


# --- a runaway parser in a child process -------------------------------------------------


@pytest.fixture
def runaway(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """``.rst`` read by a loader that does what the test says (the child is forked, so it
    runs this loader too)."""
    behaviour: dict[str, object] = {}

    def parse(text: str) -> ParsedDocument:
        action = behaviour["action"]
        if action == "allocate":
            hoard = [bytearray(16 * MIB) for _ in range(1024)]  # 16 GiB
            assert hoard
        elif action == "sleep":
            time.sleep(30)
        elif action == "abort":
            os.abort()
        elif action == "pid":  # which process parsed it
            return ParsedDocument(str(os.getpid()), "rst", [Block("parsed")])
        return ParsedDocument("ok", "rst", [])

    monkeypatch.setitem(registry._LOADERS, "rst", Loader("rst", (".rst",), parse=parse))
    yield behaviour
    stop_workers()


def test_a_parse_that_runs_out_of_memory_fails_alone(runaway: dict[str, object]) -> None:
    # GIVEN a parser that allocates without end, isolated with 64 MB to grow in
    runaway["action"] = "allocate"
    # THEN the document fails with the reason, and this process lives on
    with pytest.raises(BudgetExceededError, match=r"parsing needs more than 64 MB"):
        parse_within_budgets("x.rst", b"text", Budgets(memory_mb=64))


def test_a_parse_past_its_deadline_is_stopped(runaway: dict[str, object]) -> None:
    runaway["action"] = "sleep"
    started = time.perf_counter()
    with pytest.raises(BudgetExceededError, match=r"parsing took longer than 0\.5 s"):
        parse_within_budgets("x.rst", b"text", Budgets(seconds=0.5))
    assert time.perf_counter() - started < 5


def test_a_parser_that_crashes_fails_its_document_with_the_reason(
    runaway: dict[str, object],
) -> None:
    runaway["action"] = "abort"
    with pytest.raises(DocumentParseError, match=r"the parser crashed \(SIGABRT\)"):
        parse_within_budgets("x.rst", b"text", Budgets())


def _parsed_by(budgets: Budgets | None = None) -> int:
    return int(parse_within_budgets("x.rst", b"text", budgets or Budgets()).title)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as stat:  # a zombie not yet reaped is gone too
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_one_worker_parses_document_after_document(runaway: dict[str, object]) -> None:
    # GIVEN isolated parses WHEN two documents are parsed one after the other
    runaway["action"] = "pid"
    first, second = _parsed_by(), _parsed_by()
    # THEN one child process parsed both (no fork per document), not this process
    assert first == second != os.getpid()


@pytest.mark.parametrize(
    ("action", "budgets", "error"),
    [
        ("sleep", Budgets(seconds=0.5), "parsing took longer than 0.5 s"),
        ("allocate", Budgets(memory_mb=64), "parsing needs more than 64 MB"),
        ("abort", Budgets(), r"the parser crashed \(SIGABRT\)"),
    ],
)
def test_after_a_runaway_parse_the_next_document_gets_a_fresh_worker(
    runaway: dict[str, object], action: str, budgets: Budgets, error: str
) -> None:
    # GIVEN a worker that has parsed a document
    runaway["action"] = "pid"
    before = _parsed_by()
    stop_workers()  # the next fork sees the runaway action
    runaway["action"] = action
    # WHEN a document runs away in the next one
    with pytest.raises(DocumentParseError, match=error):
        parse_within_budgets("x.rst", b"text", budgets)
    # THEN the document after it is parsed, by a process that is neither of them
    runaway["action"] = "pid"
    after = _parsed_by()
    assert after not in (before, os.getpid())


def test_a_worker_that_died_while_idle_is_replaced(runaway: dict[str, object]) -> None:
    # GIVEN an idle worker that is then killed (not by any document)
    runaway["action"] = "pid"
    worker = _parsed_by()
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while not _gone(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    # WHEN the next document comes THEN a fresh worker parses it
    assert _parsed_by() not in (worker, os.getpid())


def test_a_frozen_then_thawed_worker_goes_on(runaway: dict[str, object]) -> None:
    # GIVEN an idle worker frozen and thawed, as Lambda freezes an environment between
    # invocations
    runaway["action"] = "pid"
    worker = _parsed_by()
    os.kill(worker, signal.SIGSTOP)
    time.sleep(0.3)
    os.kill(worker, signal.SIGCONT)
    # WHEN the next document comes THEN the same worker parses it
    assert _parsed_by() == worker


def test_an_isolated_parse_returns_what_the_parse_returns() -> None:
    # GIVEN a document read in a child process and the same read here
    data = b"# Tariffs\n\nKayak tariff is 40 euros per day.\n"
    isolated = parse_within_budgets("t.md", data, Budgets())
    assert isolated == parse_document("t.md", data)
    # AND a parse error crosses back as itself
    with pytest.raises(DocumentParseError, match="invalid JSON at line 1"):
        parse_within_budgets("t.json", b"{", Budgets())
    with pytest.raises(BudgetExceededError, match="a line is longer"):
        parse_within_budgets("t.csv", b"a," * 2000, Budgets(line_chars=1024))


# --- text PostgreSQL can store -----------------------------------------------------------


def test_nul_and_lone_surrogates_are_cleaned_from_parsed_text() -> None:
    # GIVEN JSON strings holding NUL and a lone surrogate (valid JSON escapes)
    data = hostile.json_with("Kayak tariff is 99 euros per day.\u0000 Canoe \ud800 30.")
    assert b"\\u0000" in data and b"\\ud800" in data
    # WHEN parsed THEN the NUL is gone and the surrogate is U+FFFD
    text = parse_document("doc.json", data).text
    assert "99 euros per day. Canoe \ufffd 30." in text
    assert "\x00" not in text
    text.encode("utf-8")  # storable
    assert clean_value({"a\ud800": ["\x00x"]}) == {f"a{REPLACEMENT}": ["x"]}


def test_a_json_number_of_100000_digits_is_kept_as_its_digits() -> None:
    # GIVEN a JSON number longer than int() converts (ValueError past 4,300 digits)
    parsed = parse_document("big.json", hostile.json_big_number(100_000))
    # THEN it parses, the digits kept as text
    assert "count: " + "7" * 100_000 in parsed.text


@pytest.mark.parametrize("value", ["\ud800", "a\u0000b"])
def test_a_sidecar_holding_what_postgresql_cannot_store_is_refused(value: str) -> None:
    data = json.dumps({"metadataAttributes": {"team": value}}).encode()
    with pytest.raises(SidecarError, match=r"NUL|surrogate"):
        parse_sidecar(data)
