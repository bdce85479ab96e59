"""``ragline eval`` end to end, in-process: a tiny corpus ingested into real PostgreSQL,
retrieval per mode, and three "models" behind the loopback OpenAI-compatible server, of
different quality and price, answering through the real openai SDK."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ragline.config import Settings
from ragline.dev.cli import main
from ragline.store import get_store

from tests.conftest import clear_caches
from tests.support.openai_server import CHAT, ChatUsage, OpenAICompatibleServer
from tests.support.rerank_server import RerankServer

ABSTAIN = "The documents do not answer this."
DOCUMENTS = {
    "tides.md": "# Tides\n\nThe harbour ferry waits for the spring tide, which peaks at "
    "noon-thirty on full moon days.\n",
    "kayaks/rental.md": "# Kayak rental\n\nA kayak rents for a deposit of 75 crowns, "
    "returned when the paddle comes back dry.\n",
    "lighthouse.txt": "The lighthouse keeper climbs 212 stairs to polish the lamp lens "
    "every Tuesday evening.\n",
    "bakery.md": "# Bakery\n\nThe village bakery sells cardamom buns only before eight in "
    "the morning.\n",
    # licence texts are not documents: never ingested, never retrieved
    "COPYRIGHT": "Copyright the lighthouse keeper. The lamp lens is not a document.\n",
    "LICENSES/notes.copyright": "Kayak deposit licence text.\n",
}
QUESTIONS = [
    ("q1", "When does the spring tide peak for the harbour ferry?", ["tides.md"], "noon-thirty"),
    ("q2", "What deposit does a kayak rental take?", ["kayaks/rental.md"], "75 crowns"),
    ("q3", "How many stairs does the lighthouse keeper climb?", ["lighthouse.txt"], "212"),
    ("q4", "When does the village bakery sell cardamom buns?", ["bakery.md"], "before eight"),
    # answerable in principle, but its page is not in the corpus: a retrieval miss
    ("q5", "What colour is the harbour master's rowing boat?", ["harbour-master.md"], "green"),
]
UNANSWERABLE = ("q6", "Which stock exchange lists the shipping company?")
# USD per million tokens; the server reports 412 input and 23 output tokens per call
PRICES = {
    "openai:bad": {"input": 0.1, "output": 0.2},
    "openai:good": {"input": 1.0, "output": 2.0},
    "openai:premium": {"input": 10.0, "output": 20.0},
}
PER_1000 = {name: (412 * p["input"] + 23 * p["output"]) / 1e6 * 1000 for name, p in PRICES.items()}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _passages(user: str) -> dict[int, str]:
    """The numbered passages of the rendered answer@v2 prompt."""
    blocks = re.split(r"^\[(\d+)\] ", user, flags=re.MULTILINE)
    return {int(n): text for n, text in zip(blocks[1::2], blocks[2::2], strict=True)}


def reply(body: dict[str, Any]) -> str:
    """Good models quote the phrase and cite the passage holding it, or abstain when none
    does; the bad one answers without it and cites a passage that lacks it."""
    user = body["messages"][1]["content"]
    phrase = next((q[3] for q in QUESTIONS if q[1] in user), None)
    passages = _passages(user)
    holding = [n for n, text in passages.items() if phrase and phrase in text]
    if body["model"] == "bad":
        other = next(n for n, text in passages.items() if not phrase or phrase not in text)
        return f"Probably on a Sunday [{other}]."
    if not holding:
        return ABSTAIN
    return f"It is {phrase} [{holding[0]}]."


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    corpus = tmp_path / "harbour"
    for name, text in DOCUMENTS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)
    rows = [
        {"id": i, "question": q, "gold": g, "answer": a, "must_contain": [a]}
        for i, q, g, a in QUESTIONS
    ]
    rows.append({"id": UNANSWERABLE[0], "question": UNANSWERABLE[1], "gold": [],
                 "answer": "not in the documents", "must_contain": []})  # fmt: skip
    (tmp_path / "set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "prices.json").write_text(json.dumps({"models": PRICES}))
    return tmp_path


@pytest.fixture
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(reply=reply, usage=ChatUsage(412, 23, 0)) as running:
        yield running


@pytest.fixture
def environment(
    database_url: str,
    workspace: Path,
    server: OpenAICompatibleServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    for name, value in {
        "RAGLINE_DATABASE_URL": database_url,
        "RAGLINE_DATA_DIR": str(workspace / "data"),  # the corpus index, per test
        "RAGLINE_PRICES_FILE": str(workspace / "prices.json"),
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "test",
        "RAGLINE_LLM_MAX_RETRIES": "0",
    }.items():
        monkeypatch.setenv(name, value)
    clear_caches()
    yield
    clear_caches()


def run_eval(workspace: Path, *options: str) -> int:
    return main(
        ["eval", str(workspace / "set.jsonl"), "--corpus", str(workspace / "harbour"),
         "--embeddings", "hash", "--llm", "openai:bad,openai:good,openai:premium", "--quiet",
         *options]
    )  # fmt: skip


@pytest.mark.usefixtures("environment")
def test_eval_scores_modes_and_models_and_names_the_cheapest_good_enough_model(
    workspace: Path,
    server: OpenAICompatibleServer,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a corpus of four documents (and two licence texts), five answerable questions
    # (one whose page is missing) and one the corpus does not answer
    started = datetime.now(UTC) - timedelta(minutes=1)
    # WHEN ragline eval runs three models against a bar the cheapest one misses
    code = run_eval(
        workspace, "--bar", "answer>=0.8,abstain>=1.0",
        "--json", str(workspace / "report.json"), "--plot", str(workspace / "report.png"),
    )  # fmt: skip
    out = capsys.readouterr().out
    # THEN the corpus was ingested without its licence texts
    assert code == 0, out
    report = json.loads((workspace / "report.json").read_text())
    corpus = report["corpus"]
    # (ingested here, or by another test of this module: the collection is the content's)
    assert corpus["files"] == 4 and corpus["ingested"] + corpus["unchanged"] == 4
    assert report["collection"].startswith("eval-harbour-")
    # AND every mode found the four pages in the corpus first, and missed the fifth
    assert set(report["retrieval"]) == {"hybrid", "vector", "keyword"}
    for mode in report["retrieval"].values():
        figures = (mode["hit_at_1"], mode["hit_at_5"], mode["mrr_at_10"], mode["ndcg_at_10"])
        assert figures == (0.8, 0.8, 0.8, 0.8), mode
        assert mode["p50_ms"] is not None and mode["p95_ms"] >= mode["p50_ms"]
    retrieved = {d for row in report["per_question"] for r in row["retrieval"].values()
                 for d in r["documents"]}  # fmt: skip
    assert retrieved == {"tides.md", "kayaks/rental.md", "lighthouse.txt", "bakery.md"}
    # AND the good models answered the four answerable questions, abstained on the missing
    # page and on the unanswerable one, citing only gold pages
    good, premium, bad = (report["models"][f"openai:{m}"] for m in ("good", "premium", "bad"))
    for model in (good, premium):
        assert model["correct_answers"] == 4 and model["answer_accuracy"] == 0.8
        assert (model["correct_abstentions"], model["unanswerable"]) == (1, 1)
        assert (model["false_abstentions"], model["answerable"]) == (1, 5)
        assert model["citation_precision"] == 1.0 and model["cited_passages"] == 4
        assert model["meets_bar"] is True
    # AND the bad one answered everything wrongly, citing pages that do not hold the answer
    assert (bad["correct_answers"], bad["correct_abstentions"], bad["false_abstentions"]) == (
        0, 0, 0,
    )  # fmt: skip
    assert bad["citation_precision"] == 0.0
    assert bad["meets_bar"] is False and bad["unmet"] == ["answer>=0.8 (0)", "abstain>=1 (0)"]
    # AND tokens and cost per 1,000 questions are the server's usage at the price file's rates
    # (the abstentions without passages cost nothing: every question here had passages)
    for name, model in (("openai:good", good), ("openai:premium", premium), ("openai:bad", bad)):
        assert (model["input_tokens"], model["output_tokens"]) == (412 * 6, 23 * 6)
        assert model["cost_per_1000"] == pytest.approx(PER_1000[name], rel=1e-6)
        assert model["errors"] == 0
    # AND the cheapest model meeting the bar is named: not the cheaper bad one, not premium
    assert report["choice"] == "openai:good"
    assert "cheapest model meeting the bar (answer>=0.8,abstain>=1): openai:good" in out
    assert re.search(r"hybrid\s+0\.800\s+0\.800\s+0\.800\s+0\.800", out)
    # AND every model answered every question through the server, as POST /query would
    models = [r.body["model"] for r in server.received(CHAT)]
    assert {m: models.count(m) for m in set(models)} == {"bad": 6, "good": 6, "premium": 6}
    # AND the plot is a PNG, and the query log kept none of the evaluation's questions
    assert (workspace / "report.png").read_bytes().startswith(PNG_SIGNATURE)
    assert get_store(Settings(database_url=database_url)).query_log(started) == []


@pytest.mark.usefixtures("environment")
def test_an_unmet_bar_names_no_model_and_reuses_the_ingested_corpus(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the corpus evaluated once already
    assert run_eval(workspace, "--modes", "vector", "--json", str(workspace / "a.json")) == 0
    capsys.readouterr()
    # WHEN the same run asks for more than any model gives
    code = run_eval(
        workspace, "--modes", "hybrid", "--bar", "hit@5>=0.9,answer>=0.8",
        "--json", str(workspace / "b.json"),
    )  # fmt: skip
    out = capsys.readouterr().out
    # THEN no model is named and the command fails, for CI to stop on
    assert code == 1
    assert "no model meets the bar (hit@5>=0.9,answer>=0.8)" in out
    report = json.loads((workspace / "b.json").read_text())
    assert report["choice"] is None
    assert report["models"]["openai:good"]["unmet"] == ["hit@5>=0.9 (0.8)"]
    # AND the collection named by the corpus's content was reused: nothing embedded again
    first = json.loads((workspace / "a.json").read_text())["corpus"]
    assert report["corpus"]["collection"] == first["collection"]
    assert (report["corpus"]["ingested"], report["corpus"]["unchanged"]) == (0, 4)


@pytest.mark.usefixtures("environment")
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--bar", "recall>=0.9"), "unknown metric 'recall'"),
        (("--modes", "fuzzy"), "unknown mode 'fuzzy'"),
        (("--modes", "vector", "--bar", "hit@5>=0.9"), "add hybrid to the modes"),
        (("--llm", "nosuch:model"), "nosuch"),
    ],
)
def test_bad_options_fail_before_anything_runs(
    workspace: Path,
    server: OpenAICompatibleServer,
    capsys: pytest.CaptureFixture[str],
    options: tuple[str, ...],
    message: str,
) -> None:
    # WHEN the command is given an option it cannot honour
    code = main(
        ["eval", str(workspace / "set.jsonl"), "--corpus", str(workspace / "harbour"),
         "--embeddings", "hash", "--quiet", *options]
    )  # fmt: skip
    # THEN it says why on stderr, exits 2, and no model was asked anything
    assert code == 2
    assert message in capsys.readouterr().err
    assert server.received(CHAT) == []


class ReversedReranker(RerankServer):
    """Ranks the candidates in the reverse of the order it was sent them: the search's
    best last, so a report that used it cannot be mistaken for one that did not."""

    def answer(self, body: dict[str, Any]) -> tuple[int, Any]:
        count = len(body["documents"])
        results = [{"index": i, "relevance_score": (i + 1) / count} for i in reversed(range(count))]
        return 200, {"results": results[: body.get("top_n") or count]}


@pytest.mark.usefixtures("environment")
def test_eval_ranks_through_the_reranker_it_names(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a reranker server that puts the search's best candidate last
    with ReversedReranker() as reranker:
        monkeypatch.setenv("RAGLINE_RERANKER_URL", reranker.base_url)
        # WHEN ragline eval runs with --reranker
        code = run_eval(
            workspace, "--modes", "hybrid", "--llm", "openai:good",
            "--reranker", "http:reversed", "--json", str(workspace / "r.json"),
        )  # fmt: skip
    # THEN the report names it, and the searches and answers went through it
    assert code == 0
    report = json.loads((workspace / "r.json").read_text())
    assert report["reranker"] == "http:reversed"
    assert len(reranker.requests) == 5 + 6  # five answerable searches, six answers
    assert {r.body["model"] for r in reranker.requests} == {"reversed"}
    # AND its order is the one scored: no gold page is first any more
    assert report["retrieval"]["hybrid"]["hit_at_1"] == 0.0
    assert report["retrieval"]["hybrid"]["hit_at_5"] == 0.8


def test_a_set_with_gold_pages_scores_page_hits_in_the_table_and_json(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from tests.support.pdfs import build_pdf, text_page

    # GIVEN a PDF of three sections, one a page, and a set whose first question names
    # the page that answers it, and whose second names a page that shares no word with it
    corpus = tmp_path / "pilots"
    corpus.mkdir()
    pages = [
        text_page(["The pilot boat leaves the outer buoy at dawn every day."]),
        text_page(["Cranes lift forty tonnes."]),
        text_page(["Tug crews change shift at the lighthouse slipway at noon."]),
    ]
    outline = [("Pilots", 0), ("Cranes", 1), ("Tugs", 2)]
    (corpus / "harbour.pdf").write_bytes(build_pdf(pages, outline=outline))
    rows = [
        {"id": "p1", "question": "When does the pilot boat leave the outer buoy?",
         "gold": ["harbour.pdf"], "pages": [1]},
        {"id": "p2", "question": "Where do tug crews change shift?",
         "gold": ["harbour.pdf"], "pages": [2]},
    ]  # fmt: skip
    (tmp_path / "set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("RAGLINE_DATABASE_URL", database_url)
    clear_caches()

    # WHEN it is evaluated with keyword search
    code = main(
        ["eval", str(tmp_path / "set.jsonl"), "--corpus", str(corpus), "--embeddings", "hash",
         "--modes", "keyword", "--llm", "extractive", "--quiet", "--json",
         str(tmp_path / "report.json")]
    )  # fmt: skip
    clear_caches()

    # THEN both find the file, but only the first finds its gold page
    assert code == 0
    mode = json.loads((tmp_path / "report.json").read_text())["retrieval"]["keyword"]
    assert (mode["hit_at_5"], mode["page_hit_at_5"]) == (1.0, 0.5)
    out = capsys.readouterr().out
    assert re.search(r"hit@5 page@5\s+MRR@10", out)
    assert re.search(r"keyword\s+\S+\s+1\.000\s+0\.500", out)


@pytest.mark.usefixtures("environment")
def test_a_set_without_pages_reports_no_page_column(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_eval(workspace, "--modes", "keyword", "--json", str(workspace / "r.json")) == 0
    assert "page@5" not in capsys.readouterr().out
    mode = json.loads((workspace / "r.json").read_text())["retrieval"]["keyword"]
    assert "page_hit_at_5" not in mode


def _reads_of_the_corpus(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the parses of the corpus (the runner's read, the ingestor's parse)."""
    from ragline.evaluation import runner
    from ragline.ingest import pipeline

    calls: list[int] = []
    read, parse = runner.read_corpus, pipeline.parse_within_budgets

    def counted_read(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return read(*args, **kwargs)

    def counted_parse(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return parse(*args, **kwargs)

    monkeypatch.setattr(runner, "read_corpus", counted_read)
    monkeypatch.setattr(pipeline, "parse_within_budgets", counted_parse)
    return calls


@pytest.mark.usefixtures("environment")
def test_a_second_run_over_an_unchanged_corpus_parses_and_embeds_nothing(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a corpus evaluated once (into a fresh collection: a file of its own makes it so)
    (workspace / "harbour" / "fog.md").write_text(f"# Fog\n\nFog horn test {workspace.name}.\n")
    assert run_eval(workspace, "--modes", "keyword", "--json", str(workspace / "a.json")) == 0
    first = json.loads((workspace / "a.json").read_text())["corpus"]
    assert (first["ingested"], first["reused"]) == (5, None)
    assert first["embedded"] == first["chunks"] > 0
    capsys.readouterr()
    # WHEN it runs again, with every parse counted
    reads = _reads_of_the_corpus(monkeypatch)
    assert run_eval(workspace, "--modes", "keyword", "--json", str(workspace / "b.json")) == 0
    out = capsys.readouterr().out
    # THEN the same collection is evaluated, nothing parsed, nothing embedded
    second = json.loads((workspace / "b.json").read_text())
    corpus = second["corpus"]
    assert corpus["collection"] == first["collection"] == second["collection"]
    assert (corpus["embedded"], corpus["ingested"], corpus["unchanged"]) == (0, 0, 5)
    assert corpus["chunks"] == first["chunks"]
    assert corpus["reused"] == "the corpus's collection"
    assert reads == []
    assert "nothing parsed or embedded" in out
    # AND it took a fraction of the first run's ingest
    assert corpus["seconds"] < max(first["seconds"] / 2, 1.0)
    # AND the scores are the first run's
    assert second["retrieval"]["keyword"]["hit_at_5"] == 0.8

    # WHEN one file changes
    (workspace / "harbour" / "fog.md").write_text("# Fog\n\nThe fog horn sounds twice.\n")
    assert run_eval(workspace, "--modes", "keyword", "--json", str(workspace / "c.json")) == 0
    # THEN the corpus is read again, into the collection its new content names
    third = json.loads((workspace / "c.json").read_text())["corpus"]
    assert reads and third["reused"] is None and third["collection"] != first["collection"]
    assert third["ingested"] == 5 and third["embedded"] > 0


@pytest.mark.usefixtures("environment")
def test_eval_reuses_what_ragline_ingest_stored_from_the_same_directory(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the corpus directory ingested with `ragline ingest`, licence texts and all
    corpus = workspace / "harbour"
    (corpus / "fog.md").write_text(f"# Fog\n\nFog horn test {workspace.name}.\n")
    paths = [str(p) for p in sorted(corpus.rglob("*")) if p.is_file()]
    monkeypatch.setenv("RAGLINE_EMBEDDINGS", "hash")
    assert main(["ingest", *paths, "--collection", f"h-{workspace.name}"[:60], "--quiet"]) == 0
    capsys.readouterr()
    # WHEN ragline eval is given the same directory
    reads = _reads_of_the_corpus(monkeypatch)
    assert run_eval(workspace, "--modes", "keyword", "--json", str(workspace / "r.json")) == 0
    # THEN it evaluates that collection as it stands: nothing parsed or embedded
    report = json.loads((workspace / "r.json").read_text())
    assert reads == []
    assert report["collection"] == f"h-{workspace.name}"[:60]
    assert report["corpus"]["reused"] == (
        "`ragline ingest`'s collection, with 2 more files of the directory"
    )
    assert (report["corpus"]["embedded"], report["corpus"]["unchanged"]) == (0, 5)
    # AND the gold paths match its file:// sources by their endings
    assert report["retrieval"]["keyword"]["hit_at_5"] == 0.8


@pytest.mark.usefixtures("environment")
def test_the_progress_bar_counts_chunks_with_a_rate_and_time_left(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a corpus no run has embedded yet
    (workspace / "harbour" / "fog.md").write_text(f"# Fog\n\nFog horn test {workspace.name}.\n")
    # WHEN it is evaluated with progress bars
    code = main(
        ["eval", str(workspace / "set.jsonl"), "--corpus", str(workspace / "harbour"),
         "--embeddings", "hash", "--llm", "openai:good", "--modes", "keyword",
         "--json", str(workspace / "r.json")]
    )  # fmt: skip
    # THEN the embedding bar counted the chunks embedded, with a rate in chunks/s
    assert code == 0
    err = capsys.readouterr().err
    chunks = json.loads((workspace / "r.json").read_text())["corpus"]["embedded"]
    assert chunks > 0
    assert re.search(rf"embedding: 100%.* {chunks}/{chunks} \[[0-9:]+<[0-9:]+, .*chunk/s\]", err)
    # AND the corpus was read file by file before
    assert re.search(r"reading: .*file", err)


class BrokenReranker(RerankServer):
    """Answers every rerank with something that is not a ranking: the retriever falls back."""

    def answer(self, body: dict[str, Any]) -> tuple[int, Any]:
        return 200, {"nonsense": True}


@pytest.mark.usefixtures("environment")
def test_reranker_fallbacks_are_counted_per_mode_and_model(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a reranker that never gives a ranking
    with BrokenReranker() as reranker:
        monkeypatch.setenv("RAGLINE_RERANKER_URL", reranker.base_url)
        # WHEN ragline eval runs through it
        code = run_eval(
            workspace, "--modes", "hybrid,keyword", "--llm", "openai:good",
            "--reranker", "http:broken", "--json", str(workspace / "r.json"),
        )  # fmt: skip
    # THEN every search and every answer fell back, and the report counts them
    assert code == 0
    out = capsys.readouterr().out
    report = json.loads((workspace / "r.json").read_text())
    assert {m: r["rerank_fallbacks"] for m, r in report["retrieval"].items()} == {
        "hybrid": 5, "keyword": 5,
    }  # fmt: skip
    assert report["models"]["openai:good"]["rerank_fallbacks"] == 6
    assert len(reranker.requests) == 5 + 5 + 6
    assert re.search(r"hybrid .*\(reranker fell back on 5/5\)", out)
    assert re.search(r"openai:good .*\(reranker fell back on 6/6\)", out)
    # AND the search's own order was scored
    assert report["retrieval"]["hybrid"]["hit_at_1"] == 0.8


@pytest.mark.usefixtures("environment")
def test_without_a_bar_the_models_are_ranked_and_none_is_named(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN three models run without --bar
    code = run_eval(workspace, "--modes", "keyword", "--json", str(workspace / "r.json"))
    # THEN the run passes, names no model and ranks them: the good one before the dearer
    # premium of the same quality, the bad one last
    assert code == 0
    out = capsys.readouterr().out
    report = json.loads((workspace / "r.json").read_text())
    assert (report["bar"], report["choice"]) == ("(none)", None)
    assert report["ranking"] == ["openai:good", "openai:premium", "openai:bad"]
    assert "ranked (answer, then abstain, false, cost): openai:good > openai:premium > " in out
    assert "no bar given (--bar): no model named" in out


@pytest.mark.usefixtures("environment")
def test_limit_and_sample_run_part_of_the_set(
    workspace: Path, server: OpenAICompatibleServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the first two questions are asked of one model
    assert run_eval(workspace, "--modes", "keyword", "--llm", "openai:good", "--limit", "2",
                    "--json", str(workspace / "l.json")) == 0  # fmt: skip
    # THEN only they ran, and the report says so
    limited = json.loads((workspace / "l.json").read_text())
    assert [row["id"] for row in limited["per_question"]] == ["q1", "q2"]
    assert (limited["questions"], limited["selection"]) == (2, "first 2 of 6")
    assert "2 questions, first 2 of 6" in capsys.readouterr().out
    assert len(server.received(CHAT)) == 2
    # WHEN three are sampled twice with one seed, and once with another
    drawn = []
    for seed in ("7", "7", "8"):
        assert run_eval(workspace, "--modes", "keyword", "--llm", "openai:good", "--sample",
                        "3", "--seed", seed, "--json", str(workspace / "s.json")) == 0  # fmt: skip
        report = json.loads((workspace / "s.json").read_text())
        drawn.append([row["id"] for row in report["per_question"]])
        assert report["selection"] == f"3 of 6 at random (seed {seed})"
    # THEN one seed draws the same three, in the set's order
    assert drawn[0] == drawn[1] == sorted(drawn[0]) and len(set(drawn[0])) == 3
    # AND --limit with --sample, or a limit under 1, is refused
    with pytest.raises(SystemExit) as refused:
        run_eval(workspace, "--limit", "2", "--sample", "2")
    assert refused.value.code == 2
    assert run_eval(workspace, "--limit", "0") == 2
    assert "--limit must be >= 1" in capsys.readouterr().err


@pytest.mark.usefixtures("environment")
def test_eval_as_a_tenant_ingests_into_its_own_collection_and_asks_as_it(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ragline.config import get_settings
    from ragline.tenancy import get_keys

    # GIVEN the corpus evaluated by the operator (the default tenant), and tenant acme
    assert run_eval(workspace, "--modes", "vector", "--json", str(workspace / "a.json")) == 0
    get_keys(get_settings()).create("acme", ["query"], name="eval")
    capsys.readouterr()
    # WHEN acme evaluates the same corpus
    code = run_eval(
        workspace, "--modes", "vector", "--tenant", "acme", "--json", str(workspace / "b.json")
    )
    assert code == 0, capsys.readouterr().err
    operator = json.loads((workspace / "a.json").read_text())
    tenant = json.loads((workspace / "b.json").read_text())
    # THEN its corpus went into a collection of its own, owned by acme (the operator's is
    # not its to ask), and it was asked as acme: the same findings as the operator's
    assert tenant["corpus"]["collection"] != operator["corpus"]["collection"]
    assert tenant["corpus"]["ingested"] == 4
    store = get_store(get_settings())
    assert store.collection_owner(tenant["corpus"]["collection"]) == "acme"
    assert tenant["retrieval"]["vector"]["hit_at_5"] == operator["retrieval"]["vector"]["hit_at_5"]
    assert tenant["models"]["openai:good"]["errors"] == 0
    # AND an unknown tenant is refused before anything runs
    assert run_eval(workspace, "--tenant", "nobody") == 2
    assert "no tenant 'nobody'" in capsys.readouterr().err


# Follow-ups that name nothing of their subject: only the earlier turn says what they ask.
CONVERSATIONS = [
    ("c1", ["How many stairs does the lighthouse keeper climb?", "And on which evening?"],
     ["lighthouse.txt"], "Tuesday"),
    ("c2", ["What deposit does a kayak rental take?", "And how much is it?"],
     ["kayaks/rental.md"], "75 crowns"),
    ("c3", ["When does the village bakery sell cardamom buns?", "Every day?"],
     ["bakery.md"], "before eight"),
]  # fmt: skip


@pytest.mark.usefixtures("environment")
def test_multi_turn_cases_report_retrieval_for_the_rewritten_follow_up_against_the_raw_one(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a set of multi-turn cases (gold for the last turn) and one single question
    rows: list[dict[str, Any]] = [
        {"id": i, "turns": turns, "gold": gold, "must_contain": [phrase]}
        for i, turns, gold, phrase in CONVERSATIONS
    ]
    rows.append({"id": "q2", "question": QUESTIONS[1][1], "gold": QUESTIONS[1][2]})
    (workspace / "conversations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # WHEN ragline eval runs it with the extractive model (the deterministic rewrite)
    code = main(
        ["eval", str(workspace / "conversations.jsonl"), "--corpus", str(workspace / "harbour"),
         "--embeddings", "hash", "--llm", "extractive", "--modes", "hybrid", "--quiet",
         "--json", str(workspace / "report.json")]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads((workspace / "report.json").read_text())
    # THEN the follow-ups were searched for as rewritten, carrying the first turn's subject
    by_id = {row["id"]: row for row in report["per_question"]}
    assert by_id["c2"]["rewritten_query"] == "And how much is it? (deposit kayak rental take)"
    assert "rewritten_query" not in by_id["q2"]
    # AND the report sets the rewritten follow-ups against the raw ones, on the three cases
    raw, rewritten = report["conversation"]["raw"], report["conversation"]["rewritten"]
    assert raw["questions"] == rewritten["questions"] == 3
    assert rewritten["hit_at_1"] == 1.0 and raw["hit_at_1"] < rewritten["hit_at_1"]
    assert re.search(r"rewritten\s+1\.000\s+1\.000", out)
    # AND the hybrid mode's own figures are those of what the use case searches for
    assert report["retrieval"]["hybrid"]["hit_at_1"] == 1.0
    # AND the extractive model answered the follow-ups from the passages found
    assert report["models"]["extractive"]["correct_answers"] == 4
