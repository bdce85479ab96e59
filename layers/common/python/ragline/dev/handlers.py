"""Find and load the Lambda handlers, which live in the repository, outside the package.

The local stack runs ``functions/<name>/handler.py`` exactly as Lambda does: the module
is imported once (a cold start) and its ``lambda_handler`` is called per event. The
repository root is found from the editable install of ``ragline``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import cast

import ragline
from ragline.dev.context import Handler
from ragline.errors import ConfigurationError

HANDLER_NAME = "lambda_handler"
# The query function's entry point for a streaming integration (STREAM transfer mode).
STREAM_HANDLER_NAME = "stream_handler"


def find_repository_root(start: Path | None = None) -> Path:
    """The directory holding ``functions/``, searched upwards from ``start``.

    ``start`` defaults to the installed ``ragline`` package
    (``<root>/layers/common/python/ragline``), which is inside the repository when it is
    installed editable, as ``make setup`` does.
    """
    origin = (start or Path(ragline.__file__)).resolve()
    for candidate in [origin, *origin.parents]:
        if (candidate / "functions").is_dir() and (candidate / "layers").is_dir():
            return candidate
    raise ConfigurationError(
        f"cannot find the ragline repository (a directory with functions/ and layers/) "
        f"above {origin}; the local stack needs a source checkout installed with "
        f"`pip install -e .`"
    )


def load_handler(function: str, root: Path | None = None, name: str = HANDLER_NAME) -> Handler:
    """Import ``functions/<function>/handler.py`` and return its ``lambda_handler`` (or the
    entry point ``name``).

    The module is imported as ``functions.<function>.handler`` with the repository root
    on ``sys.path``, so a handler may import its neighbours the same way; importing it
    twice returns the same module, as a warm Lambda would.
    """
    root = root or find_repository_root()
    path = root / "functions" / function / "handler.py"
    if not path.is_file():
        raise ConfigurationError(f"handler not found: {path}")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module(f"functions.{function}.handler")
    loaded_from = Path(module.__file__ or "").resolve()
    if loaded_from != path.resolve():
        raise ConfigurationError(
            f"functions.{function}.handler was imported from {loaded_from}, not {path}; "
            f"another package named 'functions' is shadowing the repository's"
        )
    handler = getattr(module, name, None)
    if not callable(handler):
        raise ConfigurationError(f"{path} has no callable {name}")
    return cast(Handler, handler)
