"""The extractive model: the embedded default, no model weights, no network.

It answers with the retrieved sentences that cover the most of the question's content
words, cites each as [n], and abstains when no passage covers enough of the question.
Names that look like identifiers (``max_workers``, ``os.path``, ``ThreadGate``) weigh
double. A table row is read with its header row, a manual's option description with the
option it describes ("-x: When recording the commit, ..."), and a question asking for a
value ("how many", "which port", "default") whose best sentence states none also gets the
next sentence of that definition that does. Those two were calibrated on git's manual
(``bench/extractive_replay.py``; docs/evaluation.md).

It also abstains when the question names something no passage mentions: a proper noun
inside a sentence (``Kubernetes``, ``Unreal Engine``) or an identifier
(``asyncio.ThreadGate``, ``turbo_loads``). Questions about products and APIs a corpus
does not document share many ordinary words with it, so word coverage alone cannot tell
them from questions users phrase in their own words; the names they ask about can.
Version numbers (``3.11``, ``v1.2``) are values, not names, and do not count, nor do the
words of the user's setting (``Windows``, ``Linux``, ``PDF``, ``USB``): a manual answers
"I'm on Windows, how do I ..." without naming Windows. A passage mentions what its text,
its section path or its document's title says (a PDF manual's sections do not repeat its
title: "LaTeX News" > "Issue 32"), and the title and path count toward the coverage of
each of its sentences. A name counts as mentioned only by a passage at least 0.4 times as
similar to the question as the best one (when the retriever knows similarities): a keyword
hit that names the thing in passing, in a passage about something else, does not make a
question answerable.

Calibrated on the Python docs evaluation set only (``ragline eval``): with the name
check, coverage below 0.25 is the point where no answerable question is lost to the
coverage test alone, and every unanswerable one is still refused. There, the passages
that vouch for an answerable question's names are at least 0.84 (MiniLM) and 0.43 (the
hash embedder) times as similar as the best; with the hash embedder an unanswerable
question's name sits in a passage at 0.38. Hence 0.4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from ragline.llm.base import ChatModel, Completion, GenerationRequest, Passage, Usage
from ragline.tokens import count_tokens

if TYPE_CHECKING:
    from ragline.config import Settings

_WORD = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_NAME_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.'\u2019-]*(?:::[A-Za-z0-9_.]+)*")
# "the siunitx package", "the biber backend": the word before names the thing asked about.
_KIND_OF_THING = re.compile(
    r"\b([A-Za-z][A-Za-z0-9_.+-]*?)(?:['\u2019]s)?\s+(?:package|module|backend|plugin|extension)s?\b"
)
_NOT_A_THING_TEXT = """
    a an the this that which what my your our its their own standard third-party new other
    same external whole python built-in core
"""
_NOT_A_THING = frozenset(_NOT_A_THING_TEXT.split())
# The user's setting, not the subject: operating systems, everyday file formats and
# encodings, hardware ("I'm on Windows", "on a USB stick", "in the PDF it produced"). A
# manual answers such a question without naming them, so they are not names it must mention.
_SETTING_TEXT = """
    windows linux mac macos osx unix ubuntu debian android ios
    pdf html csv json xml yaml ascii unicode utf-8 utf8
    usb cpu gpu ram ssd
"""
_SETTING = frozenset(_SETTING_TEXT.split())
# Words that set a direction on a quantity: a sentence or table row with the opposite
# one answers another question ("over 6 hours" is not answered by "under 6 hours").
_MORE_TEXT = "over more above greater longer exceed exceeds exceeding larger higher"
_LESS_TEXT = "under less below fewer shorter smaller lower"
_MORE, _LESS = frozenset(_MORE_TEXT.split()), frozenset(_LESS_TEXT.split())
_CELL = " | "
# Questions whose answer is a number or a value: a sentence stating one answers them.
_ASKS_VALUE = re.compile(
    r"\bhow (?:many|long|much|often|large|big)\b|\bdefault|\b(?:which|what) (?:\w+ )?"
    r"(?:port|number|code|status|value|limit|size|timeout)s?\b"
)
_DIGIT = re.compile(r"\d")
_VERSION_IN_TEXT = re.compile(r"\bv?\d+(?:\.\d+)+\b")
_VERSION = re.compile(r"v?\d+(?:\.\d+)*")
# A line on its own that a definition follows: an option (``-x``, ``--sort=<key>``) or a
# dotted or bracketed name (``gc.auto``, ``<refname>``), as manuals' option lists print them.
_TERM = re.compile(r"-{1,2}[A-Za-z0-9@][^\s]{0,40}|(?=[^\s]*[._<@])[A-Za-z<@][^\s]{1,40}")
_PASSAGE_WORD = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers him his how i if in into is it its
    itself just me more most my no nor not of off on once only or other our out over own
    same she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why
    will with would you your yours get got use using used way want need there's what's it's
    i'm let lets tell show give please know much many also one ones thing things kind make
    makes
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _stem(word: str) -> str:
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)] + replacement
    return word


def _is_identifier(word: str) -> bool:
    return (
        "_" in word
        or "." in word
        or any(ch.isdigit() for ch in word)
        or (word[0].islower() is False and any(ch.isupper() for ch in word[1:]))
    )


def content_terms(text: str) -> dict[str, float]:
    """Stemmed content words of ``text`` with their weights (identifiers weigh double)."""
    terms: dict[str, float] = {}
    for raw in _WORD.findall(text):
        word = raw.lower()
        if word in _STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        if "." in word and _VERSION.fullmatch(word):  # a version is a value, weighed once
            terms[word] = 1.0
            continue
        if not _is_identifier(raw):
            stemmed = _stem(word)
            terms[stemmed] = max(terms.get(stemmed, 0.0), 1.0)
            continue
        # Identifiers match exactly (no stemming); dotted names also by their parts.
        terms[word] = 2.0
        for part in word.split(".") if "." in word else ():
            terms.setdefault(part, 1.0)
    return terms


def question_names(question: str) -> set[str]:
    """The names ``question`` asks about, lower-cased: capitalised words other than a
    sentence's first, and identifiers. Possessives are stripped; contractions, version
    numbers, single letters and the words of the user's setting (:data:`_SETTING`) are not
    names."""
    return set(_names(question))


def _names(question: str) -> dict[str, bool]:
    """:func:`question_names`, each with whether it may be a plural. An acronym written in
    capitals (``LFS``, ``HTTPS``) is not the plural of a shorter one (``LF``, ``HTTP``)."""
    names: dict[str, bool] = {}
    for sentence in re.split(r"(?<=[.!?])\s+", question):
        for position, raw in enumerate(_NAME_WORD.findall(sentence)):
            word = re.sub(r"['\u2019]s$", "", raw).rstrip(".'\u2019-")
            if len(word) < 2 or "'" in word or "\u2019" in word or _VERSION.fullmatch(word):
                continue
            if word.lower() in _SETTING:
                continue
            if (position > 0 and word[0].isupper()) or _is_identifier(word):
                names[word.lower()] = not word.isupper()
    return names


def _thing_names(question: str) -> dict[str, bool]:
    """Names that a kind of thing introduces ("the siunitx package"): such a word names
    something the passages must mention, even in lower case."""
    return {
        m.group(1).lower(): False
        for m in _KIND_OF_THING.finditer(question)
        if m.group(1).lower() not in _NOT_A_THING and len(m.group(1)) > 1
    }


def _direction(text: str) -> tuple[bool, bool]:
    words = set(re.findall(r"[a-z]+", text.lower()))
    return bool(words & _MORE), bool(words & _LESS)


def _mentions(words: set[str], name: str, plural: bool = True) -> bool:
    """Whether passage ``words`` mention ``name``: itself, its singular if ``plural``, for
    a dotted or hyphenated name its last part (``pathlib.Path`` is mentioned by ``Path``),
    or the same letters and digits however spelled (:func:`_passage_words`: ``UTF-8`` and
    ``utf8``, ``JavaScript`` and ``Java Script``, ``maxWorkers`` and ``max_workers``, a
    plural in the passage); a name of four or more capitals also by the initials of
    consecutive words (``FIFO``, "first-in, first-out")."""
    parts = [part for part in re.split(r"[.\-:]", name) if part]
    singular = plural and name.endswith("s") and name[:-1] in words
    if name in words or singular or (bool(parts) and parts[-1] in words):
        return True
    squashed = _squash(name)
    if len(squashed) < 2:
        return False
    if squashed in words or (plural and squashed.endswith("s") and squashed[:-1] in words):
        return True
    return len(squashed) >= 4 and squashed.isalpha() and _INITIALS + squashed in words


_INITIALS = "initials:"  # marks the passage forms that are initials, not words


def _squash(word: str) -> str:
    """``word`` in lower case without what is not a letter or a digit."""
    return re.sub(r"[^a-z0-9]", "", word.lower())


def _passage_words(texts: list[str]) -> set[str]:
    """The words of ``texts`` in lower case, with the forms a name may take in them: each
    dotted name's parts, each word (and each two neighbours) with only its letters and
    digits (``Xe(La)TeX`` also without what is in brackets), a plural's singular, and
    the initials of each run of four to six words, marked with :data:`_INITIALS`."""
    words: set[str] = set()
    for text in texts:
        lowered = text.lower()
        for match in _PASSAGE_WORD.findall(lowered):
            words.add(match)
            words.update(match.split("."))
            words.update(part for part in re.split(r"[.:]", match) if part)
        tokens = [token for token in lowered.split() if _squash(token)]
        squashed = [_squash(token) for token in tokens]
        for token, plain in zip(tokens, squashed, strict=True):
            words.add(plain)
            if "(" in token:
                words.add(_squash(re.sub(r"\([^)]*\)", "", token)))
            for suffix in ("s", "es"):
                if plain.endswith(suffix) and len(plain) > len(suffix) + 2:
                    words.add(plain[: -len(suffix)])
        words.update(a + b for a, b in pairwise(squashed))
        initials = [part[0] for token in tokens for part in re.split(r"[^a-z0-9]+", token) if part]
        for size in (4, 5, 6):
            words.update(
                _INITIALS + "".join(initials[i : i + size]) for i in range(len(initials) - size + 1)
            )
    return words


@dataclass(frozen=True)
class _Candidate:
    score: float
    rank: int
    position: int
    n: int
    sentence: str
    term: str = ""  # the term the sentence defines, said before it in the answer


class ExtractiveModel(ChatModel):
    """Answers with the best supporting sentences of the passages, cited as [n]."""

    provider = "extractive"
    model = "extractive"
    generative = False

    def __init__(
        self,
        *,
        min_coverage: float = 0.25,
        max_sentences: int = 3,
        name_relevance: float = 0.4,
        rank_discount: float = 0.05,
        value_boost: float = 1.0,
    ) -> None:
        self.min_coverage = min_coverage
        self.max_sentences = max_sentences
        self.name_relevance = name_relevance
        self.rank_discount = rank_discount
        self.value_boost = value_boost

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> ExtractiveModel:
        """``extractive``: no weights, nothing to configure."""
        return cls()

    def generate(self, request: GenerationRequest) -> Completion:
        text = self._answer(request)
        read = request.question + "".join(p.text for p in request.passages)
        usage = Usage(count_tokens(read), count_tokens(text), 0, estimated=True)
        return Completion(text, usage, self.provider, self.model)

    def _answer(self, request: GenerationRequest) -> str:
        question = content_terms(request.question)
        total = sum(question.values())
        if not question or not request.passages:
            return request.abstain_text

        def coverage(text: str) -> float:
            found = content_terms(text)
            return sum(w for term, w in question.items() if term in found) / total

        texts = [f"{_heading(p)} {p.text}" for p in request.passages]
        words = _passage_words(
            [f"{_heading(p)} {p.text}" for p in self._vouching(request.passages)]
        )
        names = {**_thing_names(request.question), **_names(request.question)}
        if any(not _mentions(words, name, plural) for name, plural in names.items()):
            return request.abstain_text
        if max(coverage(text) for text in texts) < self.min_coverage:
            return request.abstain_text

        asked = _direction(request.question)
        wants_value = bool(_ASKS_VALUE.search(request.question.lower()))
        candidates: list[_Candidate] = []
        units = {passage.n: _units(passage.text) for passage in request.passages}
        for rank, passage in enumerate(request.passages):
            for position, (sentence, context, term) in enumerate(units[passage.n]):
                if len(sentence) < 12:
                    continue
                # The title and section path (and a row's header) count toward the sentence.
                heading = f"{_heading(passage)} {context}"
                score = 0.8 * coverage(sentence) + 0.2 * coverage(f"{heading} {sentence}")
                if score <= 0:
                    continue
                more, less = _direction(sentence)
                if (asked[0] and less and not more) or (asked[1] and more and not less):
                    score *= 0.5  # the other side of the question's bound
                if wants_value and _DIGIT.search(sentence):
                    score *= self.value_boost
                # Among equally covering sentences, the better-ranked passage's first.
                score *= 1 - self.rank_discount * rank
                candidates.append(_Candidate(score, rank, position, passage.n, sentence, term))
        if not candidates:
            return request.abstain_text
        candidates.sort(key=lambda c: (-c.score, c.rank, c.position))
        floor = max(0.2, candidates[0].score * 0.7)
        chosen: list[_Candidate] = []
        covered: set[str] = set()
        for candidate in candidates:
            if candidate.score < floor or len(chosen) == self.max_sentences:
                break
            # A further sentence must add a question word the answer lacks so far;
            # otherwise it repeats the first one or drifts to a neighbouring topic.
            terms = set(content_terms(candidate.sentence)) & question.keys()
            if chosen and not terms - covered:
                continue
            covered |= terms
            chosen.append(candidate)
        if not chosen:  # no sentence clears the floor: the passages answer only in pieces
            return request.abstain_text
        if wants_value and not _DIGIT.search(chosen[0].sentence):
            chosen = _with_value_after(chosen, units)[: self.max_sentences]
        return " ".join(
            f"{c.term + ': ' if c.term else ''}{_shorten(c.sentence)} [{c.n}]" for c in chosen
        )

    def _vouching(self, passages: tuple[Passage, ...]) -> list[Passage]:
        """The passages that may vouch for the question's names: those at least
        ``name_relevance`` times as similar to the question as the most similar one, and
        any whose similarity is unknown (all of them when none is known)."""
        known = [p.similarity for p in passages if p.similarity is not None]
        if not known or max(known) <= 0:
            return list(passages)
        floor = self.name_relevance * max(known)
        return [p for p in passages if p.similarity is None or p.similarity >= floor]


def _heading(passage: Passage) -> str:
    """The passage's document title and section path ("The Listings Package", "4.3
    Options"), the title once when the path already starts with it."""
    title = (passage.title or "").strip()
    if not title or passage.section.startswith(title):
        return passage.section
    return f"{title} > {passage.section}" if passage.section else title


def _with_value_after(
    chosen: list[_Candidate], units: dict[int, list[tuple[str, str, str]]]
) -> list[_Candidate]:
    """``chosen`` with, after the best sentence, the next one of its passage (of the two
    that follow it in the same definition) that states a number: "When there are more
    than this many loose objects, ... The default value is 6700." """
    best = chosen[0]
    following = units[best.n][best.position + 1 : best.position + 3]
    for offset, (sentence, _context, term) in enumerate(following, start=1):
        if term == best.term and _states_value(sentence):
            value = _Candidate(best.score, best.rank, best.position + offset, best.n, sentence)
            return [best, value, *chosen[1:]]
    return chosen


def _states_value(sentence: str) -> bool:
    """Whether ``sentence`` states a number other than a version ("The default value is
    6700."), not a reference ("See 33725.") or a version note ("3.11 Instead of ...")."""
    return len(sentence.split()) >= 4 and bool(_DIGIT.search(_VERSION_IN_TEXT.sub("", sentence)))


def _units(text: str) -> list[tuple[str, str, str]]:
    """A passage's candidate answers, each with what introduces it: sentences (nothing),
    each row of a table (its lines joined by " | ") read with its header row as
    "column: value" pairs, the header line itself the context, and the sentences of a
    definition read with the term they define ("-x: When recording the commit, ..."),
    the term the context."""
    units: list[tuple[str, str, str]] = []
    terms: list[str] = []  # the term lines just read, then the term being defined
    defining = ""
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in paragraph.split("\n") if line.strip()]
        if len(lines) == 1 and _TERM.fullmatch(lines[0]):
            terms.append(lines[0])
            continue
        if terms:
            defining, terms = ", ".join(terms), []
        rows = [line for line in lines if _CELL in line]
        if len(rows) < 2:
            for sentence in _SENTENCE_SPLIT.split(paragraph):
                units.append((" ".join(sentence.split()), defining, defining))
            continue
        header = rows[0].split(_CELL)
        for line in lines:
            if _CELL not in line:
                units.append((" ".join(line.split()), "", ""))
            elif line is not rows[0]:
                cells = line.split(_CELL)
                if len(cells) == len(header):
                    pairs = [
                        f"{h.strip()}: {c.strip()}" for h, c in zip(header, cells, strict=True)
                    ]
                    row = "; ".join(p for p in pairs if not p.endswith(": "))
                    units.append((row, rows[0], ""))
                else:
                    units.append((" ".join(line.split()), rows[0], ""))
    return units


def _shorten(sentence: str, limit: int = 60) -> str:
    words = sentence.split()
    return sentence if len(words) <= limit else " ".join(words[:limit]) + " …"
