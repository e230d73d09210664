"""Helpers shared by the benchmarks: a reactor lag probe, percentiles, text tables."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall


def cycle_ends(
    aggregator: Any, at_end: Callable[[], None] = lambda: None
) -> Callable[[], Deferred[None]]:
    """Hooks ``aggregator.after_cycle``: the function returned gives a Deferred that fires
    when the next fetch cycle ends (take it before starting the cycle). ``at_end`` runs
    first, before the daemon's own after-cycle work (the heap's settle)."""
    waiting: list[Deferred[None]] = []
    after = aggregator.after_cycle

    def after_cycle() -> None:
        at_end()
        after()
        while waiting:
            waiting.pop().callback(None)

    aggregator.after_cycle = after_cycle

    def next_end() -> Deferred[None]:
        end: Deferred[None] = Deferred()
        waiting.append(end)
        return end

    return next_end


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


class StallSampler:
    """Where the reactor thread is while it is late.

    A LoopingCall stamps the time every ``interval`` s; a thread looks every millisecond
    and, while the last stamp is older than ``threshold`` s, records the reactor thread's
    innermost ``depth`` frames (one sample a look). A long C call holding the GIL keeps the
    thread out until it returns, so such a stall shows as the frames right after it.
    ``stop()`` returns the samples by stack, most frequent first.
    """

    def __init__(
        self, reactor: Any, interval: float = 0.002, threshold: float = 0.015, depth: int = 6
    ) -> None:
        self.interval, self.threshold, self.depth = interval, threshold, depth
        self.samples: Counter[str] = Counter()
        self._last = time.perf_counter()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self._stop = threading.Event()
        self._reactor_thread = threading.get_ident()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tick(self) -> None:
        self._last = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            if time.perf_counter() - self._last < self.threshold:
                continue
            frame = sys._current_frames().get(self._reactor_thread)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)[-self.depth :]
            where = " < ".join(
                f"{Path(f.filename).stem}.{f.name}:{f.lineno}" for f in reversed(stack)
            )
            self.samples[where] += 1

    def start(self) -> StallSampler:
        self._last = time.perf_counter()
        self._loop.start(self.interval, now=False)
        self._thread.start()
        return self

    def stop(self) -> list[tuple[str, int]]:
        self._stop.set()
        self._thread.join()
        self._loop.stop()
        return self.samples.most_common()


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


class HttpProbe:
    """GETs one cheap URL over a keep-alive connection every ``pause`` s, in a thread.

    What a daemon's reactor stall looks like from outside: a request that arrives while the
    reactor is blocked waits for it, so the worst latency over a stretch is about the
    longest stall in it (plus one request's own time; compare with an idle stretch).
    ``mark(name)`` starts a new stretch; ``stop()`` returns each stretch's latencies (ms).
    """

    def __init__(self, host: str, port: int, path: str, pause: float = 0.002) -> None:
        self.host, self.port, self.path, self.pause = host, port, path, pause
        self.stretches: dict[str, list[float]] = {}
        self.errors = 0
        self._current: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def mark(self, name: str) -> None:
        self._current = self.stretches.setdefault(name, [])

    def start(self, name: str = "start") -> HttpProbe:
        self.mark(name)
        self._thread.start()
        return self

    def _run(self) -> None:
        import http.client

        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                conn.request("GET", self.path)
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                continue
            self._current.append((time.perf_counter() - started) * 1000)
            self._stop.wait(self.pause)
        conn.close()

    def stop(self) -> dict[str, dict[str, float]]:
        self._stop.set()
        self._thread.join(35)
        return {
            name: {
                "requests": len(lats),
                "max_ms": max(lats, default=0.0),
                "p99_ms": percentile(lats, 99),
                "p50_ms": percentile(lats, 50),
            }
            for name, lats in self.stretches.items()
        }
