"""Parse one document in a child process, with a memory limit and a deadline.

The budgets (:mod:`ragline.documents.budgets`) stop what can be measured before parsing;
a parser's native code (PDFium) can still run away on what cannot. Inside the ingest
function that would take the whole invocation down, and with it every other message of
its batch. So the parse runs in a forked child: its address space may grow by
``budgets.memory_mb`` over its size before the parse (RLIMIT_AS), and it is killed after
``budgets.seconds``. The parent survives either and fails only this document with the
reason; a parse error in the child comes back as itself.

The child is a worker kept for the next documents: a fork per document cost about 25 ms
in a process holding the ingest's modules (its pages copied as the child touched them),
a quarter of a hash-embedder ingest's time. A worker that timed out, crashed, ran out of
memory or kept more than half its budget after a parse is stopped, and the next document
gets a fresh one; so is one that parsed ``_RETIRE_AFTER`` documents, or that was forked
before the loaders changed. An idle worker waits on its pipe (a frozen Lambda
environment freezes it too) and leaves when its parent is gone; one that died while idle
is replaced before it is given a document. Each thread that parses at once gets its own.

Lambda has no ``/dev/shm``, so no multiprocessing.Pool or Queue: a plain fork and a
Pipe.
"""

from __future__ import annotations

import faulthandler
import gc
import multiprocessing
import os
import resource
import signal
import threading
from typing import TYPE_CHECKING, Any

from ragline.documents import budgets as budgets_module
from ragline.documents.budgets import BudgetExceededError, Budgets
from ragline.documents.loaders import ParsedDocument, parse_document, registry
from ragline.errors import DocumentParseError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

# How long a child that was asked to stop may take to go.
_REAP_SECONDS = 5.0
# Documents one worker parses before a fresh fork takes over (its heap starts clean).
_RETIRE_AFTER = 500
# How often an idle worker checks that its parent is still there.
_IDLE_POLL_SECONDS = 1.0


def parse_within_budgets(name: str, data: bytes, budgets: Budgets) -> ParsedDocument:
    """``parse_document(name, data)`` under ``budgets``, isolated when they say so.

    Raises what parse_document raises; BudgetExceededError (a DocumentParseError) when
    the child outlives its deadline or its memory, DocumentParseError when it crashes.
    """
    if not budgets.isolate or not hasattr(os, "fork"):
        with budgets_module.applied(budgets):
            return parse_document(name, data)
    worker = _checkout()
    healthy = False
    try:
        try:
            worker.send(name, data, budgets)
        except OSError:  # it died while idle (before this document): a fresh one
            worker.stop()
            worker = _Worker()
            worker.send(name, data, budgets)
        if not worker.conn.poll(budgets.seconds):
            raise BudgetExceededError(
                f"parsing took longer than {budgets.seconds:g} s (RAGLINE_PARSE_TIMEOUT_SECONDS)"
            )
        try:
            outcome, payload, healthy = worker.conn.recv()
        except EOFError:  # died without a word: killed by the kernel, or a native crash
            worker.process.join(_REAP_SECONDS)
            raise DocumentParseError(_death(worker.process.exitcode, budgets)) from None
    finally:
        _checkin(worker, healthy)
    if outcome == "parsed":
        assert isinstance(payload, ParsedDocument)
        return payload
    if isinstance(payload, BaseException):
        raise payload
    raise DocumentParseError(str(payload))


def stop_workers() -> None:
    """Stop the idle parse workers (the next parse forks a fresh one)."""
    with _lock:
        idle = list(_idle)
        _idle.clear()
    for worker in idle:
        worker.stop()


class _Worker:
    """A forked child that parses the documents sent down its pipe, one at a time."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        self.loaders = _loaders()
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(
            target=_serve, args=(child, self.conn, os.getpid()), name="ragline-parse", daemon=True
        )
        self.process.start()
        child.close()
        self.parses = 0

    def send(self, name: str, data: bytes, budgets: Budgets) -> None:
        self.parses += 1
        self.conn.send((name, budgets))
        self.conn.send_bytes(data)  # not pickled: no second copy of a large document

    def stop(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(_REAP_SECONDS)


_lock = threading.Lock()
_idle: list[_Worker] = []


def _loaders() -> tuple[object, ...]:
    """The loaders a worker forked now parses with (compared by identity)."""
    return tuple(registry._LOADERS.values())


def _checkout() -> _Worker:
    """An idle worker forked with today's loaders, else a new one."""
    loaders = _loaders()
    stale = []
    found = None
    with _lock:
        while _idle and found is None:
            worker = _idle.pop()
            usable = worker.process.is_alive() and len(worker.loaders) == len(loaders)
            if usable and all(a is b for a, b in zip(worker.loaders, loaders, strict=True)):
                found = worker
            else:
                stale.append(worker)
    for worker in stale:
        worker.stop()
    return found or _Worker()


def _checkin(worker: _Worker, healthy: bool) -> None:
    """Keep ``worker`` for the next document if it answered and is fit; else stop it."""
    if healthy and worker.parses < _RETIRE_AFTER and worker.process.is_alive():
        with _lock:
            _idle.append(worker)
    else:
        worker.stop()


def _serve(conn: Connection, parents_end: Connection, parent: int) -> None:
    """The worker's loop: parse each document sent, answer (outcome, payload, healthy)."""
    parents_end.close()  # so that only the parent holds it
    faulthandler.disable()  # a crash is the parent's to report, with the document
    gc.freeze()  # the inherited objects stay out of the collector: fewer pages copied
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    while True:
        while not conn.poll(_IDLE_POLL_SECONDS):
            if os.getppid() != parent:
                return
        try:
            name, budgets = conn.recv()
            data = conn.recv_bytes()
        except EOFError:  # the parent closed the pipe
            return
        started = _address_space()
        healthy = True
        try:
            _limit_memory(budgets.memory_mb, hard)
            with budgets_module.applied(budgets):
                message: tuple[str, Any] = ("parsed", parse_document(name, data))
        except MemoryError:
            message, healthy = ("failed", BudgetExceededError(_over_memory(budgets))), False
        except Exception as exc:
            message = ("failed", exc if _picklable(exc) else f"{type(exc).__name__}: {exc}")
        del data
        try:
            conn.send((*message, healthy and _kept(started, budgets)))
        except MemoryError:
            conn.send(("failed", BudgetExceededError(_over_memory(budgets)), False))
        del message
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _limit_memory(memory_mb: int, hard: int) -> None:
    """Let this process's address space grow by ``memory_mb`` over its present size (the
    soft limit, lifted again after the parse)."""
    limit = _address_space() + memory_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _kept(started: int, budgets: Budgets) -> bool:
    """Whether the worker kept less than half its budget from this parse (fit to go on)."""
    return _address_space() - started < budgets.memory_mb * 1024 * 1024 // 2


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
