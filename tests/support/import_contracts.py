"""Two import-linter contract types the stock ones lack (configured in pyproject.toml).

- ``allow_list``: a module may import, of the watched packages, only what is listed for it.
  The handlers' rule ("use cases, ledger, api, schemas, config, telemetry.tracing") is an
  allow-list: a package added to the library later is out of bounds for them until
  someone draws the arrow.
- ``dynamic_imports``: grimp reads ``import`` statements only; an ``importlib.import_module``
  call is an arrow too. Such a call may only name a module inside the caller's own package
  (a registry loading its providers), unless the caller is in ``unrestricted``.

``make lint`` runs them with ``lint-imports``; ``tests/unit/test_import_contracts.py`` shows
every contract failing on an injected wrong arrow.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grimp
from importlinter import Contract, ContractCheck, fields, output


def _option(contract: Contract, name: str) -> Any:
    """A configured option: import-linter replaces each field with its value."""
    return vars(contract)[name]


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


class AllowListContract(Contract):
    """Modules under ``source_modules`` import, of ``watched`` packages, only ``allowed``.

    ``allowed`` entries are ``source -> target`` (a source package and a module or package
    it may import); ``*`` as the source applies to every source module.
    """

    type_name = "allow_list"

    source_modules = fields.ListField(subfield=fields.StringField())
    watched = fields.ListField(subfield=fields.StringField())
    allowed = fields.ListField(subfield=fields.StringField())

    def _rules(self) -> list[tuple[str, str]]:
        rules = []
        for entry in _option(self, "allowed"):
            source, _, target = (part.strip() for part in str(entry).partition("->"))
            rules.append((source, target))
        return rules

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        sources = [str(s) for s in _option(self, "source_modules")]
        watched = [str(w) for w in _option(self, "watched")]
        rules = self._rules()
        broken: list[dict[str, object]] = []
        for importer in sorted(graph.modules):
            if not any(_in(importer, source) for source in sources):
                continue
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                if not any(_in(imported, package) for package in watched):
                    continue
                if any(_in(imported, source) for source in sources if _in(importer, source)):
                    continue  # inside its own source package
                if any(
                    (source == "*" or _in(importer, source)) and _in(imported, target)
                    for source, target in rules
                ):
                    continue
                details = graph.get_import_details(importer=importer, imported=imported)
                lines = sorted({d["line_number"] for d in details})
                broken.append({"importer": importer, "imported": imported, "lines": lines})
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for item in check.metadata["broken"]:
            lines = ", ".join(f"l.{n}" for n in item["lines"])
            output.print_error(
                f"{item['importer']} is not allowed to import {item['imported']} ({lines})",
                bold=False,
            )
            output.new_line()


def _source(module: str) -> Path | None:
    """The file of ``module``, found from its root package without importing anything
    below the root (a package's ``__init__`` may be heavy)."""
    root, *rest = module.split(".")
    spec = importlib.util.find_spec(root)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        base = Path(location).joinpath(*rest)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


@dataclass(frozen=True)
class _DynamicImport:
    importer: str
    target: str
    line: int


def _dynamic_imports(module: str, path: Path) -> list[_DynamicImport]:
    """``importlib.import_module(...)`` and ``__import__(...)`` calls; a target that is not
    a string or an f-string is reported as ``?`` (it cannot be checked)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in {"import_module", "__import__"}:
            continue
        argument = node.args[0]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            target = argument.value
        elif isinstance(argument, ast.JoinedStr):
            # the literal prefix of the f-string: what it can reach at most
            target = ""
            for part in argument.values:
                if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
                    break
                target += part.value
        else:
            target = "?"
        found.append(_DynamicImport(module, target, node.lineno))
    return found


class DynamicImportContract(Contract):
    """Dynamic imports stay inside the importer's own package (``depth`` names deep)."""

    type_name = "dynamic_imports"

    containers = fields.ListField(subfield=fields.StringField())
    unrestricted = fields.ListField(subfield=fields.StringField(), required=False)
    depth = fields.IntegerField(required=False, default=2)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        containers = [str(c) for c in _option(self, "containers")]
        unrestricted = [str(u) for u in _option(self, "unrestricted") or []]
        depth = int(_option(self, "depth"))
        broken = []
        for module in sorted(graph.modules):
            if not any(_in(module, c) for c in containers):
                continue
            if any(_in(module, u) for u in unrestricted):
                continue
            path = _source(module)
            if path is None:
                continue
            own = ".".join(module.split(".")[:depth]) + "."
            for call in _dynamic_imports(module, path):
                if not call.target.startswith(own):
                    broken.append(call)
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for call in check.metadata["broken"]:
            output.print_error(
                f"{call.importer} imports {call.target!r} dynamically (l.{call.line}): "
                "a dynamic import may only load a module of its own package",
                bold=False,
            )
            output.new_line()
