"""Soak: back-to-back fetch cycles in which every feed brings a new entry, for an hour.

.venv/bin/python benchmarks/soak.py [--n 1000] [--minutes 60] [--sample-seconds 5]

``farm.py`` serves N feeds (``cycle.FarmProcess``); ``twistd planet`` (``cycle.DaemonProcess``)
runs its cold cycle, then, until ``--minutes`` have passed since its spawn, round after
round: every feed of the farm gets one new entry on top (``/_farm/change?fraction=1``, the
oldest drops off), then ``kill -USR1`` and wait for ``cycle K done``. So every fetch of every
cycle after the first is a 200 with one new entry to parse, sanitize, store and page out.
The store keeps ``--max-entries-per-feed`` (20, the feed's own length) per feed, so the
content held is the same from the cold cycle on and any growth of memory is not content.
Snapshots are written every ``--snapshot-interval`` s (300, the daemon's default).

A thread samples, every ``--sample-seconds`` (5): VmRSS of the daemon's process tree (main
and workers), the daemon's open fds (``/proc/PID/fd``) and threads (``Threads:`` of
``/proc/PID/status``), and the same summed over the tree. After each cycle one more sample
is taken (RSS between cycles, comparable from one cycle to the next).

Issue 15's goal: RSS after the first ``--warmup-minutes`` (10) grows by less than 5 %;
open fds and threads constant. Printed: RSS at the end of the warm-up and at the end (both
the between-cycles samples and the peaks of the first and last ``--window-minutes``), the
growth in %, the slope of a least-squares fit over the post-warm-up between-cycle samples
(MB per hour), and the min/max of fds and threads after the warm-up. Not timing-sensitive:
run it under ``nice -n 19``. JSON in ``benchmarks/results/soak.json`` (rewritten after
every cycle, so a stopped run still leaves its figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchutil import table  # noqa: E402
from cycle import (  # noqa: E402
    CYCLE_LINE,
    DaemonProcess,
    FarmProcess,
    progress,
    signalled_cycle,
    write_config,
)
from proctree import descendants, rss_bytes  # noqa: E402

RESULTS = HERE / "results"
GROWTH_TARGET = 5.0  # percent


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def threads(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def sample(root: int, started: float, kind: str) -> dict[str, Any]:
    """One sample of the tree: RSS (MB), fds and threads of the root and of the tree."""
    kids = descendants(root)
    main = rss_bytes(root)
    workers = sum(rss_bytes(pid) for pid in kids)
    return {
        "t_s": time.perf_counter() - started,
        "kind": kind,
        "rss_mb": (main + workers) / 1e6,
        "rss_main_mb": main / 1e6,
        "rss_workers_mb": workers / 1e6,
        "fds": open_fds(root),
        "threads": threads(root),
        "tree_fds": open_fds(root) + sum(open_fds(pid) for pid in kids),
        "tree_threads": threads(root) + sum(threads(pid) for pid in kids),
        "processes": 1 + len(kids),
    }


class Sampler:
    """``sample()`` every ``interval`` s in a daemon thread; samples appended to a list."""

    def __init__(self, root: int, started: float, interval: float) -> None:
        self.root, self.started, self.interval = root, started, interval
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(sample(self.root, self.started, "timed"))

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def slope_mb_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per hour (0.0 under 2 points)."""
    if len(points) < 2:
        return 0.0
    return statistics.linear_regression([t for t, _ in points], [m for _, m in points])[0] * 3600


def summarize(samples: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """RSS at the end of the warm-up and at the end, growth, fd and thread ranges."""
    warm = args.warmup_minutes * 60
    window = args.window_minutes * 60
    between = [s for s in samples if s["kind"] == "between_cycles"]
    after = [s for s in between if s["t_s"] >= warm]
    timed = [s for s in samples if s["kind"] == "timed"]
    out: dict[str, Any] = {"samples": len(samples), "cycles_after_warmup": len(after)}
    if len(after) >= 2:
        first, last = after[0], after[-1]
        out["between_cycles"] = {
            "rss_at_warmup_mb": first["rss_mb"],
            "rss_at_warmup_t_s": first["t_s"],
            "rss_end_mb": last["rss_mb"],
            "rss_end_t_s": last["t_s"],
            "growth_pct": (last["rss_mb"] / first["rss_mb"] - 1) * 100,
            "max_after_warmup_mb": max(s["rss_mb"] for s in after),
            "main_at_warmup_mb": first["rss_main_mb"],
            "main_end_mb": last["rss_main_mb"],
            "slope_mb_per_hour": slope_mb_per_hour([(s["t_s"], s["rss_mb"]) for s in after]),
            "main_slope_mb_per_hour": slope_mb_per_hour(
                [(s["t_s"], s["rss_main_mb"]) for s in after]
            ),
        }
    end = max((s["t_s"] for s in timed), default=0.0)
    head = [s["rss_mb"] for s in timed if warm <= s["t_s"] < warm + window]
    tail = [s["rss_mb"] for s in timed if s["t_s"] >= end - window and s["t_s"] >= warm]
    if head and tail:
        out["peaks"] = {
            "first_window_peak_mb": max(head),
            "last_window_peak_mb": max(tail),
            "growth_pct": (max(tail) / max(head) - 1) * 100,
            "window_minutes": args.window_minutes,
        }
    post = [s for s in samples if s["t_s"] >= warm] or samples
    for key in ("fds", "threads", "tree_fds", "tree_threads", "processes"):
        values = [s[key] for s in post]
        out[key] = {"min": min(values), "max": max(values)}
        every = [s[key] for s in samples]
        out[key]["min_all"], out[key]["max_all"] = min(every), max(every)
    return out


def report(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    rows = []
    if b := s.get("between_cycles"):
        at = b["rss_at_warmup_t_s"] / 60
        rows.append(["RSS MB between cycles, at warm-up end",
                     f"{b['rss_at_warmup_mb']:.1f} (t={at:.1f} min)"])  # fmt: skip
        rows.append(["RSS MB between cycles, at the end",
                     f"{b['rss_end_mb']:.1f} (t={b['rss_end_t_s'] / 60:.1f} min)"])  # fmt: skip
        ok = "ok" if b["growth_pct"] < GROWTH_TARGET else "OVER"
        rows.append(["  growth", f"{b['growth_pct']:+.1f} % ({ok}, target < 5 %)"])
        rows.append(["  fit over the cycles after warm-up", f"{b['slope_mb_per_hour']:+.1f} MB/h"])
        rows.append(["  main process: warm-up end -> end",
                     f"{b['main_at_warmup_mb']:.1f} -> {b['main_end_mb']:.1f} MB "
                     f"({b['main_slope_mb_per_hour']:+.1f} MB/h)"])  # fmt: skip
        rows.append(["  largest between-cycles RSS after warm-up",
                     f"{b['max_after_warmup_mb']:.1f}"])  # fmt: skip
    if p := s.get("peaks"):
        rows.append([f"peak RSS MB, first / last {p['window_minutes']:g} min after warm-up",
                     f"{p['first_window_peak_mb']:.1f} / {p['last_window_peak_mb']:.1f} "
                     f"({p['growth_pct']:+.1f} %)"])  # fmt: skip
    for key, label in (("fds", "open fds (daemon)"), ("threads", "threads (daemon)"),
                       ("tree_fds", "open fds (tree)"), ("tree_threads", "threads (tree)"),
                       ("processes", "processes in the tree")):  # fmt: skip
        r = s[key]
        rows.append([f"{label} min / max after warm-up (all run)",
                     f"{r['min']} / {r['max']} ({r['min_all']} / {r['max_all']})"])  # fmt: skip
    c = doc["cycles"]
    if c:
        walls = [x["wall_s"] for x in c]
        rows.append(["cycles after the cold one", str(len(c))])
        rows.append(["cycle wall s: median / max",
                     f"{statistics.median(walls):.1f} / {max(walls):.1f}"])  # fmt: skip
        new = [x["new_entries"] for x in c]
        rows.append(["new entries per cycle: min / max", f"{min(new)} / {max(new)}"])
        rows.append(["failing feeds per cycle: max", str(max(x["failing"] for x in c))])
    return table(["", "value"], rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", "--feeds", dest="feeds", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--entries", type=int, default=20, help="entries per feed document")
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--minutes", type=float, default=60.0, help="from the daemon's spawn")
    ap.add_argument("--warmup-minutes", type=float, default=10.0)
    ap.add_argument("--window-minutes", type=float, default=5.0, help="peak RSS windows")
    ap.add_argument("--sample-seconds", type=float, default=5.0)
    ap.add_argument("--max-entries-per-feed", type=int, default=20)
    ap.add_argument("--snapshot-interval", type=float, default=300.0)
    ap.add_argument("--per-host", type=int, default=2)
    ap.add_argument("--max-concurrency", type=int, default=16)
    ap.add_argument("--feed-timeout", type=float, default=60.0)
    ap.add_argument("--cycle-timeout", type=float, default=900.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", help="keep state and logs here (default: a temporary dir)")
    ap.add_argument("--json", default=str(RESULTS / "soak.json"))
    args = ap.parse_args(argv)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="planet-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "benchmark": "soak",
        "params": {k: v for k, v in vars(args).items() if k not in ("json", "workdir")},
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": os.getloadavg(),
            "nice": os.nice(0),
        },  # fmt: skip
        "cycles": [],
        "workdir": str(work),
    }
    samples: list[dict[str, Any]] = []

    def save() -> None:
        doc["machine"]["loadavg_now"] = os.getloadavg()
        doc["summary"] = summarize(samples, args)
        doc["samples"] = samples
        out.write_text(json.dumps(doc, indent=1) + "\n")

    progress(f"soak: {args.feeds} feeds over {args.hosts} hosts for {args.minutes:g} min")
    farm = FarmProcess(args, work)
    daemon = None
    sampler = None
    try:
        state = work / "planet"
        overrides = {
            "max_entries_per_feed": str(args.max_entries_per_feed),
            "snapshot_interval": str(args.snapshot_interval),
        }
        write_config(state, farm.urls, args, overrides)
        daemon = DaemonProcess(state, "soak")
        sampler = Sampler(daemon.pid, daemon.spawned_at, args.sample_seconds).start()
        samples = sampler.samples  # appended to by the thread; read between cycles
        deadline = daemon.spawned_at + args.minutes * 60
        daemon.wait_port()
        daemon.cursor = 0
        match, _ = daemon.wait_for(CYCLE_LINE, args.cycle_timeout)
        doc["cold"] = {"wall_s": float(match[3]), "parsed": int(match[6])}
        progress(f"  cold cycle: {match[3]} s")
        samples.append(sample(daemon.pid, daemon.spawned_at, "between_cycles"))
        round_ = 0
        while time.perf_counter() < deadline:
            round_ += 1
            farm.control("change", fraction=1.0, round=round_)
            record = signalled_cycle(daemon, farm, f"round {round_}", args)
            after = sample(daemon.pid, daemon.spawned_at, "between_cycles")
            samples.append(after)
            record["t_s"] = after["t_s"]
            record["rss_mb"] = after["rss_mb"]
            doc["cycles"].append(record)
            save()
    finally:
        if sampler is not None:
            sampler.stop()
        if daemon is not None:
            doc["stop_returncode"] = daemon.stop(120)
            doc["log"] = str(daemon.log_path)
        farm.stop()
    samples.sort(key=lambda s: s["t_s"])
    save()
    load = doc["machine"]
    print(f"\nsoak: {args.feeds} feeds x {args.entries} entries, every fetch a new entry, "
          f"{args.minutes:g} min; load average {load['loadavg_before'][0]:.2f} before, "
          f"{load['loadavg_now'][0]:.2f} at the end (nice {load['nice']})\n")  # fmt: skip
    print(report(doc))
    print(f"\nwritten {out} (work dir {work})")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
