"""Routing profiles: which models, prompt and retrieval rules serve a kind of question.

A profile file (the packaged ``profiles.toml``, or ``RAGLINE_PROFILES_FILE``) has one
``[profiles.<name>]`` table per profile with ``llm``, ``prompt``, ``top_k``,
``min_score``, ``require_citations``, ``review``, ``hold`` and ``description``, all optional.
``llm`` is a ``provider:model`` string, or ``@<setting>``: the model setting of that name
(``@reasoning_llm`` is ``RAGLINE_REASONING_LLM``), or ``llm`` when that setting is unset.
Omitted or empty, it is ``llm`` (``RAGLINE_LLM``). So a deployment swaps models by
configuration alone, and the settings are the one place a profile's model comes from.

Everything a profile names is built and checked at cold start: its models (with the
``RAGLINE_LLM_FALLBACK`` chain behind them) and its prompt template, so a typo fails the
deployment, not the first request that picks the profile.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragline.config import variable
from ragline.errors import ConfigurationError, InvalidRequestError
from ragline.llm import ChatModel, ModelChain, RetryPolicy, create_model
from ragline.prompts import PromptTemplate, load_prompt

if TYPE_CHECKING:
    from ragline.config import Settings

# The packaged file sits at the package root, where docs/models.md points.
PACKAGED_PROFILES = Path(__file__).resolve().parents[1] / "profiles.toml"
DEFAULT_PROMPT = "answer@v2"
# The variables the answer use case fills; a template may use any of them, no others.
ANSWER_VARIABLES = ("question", "context")
# What a profile does: answer questions (the default), or rewrite a follow-up into a
# standalone search query (``task = "condense"``: at most one profile, never a request's).
TASKS = ("answer", "condense")
CONDENSE_VARIABLES = ("history", "question")
# Profile names a request can carry (the pattern of QueryRequest.profile).
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# An llm value naming a setting, and the ${NAME} form profiles used before.
SETTING_PREFIX = "@"
_EXPANSION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Profile:
    """One profile as configured, with ``llm`` resolved to a ``provider:model`` string."""

    name: str
    llm: str
    prompt: str = DEFAULT_PROMPT
    top_k: int | None = None
    min_score: float | None = None
    require_citations: bool = False
    review: bool = False
    # Hold the answer until a person approves or corrects it: /query answers 202 with a
    # review id, GET /reviews/{id} the reviewed answer (ragline.reviews).
    hold: bool = False
    description: str = ""
    task: str = "answer"

    @property
    def streams_text(self) -> bool:
        """Whether a streamed answer sends its text as it is written. A profile requiring
        citations does not: its guard may withhold the whole answer once it is complete
        (an answer citing nothing becomes the abstention), and text already sent cannot
        be taken back. Its stream carries the retrieval, then the checked final answer."""
        return not (self.require_citations or self.hold)


# key -> the TOML types it accepts (bool is not an int here, however Python sees it).
_KEYS: dict[str, tuple[type, ...]] = {
    "llm": (str,),
    "prompt": (str,),
    "top_k": (int,),
    "min_score": (int, float),
    "require_citations": (bool,),
    "review": (bool,),
    "hold": (bool,),
    "description": (str,),
    "task": (str,),
}


def model_settings(settings: Settings) -> tuple[str, ...]:
    """The settings a profile's ``llm`` may name: those holding a ``provider:model``."""
    names = type(settings).model_fields
    return tuple(name for name in names if name == "llm" or name.endswith("_llm"))


def _instead_of_expansion(value: str, settings: Settings) -> str:
    """What to write instead of a ``${NAME}`` reference, for the error that refuses it."""
    match = _EXPANSION.search(value)
    name, default = (match.group(1), (match.group(2) or "").strip()) if match else ("", "")
    references = [f"{SETTING_PREFIX}{setting}" for setting in model_settings(settings)]
    for setting, reference in zip(model_settings(settings), references, strict=True):
        if variable(setting) == name:
            return f'llm = "{reference}"'
    settings_named = ", ".join(f'"{reference}"' for reference in references)
    literal = f'llm = "{default}"' if default else "the provider:model itself"
    return f"{literal}, or a setting: {settings_named}"


def resolve_llm(value: str, settings: Settings) -> str:
    """A profile's ``llm`` as a ``provider:model``: itself, the setting an ``@<setting>``
    names (``llm`` when that setting is unset), or ``llm`` when empty. ValueError says
    what is wrong with a reference."""
    value = value.strip()
    if "${" in value:
        raise ValueError(
            f"llm = {value!r}: profiles no longer read environment variables; "
            f"write {_instead_of_expansion(value, settings)}"
        )
    if not value.startswith(SETTING_PREFIX):
        return value or settings.llm
    name = value.removeprefix(SETTING_PREFIX)
    known = model_settings(settings)
    if name not in known:
        raise ValueError(f"llm = {value!r} names no model setting; known: {', '.join(known)}")
    chosen = getattr(settings, name)
    return chosen or settings.llm


def _profile(name: str, table: Any, origin: str, settings: Settings) -> Profile:
    where = f"profile file {origin}: profile {name!r}"
    if not _NAME.match(name):
        raise ConfigurationError(f"{where}: names are lowercase letters, digits, - and _")
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where} must be a table of settings")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(_KEYS))}"
        )
    for key, value in table.items():
        allowed = _KEYS[key]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ConfigurationError(f"{where}: {key} has the wrong type ({value!r})")
    top_k = table.get("top_k")
    if top_k is not None and not 1 <= top_k <= settings.max_top_k:
        limit = settings.max_top_k
        raise ConfigurationError(f"{where}: top_k must be 1..{limit} (RAGLINE_MAX_TOP_K)")
    min_score = table.get("min_score")
    if min_score is not None and not -1.0 <= min_score <= 1.0:
        raise ConfigurationError(f"{where}: min_score is a cosine similarity, -1..1")
    task = table.get("task", "answer")
    if task not in TASKS:
        raise ConfigurationError(f"{where}: task must be one of {', '.join(TASKS)} ({task!r})")
    try:
        llm = resolve_llm(table.get("llm", ""), settings)
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    return Profile(
        name=name,
        llm=llm,
        prompt=table.get("prompt", DEFAULT_PROMPT),
        top_k=top_k,
        min_score=None if min_score is None else float(min_score),
        require_citations=table.get("require_citations", False),
        review=table.get("review", False) or table.get("hold", False),
        hold=table.get("hold", False),
        description=table.get("description", ""),
        task=task,
    )


def parse_profiles(text: str, origin: str, settings: Settings) -> dict[str, Profile]:
    """Parse and check a profile file; ConfigurationError names what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"profile file {origin}: invalid TOML: {exc}") from exc
    tables = data.get("profiles")
    if not isinstance(tables, dict) or not tables:
        raise ConfigurationError(f"profile file {origin}: no [profiles.<name>] tables")
    profiles = {name: _profile(name, table, origin, settings) for name, table in tables.items()}
    condensers = [name for name, profile in profiles.items() if profile.task == "condense"]
    if len(condensers) > 1:
        raise ConfigurationError(
            f"profile file {origin}: one profile may condense follow-ups; "
            f'{", ".join(condensers)} all have task = "condense"'
        )
    return profiles


def load_profiles(settings: Settings) -> dict[str, Profile]:
    """The profiles of ``RAGLINE_PROFILES_FILE``, or the packaged ones."""
    path = settings.profiles_file or PACKAGED_PROFILES
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigurationError(f"profile file {path} (RAGLINE_PROFILES_FILE): {exc}") from exc
    return parse_profiles(text, str(path), settings)


def check_answer_template(template: PromptTemplate, profile: str) -> PromptTemplate:
    """A template an answer can fill: it declares no variable beyond ANSWER_VARIABLES."""
    for name in template.variables:
        if name not in ANSWER_VARIABLES:
            raise ConfigurationError(
                f"prompt template {template.ref} (profile {profile!r}) declares variable "
                f"{name!r}; answers supply only {', '.join(ANSWER_VARIABLES)}"
            )
    return template


def check_condense_template(template: PromptTemplate, profile: str) -> PromptTemplate:
    """A template a follow-up's rewrite can fill: ``question``, and ``history`` at most."""
    unknown = [name for name in template.variables if name not in CONDENSE_VARIABLES]
    if unknown or "question" not in template.variables:
        raise ConfigurationError(
            f"prompt template {template.ref} (profile {profile!r}, task condense) must "
            f"declare question, and may declare history; it declares "
            f"{', '.join(template.variables) or 'nothing'}"
        )
    return template


@dataclass(frozen=True)
class Route:
    """A profile made ready to serve: its model chain and its checked template."""

    profile: Profile
    chain: ModelChain
    prompt: PromptTemplate

    @property
    def name(self) -> str:
        return self.profile.name


@dataclass(frozen=True)
class Router:
    """The routes by profile name, and the one a request without a profile takes."""

    routes: dict[str, Route]
    default_name: str
    models: dict[str, ChatModel] = field(default_factory=dict)
    # The profile with task = "condense", which rewrites follow-ups; None: no such profile
    # (follow-ups get the deterministic rewrite). Never a route a request can name.
    condenser: Route | None = None

    def __post_init__(self) -> None:
        if self.default_name not in self.routes:
            raise ConfigurationError(
                f"RAGLINE_DEFAULT_PROFILE={self.default_name!r} is not a profile; "
                f"known: {', '.join(sorted(self.routes))}"
            )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        models: Mapping[str, ChatModel] | None = None,
    ) -> Router:
        """Build every profile's models and template (cold start). ``models`` supplies
        ready instances by ``provider:model`` (tests register fakes this way)."""
        built: dict[str, ChatModel] = dict(models or {})
        retry = RetryPolicy.from_settings(settings)
        routes, condenser = {}, None
        for profile in load_profiles(settings).values():
            chain = []
            for spec in dict.fromkeys((profile.llm, *settings.llm_fallback)):
                if spec not in built:
                    built[spec] = create_model(spec, settings)
                chain.append(built[spec])
            template = load_prompt(profile.prompt, settings.prompts_dir)
            route = Route(profile, ModelChain(tuple(chain), retry), template)
            if profile.task == "condense":
                check_condense_template(template, profile.name)
                condenser = route
            else:
                check_answer_template(template, profile.name)
                routes[profile.name] = route
        return cls(routes, settings.default_profile, built, condenser)

    @classmethod
    def single(cls, settings: Settings, model: ChatModel, prompt: PromptTemplate) -> Router:
        """One route, for one model and template (the default profile's name)."""
        profile = Profile(settings.default_profile, model.spec, prompt.ref)
        chain = ModelChain((model,), RetryPolicy.from_settings(settings))
        route = Route(profile, chain, check_answer_template(prompt, profile.name))
        return cls({profile.name: route}, profile.name, {model.spec: model})

    @property
    def default(self) -> Route:
        return self.routes[self.default_name]

    def route(self, name: str | None) -> Route:
        """The route for ``name`` (the default when None); 400 for an unknown name."""
        if name is None:
            return self.default
        route = self.routes.get(name)
        if route is None:
            raise InvalidRequestError(
                f"unknown profile {name!r}; known: {', '.join(sorted(self.routes))}"
            )
        return route
