"""The evaluation's pure parts: ranking metrics on hand-computed cases, answer checks,
the bar, the set format and the corpus listing."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from ragline.errors import ConfigurationError
from ragline.evaluation import ModelReport, QualityBar, cheapest, corpus_files, load_questions
from ragline.evaluation.dataset import collection_name, document_of, matches_gold, source_for
from ragline.evaluation.metrics import (
    contains_all,
    first_hit,
    hit_at,
    ndcg,
    percentile,
    reciprocal_rank,
)
from ragline.schemas import COLLECTION_PATTERN

# --- ranking metrics -----------------------------------------------------------------------


def test_hit_at_k_counts_a_gold_document_within_the_first_k() -> None:
    # GIVEN a ranking whose first gold document is third
    ranking = ["x.txt", "y.txt", "a.txt", "b.txt"]
    gold = {"a.txt"}
    # THEN it is a hit at 3 and 5, not at 1 or 2
    assert first_hit(ranking, gold) == 3
    assert [hit_at(ranking, gold, k) for k in (1, 2, 3, 5)] == [False, False, True, True]
    assert hit_at(ranking, {"z.txt"}, 5) is False


def test_mrr_term_is_one_over_the_first_gold_rank_within_ten() -> None:
    assert reciprocal_rank(["a"], {"a"}) == 1.0
    assert reciprocal_rank(["x", "y", "a", "a"], {"a"}) == pytest.approx(1 / 3)
    # a second gold document further down changes nothing: only the first counts
    assert reciprocal_rank(["x", "b", "a"], {"a", "b"}) == 0.5
    # GIVEN the only gold document at rank 11
    ranking = [f"d{i}" for i in range(10)] + ["a"]
    # THEN MRR@10 does not see it
    assert reciprocal_rank(ranking, {"a"}, 10) == 0.0
    assert reciprocal_rank(ranking, {"a"}, 11) == pytest.approx(1 / 11)


def test_ndcg_counts_each_gold_document_once_against_the_ideal_ranking() -> None:
    # GIVEN gold {a, b, c}, retrieved a (rank 1), x, b (rank 3), a again (rank 4), y
    ranking = ["a", "x", "b", "a", "y"]
    gold = {"a", "b", "c"}
    # THEN DCG = 1/log2(2) + 1/log2(4) = 1.5 (the repeated a adds nothing) and the ideal
    # puts the three gold documents first: 1 + 1/log2(3) + 1/log2(4)
    ideal = 1 + 1 / math.log2(3) + 0.5
    assert ndcg(ranking, gold) == pytest.approx(1.5 / ideal)
    assert ndcg(ranking, gold) == pytest.approx(0.70392, abs=1e-5)


def test_ndcg_is_one_for_a_perfect_ranking_and_zero_without_gold() -> None:
    assert ndcg(["a", "b", "x"], {"a", "b"}) == pytest.approx(1.0)
    assert ndcg(["x", "a"], {"a"}) == pytest.approx(1 / math.log2(3))
    assert ndcg(["x", "y"], {"a"}) == 0.0
    assert ndcg(["x"], set()) == 0.0
    # a gold document past the cut-off earns nothing
    assert ndcg(["x", "a"], {"a"}, k=1) == 0.0


def test_answers_must_contain_every_phrase_in_any_case() -> None:
    assert contains_all("Use shutil.COPYTREE(src, dst) [1].", ["copytree"])
    assert not contains_all("Use shutil.copy [1].", ["copytree"])
    assert not contains_all("port 9418", ["9418", "git://"])
    assert contains_all("anything", [])


def test_percentiles_interpolate_between_closest_ranks() -> None:
    assert percentile([10.0, 20.0, 30.0, 40.0], 0.5) == 25.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0], 0.95) == 10.5
    assert percentile([], 0.5) is None


# --- the bar -------------------------------------------------------------------------------


def test_the_bar_parses_terms_and_reports_those_unmet() -> None:
    # GIVEN a bar of three terms
    bar = QualityBar.parse("hit@5>=0.9, answer>=0.8,cost<0.5")
    assert str(bar) == "hit@5>=0.9,answer>=0.8,cost<0.5"
    assert bar.uses_retrieval
    # THEN values meeting every term leave nothing unmet, and a miss is named with its value
    assert bar.unmet({"hit@5": 0.9, "answer": 0.85, "cost": 0.1}) == []
    assert bar.unmet({"hit@5": 0.95, "answer": 0.5, "cost": 0.1}) == ["answer>=0.8 (0.5)"]
    # AND a metric that was not measured (no priced model) never meets a term
    assert bar.unmet({"hit@5": 1.0, "answer": 1.0, "cost": None}) == ["cost<0.5 (not measured)"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("answer=0.8", "is not metric>=number"),
        ("recall>=0.9", "unknown metric 'recall'; known: hit@1"),
        ("answer>=high", "is not metric>=number"),
    ],
)
def test_a_bad_bar_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        QualityBar.parse(text)


def _model(name: str, cost: float | None, accuracy: float, meets: bool) -> ModelReport:
    return ModelReport(
        model=name, questions=10, correct_answers=0, answer_accuracy=accuracy,
        correct_abstentions=0, unanswerable=0, false_abstentions=0, answerable=10,
        citation_precision=None, cited_passages=0, input_tokens=0, output_tokens=0,
        embedding_tokens=0, cost_usd=None, cost_per_1000=cost, p50_ms=None, p95_ms=None,
        errors=0, meets_bar=meets,
    )  # fmt: skip


def test_the_cheapest_model_meeting_the_bar_is_chosen() -> None:
    # GIVEN a cheap model below the bar, two meeting it, and an unpriced one meeting it
    models = [
        _model("cheap-bad", 0.01, 0.2, meets=False),
        _model("pricey", 5.0, 0.95, meets=True),
        _model("middle", 0.4, 0.85, meets=True),
        _model("unpriced", None, 0.99, meets=True),
    ]
    # THEN the cheapest of those meeting it is named; none when none does
    assert cheapest(models) == "middle"
    assert cheapest([models[0]]) is None


# --- sets and corpora ----------------------------------------------------------------------


def test_a_set_is_read_line_by_line(tmp_path: Path) -> None:
    # GIVEN a set with an answerable and an unanswerable question, a blank line, and a
    # key the scorer does not use
    path = tmp_path / "set.jsonl"
    rows = [
        {"id": "q1", "question": "Q?", "gold": ["a/b.txt"], "answer": "x", "must_contain": ["x"]},
        {"id": "q2", "question": "R?", "gold": [], "answer": "", "must_contain": [], "pages": []},
    ]
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    # WHEN it is loaded
    first, second = load_questions(path)
    # THEN
    assert (first.id, first.gold, first.must_contain, first.answerable) == (
        "q1", ("a/b.txt",), ("x",), True,
    )  # fmt: skip
    assert second.answerable is False and second.extra == {"pages": []}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", r"set.jsonl:1: not JSON"),
        ('{"id": "q", "question": "Q?"}', r"set.jsonl:1: 'gold' is missing"),
        ('{"id": "q", "question": "", "gold": []}', r"'question' must be a non-empty string"),
        ('{"id": "q", "question": "Q?", "gold": "a.txt"}', r"'gold' must be a list"),
        ('{"id": "q", "question": "Q?", "gold": [], "must_contain": [1]}', r"'must_contain'"),
    ],
)
def test_a_bad_line_is_named_with_its_number(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ConfigurationError, match=message):
        load_questions(path)


def test_a_multi_turn_case_asks_its_last_turn_with_the_earlier_ones_before_it(
    tmp_path: Path,
) -> None:
    # GIVEN a case given as turns, beside a single question
    path = tmp_path / "set.jsonl"
    rows = [
        {"id": "c1", "turns": ["How do I stash?", "And new files?"], "gold": ["git-stash.html"]},
        {"id": "q1", "question": "How do I stash?", "gold": ["git-stash.html"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # WHEN the set is read
    case, single = load_questions(path)
    # THEN the last turn is the question, gold for it, the earlier ones its conversation
    assert (case.question, case.turns, case.follows_up) == (
        "And new files?", ("How do I stash?",), True,
    )  # fmt: skip
    assert (single.turns, single.follows_up) == ((), False)
    assert "turns" not in case.extra


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "c", "turns": ["only one"], "gold": []}, "'turns' needs at least two"),
        ({"id": "c", "turns": ["a", ""], "gold": []}, "'turns' must be a list of non-empty"),
        ({"id": "c", "turns": ["a", "b"], "question": "b", "gold": []}, "'question' or 'turns'"),
    ],
)
def test_bad_turns_are_named(tmp_path: Path, row: dict[str, object], message: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ConfigurationError, match=message):
        load_questions(path)


def test_duplicate_ids_and_empty_sets_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    line = '{"id": "q", "question": "Q?", "gold": []}\n'
    path.write_text(line * 2)
    with pytest.raises(ConfigurationError, match="id 'q' appears twice"):
        load_questions(path)
    path.write_text("\n")
    with pytest.raises(ConfigurationError, match="has no questions"):
        load_questions(path)
    with pytest.raises(ConfigurationError, match=r"missing\.jsonl"):
        load_questions(tmp_path / "missing.jsonl")


def test_the_corpus_leaves_out_licence_texts_and_hidden_files(tmp_path: Path) -> None:
    # GIVEN a corpus with documents, a COPYRIGHT file, a LICENSES folder and a hidden file
    for name in ("guide.md", "howto/a.html", "COPYRIGHT", "LICENSES/x.copyright", ".cache/y"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("text")
    # THEN only the documents are listed
    assert [p.relative_to(tmp_path).as_posix() for p in corpus_files(tmp_path)] == [
        "guide.md",
        "howto/a.html",
    ]
    with pytest.raises(ConfigurationError, match="not a directory"):
        corpus_files(tmp_path / "guide.md")


def test_sources_map_back_to_corpus_paths_and_gold_matches_their_endings() -> None:
    # GIVEN a collection name made from a long, odd directory name
    name = collection_name(Path("/data/My Corpus (2024)!"), "ab" * 32)
    assert name == "eval-My-Corpus-2024-abababababab"

    assert re.match(COLLECTION_PATTERN, name)
    # THEN the source a corpus file is stored under gives its relative path back
    assert document_of(source_for(name, "howto/a.html"), name) == "howto/a.html"
    # AND a source from elsewhere is compared with gold paths by its ending
    assert matches_gold("s3://bucket/docs/howto/a.html", ("howto/a.html",)) == "howto/a.html"
    assert matches_gold("s3://bucket/docs/xhowto/a.html", ("howto/a.html",)) is None


def test_the_corpus_cache_key_is_the_chunks_the_files_become(tmp_path: Path) -> None:
    from ragline.evaluation.runner import chunks_digest

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.md").write_text("# Tides\n\nThe ferry waits for the spring tide.\n")
    files = [corpus / "a.md"]

    def key() -> str:
        return chunks_digest(corpus, files, max_tokens=200, overlap=20)

    first = key()
    # the same chunks from different bytes (a trailing blank line): the same key
    (corpus / "a.md").write_text("# Tides\n\nThe ferry waits for the spring tide.\n\n\n")
    assert key() == first
    # other text: another key
    (corpus / "a.md").write_text("# Tides\n\nThe ferry waits for the neap tide.\n")
    assert key() != first
    # AND chunk settings count when they change the chunks
    (corpus / "a.md").write_text("# Tides\n\n" + "The ferry waits for the tide. " * 60)
    assert chunks_digest(corpus, files, max_tokens=60, overlap=10) != key()


def test_a_page_hit_needs_a_gold_document_passage_on_a_gold_page_within_k() -> None:
    from ragline.evaluation.metrics import page_hit_at

    # GIVEN passages from a gold document on pages 3-4 and 10, and one from another file
    spans = [None, (3, 4), (10, 10)]
    # THEN gold page 4 is hit at 2, page 10 only from rank 3, page 7 not at all
    assert page_hit_at(spans, [4], 2) and not page_hit_at(spans, [4], 1)
    assert page_hit_at(spans, [10], 3) and not page_hit_at(spans, [10], 2)
    assert not page_hit_at(spans, [7], 5)


def test_gold_pages_are_read_from_the_set(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(
        '{"id": "a", "question": "q?", "gold": ["m.pdf"], "pages": [7, 10]}\n'
        '{"id": "b", "question": "q?", "gold": ["m.md"]}\n'
    )
    assert [q.pages for q in load_questions(path)] == [(7, 10), ()]


def test_the_corpus_index_key_is_the_files_the_embedder_the_chunking_and_its_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ragline.evaluation import runner

    hashes = {"a.md": "1" * 64, "b/c.html": "2" * 64}

    def key(**changes: object) -> str:
        options: dict[str, object] = {"embedder": "minilm", "max_tokens": 300, "overlap": 40}
        options.update(changes)
        return runner.corpus_key(hashes, **options)  # type: ignore[arg-type]

    # GIVEN the key of a corpus
    first = key()
    # THEN it is stable, and any input that changes chunks or vectors changes it
    assert key() == first
    assert key(embedder="hash") != first
    assert key(max_tokens=200) != first and key(overlap=0) != first
    assert runner.corpus_key({**hashes, "a.md": "3" * 64}, embedder="minilm", max_tokens=300,
                             overlap=40) != first  # fmt: skip
    # AND so does the code that makes chunks
    monkeypatch.setattr(runner, "chunking_code_digest", lambda: "another version")
    assert key() != first


def test_a_selection_is_the_first_n_or_a_seeded_sample_in_the_sets_order() -> None:
    from ragline.errors import ConfigurationError
    from ragline.evaluation import Question, select_questions

    questions = [Question(f"q{i:02}", f"question {i}", ("a.md",)) for i in range(20)]
    # WHEN nothing is asked, or more than the set holds: the whole set
    assert select_questions(questions) == (questions, None)
    assert select_questions(questions, sample=50) == (questions, None)
    # WHEN the first 3: those
    assert select_questions(questions, limit=3) == (questions[:3], "first 3 of 20")
    # WHEN a sample: the same seed draws the same questions, in the set's order
    drawn, how = select_questions(questions, sample=5, seed=4)
    assert how == "5 of 20 at random (seed 4)" and len(drawn) == 5
    assert drawn == select_questions(questions, sample=5, seed=4)[0]
    assert drawn == sorted(drawn, key=questions.index)
    assert drawn != select_questions(questions, sample=5, seed=5)[0]
    # AND nonsense is refused
    with pytest.raises(ConfigurationError, match="not both"):
        select_questions(questions, limit=2, sample=2)
    with pytest.raises(ConfigurationError, match="--sample must be >= 1"):
        select_questions(questions, sample=0)
