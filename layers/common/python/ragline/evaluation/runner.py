"""Run an evaluation set through the API's own code path.

Retrieval goes through :meth:`Answerer.retrieve` (``POST /retrieve``) once per search
mode; answers go through :meth:`Answerer.answer` (``POST /query``), once per model,
each model built from the settings with ``RAGLINE_LLM`` set to it, as a deployment
configured for it would. Nothing here computes a score the API does not return: the
cost is the response's, priced by the ledger's :class:`~ragline.ledger.Costs`.

Answers are not written to the query log (``ragline stats`` stays about real traffic),
and each model runs without the ``RAGLINE_LLM_FALLBACK`` chain, so a model that fails
shows as errors instead of borrowing another model's answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import ragline
from ragline.answer import Answerer, Router
from ragline.answer.conversation import Conversation
from ragline.config import variable
from ragline.documents import chunk_document, parse_document
from ragline.embeddings import get_embedder
from ragline.errors import ConfigurationError, RaglineError
from ragline.evaluation import metrics
from ragline.evaluation.dataset import (
    collection_name,
    corpus_files,
    document_of,
    fingerprint,
    matches_gold,
    source_for,
)
from ragline.evaluation.quality_bar import RETRIEVAL_METRICS, QualityBar
from ragline.identity import DEFAULT_TENANT, OPERATOR, Identity
from ragline.ingest import DocumentFailedError, Ingestor
from ragline.rerankers import get_reranker
from ragline.retrieval import MODES
from ragline.store import get_store

if TYPE_CHECKING:
    from ragline.answer import Role
    from ragline.config import Settings
    from ragline.embeddings import Embedder
    from ragline.evaluation.dataset import Question
    from ragline.schemas import QueryResponse
    from ragline.store import DocumentRecord, Store

T = TypeVar("T")
# Wraps a loop to show progress (tqdm in the command line): items, label -> items.
Progress = Callable[[Sequence[Any], str], Iterable[Any]]


class Meter(Protocol):
    """Counts work done towards a total (tqdm in the command line)."""

    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


# A meter for ``total`` units of work (chunks to embed): total, label -> meter.
Meters = Callable[[int, str], Meter]
# Where ``ragline eval`` remembers which collection a corpus became, in the data
# directory: a hint that spares the second run parsing the corpus, checked against the
# store before it is trusted.
CORPUS_INDEX = "eval-corpora.json"
# The code whose changes can change the chunks: a new version of it re-parses the corpus.
CHUNKING_CODE = ("documents", "tokens.py")
# Ranked metrics look this deep whatever the answers' top_k: MRR@10 and nDCG@10.
RANKING_DEPTH = 10
# The mode POST /query retrieves with, whose figures the bar's retrieval terms read.
ANSWER_MODE = "hybrid"
# The reranker setting, which `ragline eval --reranker` overrides.
RERANKER_FIELD = "reranker"
RERANKER_VARIABLE = variable(RERANKER_FIELD)


def _quietly(items: Sequence[Any], label: str) -> Iterable[Any]:
    return items


class _Unmetered:
    def update(self, n: int = 1) -> object:
        return None

    def close(self) -> None:
        return None


def _unmetered(total: int, label: str) -> Meter:
    return _Unmetered()


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate. Empty ``models`` means the settings' ``RAGLINE_LLM``."""

    modes: tuple[str, ...] = MODES
    models: tuple[str, ...] = ()
    bar: QualityBar = field(default_factory=lambda: QualityBar(()))
    corpus: Path | None = None
    collection: str | None = None
    top_k: int | None = None
    # How the questions were chosen from the set (--limit, --sample); None: all of them.
    selection: str | None = None
    # Who asks, and whose the ingested corpus is (--tenant): the operator by default.
    identity: Identity = OPERATOR


@dataclass
class CorpusReport:
    directory: str
    collection: str
    files: int
    ingested: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    chunks: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    # Chunks embedded by this run (0 when every document was there already).
    embedded: int = 0
    # Set when an earlier ingest was used as it stands, without parsing the corpus: how.
    reused: str | None = None


@dataclass
class ModeReport:
    mode: str
    questions: int
    hit_at_1: float
    hit_at_5: float
    mrr_at_10: float
    ndcg_at_10: float
    p50_ms: float | None
    p95_ms: float | None
    errors: int = 0
    # Searches whose reranker failed, so the search's own order was scored.
    rerank_fallbacks: int = 0
    # Share of the questions with gold pages that have a passage from a gold page of a
    # gold file in the first 5; None when the set gives no pages (and left out of --json).
    page_hit_at_5: float | None = None

    def values(self) -> dict[str, float | None]:
        """The figures under the bar's names."""
        return dict(zip(RETRIEVAL_METRICS, self._ranked(), strict=True))

    def _ranked(self) -> tuple[float, ...]:
        return (self.hit_at_1, self.hit_at_5, self.mrr_at_10, self.ndcg_at_10)


@dataclass
class ModelReport:
    model: str
    questions: int
    correct_answers: int
    answer_accuracy: float | None
    correct_abstentions: int
    unanswerable: int
    false_abstentions: int
    answerable: int
    citation_precision: float | None
    cited_passages: int
    input_tokens: int
    output_tokens: int
    embedding_tokens: int
    cost_usd: float | None
    cost_per_1000: float | None
    p50_ms: float | None
    p95_ms: float | None
    errors: int
    unpriced: bool = False
    rerank_fallbacks: int = 0
    meets_bar: bool = False
    unmet: list[str] = field(default_factory=list)

    def values(self) -> dict[str, float | None]:
        """The figures under the bar's names."""
        return {
            "answer": self.answer_accuracy,
            "abstain": _share(self.correct_abstentions, self.unanswerable),
            "false_abstain": _share(self.false_abstentions, self.answerable),
            "citation": self.citation_precision,
            "cost": self.cost_per_1000,
            "p50": self.p50_ms,
            "p95": self.p95_ms,
        }


@dataclass
class Report:
    """Everything one run measured; ``to_dict`` is the ``--json`` document."""

    set: str
    questions: int
    answerable: int
    unanswerable: int
    collection: str
    embeddings: str
    reranker: str | None
    top_k: int
    bar: str
    corpus: CorpusReport | None
    retrieval: dict[str, ModeReport]
    models: dict[str, ModelReport]
    choice: str | None
    per_question: list[dict[str, Any]]
    # The models best first (answers, abstentions, fewest false abstentions, cost).
    ranking: list[str] = field(default_factory=list)
    # How the questions were chosen (--limit, --sample); None: the whole set.
    selection: str | None = None
    # Multi-turn cases: hybrid retrieval for the follow-up as asked ("raw") and as
    # rewritten into a standalone query ("rewritten"); empty without such cases.
    conversation: dict[str, ModeReport] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        for mode in [*document["retrieval"].values(), *document["conversation"].values()]:
            if mode["page_hit_at_5"] is None:  # a set without pages reads as it always did
                del mode["page_hit_at_5"]
        if not document["conversation"]:  # a set without follow-ups reads as it always did
            del document["conversation"]
        return document


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def chunks_digest(corpus: Path, files: Sequence[Path], *, max_tokens: int, overlap: int) -> str:
    """A digest of the chunks ``files`` become (titles, sections, text, every field), so
    the collection changes exactly when what would be embedded does: a change to a loader
    of another format, or to code that yields the same chunks, reuses the collection.
    Parsing is seconds; embedding is what the cache saves."""
    return read_corpus(corpus, files, max_tokens=max_tokens, overlap=overlap)[0]


def read_corpus(
    corpus: Path,
    files: Iterable[Path],
    *,
    max_tokens: int,
    overlap: int,
) -> tuple[str, dict[str, int]]:
    """:func:`chunks_digest`, and how many chunks each file (by relative path) makes."""
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    for path in files:
        relative = path.relative_to(corpus).as_posix()
        counts[relative] = 0
        try:
            parsed = parse_document(path.name, path.read_bytes())
        except RaglineError as exc:  # unsupported or unreadable: the outcome is the content
            digest.update(f"{relative}\0{type(exc).__name__}: {exc}\n".encode())
            continue
        digest.update(f"{relative}\0{parsed.title}\0{parsed.format}\n".encode())
        for chunk in chunk_document(parsed, max_tokens=max_tokens, overlap=overlap):
            # Unset fields left out: a field new to chunks (a PDF's pages, say) changes the
            # key of the corpora that use it, not of every corpus.
            fields = {k: v for k, v in asdict(chunk).items() if v not in (None, (), [], {})}
            digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
            counts[relative] += 1
    return digest.hexdigest()[:16], counts


def chunking_code_digest() -> str:
    """A digest of the code that turns files into chunks (the loaders, the chunker, the
    tokenizer) and of ragline's version: what the corpus index's key holds for the chunks,
    since it is read without parsing anything."""
    digest = hashlib.sha256(ragline.__version__.encode())
    package = Path(ragline.__file__).parent
    for name in CHUNKING_CODE:
        root = package / name
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            digest.update(f"{path.relative_to(package).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def corpus_key(hashes: dict[str, str], *, embedder: str, max_tokens: int, overlap: int) -> str:
    """The corpus index's key: every file's path and content hash, the embedder, the chunk
    settings and the chunking code. Equal keys mean equal chunks and equal vectors."""
    digest = hashlib.sha256()
    for relative, content in sorted(hashes.items()):
        digest.update(f"{relative}\0{content}\n".encode())
    digest.update(
        f"embedder={embedder}\nchunks={max_tokens}/{overlap}\ncode={chunking_code_digest()}\n".encode()
    )
    return digest.hexdigest()


def _matches(records: dict[str, DocumentRecord], hashes: dict[str, str], embedder: str) -> bool:
    """Whether ``records`` (by relative path) are exactly the corpus's files, every one
    stored from the same content with the same embedder (or skipped, as unsupported)."""
    if records.keys() != hashes.keys():
        return False
    return all(_same(record, hashes[relative], embedder) for relative, record in records.items())


def _same(record: DocumentRecord, content_hash: str, embedder: str) -> bool:
    """Whether ``record`` holds this content as is: ingested with ``embedder``, or skipped
    (its type unsupported). A failed document is tried again."""
    if record.content_hash != content_hash:
        return False
    return record.status == "skipped" or (
        record.status == "ingested" and record.embedding_model == embedder
    )


@contextmanager
def counting_rerank_fallbacks() -> Iterator[list[int]]:
    """Count the searches whose reranker failed (the retriever logs each one, with
    ``rerank_failed``, and keeps the search's order) while the block runs: ``[count]``."""
    count = [0]

    class Counter(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "rerank_failed", False):
                count[0] += 1

    retrieval_logger = logging.getLogger("ragline.retrieval")
    handler = Counter(logging.WARNING)
    level = retrieval_logger.level
    if not retrieval_logger.isEnabledFor(logging.WARNING):  # counted even when not shown
        retrieval_logger.setLevel(logging.WARNING)
    retrieval_logger.addHandler(handler)
    try:
        yield count
    finally:
        retrieval_logger.removeHandler(handler)
        retrieval_logger.setLevel(level)


class Evaluator:
    """Runs a set against one store and embedder, for several modes and models."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        embedder: Embedder | None = None,
        progress: Progress | None = None,
        meters: Meters | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or get_store(settings)
        self.embedder = embedder or get_embedder(settings)
        self.progress: Progress = progress or _quietly
        self.meters: Meters = meters or _unmetered

    def _each(self, items: Sequence[T], label: str) -> Iterable[T]:
        return self.progress(items, label)

    # --- the corpus ---------------------------------------------------------------------

    def _index_path(self) -> Path:
        return Path(self.settings.data_dir).expanduser() / CORPUS_INDEX

    def _read_index(self) -> dict[str, str]:
        try:
            index = json.loads(self._index_path().read_text("utf-8"))
        except (OSError, ValueError):  # none yet, or unreadable: a hint, never an error
            return {}
        return index if isinstance(index, dict) else {}

    def _remember(self, key: str, collection: str) -> None:
        index = self._read_index()
        index[key] = collection
        path = self._index_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n", "utf-8")
        except OSError:  # a read-only data directory costs the next run a parse, no more
            pass

    def _stored(self, prefix: str) -> dict[str, DocumentRecord]:
        """The stored documents whose source starts with ``prefix``, by the rest of it."""
        return {d.source[len(prefix) :]: d for d in self.store.iter_documents(prefix)}

    def _reusable(
        self,
        corpus: Path,
        files: Sequence[Path],
        hashes: dict[str, str],
        key: str,
        tenant: str = DEFAULT_TENANT,
    ) -> CorpusReport | None:
        """An earlier ingest of exactly this corpus, to evaluate as it stands: the
        collection the corpus index names for ``key``, or one ``ragline ingest`` filled
        with exactly these files; None when there is none."""
        model = self.embedder.name
        collection = self._read_index().get(key)
        if collection is not None:
            records = self._stored(source_for(collection, ""))
            if _matches(records, hashes, model):
                return self._reused(corpus, collection, records, "the corpus's collection")
        # `ragline ingest DIR` stores each file under its file:// URI (the licence texts
        # too, which the corpus leaves out: kept, since they are what that collection holds)
        by_uri = {path.resolve().as_uri(): path.relative_to(corpus).as_posix() for path in files}
        under = list(self.store.iter_documents(corpus.resolve().as_uri() + "/"))
        found = {by_uri[d.source]: d for d in under if d.source in by_uri}
        collections = {d.collection for d in under}
        if len(collections) != 1 or not _matches(found, hashes, model):
            return None
        (collection,) = collections
        if self.store.collection_owner(collection) != tenant:  # another tenant's: not to ask
            return None
        held, _ = self.store.list_documents(collection=collection, limit=len(under) + 1)
        if len(held) != len(under):  # it holds documents from elsewhere: not this corpus
            return None
        extra = len(under) - len(found)
        how = "`ragline ingest`'s collection" + (
            f", with {extra} more file{'s' if extra > 1 else ''} of the directory" if extra else ""
        )
        return self._reused(corpus, collection, found, how)

    def _reused(
        self, corpus: Path, collection: str, records: dict[str, DocumentRecord], how: str
    ) -> CorpusReport:
        report = CorpusReport(str(corpus), collection, len(records), reused=how)
        for record in records.values():
            report.chunks += record.chunk_count
            if record.status == "skipped":
                report.skipped += 1
            else:
                report.unchanged += 1
        return report

    def ingest_corpus(self, corpus: Path, tenant: str = DEFAULT_TENANT) -> CorpusReport:
        """Ingest ``corpus`` into the collection its content names; files already there
        unchanged are skipped by the ingestor, so a second run embeds nothing. When an
        earlier ingest of the same files with the same embedder, chunk settings and
        chunking code is in the store (this command's, or ``ragline ingest``'s), it is
        used as it stands: nothing is parsed or embedded. Another ``tenant`` than the
        default gets a collection of its own (collection names are global)."""
        started = time.perf_counter()
        files = corpus_files(corpus)
        ingestor = Ingestor(self.settings, self.store, self.embedder)
        tokens, overlap = ingestor.chunk_tokens, ingestor.chunk_overlap
        hashes = {
            path.relative_to(corpus).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in files
        }
        key = corpus_key(hashes, embedder=self.embedder.name, max_tokens=tokens, overlap=overlap)
        key = _of_tenant(key, tenant)
        reused = self._reusable(corpus, files, hashes, key, tenant)
        if reused is not None:
            reused.seconds = round(time.perf_counter() - started, 2)
            return reused
        chunking, counts = read_corpus(
            corpus, self._each(files, "reading"), max_tokens=tokens, overlap=overlap
        )
        digest = _of_tenant(
            fingerprint(corpus, files, embedder=self.embedder.name, chunking=chunking), tenant
        )
        collection = collection_name(corpus, digest)
        report = CorpusReport(str(corpus), collection, len(files))
        stored = self._stored(source_for(collection, ""))
        pending = [
            path
            for path in files
            if (relative := path.relative_to(corpus).as_posix()) not in stored
            or not _same(stored[relative], hashes[relative], self.embedder.name)
        ]
        total = sum(counts[path.relative_to(corpus).as_posix()] for path in pending)
        meter = self.meters(total, "embedding")

        def embedded(count: int) -> None:
            report.embedded += count
            meter.update(count)

        ingestor.on_embedded = embedded
        # A first load builds the vector index once at the end, as `ragline ingest` does.
        dimensions = self.embedder.dimensions
        deferred = len(pending) > 1 and self.store.defer_vector_index(dimensions)
        try:
            for path in files:
                self._ingest_file(ingestor, corpus, path, collection, report, tenant)
        finally:  # interrupted too: the store is never left without its index
            meter.close()
            ingestor.on_embedded = None
            if deferred:
                self.store.build_vector_index(dimensions)
        if not report.failed:
            self._remember(key, collection)
        report.seconds = round(time.perf_counter() - started, 2)
        return report

    def _ingest_file(
        self,
        ingestor: Ingestor,
        corpus: Path,
        path: Path,
        collection: str,
        report: CorpusReport,
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        relative = path.relative_to(corpus).as_posix()
        source = source_for(collection, relative)
        try:
            result = ingestor.ingest_bytes(
                source, path.read_bytes(), name=path.name, collection=collection, tenant=tenant
            )
        except DocumentFailedError as exc:  # recorded as failed; the others go on
            report.failed += 1
            report.failures.append(f"{relative}: {exc.result.error}")
            return
        report.chunks += result.chunks
        if result.status == "skipped":
            report.skipped += 1
        elif result.status == "unchanged":
            report.unchanged += 1
        else:
            report.ingested += 1

    # --- answerers ----------------------------------------------------------------------

    def answerer(self, model: str) -> Answerer:
        """An answerer whose default profile answers with ``model`` (and no fallback), over
        this evaluator's store and embedder, writing nothing to the query log."""
        settings = self.settings.with_overrides(llm=model, llm_fallback=())
        return Answerer(
            settings, self.store, self.embedder, Router.from_settings(settings),
            reranker=get_reranker(settings),
        )  # fmt: skip

    # --- the run ------------------------------------------------------------------------

    def run(self, questions: Sequence[Question], options: EvalOptions, *, name: str) -> Report:
        """Evaluate ``questions`` (from the set called ``name``) as ``options`` say."""
        unknown = [m for m in options.modes if m not in MODES]
        if unknown:
            raise ConfigurationError(f"unknown mode {unknown[0]!r}; known: {', '.join(MODES)}")
        if options.bar.uses_retrieval and ANSWER_MODE not in options.modes:
            raise ConfigurationError(
                f"the bar's retrieval terms read the {ANSWER_MODE} mode (the one answers use): "
                f"add {ANSWER_MODE} to the modes"
            )
        models = tuple(dict.fromkeys(options.models or (self.settings.llm,)))
        # Every model is built before anything is ingested: a typo fails in a second.
        answerers = {model: self.answerer(model) for model in models}
        tenant = options.identity.tenant
        corpus = self.ingest_corpus(options.corpus, tenant) if options.corpus is not None else None
        collection = (
            corpus.collection if corpus else options.collection or self.settings.default_collection
        )
        if self.store.collection_model(collection) is None:
            raise ConfigurationError(
                f"collection {collection!r} holds nothing: give a corpus to ingest, "
                "or the collection the documents were ingested into"
            )
        top_k = options.top_k or self.settings.top_k
        rows: dict[str, dict[str, Any]] = {
            q.id: {"id": q.id, "answerable": q.answerable, "retrieval": {}, "answers": {}}
            for q in questions
        }
        first = answerers[models[0]]
        # A follow-up is searched for as the answer use case searches for it: rewritten.
        searched = {q.id: rewritten(first, q) for q in questions}
        for q in questions:
            if q.follows_up:
                rows[q.id]["rewritten_query"] = searched[q.id]
        retrieval = {
            mode: self._retrieval(
                first, mode, questions, collection, rows, searched, identity=options.identity
            )
            for mode in options.modes
        }
        follow_ups = [q for q in questions if q.follows_up and q.answerable]
        conversation = {}
        if follow_ups:
            raw = {q.id: q.question for q in follow_ups}
            conversation = {
                label: self._retrieval(
                    first,
                    ANSWER_MODE,
                    follow_ups,
                    collection,
                    rows,
                    queries,
                    label=label,
                    identity=options.identity,
                )
                for label, queries in (("raw", raw), ("rewritten", searched))
            }
        reports = {
            model: self._answers(
                answerer, model, questions, collection, top_k, rows, options.identity
            )
            for model, answerer in answerers.items()
        }
        shared = retrieval[ANSWER_MODE].values() if ANSWER_MODE in retrieval else {}
        for report in reports.values():
            report.unmet = options.bar.unmet({**shared, **report.values()})
            report.meets_bar = not report.unmet
        # Without a bar every model "meets" it: none is named, the ranking says which is best.
        choice = cheapest(list(reports.values())) if options.bar.terms else None
        return Report(
            set=name,
            questions=len(questions),
            answerable=sum(q.answerable for q in questions),
            unanswerable=sum(not q.answerable for q in questions),
            collection=collection,
            embeddings=self.embedder.name,
            reranker=self._reranker(),
            top_k=top_k,
            bar=str(options.bar),
            corpus=corpus,
            retrieval=retrieval,
            models=reports,
            choice=choice,
            per_question=list(rows.values()),
            ranking=ranked(list(reports.values())),
            selection=options.selection,
            conversation=conversation,
        )

    def _reranker(self) -> str | None:
        return reranker_of(self.settings)

    def _retrieval(
        self,
        answerer: Answerer,
        mode: str,
        questions: Sequence[Question],
        collection: str,
        rows: dict[str, dict[str, Any]],
        queries: dict[str, str] | None = None,
        *,
        label: str | None = None,
        identity: Identity = OPERATOR,
    ) -> ModeReport:
        """Search each answerable question (as ``queries`` gives it: by default the
        question) in ``mode`` and score the ranking; ``label`` names the report and the
        per-question key (the mode by default)."""
        label = label or mode
        answerable = [q for q in questions if q.answerable]
        hits1: list[float] = []
        hits5: list[float] = []
        reciprocal: list[float] = []
        gains: list[float] = []
        page_hits: list[float] = []
        latencies: list[float] = []
        errors = 0
        searched: dict[str, Any] = {}
        with counting_rerank_fallbacks() as fallbacks:
            for q in self._each(answerable, f"retrieve {label}"):
                started = time.perf_counter()
                query = q.question if queries is None else queries[q.id]
                try:
                    searched[q.id] = answerer.retrieve(
                        query, collection=collection, top_k=RANKING_DEPTH, mode=mode,
                        identity=identity,
                    ).results  # fmt: skip
                except RaglineError as exc:
                    errors += 1
                    rows[q.id]["retrieval"][label] = {"error": str(exc)}
                else:
                    latencies.append((time.perf_counter() - started) * 1000)
        for q in answerable:
            results = searched.get(q.id, [])
            documents = [document_of(r.source, collection) for r in results]
            ranking = [matches_gold(d, q.gold) or d for d in documents]
            hits1.append(float(metrics.hit_at(ranking, q.gold, 1)))
            hits5.append(float(metrics.hit_at(ranking, q.gold, 5)))
            reciprocal.append(metrics.reciprocal_rank(ranking, q.gold, RANKING_DEPTH))
            gains.append(metrics.ndcg(ranking, q.gold, RANKING_DEPTH))
            row = rows[q.id]["retrieval"].setdefault(
                label, {"rank": metrics.first_hit(ranking, q.gold), "documents": documents}
            )
            if q.pages:
                spans = [
                    (min(r.pages), max(r.pages)) if ranked in q.gold and r.pages else None
                    for ranked, r in zip(ranking, results, strict=True)
                ]
                page_hits.append(float(metrics.page_hit_at(spans, q.pages, 5)))
                row.setdefault("pages", [list(span) if span else None for span in spans])
        return ModeReport(
            mode=label,
            questions=len(answerable),
            hit_at_1=round(metrics.mean(hits1) or 0.0, 4),
            hit_at_5=round(metrics.mean(hits5) or 0.0, 4),
            mrr_at_10=round(metrics.mean(reciprocal) or 0.0, 4),
            ndcg_at_10=round(metrics.mean(gains) or 0.0, 4),
            p50_ms=_round(metrics.percentile(latencies, 0.5)),
            p95_ms=_round(metrics.percentile(latencies, 0.95)),
            errors=errors,
            rerank_fallbacks=fallbacks[0],
            page_hit_at_5=round(metrics.mean(page_hits) or 0.0, 4) if page_hits else None,
        )

    def _answers(
        self,
        answerer: Answerer,
        model: str,
        questions: Sequence[Question],
        collection: str,
        top_k: int,
        rows: dict[str, dict[str, Any]],
        identity: Identity = OPERATOR,
    ) -> ModelReport:
        responses: dict[str, QueryResponse] = {}
        errors: dict[str, str] = {}
        with counting_rerank_fallbacks() as fallbacks:
            for q in self._each(questions, f"answer {model}"):
                try:
                    responses[q.id] = answerer.answer(
                        q.question, collection=collection, top_k=top_k, history=history(q),
                        identity=identity,
                    )  # fmt: skip
                except RaglineError as exc:  # a failing model is a finding, not the end
                    errors[q.id] = f"{type(exc).__name__}: {exc}"
        report = _score(model, questions, collection, responses, errors, rows)
        report.rerank_fallbacks = fallbacks[0]
        return report


def _of_tenant(digest: str, tenant: str) -> str:
    """``digest`` for the default tenant, another one (as long) for any other: a tenant's
    corpus gets a collection, and an index entry, of its own."""
    if tenant == DEFAULT_TENANT:
        return digest
    return hashlib.sha256(f"{tenant}/{digest}".encode()).hexdigest()[: len(digest)]


def _score(
    model: str,
    questions: Sequence[Question],
    collection: str,
    responses: dict[str, QueryResponse],
    errors: dict[str, str],
    rows: dict[str, dict[str, Any]],
) -> ModelReport:
    correct = correct_abstentions = false_abstentions = cited = cited_gold = 0
    costs: list[float | None] = []
    for q in questions:
        response = responses.get(q.id)
        if response is None:
            rows[q.id]["answers"][model] = {"error": errors[q.id]}
            continue
        documents = [document_of(c.source, collection) for c in response.citations]
        from_gold = [matches_gold(d, q.gold) is not None for d in documents]
        answered_well = not response.abstained and metrics.contains_all(
            response.answer, q.must_contain
        )
        right = q.answerable and answered_well
        if q.answerable:
            correct += right
            false_abstentions += response.abstained
            if not response.abstained:
                cited += len(from_gold)
                cited_gold += sum(from_gold)
        else:
            correct_abstentions += response.abstained
        costs.append(response.usage.cost_usd)
        rows[q.id]["answers"][model] = {
            "answer": response.answer,
            "abstained": response.abstained,
            "correct": right if q.answerable else response.abstained,
            "cited": documents,
            "cost_usd": response.usage.cost_usd,
            "latency_ms": response.latency_ms.total,
        }
    answered = list(responses.values())
    answerable = sum(q.answerable for q in questions)
    priced = [c for c in costs if c is not None]
    unpriced = len(priced) < len(costs)
    total_cost = None if unpriced or not costs else sum(priced)
    latencies = [r.latency_ms.total for r in answered]
    return ModelReport(
        model=model,
        questions=len(questions),
        correct_answers=correct,
        answer_accuracy=_round(_share(correct, answerable), 4),
        correct_abstentions=correct_abstentions,
        unanswerable=len(questions) - answerable,
        false_abstentions=false_abstentions,
        answerable=answerable,
        citation_precision=_round(_share(cited_gold, cited), 4),
        cited_passages=cited,
        input_tokens=sum(r.usage.input_tokens for r in answered),
        output_tokens=sum(r.usage.output_tokens for r in answered),
        embedding_tokens=sum(r.usage.embedding_tokens for r in answered),
        cost_usd=_round(total_cost, 8),
        cost_per_1000=_round(None if total_cost is None else total_cost / len(questions) * 1000, 6),
        p50_ms=_round(metrics.percentile(latencies, 0.5)),
        p95_ms=_round(metrics.percentile(latencies, 0.95)),
        errors=len(errors),
        unpriced=unpriced,
    )


def history(question: Question) -> list[tuple[Role, str]] | None:
    """A multi-turn case's earlier questions as the conversation (None: a single turn)."""
    return [("user", turn) for turn in question.turns] if question.follows_up else None


def rewritten(answerer: Answerer, question: Question) -> str:
    """The query the answer use case searches for: a follow-up as its condenser rewrites
    it (the condense profile's model, or the deterministic rewrite), else the question."""
    turns = history(question)
    if turns is None:
        return question.question
    conversation = Conversation.from_history(turns, answerer.settings.max_history_turns)
    return answerer.condenser.rewrite(question.question, conversation).query


def reranker_of(settings: Settings) -> str | None:
    """The reranker the settings configure, or None (also when this version has no
    ``RAGLINE_RERANKER`` setting)."""
    value = getattr(settings, RERANKER_FIELD, None)
    return None if value in (None, "", "none") else str(value)


def with_reranker(settings: Settings, spec: str) -> Settings:
    """``settings`` with ``RAGLINE_RERANKER`` set to ``spec``, validated as at cold start."""
    if RERANKER_FIELD not in type(settings).model_fields:
        raise ConfigurationError(f"this version of ragline has no {RERANKER_VARIABLE} setting")
    try:
        return settings.with_overrides(**{RERANKER_FIELD: spec})
    except ValueError as exc:  # pydantic's ValidationError
        raise ConfigurationError(f"{RERANKER_VARIABLE}={spec!r}: {exc}") from exc


def cheapest(models: Sequence[ModelReport]) -> str | None:
    """The model meeting the bar at the lowest cost per 1,000 questions (unpriced ones
    last; ties to the more accurate), or None when no model meets it."""
    meeting = [m for m in models if m.meets_bar]
    if not meeting:
        return None
    best = min(
        meeting,
        key=lambda m: (m.cost_per_1000 is None, m.cost_per_1000 or 0.0, -(m.answer_accuracy or 0)),
    )
    return best.model


def ranked(models: Sequence[ModelReport]) -> list[str]:
    """The models best first: by answer accuracy, then correct abstentions, then fewest
    false abstentions, then cost per 1,000 questions (unpriced last)."""

    def key(m: ModelReport) -> tuple[float, float, float, bool, float]:
        values = m.values()
        return (
            -(m.answer_accuracy or 0.0),
            -(values["abstain"] or 0.0),
            values["false_abstain"] or 0.0,
            m.cost_per_1000 is None,
            m.cost_per_1000 or 0.0,
        )

    return [m.model for m in sorted(models, key=key)]


def evaluate(
    settings: Settings,
    questions: Sequence[Question],
    options: EvalOptions,
    *,
    name: str,
    progress: Progress | None = None,
    meters: Meters | None = None,
) -> Report:
    """Evaluate a set with these settings: the one call the command line makes."""
    return Evaluator(settings, progress=progress, meters=meters).run(questions, options, name=name)
