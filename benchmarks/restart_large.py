"""A 200,000-entry daemon: restart to first page, and the reactor's longest stalls.

.venv/bin/python benchmarks/restart_large.py [--entries 200000] [--feeds 10000] [--restarts 3]

1. **A snapshot** of ``--entries`` entries over ``--feeds`` feeds (``snapshot_stall.build_store``:
   sanitized 1-2 KB HTML each), written through planet's own codec (``snapshotcodec.encode``,
   ``atomicfile.write_atomic``), with a ``planet.ini`` listing every feed. The feeds are
   those of a ``farm.py`` (``--farm-entries`` 1 entry each, no latency) and each state holds
   the farm's ETag, so every fetch is a 304; each state's ``next_fetch`` is a day ahead, so
   a restart fetches nothing.
2. **Restart to first page**, ``--restarts`` times (``cycle.restarts``): ``twistd planet`` on
   that state dir, from spawn to the first ``GET /`` answering with the whole first page
   (as many entries as a first, unmeasured start showed), each paired with a start on an
   empty state dir for the snapshot's load time alone.
3. **Stalls** (unless ``--skip-stalls``), in a fresh child process running the daemon as
   ``service.build_service`` makes it (``memory.tune_malloc`` first, as ``twistd planet``
   does), with a ``LoopingCall`` every ``--tick`` ms (``benchutil.LagMonitor``): first from
   the start until the snapshot's older entries are all read (``SnapshotService.loaded``),
   then over one run of these phases: idle; a snapshot write (``SnapshotService.write``,
   after one store change); idle while the heap trimmer returns the write's garbage; a fetch cycle
   (``PlanetService.refresh``: every feed due, every fetch a 304) and the heap's settle after
   it (``gc.collect()`` of everything start-up did not freeze: the daemon's only full pass,
   see ``planet.heap``); idle; the same cycle and settle again; idle; the settle called
   alone; idle. The longest gap between ticks is reported per phase, with every
   ``malloc_trim`` of the heap trimmer timed (wrapped around ``HeapTrimmer._trim``: it runs
   on the reactor thread every second) and every collection (``benchutil.GCWatch``: the gen2
   ones per phase).

Issue 15's targets: restart to first page < 2 s; no reactor stall over 20 ms during the
snapshot write, the full collection or a heap trim. JSON in
``benchmarks/results/restart_large.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# After PYTHONPATH, as in cycle304.py: planet from this checkout unless told otherwise.
sys.path.append(str(HERE.parent / "src"))

from benchutil import GCWatch, LagMonitor, cycle_ends, table  # noqa: E402
from cycle import (  # noqa: E402
    ENTRY_MARK,
    SNAPSHOT_LOADED,
    DaemonProcess,
    FarmProcess,
    http_get,
    progress,
    restarts,
    write_config,
)

RESULTS = HERE / "results"
STALL_TARGET_MS = 20.0
RESTART_TARGET_S = 2.0


def generate(state: Path, args: argparse.Namespace, farm_urls: list[str]) -> dict[str, Any]:
    """Write ``state/planet-snapshot.json`` and ``state/planet.ini``; sizes and timings."""
    import attrs
    import feedgen
    from snapshot_stall import build_store

    from planet.atomicfile import write_atomic
    from planet.snapshotcodec import encode

    started = time.perf_counter()
    store = build_store(args.entries, args.feeds, args.seed, args.pool)
    entries, states = store.snapshot_data()
    urls = {feedgen.feed_url(i): farm_urls[i] for i in range(args.feeds)}
    index = {url: i for i, url in enumerate(farm_urls)}
    now = datetime.now(timezone.utc)
    entries = [attrs.evolve(e, feed_url=urls[e.feed_url]) for e in entries]
    # The farm's validators (farm.Feed), so that every fetch is answered 304.
    states = [
        attrs.evolve(
            s,
            url=u,
            etag=f'"f{index[u]}-v0"',
            last_fetch=now - timedelta(minutes=5),
            next_fetch=now + timedelta(days=1),
            http_status=200,
            error=None,
            consecutive_errors=0,
        )  # fmt: skip
        for s in states
        for u in [urls[s.url]]
    ]
    built = time.perf_counter() - started
    state.mkdir(parents=True, exist_ok=True)
    size = write_atomic(str(state / "planet-snapshot.json"), encode(entries, states, now))
    ns = argparse.Namespace(feed_timeout=10, per_host=2, max_concurrency=16)
    write_config(state, [s.url for s in states], ns, {"allow_private_networks": "yes",
                 "fetch_interval": "3600", "snapshot_interval": "86400"})  # fmt: skip
    content = sum(len((e.title + (e.content or "")).encode()) for e in entries)
    return {
        "entries": len(entries),
        "feeds": len(states),
        "content_bytes": content,
        "snapshot_bytes": size,
        "generate_s": time.perf_counter() - started,
        "build_s": built,
    }


def first_page_entries(state: Path) -> int:
    """Entries on the first page once the snapshot is in (one start, not measured)."""
    daemon = DaemonProcess(state, "reference")
    try:
        daemon.wait_for(SNAPSHOT_LOADED, 180)
        daemon.cursor = 0
        daemon.wait_port()
        status, _, page = http_get(daemon.url("/"), timeout=120)
        if status != 200:
            raise RuntimeError(f"GET / answered {status}: {daemon.log_path}")
        return page.count(ENTRY_MARK)
    finally:
        daemon.kill()


# --- the child: the daemon in process, a lag probe over its phases ---------------------


class Phases:
    """Named stretches of perf_counter time; the longest tick gaps that began in each."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []

    def add(self, name: str, start: float) -> None:
        self.spans.append((name, start, time.perf_counter()))

    def worst(self, stamps: list[float], interval: float) -> dict[str, dict[str, Any]]:
        """Per phase: its length, its longest lag and the 5 longest with when they began
        (s from the phase's start). A gap between ticks belongs to the phase it overlaps
        most: a settle that ends a cycle is the cycle's, a step run at once is its own."""
        gaps: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in self.spans}
        for a, b in pairwise(stamps):
            overlaps = [
                (min(b, end) - max(a, start), name, start) for name, start, end in self.spans
            ]
            share, name, start = max(overlaps, key=lambda o: o[0])
            if share > 0:
                gaps[name].append((max(0.0, b - a - interval) * 1000, a - start))
        out: dict[str, dict[str, Any]] = {}
        for name, start, end in self.spans:
            top = sorted(gaps[name], reverse=True)[:5]
            out[name] = {
                "s": end - start,
                "max_lag_ms": top[0][0] if top else 0.0,
                "worst": [{"lag_ms": lag, "at_s": at} for lag, at in top],
            }
        return out


async def stall_child(reactor: Any, state: Path, args: argparse.Namespace) -> dict[str, Any]:
    from snapshot_stall import bump
    from twisted.internet.defer import Deferred
    from twisted.internet.task import deferLater
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from planet import memory
    from planet.config import load_config
    from planet.heap import HeapService, HeapTrimmer
    from planet.service import build_service
    from planet.snapshot import SnapshotService
    from planet.tap import in_state_dir

    memory.tune_malloc()
    log = open(state / "stall-child.log", "w", encoding="utf-8")  # noqa: SIM115 - for the run
    globalLogBeginner.beginLoggingTo([textFileLogObserver(log)], redirectStandardIO=False)
    config = in_state_dir(load_config(str(state / "planet.ini")), str(state))
    service = build_service(config, None, reactor)
    children = list(service)
    snap = next(c for c in children if isinstance(c, SnapshotService))
    heap = next(c for c in children if isinstance(c, HeapService))
    trimmer = next(c for c in children if isinstance(c, HeapTrimmer))
    phases = Phases()
    trims: list[dict[str, Any]] = []
    settles: list[float] = []
    current = ["start"]

    # A private name: the trimmer's own call, timed where it runs (on the reactor thread).
    untimed_trim: Callable[[], bool] = trimmer._trim

    def timed_trim() -> bool:
        t0 = time.perf_counter()
        returned = untimed_trim()
        trims.append({"ms": (time.perf_counter() - t0) * 1000, "returned": returned,
                      "phase": current[0]})  # fmt: skip
        return returned

    trimmer._trim = timed_trim
    untimed_settle = heap.settle

    def timed_settle() -> None:
        t0 = time.perf_counter()
        untimed_settle()
        settles.append((time.perf_counter() - t0) * 1000)

    heap.settle = timed_settle  # type: ignore[method-assign]
    cycle_over = cycle_ends(service.aggregator)

    started = time.perf_counter()
    service.privilegedStartService()
    service.startService()
    # The snapshot's older entries are read in turns of the reactor after start.
    reading = LagMonitor(reactor, args.tick / 1000)
    reading.start()
    await snap.loaded()
    load_s = time.perf_counter() - started
    reading_lag = reading.stop()
    entries = service.store.entry_count()
    await deferLater(reactor, 2.0)  # start-up's own trims and garbage out of the way

    gc_marks: list[tuple[str, int]] = []

    async def step(name: str, work: Callable[[], Any] | None = None) -> None:
        current[0] = name
        gc_marks.append((name, len(watch.runs)))
        t0 = time.perf_counter()
        if work is None:
            await deferLater(reactor, args.settle_seconds)
        else:
            await work()
        phases.add(name, t0)

    def cycle() -> Deferred[None]:
        over = cycle_over()
        service.refresh()
        return over

    async def settle_alone() -> None:
        heap.settle()

    monitor = LagMonitor(reactor, args.tick / 1000)
    with GCWatch() as watch:
        monitor.start()
        await step("idle")
        bump(service.store)
        await step("snapshot write", snap.write)
        await step("idle after the write (trims)")
        await step("fetch cycle, then the routine settle", cycle)
        await step("idle after that cycle")
        await step("fetch cycle again, then the settle", cycle)
        await step("idle after the cycle")
        # The settle is a full pass over all but what start-up froze.
        await step("full gc pass alone (settle)", settle_alone)
        await step("idle, end")
        lag = monitor.stop()
    gcs = watch.runs
    per_phase = phases.worst(monitor.stamps, monitor.interval)
    ends = [n for _, n in gc_marks[1:]] + [len(gcs)]
    for (name, first), last in zip(gc_marks, ends, strict=True):
        gen2 = [g["ms"] for g in gcs[first:last] if g["generation"] == 2 and g["reactor_thread"]]
        per_phase[name]["gen2_ms"] = gen2
    for name in per_phase:
        mine = [t for t in trims if t["phase"] == name]
        per_phase[name]["trims"] = len(mine)
        per_phase[name]["max_trim_ms"] = max((t["ms"] for t in mine), default=0.0)
    log_written = [line for line in (state / "stall-child.log").read_text().splitlines()
                   if "Snapshot written" in line]  # fmt: skip
    import gc

    tracked, frozen = len(gc.get_objects()), gc.get_freeze_count()
    await service.stopService()
    return {
        "load_s": load_s,
        "reading_lag": reading_lag,
        "entries": entries,
        "overall": lag,
        "phases": per_phase,
        "settles_ms": settles,
        "tracked_objects": tracked,
        "frozen_objects": frozen,
        "trims": trims,
        "gc_reactor_gen2_ms": [
            g["ms"] for g in gcs if g["generation"] == 2 and g["reactor_thread"]
        ],
        "gc_max_ms": max((g["ms"] for g in gcs if g["reactor_thread"]), default=0.0),
        "snapshot_lines": log_written,
    }


def run_child(state: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = state / "stall-child.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stall-child", str(state)]
    cmd += ["--child-out", str(out), "--tick", str(args.tick)]
    cmd += ["--settle-seconds", str(args.settle_seconds)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        str(HERE.parent / "src"), os.environ.get("PYTHONPATH")])))  # fmt: skip
    proc = subprocess.run(cmd, env=env, check=False, timeout=1800)
    if proc.returncode or not out.exists():
        raise RuntimeError(f"stall child failed ({proc.returncode}): {state}/stall-child.log")
    return json.loads(out.read_text())


# --- main --------------------------------------------------------------------------------


def report(doc: dict[str, Any]) -> str:
    g, r = doc["generated"], doc["restart"]
    ok = "ok" if r["spawn_to_first_page_s"] < RESTART_TARGET_S else "MISSED"
    rows = [
        ["entries / feeds", f"{g['entries']:,} / {g['feeds']:,}", ""],
        ["entry content (title+content)", f"{g['content_bytes'] / 1e6:.0f} MB", ""],
        ["snapshot", f"{g['snapshot_bytes'] / 1e6:.0f} MB", ""],
        ["restart: spawn -> first page", f"{r['spawn_to_first_page_s']:.2f} s",
         f"target < 2 s: {ok}; runs " + ", ".join(
             f"{x['spawn_to_first_page_s']:.2f}" for x in r["runs"])],
        ["  spawn -> port / -> Loaded snapshot", f"{r['spawn_to_port_s']:.2f} / "
         f"{r['spawn_to_loaded_line_s']:.2f} s", ""],
        ["  snapshot load (less an empty start)", f"{r['load_s']:.2f} s", ""],
    ]  # fmt: skip
    if "stalls" not in doc:  # --skip-stalls
        return table(["", "value", "note"], rows)
    s = doc["stalls"]
    rows.append(["  in the stall child: start -> loaded", f"{s['load_s']:.2f} s", ""])
    if "reading_lag" in s:
        lag = s["reading_lag"]
        ok = "ok" if lag["max_lag_ms"] <= STALL_TARGET_MS else "OVER"
        rows.append(["stall: reading the older entries", f"{lag['max_lag_ms']:.1f} ms",
                     f"{ok}; p99 {lag['p99_lag_ms']:.1f} ms"])  # fmt: skip
    for name, p in s["phases"].items():
        ok = "ok" if p["max_lag_ms"] <= STALL_TARGET_MS else "OVER"
        note = [ok]
        if p["trims"]:
            note.append(f"{p['trims']} trims, longest {p['max_trim_ms']:.1f} ms")
        if p.get("gen2_ms"):
            note.append(f"{len(p['gen2_ms'])} gen2 GCs, longest {max(p['gen2_ms']):.0f} ms")
        if p["max_lag_ms"] > STALL_TARGET_MS:
            over = [w for w in p["worst"] if w["lag_ms"] > STALL_TARGET_MS]
            note.append("over 20 ms at " + ", ".join(
                f"{w['at_s']:.2f} s ({w['lag_ms']:.0f})" for w in over))  # fmt: skip
        rows.append([f"stall: {name} ({p['s']:.1f} s)", f"{p['max_lag_ms']:.1f} ms",
                     "; ".join(note)])  # fmt: skip
    settles = ", ".join(f"{x:.0f}" for x in s["settles_ms"])
    objects = f"{s['tracked_objects']} objects tracked, {s['frozen_objects']} frozen"
    rows.append(["heap settle (gc.collect) ms", settles, objects])
    gen2 = s["gc_reactor_gen2_ms"]
    rows.append(["gen2 collections on the reactor thread", f"{len(gen2)}",
                 "longest " + (f"{max(gen2):.0f} ms" if gen2 else "-")])  # fmt: skip
    returned = [t["ms"] for t in s["trims"] if t["returned"]]
    rows.append(["malloc_trim: calls / returned memory", f"{len(s['trims'])} / {len(returned)}",
                 f"longest {max((t['ms'] for t in s['trims']), default=0):.1f} ms"])  # fmt: skip
    rows.append(["the cycle: farm answered", str(s.get("farm_by_status")), ""])
    whole = s["overall"]
    rows.append(["whole run: max lag / p99 lag", f"{whole['max_lag_ms']:.1f} / "
                 f"{whole['p99_lag_ms']:.1f} ms", f"{whole['ticks']} ticks"])  # fmt: skip
    return table(["", "value", "note"], rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--feeds", type=int, default=10_000)
    ap.add_argument("--hosts", type=int, default=64, help="the farm's loopback addresses")
    ap.add_argument("--farm-entries", type=int, default=1, help="entries per farm feed")
    ap.add_argument("--pool", type=int, default=3000, help="distinct HTML bodies to draw from")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--skip-stalls", action="store_true",
                    help="restart to first page only: no stall child (step 3)")  # fmt: skip
    ap.add_argument("--tick", type=float, default=5.0, help="lag probe interval, ms")
    ap.add_argument("--settle-seconds", type=float, default=3.0, help="each idle phase")
    ap.add_argument("--workdir", help="keep the state here (default: a temporary dir)")
    ap.add_argument("--json", default=str(RESULTS / "restart_large.json"))
    ap.add_argument("--stall-child", metavar="STATE", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.stall_child:
        from twisted.internet.defer import Deferred
        from twisted.internet.task import react

        def run(reactor: Any) -> Deferred[None]:
            async def go() -> None:
                result = await stall_child(reactor, Path(args.stall_child), args)
                Path(args.child_out).write_text(json.dumps(result, indent=1))

            return Deferred.fromCoroutine(go())

        react(run)
        return 0

    work = Path(args.workdir or tempfile.mkdtemp(prefix="planet-restart-large-"))
    state = work / "planet-a"  # the name cycle.restarts() reads
    doc: dict[str, Any] = {
        "benchmark": "restart_large",
        "params": {k: v for k, v in vars(args).items() if k not in ("json", "workdir")},
        "machine": {"cpus": os.cpu_count(), "loadavg_before": os.getloadavg()},
    }
    progress(f"farm: {args.feeds:,} feeds x {args.farm_entries} entries ...")
    work.mkdir(parents=True, exist_ok=True)
    farm_args = argparse.Namespace(feeds=args.feeds, hosts=args.hosts, seed=args.seed,
                                   entries=args.farm_entries, latency_ms=0)  # fmt: skip
    farm = FarmProcess(farm_args, work)
    try:
        progress(f"generating {args.entries:,} entries over {args.feeds:,} feeds ...")
        doc["generated"] = generate(state, args, farm.urls)
        g = doc["generated"]
        progress(f"  {g['snapshot_bytes'] / 1e6:.0f} MB snapshot in {g['generate_s']:.0f} s")
        entries = first_page_entries(state)
        progress(f"first page: {entries} entries; {args.restarts} restarts ...")
        doc["restart"] = restarts(args, work, entries)
        if not args.skip_stalls:
            progress("stall child: snapshot write, trims, full gc pass ...")
            farm.control("reset")
            doc["stalls"] = run_child(state, args)
            doc["stalls"]["farm_by_status"] = farm.stats()["by_status"]
    finally:
        farm.stop()
    doc["machine"]["loadavg_after"] = os.getloadavg()
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    before, after = doc["machine"]["loadavg_before"][0], doc["machine"]["loadavg_after"][0]
    print(f"\n{args.entries:,} entries / {args.feeds:,} feeds; lag probe every {args.tick:g} ms; "
          f"load average {before:.2f} before, {after:.2f} after\n")  # fmt: skip
    print(report(doc))
    if "stalls" in doc:
        worst = max(p["max_lag_ms"] for p in doc["stalls"]["phases"].values())
        print(f"\nworst phase stall {worst:.1f} ms (target <= {STALL_TARGET_MS:.0f} ms)")
    print(f"written {out}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
