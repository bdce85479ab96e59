"""Prompt templates: versioned files with declared variables, checked when loaded.

A template lives at ``templates/<id>/<version>.toml`` (or in ``RAGLINE_PROMPTS_DIR``, which
is searched first) with ``id``, ``version``, ``variables``, ``system`` and ``user``, and
optionally ``abstain`` (the exact reply meaning "the context does not answer this").
Placeholders are ``{name}``; literal braces are written ``{{`` and ``}}``.
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ragline.errors import ConfigurationError

PACKAGED_TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_ABSTAIN = "The documents do not answer this."


@dataclass(frozen=True)
class RenderedPrompt:
    system: str
    user: str
    ref: str


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    version: str
    variables: tuple[str, ...]
    system: str
    user: str
    abstain: str = DEFAULT_ABSTAIN
    description: str = ""

    @property
    def ref(self) -> str:
        """``id@version``, as recorded in responses, logs and metrics."""
        return f"{self.id}@{self.version}"

    def render(self, **values: str) -> RenderedPrompt:
        """Fill the declared variables; every one must be given, and no others."""
        missing = set(self.variables) - values.keys()
        unknown = values.keys() - set(self.variables)
        if missing or unknown:
            raise ValueError(
                f"prompt {self.ref}: missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        return RenderedPrompt(
            self.system.format(**values).strip(), self.user.format(**values).strip(), self.ref
        )


def _placeholders(text: str) -> set[str]:
    names = set()
    for _, field, _, _ in string.Formatter().parse(text):
        if field is not None:
            names.add(field)
    return names


def parse_template(text: str, origin: str) -> PromptTemplate:
    """Parse and check a template; ConfigurationError names the offending variable."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"prompt template {origin}: invalid TOML: {exc}") from exc
    for key in ("id", "version", "variables", "system", "user"):
        if key not in data:
            raise ConfigurationError(f"prompt template {origin}: missing {key!r}")
    declared = tuple(data["variables"])
    try:
        used = _placeholders(data["system"]) | _placeholders(data["user"])
    except ValueError as exc:
        raise ConfigurationError(f"prompt template {origin}: {exc}") from exc
    for name in sorted(used):
        if not name.isidentifier():
            raise ConfigurationError(
                f"prompt template {origin}: placeholder {{{name}}} is not a plain variable name"
            )
        if name not in declared:
            raise ConfigurationError(
                f"prompt template {origin}: variable {name!r} is used but not declared "
                f"in variables = {list(declared)}"
            )
    for name in declared:
        if name not in used:
            raise ConfigurationError(
                f"prompt template {origin}: variable {name!r} is declared but never used"
            )
    return PromptTemplate(
        id=str(data["id"]),
        version=str(data["version"]),
        variables=declared,
        system=data["system"],
        user=data["user"],
        abstain=str(data.get("abstain", DEFAULT_ABSTAIN)),
        description=str(data.get("description", "")),
    )


def _candidates(template_id: str, extra_dir: Path | None) -> list[Path]:
    dirs = [d for d in (extra_dir, PACKAGED_TEMPLATES) if d is not None]
    return [d / template_id for d in dirs if (d / template_id).is_dir()]


@lru_cache(maxsize=64)
def load_prompt(ref: str, extra_dir: Path | None = None) -> PromptTemplate:
    """Load ``id@version`` (or ``id`` for its latest version) and check it."""
    template_id, _, version = ref.partition("@")
    for directory in _candidates(template_id, extra_dir):
        files = sorted(directory.glob("*.toml"), key=lambda p: (len(p.stem), p.stem))
        if version:
            files = [f for f in files if f.stem == version]
        if files:
            template = parse_template(files[-1].read_text("utf-8"), str(files[-1]))
            if template.id != template_id or template.version != files[-1].stem:
                raise ConfigurationError(
                    f"prompt template {files[-1]}: id/version must match its path "
                    f"({template_id}@{files[-1].stem})"
                )
            return template
    raise ConfigurationError(
        f"unknown prompt template {ref!r}; known: {', '.join(known_prompts(extra_dir))}"
    )


def known_prompts(extra_dir: Path | None = None) -> list[str]:
    refs = set()
    for directory in (d for d in (extra_dir, PACKAGED_TEMPLATES) if d is not None and d.is_dir()):
        for file in directory.glob("*/*.toml"):
            refs.add(f"{file.parent.name}@{file.stem}")
    return sorted(refs)
