"""Helpers shared by the benchmarks: a reactor lag probe, percentiles, text tables."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from twisted.internet.task import LoopingCall


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, int(round(q / 100 * len(ordered) + 0.5)))
    return ordered[min(rank, len(ordered)) - 1]


class LagMonitor:
    """A LoopingCall every ``interval`` s; lag = gap between consecutive ticks - interval.

    ``stop()`` also counts the stretch from the last tick to the call of ``stop()`` itself,
    since the reactor may have been blocked until then.
    """

    def __init__(self, reactor: Any, interval: float = 0.005) -> None:
        self.interval = interval
        self.stamps: list[float] = []
        self.loop = LoopingCall(self._tick)
        self.loop.clock = reactor

    def _tick(self) -> None:
        self.stamps.append(time.perf_counter())

    def start(self) -> None:
        self.stamps = [time.perf_counter()]
        self.loop.start(self.interval, now=False)

    def stop(self) -> dict[str, float]:
        self.stamps.append(time.perf_counter())
        self.loop.stop()
        gaps = [b - a for a, b in pairwise(self.stamps)]
        lags = [max(0.0, g - self.interval) * 1000 for g in gaps]
        return {
            "ticks": len(gaps),
            "max_lag_ms": max(lags, default=0.0),
            "p99_lag_ms": percentile(lags, 99),
            "p50_lag_ms": percentile(lags, 50),
            "lags_over_50ms": sum(1 for x in lags if x > 50),
        }


class GCWatch:
    """Records every garbage collection (generation, duration, thread) while installed."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self._started: dict[int, float] = {}
        self.main_thread = threading.get_ident()

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        tid = threading.get_ident()
        if phase == "start":
            self._started[tid] = time.perf_counter()
        elif tid in self._started:
            self.runs.append(
                {
                    "generation": info["generation"],
                    "ms": (time.perf_counter() - self._started.pop(tid)) * 1000,
                    "reactor_thread": tid == self.main_thread,
                }
            )

    def __enter__(self) -> GCWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, Any]:
        full = [r["ms"] for r in self.runs if r["generation"] == 2]
        return {
            "collections": len(self.runs),
            "gen2_collections": len(full),
            "gen2_total_ms": sum(full),
            "gen2_max_ms": max(full, default=0.0),
            "all_total_ms": sum(r["ms"] for r in self.runs),
        }


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table: first column left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        cells = [r[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rss_mb() -> float:
    """Resident set size of this process, MB (Linux; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
