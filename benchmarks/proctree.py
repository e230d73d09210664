"""CPU time and resident memory of a process and all its descendants, from ``/proc`` (Linux).

- :func:`tree_cpu_seconds`: utime+stime of the process and every live descendant, plus
  cutime+cstime of each (the children they have already reaped: a parse worker that was
  replaced, a forkserver that exited). Sample it before and after a stretch of work.
- :class:`RssSampler`: a thread summing ``VmRSS`` over the tree every ``interval`` s and
  keeping the peaks: the whole tree, the root alone, and the descendants together.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` fields from the state on (field 3), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after ")".
    return text.rpartition(")")[2].split()


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """utime+stime+cutime+cstime of one process, seconds (0.0 once it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    return sum(int(x) for x in fields[11:15]) / _TICK


def tree_cpu_seconds(root: int) -> dict[str, float]:
    """CPU seconds of ``root`` and of its descendants (``main``, ``children``, ``total``)."""
    main = cpu_seconds(root)
    children = sum(cpu_seconds(pid) for pid in descendants(root))
    return {"main": main, "children": children, "total": main + children}


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class RssSampler:
    """Samples the tree's resident memory every ``interval`` s in a daemon thread."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root = root
        self.interval = interval
        self.peak_total = self.peak_main = self.peak_children = 0
        self.peak_processes = 0
        self.samples = 0
        self.peak_at = 0.0
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        main = rss_bytes(self.root)
        kids = descendants(self.root)
        children = sum(rss_bytes(pid) for pid in kids)
        self.peak_main = max(self.peak_main, main)
        self.peak_children = max(self.peak_children, children)
        if main + children > self.peak_total:
            self.peak_total = main + children
            self.peak_at = time.perf_counter() - self.started
        self.peak_processes = max(self.peak_processes, 1 + len(kids))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(5)
        return {
            "peak_total_mb": self.peak_total / 1e6,
            "peak_main_mb": self.peak_main / 1e6,
            "peak_workers_mb": self.peak_children / 1e6,
            "peak_processes": self.peak_processes,
            "peak_at_s": self.peak_at,
            "samples": self.samples,
            "interval_s": self.interval,
        }
