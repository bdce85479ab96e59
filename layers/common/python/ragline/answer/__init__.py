"""The answer use case: questions answered from the store, grounded and cited.

``routing`` turns the profile file into routes (model chain, template, retrieval rules),
``guard`` keeps answers grounded in the passages they cite, ``responses`` maps chunks to
what the API returns, ``events`` is what a streamed answer sends, and ``answerer``
composes them.
"""

from __future__ import annotations

from ragline.answer.answerer import Answerer, Reviewable, ReviewHook, get_answerer
from ragline.answer.conversation import Role, standalone_query
from ragline.answer.events import Answered, AnswerEvent, Failed, Retrieved, TextDelta
from ragline.answer.guard import is_abstention
from ragline.answer.responses import format_context
from ragline.answer.routing import Profile, Route, Router

__all__ = [
    "AnswerEvent",
    "Answered",
    "Answerer",
    "Failed",
    "Profile",
    "Retrieved",
    "ReviewHook",
    "Reviewable",
    "Role",
    "Route",
    "Router",
    "TextDelta",
    "format_context",
    "get_answerer",
    "is_abstention",
    "standalone_query",
]
