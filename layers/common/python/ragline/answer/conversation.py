"""Conversations: the turns before a follow-up, and its rewrite into a search query.

A follow-up ("And for kayaks?") searches badly on its own. Before retrieval it is
rewritten into a standalone query that names its subject:

* by the ``condense`` profile's model (``task = "condense"``, template ``condense@v1``),
  the cheapest that can, reading the recent turns;
* or, without a generative model (the extractive default), when that model fails or
  answers nothing usable, by :func:`standalone_query`, a deterministic rewrite: a
  follow-up that leans on the conversation (a pronoun such as "it" or "those", a lead
  such as "and" or "what about", or fewer than three words of its own) gets the key
  terms of the previous search query appended in parentheses, so the search sees the
  subject. A question that stands alone is left as it is.

The answer prompt carries the most recent turns that fit in ``RAGLINE_HISTORY_TOKENS``
(:func:`recent`), so the model reads the follow-up in its context.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ragline.errors import ModelError, ModelUnavailableError
from ragline.llm import GenerationRequest
from ragline.tokens import count_tokens

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ragline.answer.routing import Route
    from ragline.llm import Completion
    from ragline.store import StoredTurn

logger = logging.getLogger("ragline.answer")

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    text: str


@dataclass(frozen=True)
class Conversation:
    """The turns before a question, oldest first, and the search query of the last
    question among them (its rewrite, when a session kept it)."""

    messages: tuple[Message, ...] = ()
    session_id: str | None = None
    previous_query: str | None = None

    @classmethod
    def from_session(cls, session_id: str, turns: Sequence[StoredTurn]) -> Conversation:
        messages = []
        for turn in turns:
            messages += [Message("user", turn.question), Message("assistant", turn.answer)]
        previous = turns[-1].search_query if turns else None
        return cls(tuple(messages), session_id, previous)

    @classmethod
    def from_history(cls, history: Sequence[tuple[Role, str]], max_turns: int) -> Conversation:
        """A caller-kept history: its last ``max_turns`` turns (a turn: a user message and
        the answer to it)."""
        messages = tuple(Message(role, text) for role, text in history)
        users = [i for i, m in enumerate(messages) if m.role == "user"]
        if len(users) > max_turns:
            messages = messages[users[-max_turns] :]
        previous = next((m.text for m in reversed(messages) if m.role == "user"), None)
        return cls(messages, None, previous)

    @property
    def follows_up(self) -> bool:
        """Whether the question comes after earlier turns (and so gets a rewrite)."""
        return any(m.role == "user" for m in self.messages)


def recent(messages: Sequence[Message], budget_tokens: int) -> tuple[Message, ...]:
    """The latest messages whose tokens fit in ``budget_tokens``, oldest first: the
    conversation an answer or a rewrite prompt carries."""
    kept: list[Message] = []
    spent = 0
    for message in reversed(messages):
        spent += count_tokens(message.text)
        if spent > budget_tokens:
            break
        kept.append(message)
    return tuple(reversed(kept))


def format_history(messages: Sequence[Message]) -> str:
    """The turns as the condense prompt reads them, one ``User:``/``Assistant:`` line each."""
    return "\n".join(f"{m.role.capitalize()}: {' '.join(m.text.split())}" for m in messages)


# --- the deterministic rewrite ----------------------------------------------------------------

# Words that stand for something said before ("that", "one" and "there" are left out:
# in a question they are more often a relative pronoun, a number or "is there" than that).
PRONOUNS = frozenset(
    ("it", "its", "itself", "they", "them", "their", "theirs", "themselves", "this", "these",
     "those", "he", "him", "his", "she", "her", "hers")
)  # fmt: skip
# Openings of a question that continues the previous one.
LEADS = (
    "and what about", "and how about", "what about", "how about", "and for", "and", "also",
    "but", "or", "then", "same for", "what of",
)  # fmt: skip
# Words that carry no subject: function words, question words, auxiliaries.
STOPWORDS = PRONOUNS | frozenset(
    ("a", "an", "the", "and", "or", "but", "if", "then", "so", "of", "to", "in", "on", "at",
     "by", "for", "with", "from", "into", "about", "as", "than", "what", "which", "who",
     "whom", "whose", "when", "where", "why", "how", "is", "are", "was", "were", "be", "been",
     "being", "am", "do", "does", "did", "done", "doing", "have", "has", "had", "having",
     "can", "could", "will", "would", "shall", "should", "may", "might", "must", "i", "me",
     "my", "we", "us", "our", "you", "your", "not", "no", "yes", "any", "all", "some", "more",
     "most", "much", "many", "very", "also", "just", "too", "here", "please", "tell", "know",
     "need", "want", "get", "give", "show", "explain", "describe", "list", "question",
     "answer", "that", "one", "ones", "there", "such", "same")
)  # fmt: skip
MAX_CARRIED_TERMS = 8
_WORD = re.compile(r"[\w][\w.'-]*[\w]|[\w]", re.UNICODE)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _content_words(text: str) -> list[str]:
    return [w for w in _words(text) if w not in STOPWORDS]


def leans_on_context(question: str) -> bool:
    """Whether a follow-up needs the conversation to be understood: it opens with a lead
    ("and", "what about"), uses a pronoun, or has fewer than three words of its own."""
    lowered = " ".join(_words(question))
    if any(lowered == lead or lowered.startswith(lead + " ") for lead in LEADS):
        return True
    if any(word in PRONOUNS for word in _words(question)):
        return True
    return len(_content_words(question)) < 3


def key_terms(text: str, *, leave_out: Sequence[str] = ()) -> list[str]:
    """The words of ``text`` that carry its subject, in order, each once, at most
    :data:`MAX_CARRIED_TERMS`, without those in ``leave_out``."""
    seen = set(leave_out)
    terms = []
    for word in _content_words(text):
        if word not in seen:
            seen.add(word)
            terms.append(word)
    return terms[:MAX_CARRIED_TERMS]


def standalone_query(question: str, previous: str | None) -> str:
    """The deterministic rewrite: ``question`` with the key terms of the ``previous``
    search query appended in parentheses when it leans on the conversation (see
    :func:`leans_on_context`); otherwise ``question`` itself.

    ``standalone_query("And for kayaks?", "What does the deposit cost?")`` is
    ``"And for kayaks? (deposit cost)"``.
    """
    question = " ".join(question.split())
    if not previous or not leans_on_context(question):
        return question
    carried = key_terms(previous, leave_out=_content_words(question))
    if not carried:
        return question
    return f"{question} ({' '.join(carried)})"


# --- the rewrite ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rewrite:
    """The query a question is searched for: itself, or its rewrite as a follow-up.

    ``method`` is None for a question with no turns before it; ``completion`` is the
    condense model's call (priced on its own), also when its answer was not used.
    """

    query: str
    method: Literal["model", "fallback"] | None = None
    completion: Completion | None = None
    prompt: str | None = None


class Condenser:
    """Rewrites follow-ups: with the condense route's model when it is generative, else
    (and when the model fails) with :func:`standalone_query`."""

    def __init__(
        self, route: Route | None, *, history_tokens: int, max_question_chars: int
    ) -> None:
        self.route = route
        self.history_tokens = history_tokens
        self.max_question_chars = max_question_chars

    @property
    def uses_model(self) -> bool:
        return self.route is not None and self.route.chain.primary.generative

    def rewrite(self, question: str, conversation: Conversation) -> Rewrite:
        if not conversation.follows_up:
            return Rewrite(question)
        fallback = standalone_query(question, conversation.previous_query)
        if self.route is None or not self.uses_model:
            return Rewrite(fallback, "fallback")
        route = self.route
        history = format_history(recent(conversation.messages, self.history_tokens))
        values = {"question": question, "history": history}
        rendered = route.prompt.render(**{name: values[name] for name in route.prompt.variables})
        request = GenerationRequest(
            system=rendered.system,
            user=rendered.user,
            question=question,
            passages=(),
            abstain_text="",
            max_tokens=128,
        )
        try:
            completion = route.chain.generate(request)
        except (ModelError, ModelUnavailableError) as exc:  # the answer still comes
            logger.warning("the condense model failed (%s); using the deterministic rewrite", exc)
            return Rewrite(fallback, "fallback")
        query = _one_line(completion.text)
        if not query or len(query) > self.max_question_chars:
            logger.warning("the condense model wrote no usable query; using the deterministic one")
            return Rewrite(fallback, "fallback", completion)
        return Rewrite(query, "model", completion, route.prompt.ref)


def _one_line(text: str) -> str:
    """The model's query: its first non-empty line, without a label or quotes around it."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = re.sub(r"^(standalone )?(search )?(query|question)\s*:\s*", "", line, flags=re.I)
    return line.strip().strip("\"'`").strip()
