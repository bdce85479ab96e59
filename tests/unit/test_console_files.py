"""The console's files as ``ragline dev`` serves them: only the console's own, typed."""

from __future__ import annotations

from ragline.dev.static import CONSOLE_DIRECTORY, console_file


def test_the_console_page_and_its_assets_are_served_with_their_types() -> None:
    # WHEN the page, its script and its style are asked for
    page = console_file("/console/")
    script = console_file("/console/console.js?v=1")
    style = console_file("/console/console.css")
    # THEN each is the file, with its content type
    assert page == (
        200,
        "text/html; charset=utf-8",
        (CONSOLE_DIRECTORY / "index.html").read_bytes(),
    )
    assert script is not None and script[:2] == (200, "text/javascript; charset=utf-8")
    assert style is not None and style[0] == 200 and b"body" in style[2]
    assert console_file("/console") == page


def test_nothing_outside_the_console_directory_is_served() -> None:
    # WHEN paths escape the directory, name hidden or unknown files, or another route
    escapes = ("/console/../static.py", "/console/%2e%2e/static.py", "/console/..%2Fstatic.py")
    for target in (*escapes, "/console/missing.js", "/console/.hidden.js"):
        # THEN they are 404, whatever they point at
        assert console_file(target) == (404, "text/plain; charset=utf-8", b"not found"), target
    # AND the API's own paths are left to the API
    assert console_file("/query") is None and console_file("/consoles") is None
