"""Evaluation sets and corpora: the questions, the files to ingest, and where a
retrieved chunk came from.

A set is JSON lines, one question each::

    {"id": "py-01", "question": "...", "gold": ["library/tomllib.rst.txt"],
     "answer": "...", "must_contain": ["tomllib"]}

``gold`` lists paths relative to the corpus directory; an empty list means the corpus
does not answer the question and the right behaviour is to abstain. Keys beyond these
are kept; ``pages`` (1-based page numbers of the gold files, as in the PDF set) adds a
page-level hit@5.

A multi-turn case gives ``turns`` instead of ``question``: the user's questions of a
conversation, oldest first; the last is the one asked, and ``gold`` (and the rest) are
for it::

    {"id": "conv-01", "turns": ["How do I stash my changes?", "And untracked files too?"],
     "gold": ["git-stash.html"], "must_contain": ["-u"]}
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ragline.errors import ConfigurationError

# Licence texts shipped beside a corpus: not documents, never ingested.
NOT_DOCUMENTS = ("COPYRIGHT", "LICENSES")
# Sources of an evaluation corpus: independent of where the corpus sits on disk, so a
# moved checkout reuses the collection, and unique per collection (sources are unique
# in the store).
SOURCE_SCHEME = "eval://"


@dataclass(frozen=True)
class Question:
    """One question of a set, with what a right answer must do."""

    id: str
    question: str
    gold: tuple[str, ...]
    answer: str = ""
    must_contain: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    # A multi-turn case: the user's earlier questions, oldest first (``question`` is the
    # last turn).
    turns: tuple[str, ...] = ()

    @property
    def follows_up(self) -> bool:
        return bool(self.turns)

    @property
    def answerable(self) -> bool:
        return bool(self.gold)

    @property
    def pages(self) -> tuple[int, ...]:
        """The gold pages (PDF sets), or () when the set gives none."""
        pages = self.extra.get("pages", ())
        return tuple(p for p in pages if isinstance(p, int)) if isinstance(pages, list) else ()


def _strings(value: Any, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(f"{where}: {key!r} must be a list of non-empty strings")
    return tuple(value)


def parse_question(line: str, where: str) -> Question:
    """One JSON line as a Question; ConfigurationError says which line and what is wrong."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{where}: not JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: each line is a JSON object")
    turns: tuple[str, ...] = ()
    if "turns" in data:
        if "question" in data:
            raise ConfigurationError(f"{where}: give 'question' or 'turns', not both")
        turns = _strings(data["turns"], "turns", where)
        if len(turns) < 2:
            raise ConfigurationError(f"{where}: 'turns' needs at least two questions")
        data = {**data, "question": turns[-1]}
        turns = turns[:-1]
    for key in ("id", "question"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ConfigurationError(f"{where}: {key!r} must be a non-empty string")
    if "gold" not in data:
        raise ConfigurationError(f"{where}: 'gold' is missing ([] when the answer is to abstain)")
    answer = data.get("answer", "")
    if not isinstance(answer, str):
        raise ConfigurationError(f"{where}: 'answer' must be a string")
    known = {"id", "question", "gold", "answer", "must_contain", "turns"}
    return Question(
        id=data["id"],
        question=data["question"],
        gold=tuple(str(PurePosixPath(g)) for g in _strings(data["gold"], "gold", where)),
        answer=answer,
        must_contain=_strings(data.get("must_contain", []), "must_contain", where),
        extra={k: v for k, v in data.items() if k not in known},
        turns=turns,
    )


def load_questions(path: Path) -> list[Question]:
    """The questions of a JSON-lines set; blank lines are skipped, ids must be unique."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"evaluation set {path}: {exc.strerror or exc}") from exc
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        question = parse_question(line, f"{path}:{number}")
        if question.id in seen:
            raise ConfigurationError(f"{path}:{number}: id {question.id!r} appears twice")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise ConfigurationError(f"evaluation set {path} has no questions")
    return questions


def select_questions(
    questions: list[Question],
    *,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> tuple[list[Question], str | None]:
    """The questions to run and how they were chosen (None: all of them): the first
    ``limit``, or ``sample`` drawn at random with ``seed`` (the same seed, the same
    questions), kept in the set's order. Asking for more than the set holds runs it all."""
    if limit is not None and sample is not None:
        raise ConfigurationError("give --limit or --sample, not both")
    wanted = limit if limit is not None else sample
    if wanted is None:
        return questions, None
    if wanted < 1:
        raise ConfigurationError(f"--{'limit' if limit is not None else 'sample'} must be >= 1")
    if wanted >= len(questions):
        return questions, None
    if limit is not None:
        return questions[:limit], f"first {limit} of {len(questions)}"
    chosen = sorted(random.Random(seed).sample(range(len(questions)), wanted))
    return [questions[i] for i in chosen], f"{wanted} of {len(questions)} at random (seed {seed})"


def corpus_files(corpus: Path) -> list[Path]:
    """The corpus's documents, sorted: every file under it except hidden ones and the
    licence texts (``COPYRIGHT``, ``LICENSES/``)."""
    if not corpus.is_dir():
        raise ConfigurationError(f"corpus {corpus} is not a directory")
    files = []
    for path in sorted(corpus.rglob("*")):
        parts = path.relative_to(corpus).parts
        if not path.is_file() or any(part.startswith(".") for part in parts):
            continue
        if parts[0] in NOT_DOCUMENTS:
            continue
        files.append(path)
    if not files:
        raise ConfigurationError(f"corpus {corpus} holds no documents")
    return files


def fingerprint(corpus: Path, files: list[Path], *, embedder: str, chunking: str) -> str:
    """A digest of what the collection's contents depend on: every file's relative path
    and content hash, the embedder and the chunk settings."""
    digest = hashlib.sha256()
    for path in files:
        relative = path.relative_to(corpus).as_posix()
        digest.update(f"{relative}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    digest.update(f"embedder={embedder}\nchunking={chunking}\n".encode())
    return digest.hexdigest()


def collection_name(corpus: Path, digest: str) -> str:
    """``eval-<corpus directory>-<12 hex digits>``, within the API's collection pattern."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", corpus.resolve().name).strip("-.")[:40] or "corpus"
    return f"eval-{stem}-{digest[:12]}"


def source_for(collection: str, relative: str) -> str:
    """The source a corpus file is stored under."""
    return f"{SOURCE_SCHEME}{collection}/{relative}"


def document_of(source: str, collection: str | None) -> str:
    """The corpus-relative path a retrieved chunk's source names.

    Sources written by :func:`source_for` give their relative path back. Other sources
    (a collection ingested from S3 or with ``ragline ingest``) are returned whole, and
    :func:`matches_gold` compares gold paths with their endings.
    """
    source = source.split("#", 1)[0]
    if collection is not None:
        prefix = source_for(collection, "")
        if source.startswith(prefix):
            return source[len(prefix) :]
    return source


def matches_gold(document: str, gold: tuple[str, ...]) -> str | None:
    """The gold path ``document`` is, exactly or as the ending of a longer source
    (``s3://bucket/library/tomllib.rst.txt`` is ``library/tomllib.rst.txt``); or None."""
    for path in gold:
        if document == path or document.endswith("/" + path):
            return path
    return None
