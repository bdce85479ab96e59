"""The console's static files, served by ``ragline dev``'s gateway under ``/console/``.

The files are plain HTML, CSS and JavaScript in ``ragline/dev/console`` (no build step);
the CDK app deploys the same directory to S3 behind CloudFront (stacks/reviews.py).
Only files directly in that directory are served: a path with anything else in it is 404.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

CONSOLE_DIRECTORY = Path(__file__).resolve().parent / "console"
CONSOLE_PREFIX = "/console"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def console_file(target: str, root: Path = CONSOLE_DIRECTORY) -> tuple[int, str, bytes] | None:
    """(status, content type, body) for a request target under ``/console``; None when
    the target is not the console's (the API serves it)."""
    path = urlsplit(target).path
    if path != CONSOLE_PREFIX and not path.startswith(CONSOLE_PREFIX + "/"):
        return None
    name = unquote(path[len(CONSOLE_PREFIX) :].lstrip("/")) or "index.html"
    file = root / name
    kind = _TYPES.get(file.suffix)
    if "/" in name or "\\" in name or name.startswith(".") or kind is None or not file.is_file():
        return 404, "text/plain; charset=utf-8", b"not found"
    return 200, kind, file.read_bytes()
