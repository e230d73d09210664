"""The all-304 cycle, profiled: planet's daemon in this process, a loopback farm in another.

``service.build_service`` builds the daemon as production does (treq client over the
shared pool, the process parser, the store, the web view, WebSub, the snapshot service),
its log events go to a text file as under ``twistd``, and ``farm.py`` serves N feeds over
H loopback hosts. One cold cycle fills the store; then ``--rounds`` all-304 cycles are each
started as SIGUSR1 starts them (``PlanetService.refresh``) and timed: wall seconds from the
refresh to the cycle's end, and CPU seconds of this process (every thread; the parse
workers have nothing to do in a 304 cycle) over the same stretch::

    .venv/bin/python benchmarks/cycle304.py                      # 1000 feeds, 50 hosts
    .venv/bin/python benchmarks/cycle304.py --profile /tmp/304.prof

``--reader-hz N`` asks for the river (``/``, through the web view's own handler, no socket)
N times a second during each round and reports how often it was rendered (the
``planet_render_duration_seconds`` count of route ``river``): a cycle that changed nothing
shown should render it not at all (the reader's own CPU is in the round's figures).

``--profile FILE`` profiles the last round with cProfile, writes the stats to FILE and
prints the top 25 functions by cumulative and by own time. The farm answers at once by
default (``--latency-ms 0``): with cycle.py's 20 ms, 1000 feeds at 16 at a time cannot
take less than 1.25 s of wall time, whatever the CPU.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# After PYTHONPATH: a run may point it at another checkout's src to compare.
sys.path.append(str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from benchutil import GCWatch, LagMonitor, StallSampler, cycle_ends  # noqa: E402


def start_farm(args: argparse.Namespace, work: Path) -> tuple[subprocess.Popen[bytes], dict]:
    cmd = [sys.executable, str(HERE / "farm.py"), "--feeds", str(args.feeds)]
    cmd += ["--hosts", str(args.hosts), "--entries", str(args.entries)]
    cmd += ["--latency-ms", str(args.latency_ms)]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=open(work / "farm.err", "wb"),  # noqa: SIM115 - the child owns it
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the farm did not start:\n{(work / 'farm.err').read_text()}")
    return proc, json.loads(line)


Measure = Callable[[Any, argparse.Namespace, Path, dict], Awaitable[dict]]


def with_farm(args: argparse.Namespace, prefix: str, measure: Measure) -> dict:
    """``measure(reactor, args, work, ready)`` under ``react`` with ``farm.py`` running
    (``args``: its feeds, hosts, entries and latency), in a temporary directory ``work``."""
    from twisted.internet.defer import Deferred
    from twisted.internet.task import react

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        farm, ready = start_farm(args, work)
        try:

            def run(reactor: Any) -> Deferred[None]:
                async def go() -> None:
                    result.update(await measure(reactor, args, work, ready))

                return Deferred.fromCoroutine(go())

            try:
                react(run)
            except SystemExit as exc:
                if exc.code:
                    raise
        finally:
            farm.terminate()
            farm.wait(30)
    return result


def farm_control(ready: dict, what: str, method: str = "POST") -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{ready['port']}/_farm/{what}")
    request.method = method
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def write_config(work: Path, urls: list[str], args: argparse.Namespace) -> Path:
    lines = [
        "[Planet]",
        "name = Benchmark planet",
        "link = http://127.0.0.1/",
        # Cycles come only from the start and from refresh(); no snapshot while measuring.
        "fetch_interval = 86400",
        "snapshot_interval = 86400",
        "allow_private_networks = yes",
        f"snapshot_file = {work / 'planet-snapshot.json'}",
        f"per_host_concurrency = {args.per_host}",
        f"max_concurrency = {args.max_concurrency}",
        f"log_level = {args.log_level}",
        "",
    ]
    for i, url in enumerate(urls):
        lines += [f"[{url}]", f"name = Feed {i}", ""]
    path = work / "planet.ini"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def top(profile: cProfile.Profile, path: str) -> None:
    profile.dump_stats(path)
    for key in ("cumulative", "tottime"):
        print(f"\n--- top 25 by {key} ---")
        stats = pstats.Stats(path)
        stats.strip_dirs().sort_stats(key).print_stats(25)


async def measure(reactor: Any, args: argparse.Namespace, work: Path, ready: dict) -> dict:
    from twisted.internet.task import deferLater
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from planet.config import load_config
    from planet.service import build_service

    log = open(work / "planet.log", "w", encoding="utf-8")  # noqa: SIM115 - open for the run
    globalLogBeginner.beginLoggingTo([textFileLogObserver(log)], redirectStandardIO=False)
    config = load_config(str(write_config(work, ready["urls"], args)))
    listen = "tcp:0:interface=127.0.0.1" if args.listen else None
    service = build_service(config, listen, reactor)
    ends: list[tuple[float, float]] = []
    # The cycle's end, before the heap is settled (gc) after it.
    cycle_over = cycle_ends(
        service.aggregator, lambda: ends.append((time.perf_counter(), time.process_time()))
    )

    web = service.web

    def river_renders() -> tuple[float, float]:
        """Renders of / so far and their seconds, as /metrics counts them."""
        count = total = 0.0
        for metric in web.metrics.render_duration.collect():
            for sample in metric.samples:
                if sample.labels.get("route") != "river":
                    continue
                if sample.name.endswith("_count"):
                    count = sample.value
                elif sample.name.endswith("_sum"):
                    total = sample.value
        return count, total

    def read_river() -> None:
        from twisted.web.test.requesthelper import DummyRequest

        request = DummyRequest([b""])
        request.path = b"/"
        answer = web._hot(request)
        if hasattr(answer, "addErrback"):
            answer.addErrback(lambda f: None)

    over = cycle_over()
    started = time.perf_counter()
    cold_profile = cProfile.Profile() if args.profile_cold else None
    if cold_profile is not None:
        cold_profile.enable()
    service.privilegedStartService()
    service.startService()
    cold_lag = LagMonitor(reactor, 0.002)
    cold_lag.start()
    cold_sampler = StallSampler(reactor).start() if args.stalls else None
    await over
    cold = time.perf_counter() - started
    if cold_profile is not None:
        cold_profile.disable()
        top(cold_profile, args.profile_cold)
    cold_lags = cold_lag.stop()
    cold_stalls = cold_sampler.stop() if cold_sampler is not None else []
    await deferLater(reactor, 0.5)  # out of the cycle's own callbacks
    states = service.store.feed_states().values()
    print(f"cold cycle: {cold:.2f} s, {service.store.entry_count()} entries, "
          f"{sum(1 for s in states if not s.failing)}/{args.feeds} feeds ok; reactor lag "
          f"max {cold_lags['max_lag_ms']:.1f} ms, "
          f"p99 {cold_lags['p99_lag_ms']:.1f} ms")  # fmt: skip
    for where, count in cold_stalls[:12]:
        print(f"  {count:4d} x {where}")
    rounds = []
    profile = cProfile.Profile() if args.profile else None
    from twisted.internet.task import LoopingCall

    reader = LoopingCall(read_river)
    if args.reader_hz:
        read_river()  # the page as the cold cycle left it
        await deferLater(reactor, 1.5)
    for n in range(args.rounds):
        farm_control(ready, "reset")
        renders0 = river_renders()
        if args.reader_hz:
            reader.start(1 / args.reader_hz)
        over = cycle_over()
        last = n == args.rounds - 1
        wall0, cpu0, main0 = time.perf_counter(), time.process_time(), time.thread_time()
        sys0 = os.times().system
        gcs = GCWatch().__enter__()
        lag = LagMonitor(reactor, 0.002)
        lag.start()
        sampler = StallSampler(reactor).start() if args.stalls else None
        if profile is not None and last:
            profile.enable()
        service.refresh()
        await over
        if profile is not None and last:
            profile.disable()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        lags = lag.stop()
        stalls = sampler.stop() if sampler is not None else []
        main = time.thread_time() - main0
        sys_s = os.times().system - sys0
        gcs.__exit__()
        gc_s = gcs.summary()["all_total_ms"] / 1000
        end_wall, end_cpu = ends[-1][0] - wall0, ends[-1][1] - cpu0
        by_status = farm_control(ready, "stats", "GET")["by_status"]
        await deferLater(reactor, 0.2)
        if reader.running:
            # Past the render interval: a refresh scheduled during the cycle has run.
            await deferLater(reactor, 1.0)
            reader.stop()
        renders1 = river_renders()
        river = (renders1[0] - renders0[0], renders1[1] - renders0[1])
        rounds.append(
            {
                "wall_s": wall,
                "cpu_s": cpu,
                "main_thread_cpu_s": main,
                "system_cpu_s": sys_s,
                "gc_s": gc_s,
                "before_settle_wall_s": end_wall,
                "before_settle_cpu_s": end_cpu,
                "farm_by_status": by_status,
                "river_renders": river[0],
                "river_render_s": river[1],
                "max_lag_ms": lags["max_lag_ms"],
                "p99_lag_ms": lags["p99_lag_ms"],
                "stall_samples": stalls[:30],
            }
        )
        note = " (profiled)" if profile is not None and last else ""
        print(f"all-304 cycle {n + 1}: wall {wall:.3f} s, CPU {cpu:.3f} s, "
              f"{cpu / args.feeds * 1e6:.0f} us CPU/feed (system {sys_s:.3f} s, main thread "
              f"{main:.3f} s, gc {gc_s:.3f} s, before the heap settles: wall {end_wall:.3f} s "
              f"CPU {end_cpu:.3f} s), "
              f"farm {by_status}, renders of / {river[0]:.0f} ({river[1] * 1000:.1f} ms)"
              f"{note}; reactor lag max {lags['max_lag_ms']:.1f} ms, p99 "
              f"{lags['p99_lag_ms']:.1f} ms")  # fmt: skip
        for where, count in stalls[:12]:
            print(f"  {count:4d} x {where}")
    idle: dict[str, Any] = {}
    if args.stalls:
        # After the rounds: what stalls the reactor when no cycle runs (ticks, the trimmer).
        lag = LagMonitor(reactor, 0.002)
        lag.start()
        sampler = StallSampler(reactor).start()
        await deferLater(reactor, 10.0)
        idle = {**lag.stop(), "stall_samples": sampler.stop()[:30]}
        # What CPython's own full pass costs the reactor now (it starts one when the
        # long-lived objects grew by a quarter): the store's containers are most of it.
        started = time.perf_counter()
        gc.collect()
        idle["full_collection_ms"] = (time.perf_counter() - started) * 1000
        idle["tracked_objects"] = len(gc.get_objects())
        print(f"a full collection: {idle['full_collection_ms']:.1f} ms over "
              f"{idle['tracked_objects']} tracked objects (the frozen ones aside)")  # fmt: skip
        print(f"idle 10 s: reactor lag max {idle['max_lag_ms']:.1f} ms, p99 "
              f"{idle['p99_lag_ms']:.1f} ms")  # fmt: skip
        for where, count in idle["stall_samples"][:12]:
            print(f"  {count:4d} x {where}")
    print("stopping", flush=True)
    await service.stopService()
    if profile is not None:
        top(profile, args.profile)
    cold_out = {"s": cold, **cold_lags, "stall_samples": cold_stalls[:30]}
    return {"cold_s": cold, "cold": cold_out, "rounds": rounds, "idle": idle}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--entries", type=int, default=2, help="entries per feed (cold cycle)")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="the farm's delay per answer")
    ap.add_argument("--per-host", type=int, default=2)
    ap.add_argument("--max-concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3, help="all-304 cycles measured")
    ap.add_argument(
        "--log-level", default="INFO", help="planet's log_level (WARNING: no fetch lines)"
    )
    ap.add_argument("--listen", action="store_true", help="open the web port too")
    ap.add_argument(
        "--reader-hz", type=float, default=0.0, help="requests for / per second during rounds"
    )
    ap.add_argument(
        "--stalls",
        action="store_true",
        help="sample the reactor thread's stack while it is over 15 ms late (top 12 shown)",
    )
    ap.add_argument("--profile", metavar="FILE", help="cProfile the last round into FILE")
    ap.add_argument("--profile-cold", metavar="FILE",
                    help="cProfile the reactor thread over the cold cycle into FILE")  # fmt: skip
    ap.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = ap.parse_args(argv)

    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    result = with_farm(args, "cycle304-", measure)
    rounds = result.get("rounds", [])
    if rounds:
        wall = statistics.median(r["wall_s"] for r in rounds)
        cpu = statistics.median(r["cpu_s"] for r in rounds)
        print(f"median of {len(rounds)}: wall {wall:.3f} s, CPU {cpu:.3f} s "
              f"({cpu / args.feeds * 1e6:.0f} us CPU per 304), load average after: "
              f"{os.getloadavg()[0]:.2f}")  # fmt: skip
        result.update(median_wall_s=wall, median_cpu_s=cpu)
    result.update(params=vars(args), loadavg_before=load_before, loadavg_after=os.getloadavg())
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
