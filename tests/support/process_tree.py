"""The memory of a process and all its descendants, sampled from /proc while it runs.

``ragline dev`` is one Python process with children: the embedded PostgreSQL (a
postmaster and its backends) and, while a document is parsed, the forked parse child.
Lambda charges all of a function's processes to its memory, so the figure compared with
the ingest function's memory is the tree's: the sum of each process's proportional set
size (PSS: a page shared by n processes counts 1/n in each, so a forked child's
copy-on-write pages and PostgreSQL's shared buffers count once). The sum of resident
sets (RSS) is kept too; it overstates shared pages.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

KIB = 1024
MIB = 1024 * 1024


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from the parent ids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: read after the last ')'.
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def _field_kib(path: Path, name: str) -> int:
    try:
        text = path.read_text()
    except OSError:  # the process ended between the listing and the read
        return 0
    for line in text.splitlines():
        if line.startswith(name):
            return int(line.split()[1])
    return 0


def tree_memory(pid: int) -> tuple[int, int]:
    """The summed PSS and summed RSS of ``pid``'s tree, in bytes."""
    pss = rss = 0
    for member in descendants(pid):
        pss += _field_kib(Path(f"/proc/{member}/smaps_rollup"), "Pss:") * KIB
        rss += _field_kib(Path(f"/proc/{member}/status"), "VmRSS:") * KIB
    return pss, rss


@dataclass
class TreeMemorySampler:
    """Samples ``pid``'s tree every ``interval`` seconds in a thread; keeps the peaks."""

    pid: int
    interval: float = 0.05
    peak_pss: int = 0
    peak_rss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> TreeMemorySampler:
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def reset(self) -> None:
        """Forget the peaks so far (to measure one phase)."""
        self.peak_pss = self.peak_rss = 0

    def sample(self) -> None:
        pss, rss = tree_memory(self.pid)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_rss = max(self.peak_rss, rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not os.path.exists(f"/proc/{self.pid}"):
                return
            self.sample()
            self._stop.wait(self.interval)
