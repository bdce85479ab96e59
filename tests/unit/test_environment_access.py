"""Settings have one source: only config.py reads the process environment.

Every ``os.environ`` and ``os.getenv`` in the library, the handlers, the CDK app and
``app.py`` is found in the syntax tree and sorted into reads and writes; each must be
in the allow-lists below, with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "layers" / "common" / "python"
SCANNED = [
    *sorted((LIBRARY / "ragline").rglob("*.py")),
    *sorted((ROOT / "functions").rglob("*.py")),
    *sorted((ROOT / "stacks").rglob("*.py")),
    ROOT / "app.py",
]

# file -> why it may read the environment
READERS = {
    "ragline/config.py": "the settings: the one place a setting is read",
    "ragline/streaming_runtime.py": "Lambda's runtime contract (AWS_LAMBDA_RUNTIME_API, "
    "_HANDLER, the function's name, version, memory and log names), not settings",
    "app.py": "the CDK CLI's own variables (CDK_OUTDIR, CDK_DEFAULT_ACCOUNT/REGION), "
    "not settings: deployment settings are cdk.json's context",
}
# file -> why it may write the environment
WRITERS = {
    "ragline/dev/stack.py": "the local stack's handler environment, as Lambda's: data dir, "
    "fake credentials, region, the S3 endpoint boto3 reads",
    "ragline/dev/commands/common.py": "the handlers' environment the local commands build: "
    "data dir, embedder, Powertools' metrics switch",
    "ragline/dev/demo.py": "Powertools' log level and metrics switch for the demo's handlers",
    "ragline/dev/commands/sync.py": "the running stack's embedder, over the shell's, for the "
    "handlers `ragline sync` runs in-process",
    "ragline/embeddings/minilm.py": "Hugging Face's offline switches (not settings)",
    "ragline/embeddings/export_onnx.py": "Hugging Face's offline switches (not settings)",
    "ragline/streaming_runtime.py": "_X_AMZN_TRACE_ID per invocation, as Lambda's own "
    "runtime sets it for the X-Ray SDK",
    "app.py": "jsii's Node.js warning, before aws_cdk starts Node",
}
# A method call on os.environ that changes it.
_WRITING_METHODS = {"setdefault", "update", "pop", "popitem", "clear", "__setitem__"}


def _name(path: Path) -> str:
    for base in (LIBRARY, ROOT):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    raise AssertionError(path)


def accesses(source: str) -> list[tuple[int, str]]:
    """(line, "read" or "write") for every use of the environment in ``source``."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    # `from os import environ, getenv` names them without `os.`.
    aliases = {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "os"
        for alias in node.names
        if alias.name in {"environ", "getenv", "environb", "putenv", "unsetenv"}
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            name = node.attr if node.value.id == "os" else None
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in aliases:
            name = aliases[node.id]
        else:
            continue
        if name in {"getenv", "environb"}:
            found.append((node.lineno, "read"))
        elif name in {"putenv", "unsetenv"}:
            found.append((node.lineno, "write"))
        elif name == "environ":
            parent = parents.get(node)
            writes = (
                isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store | ast.Del)
            ) or (
                isinstance(parent, ast.Attribute)
                and parent.attr in _WRITING_METHODS
                and isinstance(parents.get(parent), ast.Call)
            )
            found.append((node.lineno, "write" if writes else "read"))
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os\nx = os.environ.get('RAGLINE_LLM')", [(2, "read")]),
        ("import os\nx = os.environ['RAGLINE_LLM']", [(2, "read")]),
        ("import os\nx = dict(os.environ)", [(2, "read")]),
        ("import os\nx = os.getenv('RAGLINE_LLM')", [(2, "read")]),
        ("from os import environ\nx = environ.get('RAGLINE_LLM')", [(2, "read")]),
        ("from os import getenv as g\nx = g('RAGLINE_LLM')", [(2, "read")]),
        ("import os\nos.environ['X'] = '1'", [(2, "write")]),
        ("import os\nos.environ.setdefault('X', '1')", [(2, "write")]),
        ("import os\ndel os.environ['X']", [(2, "write")]),
        ("import os\nos.environ.update(X='1')", [(2, "write")]),
        ("import os\nx = os.path.join('a')", []),
    ],
)
def test_the_scan_tells_reads_from_writes(source: str, expected: list[tuple[int, str]]) -> None:
    # GIVEN a line that uses the environment WHEN scanned THEN it is classified as it acts
    assert accesses(source) == expected


def test_only_config_reads_the_environment() -> None:
    # GIVEN every module of the library, the handlers, the CDK app and app.py
    assert len(SCANNED) > 100  # the globs found the tree
    reads, writes = [], []
    for path in SCANNED:
        name = _name(path)
        for line, kind in accesses(path.read_text("utf-8")):
            if kind == "read" and name not in READERS:
                reads.append(f"{name}:{line}")
            if kind == "write" and name not in WRITERS:
                writes.append(f"{name}:{line}")
    # THEN settings are read only in config.py (through Settings), and the environment is
    # written only where a handler's environment or a third-party library is configured
    assert reads == [], "read the setting through ragline.config.Settings instead"
    assert writes == [], "add the file to WRITERS with its reason, or pass the value"


def test_the_allow_lists_name_files_that_use_the_environment() -> None:
    # An entry whose file no longer touches the environment would silently allow a new use.
    used = {
        (_name(path), kind)
        for path in SCANNED
        for _, kind in accesses(path.read_text("utf-8"))
    }  # fmt: skip
    assert {(name, "read") for name in READERS} <= used
    assert {(name, "write") for name in WRITERS} <= used
