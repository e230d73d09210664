"""Where the daemon's resident memory goes in a cold fetch cycle, process by process.

.venv/bin/python benchmarks/memory.py [--wrk] [--repeat 3] [--env MALLOC_ARENA_MAX=1 ...]

Starts ``farm.py`` (as ``cycle.py`` does: 1000 feeds x 20 entries, no latency) and, per
repeat, a fresh ``twistd planet`` on an empty state dir; waits for its cold cycle (with
``--wrk``: ``wrk`` on ``/`` from the moment the port is open, like cycle.py's run B). The
tree's VmRSS is sampled every 50 ms, as ``proctree.RssSampler`` does, and for each process
on its own. Printed per run, one JSON line: the cycle's wall and CPU time, the tree's peak
(total, main, workers), each process at the moment of the peak, and, ``--settle`` seconds
after the cycle, each process's VmRSS, Pss and anonymous memory. ``--env`` sets variables
for the daemon only (glibc's ``MALLOC_*`` to compare settings, say).

Figures measured with it are in the docstring of ``src/planet/memory.py`` and
``src/planet/workers.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cycle  # noqa: E402
from proctree import descendants  # noqa: E402


def status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile of ``pid`` in bytes (empty once it is gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def rollup(pid: int) -> dict[str, int]:
    """Pss and Anonymous of ``pid`` (``/proc/PID/smaps_rollup``), bytes."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0].rstrip(":") in ("Pss", "Anonymous"):
                out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except (OSError, ValueError):
        pass
    return out


def role(pid: int, root: int) -> str:
    """main, worker, forkserver or tracker (multiprocessing's), from the command line."""
    if pid == root:
        return "main"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "gone"
    if b"resource_tracker" in cmdline:
        return "tracker"
    if b"forkserver import main" in cmdline:
        parent = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1]
        server = b"forkserver" in Path(f"/proc/{parent}/cmdline").read_bytes()
        return "worker" if server else "forkserver"
    return "worker"


class TreeSampler:
    """The tree's peak VmRSS and every process's share of it at that moment."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root, self.interval = root, interval
        self.peak_total = self.peak_main = self.peak_workers = 0
        self.at_peak: dict[int, int] = {}
        self.peak_time = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = {pid: status(pid).get("VmRSS", 0) for pid in [self.root, *descendants(self.root)]}
            main = rss.pop(self.root)
            workers = sum(rss.values())
            self.peak_main = max(self.peak_main, main)
            self.peak_workers = max(self.peak_workers, workers)
            if main + workers > self.peak_total:
                self.peak_total = main + workers
                self.at_peak = {self.root: main, **rss}
                self.peak_time = time.perf_counter()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def mb(value: float) -> float:
    return round(value / 1e6, 1)


def one_run(
    farm: cycle.FarmProcess, args: argparse.Namespace, work: Path, name: str
) -> dict[str, Any]:
    saved = dict(os.environ)
    os.environ.update(kv.split("=", 1) for kv in args.env)
    try:
        daemon, rss_sampler, farm_before = cycle.start_fresh(farm, args, work, name)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    rss_sampler.stop()  # ours below also keeps each process's share
    sampler = TreeSampler(daemon.pid)
    try:
        port_at = daemon.wait_port()
        wrk = cycle.start_wrk(daemon.url("/"), args) if args.wrk else None
        cold, done_at = cycle.cold_cycle(daemon, farm, farm_before, args, port_at)
        served = cycle.finish_wrk(wrk, 0.0) if wrk is not None else {}
        time.sleep(args.settle)
        root = daemon.pid
        steady = {
            f"{role(pid, root)}:{pid}": {
                k: mb(v) for k, v in {**status(pid), **rollup(pid)}.items() if k != "VmHWM"
            }
            for pid in [root, *descendants(root)]
        }
        sampler.stop()
        return {
            "name": name,
            "env": args.env,
            "wrk": args.wrk,
            "cold_wall_s": cold["wall_s"],
            "cold_cpu_s": round(cold["cpu_s"], 2),
            "cold_cpu_main_s": round(cold["cpu_main_s"], 2),
            "peak_total_mb": mb(sampler.peak_total),
            "peak_main_mb": mb(sampler.peak_main),
            "peak_workers_mb": mb(sampler.peak_workers),
            "peak_at_s": round(sampler.peak_time - daemon.spawned_at, 2),
            "cycle_done_at_s": round(done_at - daemon.spawned_at, 2),
            "at_peak_mb": {f"{role(p, root)}:{p}": mb(v) for p, v in sampler.at_peak.items()},
            "steady_mb": steady,
            "wrk_requests_per_s": served.get("requests_per_s"),
            "wrk_p99_ms": served.get("p99_ms"),
        }
    finally:
        sampler.stop()
        daemon.kill()
        shutil.rmtree(daemon.state_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--entries", type=int, default=20)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--wrk", action="store_true", help="load / with wrk during the cycle")
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds before the steady look")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the daemon")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    # What cycle.py's helpers read from its own options.
    args.per_host, args.max_concurrency, args.feed_timeout = 2, 16, 60.0
    args.cycle_timeout, args.rss_interval = 900.0, 0.05
    args.wrk_threads, args.wrk_connections = 2, 32

    work = Path(tempfile.mkdtemp(prefix="planet-memory-"))
    farm = cycle.FarmProcess(args, work)
    try:
        for i in range(args.repeat):
            print(json.dumps(one_run(farm, args, work, f"run{i}")), flush=True)
    finally:
        farm.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
