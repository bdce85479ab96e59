"""Parse one document in a child process, with a memory limit and a deadline.

The budgets (:mod:`ragline.documents.budgets`) stop what can be measured before parsing;
a parser's native code (PDFium) can still run away on what cannot. Inside the ingest
function that would take the whole invocation down, and with it every other message of
its batch. So the parse runs in a forked child: its address space may grow by
``budgets.memory_mb`` over what it inherited (RLIMIT_AS), and it is killed after
``budgets.seconds``. The parent survives either and fails only this document with the
reason; a parse error in the child comes back as itself.

Lambda has no ``/dev/shm``, so no multiprocessing.Pool or Queue: a plain fork and a
Pipe. Forking a process that already holds the ingest function's modules costs a few
milliseconds (``bench/hostile_files.py`` measures it).
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import resource
import signal
from typing import TYPE_CHECKING, Any

from ragline.documents import budgets as budgets_module
from ragline.documents.budgets import BudgetExceededError, Budgets
from ragline.documents.loaders import ParsedDocument, parse_document
from ragline.errors import DocumentParseError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

# How long a child that was asked to stop may take to go.
_REAP_SECONDS = 5.0


def parse_within_budgets(name: str, data: bytes, budgets: Budgets) -> ParsedDocument:
    """``parse_document(name, data)`` under ``budgets``, isolated when they say so.

    Raises what parse_document raises; BudgetExceededError (a DocumentParseError) when
    the child outlives its deadline or its memory, DocumentParseError when it crashes.
    """
    if not budgets.isolate or not hasattr(os, "fork"):
        with budgets_module.applied(budgets):
            return parse_document(name, data)
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child, args=(sender, name, data, budgets), name="ragline-parse", daemon=True
    )
    child.start()
    sender.close()
    try:
        if not receiver.poll(budgets.seconds):
            raise BudgetExceededError(
                f"parsing took longer than {budgets.seconds:g} s (RAGLINE_PARSE_TIMEOUT_SECONDS)"
            )
        try:
            outcome, payload = receiver.recv()
        except EOFError:  # died without a word: killed by the kernel, or a native crash
            child.join(_REAP_SECONDS)
            raise DocumentParseError(_death(child.exitcode, budgets)) from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(_REAP_SECONDS)
    if outcome == "parsed":
        assert isinstance(payload, ParsedDocument)
        return payload
    if isinstance(payload, BaseException):
        raise payload
    raise DocumentParseError(str(payload))


def _child(sender: Connection, name: str, data: bytes, budgets: Budgets) -> None:
    faulthandler.disable()  # a crash is the parent's to report, with the document
    try:
        _limit_memory(budgets.memory_mb)
        with budgets_module.applied(budgets):
            message: tuple[str, Any] = ("parsed", parse_document(name, data))
    except MemoryError:
        message = ("failed", BudgetExceededError(_over_memory(budgets)))
    except Exception as exc:
        message = ("failed", exc if _picklable(exc) else f"{type(exc).__name__}: {exc}")
    try:
        sender.send(message)
    except MemoryError:
        sender.send(("failed", BudgetExceededError(_over_memory(budgets))))
    finally:
        sender.close()


def _limit_memory(memory_mb: int) -> None:
    """Let this process's address space grow by ``memory_mb`` over its present size."""
    with open("/proc/self/statm") as statm:
        present = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = present + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _picklable(exc: BaseException) -> bool:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return False
    return True


def _over_memory(budgets: Budgets) -> str:
    return f"parsing needs more than {budgets.memory_mb} MB (RAGLINE_PARSE_MEMORY_MB)"


def _death(exitcode: int | None, budgets: Budgets) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        # A native parser that cannot allocate aborts (C++ bad_alloc) or faults.
        if name in ("SIGABRT", "SIGSEGV", "SIGBUS", "SIGKILL"):
            return f"the parser crashed ({name}), likely out of memory: {_over_memory(budgets)}"
        return f"the parser crashed ({name})"
    return f"the parser stopped without an answer (exit code {exitcode})"
