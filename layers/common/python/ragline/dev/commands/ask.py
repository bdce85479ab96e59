"""``ragline ask``: one question answered in-process, as ``POST /query`` would."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ragline.dev.commands.common import (
    acting_identity,
    add_tenant_argument,
    local_embeddings,
    use_data_dir,
    without_emf,
)

if TYPE_CHECKING:
    import argparse

    from ragline.dev.commands.common import Subcommands


def register(commands: Subcommands) -> None:
    """``ragline ask QUESTION`` and its options."""
    ask = commands.add_parser(
        "ask",
        help="answer a question from the store, in-process",
        description="Answer a question with citations, as POST /query does.",
    )
    ask.add_argument("question")
    ask.add_argument("--collection", help="collection to search (default: settings)")
    ask.add_argument("--top-k", type=int, help="passages to retrieve")
    ask.add_argument("--profile", help="routing profile")
    ask.add_argument("--data-dir", type=Path, help="data directory of the embedded database")
    add_tenant_argument(ask, "ask")
    ask.add_argument("--json", action="store_true", help="print the raw JSON response")
    ask.add_argument(
        "--stream",
        action="store_true",
        help="print the answer as the model writes it (with --json: one event per line)",
    )
    ask.set_defaults(run=cmd_ask)


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer one question in-process, from the store the data directory holds."""
    use_data_dir(args.data_dir)
    local_embeddings()
    # The query is logged for `ragline stats`; its EMF line is for CloudWatch, not a terminal.
    without_emf()
    from ragline.answer import get_answerer
    from ragline.errors import ModelUnavailableError, RaglineError

    if getattr(args, "stream", False):
        return _stream(args)
    try:
        # Anything the library prints goes to stderr: stdout is the answer (or its JSON).
        with contextlib.redirect_stdout(sys.stderr):
            response = get_answerer().answer(
                args.question, collection=args.collection, top_k=args.top_k, profile=args.profile,
                identity=acting_identity(getattr(args, "tenant", None)),
            )  # fmt: skip
    except RaglineError as exc:
        if args.json:  # the body POST /query answers, so a script parses one format
            error = {"message": str(exc), "statusCode": exc.status_code}
            error.update(
                {"citations": exc.citations} if isinstance(exc, ModelUnavailableError) else {}
            )
            print(json.dumps(error, indent=2, ensure_ascii=False))
        else:
            print(f"ragline ask: {exc}", file=sys.stderr)
        return 1
    body = response.model_dump(mode="json")
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        from ragline.dev.render import format_answer

        print(format_answer(body))
    return 0


def _stream(args: argparse.Namespace) -> int:
    """Print the events of a streamed answer as they come: the text as it is written, then
    the sources and usage (or each event as a line of JSON)."""
    from ragline.answer import Answered, Failed, TextDelta, get_answerer
    from ragline.errors import RaglineError

    out = sys.stdout
    written: list[str] = []
    try:
        with contextlib.redirect_stdout(sys.stderr):
            events = get_answerer().stream(
                args.question, collection=args.collection, top_k=args.top_k, profile=args.profile,
                identity=acting_identity(getattr(args, "tenant", None)),
            )  # fmt: skip
            for event in events:
                if args.json:
                    line = json.dumps(
                        {"event": event.name, "data": event.data()}, ensure_ascii=False
                    )
                    print(line, file=out, flush=True)
                elif isinstance(event, TextDelta):
                    if not written:
                        print("A: ", end="", file=out)
                    written.append(event.text)
                    print(event.text, end="", file=out, flush=True)
                elif isinstance(event, Answered):
                    _print_final(event.response.model_dump(mode="json"), "".join(written), out)
                if isinstance(event, Failed):
                    if written and not args.json:
                        print(file=out)
                    print(f"ragline ask: {event.message}", file=sys.stderr)
                    return 1
    except RaglineError as exc:  # before the first event: what the API answers with a status
        if args.json:
            error = {"message": str(exc), "statusCode": exc.status_code}
            print(json.dumps({"event": "error", "data": error}, ensure_ascii=False), file=out)
        print(f"ragline ask: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_final(body: dict[str, Any], streamed: str, out: TextIO) -> None:
    """After the streamed text: a correction if the checks changed it, then the details."""
    from ragline.dev.render import answer_details

    if not streamed:  # a profile that streams no text: the checked answer at once
        print(f"A: {body['answer']}", file=out)
    else:
        print(file=out)
        if streamed.strip() != str(body["answer"]).strip():
            print(f"   The checks replaced the answer with: {body['answer']}", file=out)
    print("\n".join(answer_details(body)), file=out, flush=True)
