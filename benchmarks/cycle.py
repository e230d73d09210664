"""Fetch-cycle benchmark: ``twistd planet`` as a process against a loopback feed farm.

.venv/bin/python benchmarks/cycle.py [--feeds 1000] [--hosts 50] [--entries 20]
    [--latency-ms 20] [--wrk-seconds 10] [--skip-peers]

Starts ``farm.py`` (N feeds over H loopback addresses) and measures, in this order:

1. planet, run A, empty state dir: the cold cycle (every feed fetched and parsed), then,
   each started with ``kill -USR1`` and ended by the daemon's ``cycle K done`` log line,
   an all-304 cycle, an unchanged-200 cycle (the farm ignores validators, same bytes),
   and a cycle with ``--change-fraction`` (10 %) of the feeds given one new entry. CPU
   seconds of the daemon's whole process tree per cycle; its peak RSS all along. Then the
   front page is saved and ``bare_klein.py`` serves its bytes (a bare Klein app, and a
   bare twisted.web Resource); ``wrk`` on planet's idle ``/`` and on both baselines in
   turn (``--wrk-rounds``); SIGTERM (the snapshot write is timed by the daemon's log line).
2. planet, run B, empty state dir: ``wrk`` on ``/`` started as soon as the port is open,
   i.e. during the cold cycle (the overlap is recorded).
3. peers on the same farm (unless ``--skip-peers``): sfeed_update (``maxjobs=16``, curl
   with ETag/If-Modified-Since as sfeed's README shows) and reader 3.x
   (``update_feeds(workers=16)``, run by ``reader_peer.py`` in its own venv): a cold
   cycle and an all-304 cycle each.
4. the farm stopped, planet restarted on run A's snapshot (``--restarts`` times): spawn to
   "Loaded snapshot", to the port, to the first ``GET /`` showing the entries.

Prints one table and writes ``benchmarks/results/cycle.json``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchutil import HttpProbe, table  # noqa: E402
from proctree import RssSampler, tree_cpu_seconds  # noqa: E402

PYTHON = Path(sys.executable)
TWISTD = PYTHON.parent / "twistd"
RESULTS = HERE / "results"

PORT_LINE = re.compile(r"Site starting on (\d+)")
CYCLE_LINE = re.compile(
    r"cycle (\d+) done: (\d+) feeds in ([\d.]+) s \((\d+) ok, (\d+) failing, (\d+) parsed\)"
)
FETCH_LINE = re.compile(
    r"fetch (\S+): ([\w-]+) (\S+) (\d+) bytes (\d+) ms, (\d+) new, (\d+) updated"
)
SNAPSHOT_WRITTEN = re.compile(r"Snapshot written to .*: (\d+) entries, (\d+) bytes in (\d+) ms")
SNAPSHOT_LOADED = re.compile(r"Loaded snapshot .*: (\d+) entries, (\d+) feeds")
NO_SNAPSHOT = re.compile(r"No snapshot at")
ENTRY_MARK = b'<article class="entry">'


class BenchError(RuntimeError):
    pass


# --- processes -------------------------------------------------------------------------


def spawn(cmd: list[str], log: Path | None = None, **kw: Any) -> subprocess.Popen[bytes]:
    """A child in its own session (so it and its children can be stopped together)."""
    out: Any = open(log, "wb") if log else subprocess.PIPE  # noqa: SIM115 - the child owns it
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT if log else None,
        env=env, start_new_session=True, **kw,
    )  # fmt: skip


def stop(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    """SIGTERM, wait; SIGKILL the whole session if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


def run_rusage(cmd: list[str], output: Path) -> dict[str, Any]:
    """Run ``cmd`` to its end; wall time and CPU of it and every descendant it waited for.

    Its stdout goes to the file ``output`` (a pipe would fill up while we wait).
    """
    started = time.perf_counter()
    with open(output, "wb") as out_file:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_file)
    # ru_maxrss is useless here: a forked child starts with this process's high-water mark
    # and keeps it across exec. Sample the tree's VmRSS instead.
    sampler = RssSampler(proc.pid).start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    rss = sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": rss["peak_total_mb"],
        "returncode": proc.returncode,
        "stdout": output.read_text("utf-8", "replace"),
    }


def http_get(url: str, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers.items()), err.read()


class FarmProcess:
    """``farm.py`` in its own process and its control URLs."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        cmd = [str(PYTHON), str(HERE / "farm.py"), "--feeds", str(args.feeds)]
        cmd += ["--hosts", str(args.hosts), "--entries", str(args.entries)]
        cmd += ["--latency-ms", str(args.latency_ms), "--seed", str(args.seed)]
        self.errors = workdir / "farm.err"
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=open(self.errors, "wb"),  # noqa: SIM115 - the child owns it
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError(f"the farm did not start:\n{self.errors.read_text()}")
        self.ready: dict[str, Any] = json.loads(line)
        self.urls: list[str] = self.ready["urls"]
        self.base = f"http://127.0.0.1:{self.ready['port']}/_farm/"

    def control(self, what: str, method: str = "POST", **params: Any) -> Any:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        request = urllib.request.Request(self.base + what + ("?" + query if query else ""))
        request.method = method
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return self.control("stats", "GET")

    def stop(self) -> None:
        stop(self.proc)


class DaemonProcess:
    """``twistd -n planet`` on ``state_dir/planet.ini``; its log read as it grows."""

    def __init__(self, state_dir: Path, name: str) -> None:
        self.state_dir = state_dir
        self.log_path = state_dir / f"{name}.log"
        self.lines: list[tuple[float, str]] = []
        self.cursor = 0
        self._partial = ""
        cmd = [str(TWISTD), "-n", "--pidfile=", "planet", "--config", "planet.ini"]
        cmd += ["--listen", "tcp:0:interface=127.0.0.1", "--state-dir", str(state_dir)]
        self.spawned_at = time.perf_counter()
        self.proc = spawn(cmd, self.log_path, cwd=state_dir)
        self._log = open(self.log_path, encoding="utf-8", errors="replace")  # noqa: SIM115
        self.port: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        if self._log.closed:
            return
        text = self._partial + self._log.read()
        now = time.perf_counter()
        *complete, self._partial = text.split("\n")
        self.lines.extend((now, line) for line in complete)

    def mark(self) -> int:
        """Start later searches here (only lines logged from now on)."""
        self._read()
        self.cursor = len(self.lines)
        return self.cursor

    def wait_for(
        self, pattern: re.Pattern[str], deadline: float, poll: float = 0.01
    ) -> tuple[re.Match[str], float]:
        """The next line matching ``pattern`` (from the cursor on) and when it was read."""
        end = time.perf_counter() + deadline
        while True:
            self._read()
            while self.cursor < len(self.lines):
                seen, line = self.lines[self.cursor]
                self.cursor += 1
                match = pattern.search(line)
                if match:
                    return match, seen
            if self.proc.poll() is not None:
                raise BenchError(f"daemon exited ({self.proc.returncode}): see {self.log_path}")
            if time.perf_counter() > end:
                raise BenchError(f"no {pattern.pattern!r} within {deadline} s: {self.log_path}")
            time.sleep(poll)

    def wait_port(self, deadline: float = 60.0) -> float:
        match, seen = self.wait_for(PORT_LINE, deadline)
        self.port = int(match[1])
        return seen

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def matches(self, pattern: re.Pattern[str], start: int = 0, end: int | None = None) -> list:
        self._read()
        return [m for _, line in self.lines[start:end] if (m := pattern.search(line))]

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (a graceful stop: fetch grace, snapshot write); SIGKILL after ``timeout``."""
        code = stop(self.proc, timeout)
        self._read()
        self._log.close()
        return code

    def kill(self) -> None:
        """SIGKILL the daemon and its parse workers (its whole session) at once."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._read()
        self._log.close()


def write_config(
    state_dir: Path,
    urls: list[str],
    args: argparse.Namespace,
    overrides: dict[str, str] | None = None,
) -> None:
    """``planet.ini``: the [Planet] settings below (``overrides`` replace or add) and feeds."""
    state_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "name": "Benchmark planet",
        "link": "http://127.0.0.1/",
        # Cycles come only from the cold start and from SIGUSR1; snapshots only at stop.
        "fetch_interval": "86400",
        "snapshot_interval": "86400",
        "feed_timeout": str(args.feed_timeout),
        "snapshot_file": "planet-snapshot.json",
        "per_host_concurrency": str(args.per_host),
        "max_concurrency": str(args.max_concurrency),
    } | (overrides or {})
    lines = ["[Planet]", *(f"{k} = {v}" for k, v in settings.items()), ""]
    for i, url in enumerate(urls):
        lines += [f"[{url}]", f"name = Feed {i}", ""]
    (state_dir / "planet.ini").write_text("\n".join(lines), encoding="utf-8")


# --- wrk ---------------------------------------------------------------------------------

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms), errors and bytes per response from wrk."""
    out: dict[str, Any] = {}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        out["requests_per_s"] = float(m[1])
    for q, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        out[f"p{q}_ms"] = float(value) * _TIME_UNITS[unit]
    if m := re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", text):
        out["requests"] = int(m[1])
        out["duration_s"] = float(m[2]) * _TIME_UNITS[m[3]] / 1000
        out["bytes_per_response"] = float(m[4]) * _SIZE_UNITS[m[5]] / max(1, int(m[1]))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        out["non_2xx"] = int(m[1])
    if m := re.search(r"Socket errors: (.*)", text):
        out["socket_errors"] = m[1].strip()
    return out


def start_wrk(
    url: str, args: argparse.Namespace, seconds: float | None = None
) -> subprocess.Popen[bytes]:
    cmd = ["wrk", f"-t{args.wrk_threads}", f"-c{args.wrk_connections}"]
    cmd += [f"-d{seconds or args.wrk_seconds}s", "--latency", url]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)


def finish_wrk(proc: subprocess.Popen[bytes], started: float) -> dict[str, Any]:
    out, _ = proc.communicate()
    result = parse_wrk(out.decode())
    if "requests_per_s" not in result:
        raise BenchError(f"wrk output not understood:\n{out.decode()}")
    # This may be called long after wrk exited (run B waits for the cold cycle first).
    result["started_at"], result["ended_at"] = started, started + result["duration_s"]
    return result


def run_wrk(url: str, args: argparse.Namespace) -> dict[str, Any]:
    return finish_wrk(start_wrk(url, args), time.perf_counter())


# --- planet --------------------------------------------------------------------------------


def cycle_record(
    daemon: DaemonProcess,
    farm: FarmProcess,
    start_line: int,
    match: re.Match[str],
    cpu: tuple[dict[str, float], dict[str, float]],
    farm_before: dict[str, Any],
    driver_wall: float,
    feeds: int,
) -> dict[str, Any]:
    """One cycle's figures: the daemon's line, CPU delta, fetch outcomes, farm counts."""
    fetches = daemon.matches(FETCH_LINE, start_line, daemon.cursor)
    farm_after = farm.stats()
    before, after = cpu
    cpu_s = after["total"] - before["total"]
    return {
        "cycle": int(match[1]),
        "feeds": int(match[2]),
        "wall_s": float(match[3]),
        "driver_wall_s": driver_wall,
        "ok": int(match[4]),
        "failing": int(match[5]),
        "parsed": int(match[6]),
        "cpu_s": cpu_s,
        "cpu_main_s": after["main"] - before["main"],
        "cpu_workers_s": after["children"] - before["children"],
        "cpu_s_per_1000_feeds": cpu_s / feeds * 1000,
        "fetch_outcomes": dict(Counter(f"{m[2]} {m[3]}" for m in fetches)),
        "new_entries": sum(int(m[6]) for m in fetches),
        "updated_entries": sum(int(m[7]) for m in fetches),
        "farm_by_status": farm_after["by_status"],
        "farm_max_in_flight": farm_after["max_in_flight"],
        "farm_cpu_s": farm_after["cpu_s"] - farm_before["cpu_s"],
    }


def signalled_cycle(
    daemon: DaemonProcess, farm: FarmProcess, name: str, args: argparse.Namespace
) -> dict[str, Any]:
    """``kill -USR1`` the daemon and wait for its next ``cycle K done`` line."""
    farm_before = farm.control("reset")
    start_line = daemon.mark()
    cpu0 = tree_cpu_seconds(daemon.pid)
    started = time.perf_counter()
    os.kill(daemon.pid, signal.SIGUSR1)
    match, seen = daemon.wait_for(CYCLE_LINE, args.cycle_timeout)
    cpu1 = tree_cpu_seconds(daemon.pid)
    record = cycle_record(
        daemon, farm, start_line, match, (cpu0, cpu1), farm_before, seen - started, args.feeds
    )
    record["name"] = name
    progress(f"  {name}: {record['wall_s']:.2f} s, CPU {record['cpu_s']:.2f} s, "
             f"farm {record['farm_by_status']}, {record['new_entries']} new")  # fmt: skip
    return record


def start_fresh(
    farm: FarmProcess, args: argparse.Namespace, work: Path, name: str
) -> tuple[DaemonProcess, RssSampler, dict[str, Any]]:
    """A daemon on an empty state dir ``planet-NAME`` (its cold cycle starts at once)."""
    state = work / f"planet-{name}"
    write_config(state, farm.urls, args)
    farm_before = farm.control("reset")
    daemon = DaemonProcess(state, f"run-{name}")
    return daemon, RssSampler(daemon.pid, args.rss_interval).start(), farm_before


def cold_cycle(
    daemon: DaemonProcess,
    farm: FarmProcess,
    farm_before: dict[str, Any],
    args: argparse.Namespace,
    port_at: float,
) -> tuple[dict[str, Any], float]:
    """Wait for the first ``cycle 1 done`` line; CPU counted from the port line on."""
    cpu_port = tree_cpu_seconds(daemon.pid)
    daemon.cursor = 0
    match, done_at = daemon.wait_for(CYCLE_LINE, args.cycle_timeout)
    cpu_done = tree_cpu_seconds(daemon.pid)
    cold = cycle_record(
        daemon, farm, 0, match, (cpu_port, cpu_done), farm_before, done_at - port_at, args.feeds
    )
    cold["name"] = "cold"
    cold["cpu_from_spawn_s"] = cpu_done["total"]
    cold["startup_cpu_s"] = cpu_port["total"]
    cold["spawn_to_done_s"] = done_at - daemon.spawned_at
    return cold, done_at


def run_a(farm: FarmProcess, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Cold, all-304, unchanged-200 and changed cycles; idle wrk; the page; the stop."""
    daemon, sampler, farm_before = start_fresh(farm, args, work, "a")
    out: dict[str, Any] = {"cycles": {}}
    timeline = out["timeline"] = {}  # seconds from spawn, to place the RSS peak

    def at(name: str) -> None:
        timeline[name] = time.perf_counter() - daemon.spawned_at

    try:
        _, nosnap_at = daemon.wait_for(NO_SNAPSHOT, 60)
        daemon.cursor = 0
        port_at = daemon.wait_port()
        cold, _ = cold_cycle(daemon, farm, farm_before, args, port_at)
        out["startup"] = {
            "spawn_to_no_snapshot_line_s": nosnap_at - daemon.spawned_at,
            "spawn_to_port_s": port_at - daemon.spawned_at,
            "cpu_s": cold["startup_cpu_s"],
        }
        out["cycles"]["cold"] = cold
        at("cold_done")
        progress(
            f"  cold: {cold['wall_s']:.2f} s, CPU {cold['cpu_s']:.2f} s "
            f"(+{cold['startup_cpu_s']:.2f} s startup), farm {cold['farm_by_status']}"
        )

        out["cycles"]["all_304"] = signalled_cycle(daemon, farm, "all_304", args)
        at("all_304_done")
        farm.control("config", validators=0)
        out["cycles"]["unchanged_200"] = signalled_cycle(daemon, farm, "unchanged_200", args)
        at("unchanged_200_done")
        farm.control("config", validators=1)
        changed = farm.control("change", fraction=args.change_fraction, round=1)
        record = signalled_cycle(daemon, farm, "changed", args)
        record["changed_feeds"] = len(changed)
        out["cycles"]["changed"] = record
        at("changed_done")
        out["status_stall"] = status_pages_stall(daemon, args)
        at("status_stall_done")

        status, _, body = http_get(daemon.url("/feeds.json"))
        rows = json.loads(body) if status == 200 else []
        rows = rows.get("feeds", rows) if isinstance(rows, dict) else rows
        out["feed_states"] = dict(Counter(r.get("state", "?") for r in rows))

        status, headers, page = http_get(daemon.url("/"))
        out["front_page"] = {"status": status, "bytes": len(page),
                             "entries": page.count(ENTRY_MARK)}  # fmt: skip
        (work / "front-page.html").write_bytes(page)
        skip = {"date", "server", "content-length", "transfer-encoding", "connection"}
        kept = {k: v for k, v in headers.items() if k.lower() not in skip}
        (work / "front-page.headers.json").write_text(json.dumps(kept))
        at("wrk_start")
        out["front_page_wrk"] = front_page_vs_bare(daemon.url("/"), args, work)
        out["wrk_idle"] = out["front_page_wrk"].pop("planet")
        at("wrk_end")
    finally:
        # Peaks while running and during the SIGTERM stop (fetch grace, snapshot write)
        # are kept apart: the stop is not what a running planet costs.
        out["rss"] = sampler.stop()
        at("stop_start")
        stop_sampler = RssSampler(daemon.pid, args.rss_interval).start()
        out["stop_returncode"] = daemon.stop(args.stop_timeout)
        at("stop_end")
        out["rss_stop"] = stop_sampler.stop()
        out["stop_s"] = timeline["stop_end"] - timeline["stop_start"]
    writes = daemon.matches(SNAPSHOT_WRITTEN)
    out["snapshot_writes"] = [
        {"entries": int(m[1]), "bytes": int(m[2]), "ms": int(m[3])} for m in writes
    ]
    out["log"] = str(daemon.log_path)
    return out


def status_pages_stall(daemon: DaemonProcess, args: argparse.Namespace) -> dict[str, Any]:
    """The longest reactor stall while ``/feeds`` and ``/feeds.json`` are served.

    An :class:`HttpProbe` GETs ``/style.css`` (constant bytes, nothing computed) every 2 ms
    on a keep-alive connection, idle for ``--probe-idle-seconds``, then while curl GETs each
    status page ``--status-gets`` times in turn (the first GET after a cycle renders it, the
    others may come from the page cache); each GET's stretch runs to 0.2 s after it ended.
    """
    assert daemon.port is not None
    probe = HttpProbe("127.0.0.1", daemon.port, "/style.css").start("idle")
    gets: dict[str, list[dict[str, Any]]] = {}
    try:
        time.sleep(args.probe_idle_seconds)
        for path in ("/feeds", "/feeds.json"):
            for i in range(args.status_gets):
                probe.mark(f"{path} #{i + 1}")
                cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} "
                       "%{time_starttransfer} %{time_total}", daemon.url(path)]  # fmt: skip
                result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                code, size, first_byte, total = result.stdout.split()
                time.sleep(0.2)
                gets.setdefault(path, []).append({
                    "status": int(code), "bytes": int(size),
                    "first_byte_ms": float(first_byte) * 1000, "total_ms": float(total) * 1000,
                })  # fmt: skip
    finally:
        probe.mark("end")
        stretches = probe.stop()
    idle = stretches["idle"]
    out: dict[str, Any] = {"idle": idle, "probe_errors": probe.errors, "paths": {}}
    for path, runs in gets.items():
        for i, run in enumerate(runs):
            run["probe"] = stretches[f"{path} #{i + 1}"]
            # The probe's worst wait less what an idle probe request takes.
            run["stall_ms"] = max(0.0, run["probe"]["max_ms"] - idle["p50_ms"])
        out["paths"][path] = {
            "first_stall_ms": runs[0]["stall_ms"],
            "max_stall_ms": max(r["stall_ms"] for r in runs),
            "first_total_ms": runs[0]["total_ms"],
            "bytes": runs[0]["bytes"],
            "gets": runs,
        }
    progress("  status pages: " + ", ".join(
        f"{p} stall {d['max_stall_ms']:.0f} ms (first GET {d['first_total_ms']:.0f} ms, "
        f"{d['bytes'] / 1e6:.1f} MB)" for p, d in out["paths"].items()
    ) + f"; idle probe max {idle['max_ms']:.1f} ms")  # fmt: skip
    return out


def stored_content(snapshot: Path) -> dict[str, Any]:
    """Entries in the snapshot and the UTF-8 bytes of their title+summary+content."""
    doc = json.loads(snapshot.read_bytes())
    total = 0
    for entry in doc["entries"]:
        for key in ("title", "summary", "content"):
            value = entry.get(key)
            if isinstance(value, str):
                total += len(value.encode("utf-8"))
    return {"entries": len(doc["entries"]), "content_bytes": total,
            "snapshot_bytes": snapshot.stat().st_size}  # fmt: skip


def run_b(farm: FarmProcess, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """A fresh cold cycle with wrk on / from the moment the port is open."""
    daemon, sampler, farm_before = start_fresh(farm, args, work, "b")
    try:
        port_at = daemon.wait_port()
        wrk = start_wrk(daemon.url("/"), args, args.wrk_cold_seconds)
        wrk_started = time.perf_counter()
        cold, done_at = cold_cycle(daemon, farm, farm_before, args, port_at)
        result = finish_wrk(wrk, wrk_started)
    finally:
        rss = sampler.stop()
        daemon.kill()  # its state is thrown away: no need for a graceful stop
        if not args.keep:
            shutil.rmtree(daemon.state_dir, ignore_errors=True)
    span = result["ended_at"] - result["started_at"]
    result["cold_cycle_overlap"] = max(0.0, min(1.0, (done_at - result["started_at"]) / span))
    result["cold_cycle_wall_s"] = cold["wall_s"]
    result["cold_cycle_cpu_s"] = cold["cpu_s"]
    result["cold_cycle_farm_by_status"] = cold["farm_by_status"]
    result["rss"] = rss
    return result


def restarts(args: argparse.Namespace, work: Path, entries: int) -> dict[str, Any]:
    """Restart on run A's snapshot (farm stopped): spawn to port, first full page, loaded.

    The web port opens before the snapshot is read, so "port line to Loaded snapshot line"
    is the whole load (read + decode + Store.load, its older entries read after the first
    page is served) without interpreter start and imports; each
    restart is paired with a start on an empty state dir (same config) whose "port line to
    No snapshot line" is subtracted (the same steps with nothing to read). Daemons here are
    SIGKILLed: the snapshot stays as run A wrote it.
    """
    empty = work / "planet-empty"
    empty.mkdir(exist_ok=True)
    shutil.copy(work / "planet-a" / "planet.ini", empty / "planet.ini")
    runs = []
    for i in range(args.restarts):
        daemon = DaemonProcess(empty, f"empty-{i}")
        try:
            _, nosnap_at = daemon.wait_for(NO_SNAPSHOT, 120)
            daemon.cursor = 0
            empty_port_at = daemon.wait_port()
        finally:
            daemon.kill()
        daemon = DaemonProcess(work / "planet-a", f"restart-{i}")
        try:
            # The page first: a big snapshot is served from its newest entries before its
            # older ones are read (the "Loaded snapshot" line comes when all are).
            port_at = daemon.wait_port()
            end = time.perf_counter() + 60
            while True:
                status, _, page = http_get(daemon.url("/"))
                if status == 200 and page.count(ENTRY_MARK) >= entries:
                    break
                if time.perf_counter() > end:
                    raise BenchError(f"no full front page after restart: {daemon.log_path}")
                time.sleep(0.01)
            page_at = time.perf_counter()
            daemon.cursor = 0
            _, loaded_at = daemon.wait_for(SNAPSHOT_LOADED, 120)
        finally:
            daemon.kill()  # SIGKILL: the snapshot is left as it is
        runs.append({
            "empty_port_to_no_snapshot_line_s": nosnap_at - empty_port_at,
            "port_to_loaded_line_s": loaded_at - port_at,
            "spawn_to_loaded_line_s": loaded_at - daemon.spawned_at,
            "spawn_to_port_s": port_at - daemon.spawned_at,
            "spawn_to_first_page_s": page_at - daemon.spawned_at,
        })  # fmt: skip
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    medians["load_s"] = (
        medians["port_to_loaded_line_s"] - medians["empty_port_to_no_snapshot_line_s"]
    )
    return medians | {"runs": runs}


# --- peers and the baseline ----------------------------------------------------------------


def wrk_median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over ``runs`` (all kept under ``rounds``)."""
    keys = ("requests_per_s", "p50_ms", "p75_ms", "p90_ms", "p99_ms", "bytes_per_response")
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in keys}
    return out | {"rounds": runs}


def front_page_vs_bare(url: str, args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    """wrk on planet's idle ``/``, a bare Klein app and a bare Resource, in alternation."""
    body, headers = work / "front-page.html", work / "front-page.headers.json"
    cmd = [str(PYTHON), str(HERE / "bare_klein.py"), str(body), str(headers)]
    procs = {"bare_klein": spawn(cmd), "bare_resource": spawn([*cmd, "--resource"])}
    urls = {"planet": url}
    runs: dict[str, list[dict[str, Any]]] = {"planet": [], "bare_klein": [], "bare_resource": []}
    try:
        for name, proc in procs.items():
            assert proc.stdout is not None
            urls[name] = f"http://127.0.0.1:{json.loads(proc.stdout.readline())['port']}/"
            status, _, page = http_get(urls[name])
            if status != 200 or page != body.read_bytes():
                raise BenchError(f"{name} does not serve the saved page")
        for i in range(args.wrk_rounds):
            progress(f"  wrk {args.wrk_seconds} s on planet's / (idle), bare Klein, bare "
                     f"Resource ({i + 1}/{args.wrk_rounds})")  # fmt: skip
            for name, target in urls.items():
                runs[name].append(run_wrk(target, args))
    finally:
        for proc in procs.values():
            stop(proc)
    return {name: wrk_median(r) for name, r in runs.items()}


SFEED_FETCH = """\
# sfeed's README ("Caching, incremental data updates"): ETag and If-Modified-Since.
fetch() {
\tetag="$sfeedetags/$(basename "$3")"
\tcurl -L --max-redirs 0 -H "User-Agent:" -f -s -m 15 \\
\t\t--etag-save "${etag}" --etag-compare "${etag}" -z "${etag}" \\
\t\t"$2" 2>/dev/null
}
"""


def sfeed(farm: FarmProcess, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    home = work / "sfeed"
    (home / "etags").mkdir(parents=True, exist_ok=True)
    rc = [f'sfeedpath="{home}/feeds"', f'sfeedetags="{home}/etags"', "maxjobs=16", SFEED_FETCH]
    rc += ["feeds() {"] + [f'\tfeed "f{i}" "{url}"' for i, url in enumerate(farm.urls)] + ["}"]
    (home / "sfeedrc").write_text("\n".join(rc) + "\n")
    out = {}
    for name in ("cold", "all_304"):
        farm_before = farm.control("reset")
        result = run_rusage(["sfeed_update", str(home / "sfeedrc")], home / f"{name}.log")
        stats = farm.stats()
        feeds_dir = home / "feeds"
        stored = [p.read_bytes().count(b"\n") for p in feeds_dir.iterdir()]
        out[name] = {
            "wall_s": result["wall_s"],
            "cpu_s": result["cpu_s"],
            "cpu_s_per_1000_feeds": result["cpu_s"] / args.feeds * 1000,
            "peak_rss_mb": result["peak_rss_mb"],
            "returncode": result["returncode"],
            "ok_lines": result["stdout"].count(" OK\n"),
            "stored_entries": sum(stored),
            "farm_by_status": stats["by_status"],
            "farm_cpu_s": stats["cpu_s"] - farm_before["cpu_s"],
        }
        progress(f"  sfeed {name}: {result['wall_s']:.2f} s, CPU {result['cpu_s']:.2f} s, "
                 f"farm {stats['by_status']}")  # fmt: skip
    return out


def reader(farm: FarmProcess, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    python = Path(args.reader_python)
    if not python.exists():
        return {"skipped": f"{python} not found (see benchmarks/README.md)"}
    home = work / "reader"
    home.mkdir(parents=True, exist_ok=True)
    (home / "urls.txt").write_text("\n".join(farm.urls) + "\n")
    cmd = [str(python), str(HERE / "reader_peer.py"), str(home / "db.sqlite")]
    cmd += [str(home / "urls.txt"), "--workers", "16"]
    out = {}
    for name in ("cold", "all_304"):
        farm_before = farm.control("reset")
        result = run_rusage(cmd, home / f"{name}.out")
        if result["returncode"] != 0:
            raise BenchError(f"reader_peer.py failed ({result['returncode']})")
        stats = farm.stats()
        inner = json.loads(result["stdout"].strip().splitlines()[-1])
        inner.update(
            cpu_s_per_1000_feeds=inner["cpu_s"] / args.feeds * 1000,
            process_wall_s=result["wall_s"],
            process_cpu_s=result["cpu_s"],
            peak_rss_mb=result["peak_rss_mb"],
            farm_by_status=stats["by_status"],
            farm_cpu_s=stats["cpu_s"] - farm_before["cpu_s"],
        )
        out[name] = inner
        progress(f"  reader {name}: {inner['wall_s']:.2f} s, CPU {inner['cpu_s']:.2f} s, "
                 f"farm {stats['by_status']}")  # fmt: skip
    return out


def tool_versions(args: argparse.Namespace) -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        except OSError:
            return "not found"
        return (
            (out.stdout or out.stderr).strip().splitlines()[0] if out.stdout or out.stderr else ""
        )

    versions = {
        "python": platform.python_version(),
        "wrk": first_line(["wrk", "--version"]),
        "curl": first_line(["curl", "--version"]),
        "sfeed": first_line(["dpkg-query", "-W", "-f=${Version}", "sfeed"]),
    }
    if Path(args.reader_python).exists():
        versions["reader"] = first_line(
            [args.reader_python, "-c", "import reader; print(reader.__version__)"]
        )
    return versions


# --- report ----------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def report(doc: dict[str, Any]) -> str:
    p, peers = doc["planet"], doc.get("peers", {})
    sf, rd, kl = peers.get("sfeed", {}), peers.get("reader", {}), doc.get("bare_klein", {})
    c = p["cycles"]

    def peer(d: dict[str, Any], cycle: str, key: str, digits: int = 2) -> str:
        return fmt(d.get(cycle, {}).get(key), digits)

    rows = []
    for label, key in (("cold", "cold"), ("all-304", "all_304")):
        rows.append([f"{label} cycle wall s", fmt(c[key]["wall_s"]),
                     peer(sf, key, "wall_s"), peer(rd, key, "wall_s"), "-"])  # fmt: skip
        rows.append([f"{label} cycle CPU s", fmt(c[key]["cpu_s"]),
                     peer(sf, key, "cpu_s"), peer(rd, key, "cpu_s"), "-"])  # fmt: skip
    for label, key in (("unchanged-200", "unchanged_200"), ("10%-changed", "changed")):
        rows.append([f"{label} cycle wall s", fmt(c[key]["wall_s"]), "-", "-", "-"])
        rows.append([f"{label} cycle CPU s", fmt(c[key]["cpu_s"]), "-", "-", "-"])
    for label, key in (("cold", "cold"), ("all-304", "all_304"),
                       ("unchanged-200", "unchanged_200"), ("10%-changed", "changed")):  # fmt: skip
        rows.append([f"CPU s / 1000 feeds, {label}", fmt(c[key]["cpu_s_per_1000_feeds"]),
                     peer(sf, key, "cpu_s_per_1000_feeds"),
                     peer(rd, key, "cpu_s_per_1000_feeds"), "-"])  # fmt: skip
    rss = p["rss"]
    rows.append(["peak RSS MB (tree, running)", fmt(rss["peak_total_mb"], 1),
                 peer(sf, "cold", "peak_rss_mb", 1) + ("*" if sf else ""),
                 peer(rd, "cold", "peak_rss_mb", 1), "-"])  # fmt: skip
    split = f"{rss['peak_main_mb']:.1f} / {rss['peak_workers_mb']:.1f}"
    rows.append(["  main / workers MB", split, "-", "-", "-"])
    if "rss_stop" in p:
        rows.append(["peak RSS MB during SIGTERM stop", fmt(p["rss_stop"]["peak_total_mb"], 1),
                     "-", "-", "-"])  # fmt: skip
        rows.append(["SIGTERM to exit s", fmt(p["stop_s"]), "-", "-", "-"])
    st = p.get("stored", {})
    if st:
        bound = 2 * st["content_bytes"] / 1e6 + 60
        ok = "ok" if rss["peak_total_mb"] <= bound else "OVER"
        rows.append(["stored content MB", fmt(st["content_bytes"] / 1e6, 1), "-", "-", "-"])
        rows.append(["2x content + 60 MB", f"{bound:.1f} ({ok})", "-", "-", "-"])
        bound = 1.5 * st["content_bytes"] / 1e6 + 60
        ok = "ok" if rss["peak_total_mb"] <= bound else "OVER"
        rows.append(["1.5x content + 60 MB (issue 15)", f"{bound:.1f} ({ok})", "-", "-", "-"])
    write = p["snapshot_writes"][-1] if p["snapshot_writes"] else {}
    rows.append(["snapshot write ms", fmt(write.get("ms"), 0), "-", "-", "-"])
    rows.append(["snapshot MB", fmt(write.get("bytes", 0) / 1e6, 1), "-", "-", "-"])
    rs = p.get("restart", {})
    if rs:
        rows.append(["snapshot load s", fmt(rs["load_s"]), "-", "-", "-"])
        rows.append(["restart -> first page s", fmt(rs["spawn_to_first_page_s"]), "-", "-", "-"])
    for path, d in p.get("status_stall", {}).get("paths", {}).items():
        rows.append([f"{path} stall ms, first GET / worst", f"{d['first_stall_ms']:.0f} / "
                     f"{d['max_stall_ms']:.0f}", "-", "-", "-"])  # fmt: skip
        rows.append([f"{path} first GET ms, MB", f"{d['first_total_ms']:.0f}, "
                     f"{d['bytes'] / 1e6:.2f}", "-", "-", "-"])  # fmt: skip
    rows = [[*r, "-"] for r in rows]  # the bare Resource column: front page rows only
    idle, busy = p["wrk_idle"], p.get("wrk_cold", {})
    res = doc.get("bare_resource", {})
    rows.append(["front page req/s, idle", fmt(idle["requests_per_s"], 0), "-", "-",
                 fmt(kl.get("requests_per_s"), 0), fmt(res.get("requests_per_s"), 0)])  # fmt: skip
    rows.append(["front page p99 ms, idle", fmt(idle.get("p99_ms")), "-", "-",
                 fmt(kl.get("p99_ms")), fmt(res.get("p99_ms"))])  # fmt: skip
    ratios = [f"{idle['requests_per_s'] / d['requests_per_s']:.2f}" if d else "-"
              for d in (kl, res)]  # fmt: skip
    rows.append(["  planet req/s / this baseline's", "-", "-", "-", *ratios])
    if busy:
        rows.append(["front page req/s, cold cycle", fmt(busy["requests_per_s"], 0)] + ["-"] * 4)
        rows.append(["front page p99 ms, cold cycle", fmt(busy.get("p99_ms"))] + ["-"] * 4)
        overlap = f"{busy['cold_cycle_overlap']:.0%}"
        rows.append(["  wrk run inside cold cycle", overlap] + ["-"] * 4)
        under = f"{busy['cold_cycle_wall_s']:.2f} / {busy['cold_cycle_cpu_s']:.2f}"
        rows.append(["  that cold cycle: wall s / CPU s", under] + ["-"] * 4)
    headers = ["", "planet", "sfeed", "reader", "bare Klein", "bare Resource"]
    lines = [table(headers, rows), ""]
    for key, record in c.items():
        lines.append(
            f"planet {key}: {record['parsed']} parsed, {record['new_entries']} new, "
            f"{record['updated_entries']} updated, {record['failing']} failing; "
            f"farm answered {record['farm_by_status']} (at most {record['farm_max_in_flight']} "
            f"at once, farm CPU {record['farm_cpu_s']:.2f} s)"
        )
    if busy:
        lines.append(
            f"front page during the cold cycle: {busy.get('bytes_per_response', 0) / 1000:.0f} KB "
            f"per response on average (idle: {p['front_page']['bytes'] / 1000:.0f} KB, "
            f"{p['front_page']['entries']} entries)"
        )
    for name, d in (("sfeed", sf), ("reader", rd)):
        for key in ("cold", "all_304"):
            if key in d:
                lines.append(f"{name} {key}: farm answered {d[key]['farm_by_status']}")
    lines.append(f"planet feed states after run A: {p.get('feed_states')}")
    if ss := p.get("status_stall"):
        idle = ss["idle"]
        lines.append(f"stall probe (GET /style.css every 2 ms): idle p50 {idle['p50_ms']:.1f} ms, "
                     f"max {idle['max_ms']:.1f} ms; a stall = the probe's worst wait - idle p50; "
                     f"{ss['probe_errors']} probe errors")  # fmt: skip
    lines += ["", "issue 15's goals:", *goals(doc)]
    lines.append(f"peak RSS at {rss.get('peak_at_s', 0):.1f} s from spawn; run A: "
                 + ", ".join(f"{k} {v:.1f}" for k, v in p.get("timeline", {}).items()))  # fmt: skip
    return "\n".join(lines)


def goals(doc: dict[str, Any]) -> list[str]:
    """Issue 15's goals at this size (its 1000-feed ones below 10,000 feeds, else its
    10,000-feed ones), each measured figure against its target."""
    p, sf = doc["planet"], doc.get("peers", {}).get("sfeed", {})
    c, out = p["cycles"], []
    large = doc["params"]["feeds"] >= 10_000

    def line(name: str, value: float | None, target: float | None, unit: str,
             at_least: bool = False) -> None:  # fmt: skip
        bound = ">=" if at_least else "<="
        if value is None or target is None:
            out.append(
                f"- {name}: {fmt(value)} {unit} (target {bound} {fmt(target)}: not measured)"
            )
            return
        met = value >= target if at_least else value <= target
        verdict = "ok" if met else "MISSED"
        out.append(f"- {name}: {value:.2f} {unit}, target {bound} {target:.2f} {unit}: {verdict}")

    sf_cold = sf.get("cold", {}).get("wall_s")
    line("cold cycle wall / sfeed's", c["cold"]["wall_s"] / sf_cold if sf_cold else None,
         0.5, "x")  # fmt: skip
    line("all-304 cycle wall", c["all_304"]["wall_s"], 3.0 if large else 0.25, "s")
    if st := p.get("stored"):
        line("peak RSS (tree)", p["rss"]["peak_total_mb"],
             1.5 * st["content_bytes"] / 1e6 + 60, "MB")  # fmt: skip
    line("front page p99 during the cold cycle (run B)", p.get("wrk_cold", {}).get("p99_ms"),
         50.0 if large else 25.0, "ms")  # fmt: skip
    if not large:
        idle, klein = p.get("wrk_idle", {}), doc.get("bare_klein", {})
        ratio = None
        if idle.get("requests_per_s") and klein.get("requests_per_s"):
            ratio = idle["requests_per_s"] / klein["requests_per_s"]
        line("front page req/s idle / bare Klein's", ratio, 1.5, "x", at_least=True)
    for path, d in p.get("status_stall", {}).get("paths", {}).items():
        line(f"{path} reactor stall", d["max_stall_ms"], 20.0, "ms")
    return out


# --- main ------------------------------------------------------------------------------------


def raise_nofile() -> int:
    """The soft fd limit raised to the hard one (the unit's LimitNOFILE is 65536), inherited
    by the farm, the daemon and the peers: 10,000 feeds need more than the usual 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", "--n", dest="feeds", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=50, help="loopback addresses 127.0.0.1..H")
    ap.add_argument("--entries", type=int, default=20, help="entries per feed")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="farm delay per response")
    ap.add_argument("--change-fraction", type=float, default=0.1)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-connections", type=int, default=32)
    ap.add_argument("--wrk-rounds", type=int, default=2, help="planet / Klein alternations")
    ap.add_argument("--wrk-cold-seconds", type=int, help="run B's wrk (default: --wrk-seconds)")
    ap.add_argument("--status-gets", type=int, default=3, help="GETs of /feeds, /feeds.json")
    ap.add_argument("--probe-idle-seconds", type=float, default=2.0)
    ap.add_argument("--skip-peers", action="store_true", help="no sfeed, no reader")
    ap.add_argument("--reader-python", default="/tmp/reader-venv/bin/python")
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--per-host", type=int, default=2, help="planet's per_host_concurrency")
    ap.add_argument("--max-concurrency", type=int, default=16)
    ap.add_argument("--feed-timeout", type=float, default=60.0)
    ap.add_argument("--cycle-timeout", type=float, default=900.0)
    ap.add_argument("--stop-timeout", type=float, default=240.0, help="run A's SIGTERM stop")
    ap.add_argument("--rss-interval", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", help="keep state here (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--json", default=str(RESULTS / "cycle.json"))
    args = ap.parse_args(argv)

    nofile = raise_nofile()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="planet-cycle-"))
    work.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "benchmark": "cycle",
        "params": {k: v for k, v in vars(args).items() if k not in ("json", "workdir")},
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": os.getloadavg(),
            "platform": platform.platform(),
            "nofile_soft_limit": nofile,
        },  # fmt: skip
        "versions": tool_versions(args),
        "workdir": str(work),
    }
    started = time.perf_counter()
    progress(f"farm: {args.feeds} feeds x {args.entries} entries over {args.hosts} hosts")
    farm = FarmProcess(args, work)
    try:
        doc["farm"] = {k: v for k, v in farm.ready.items() if k != "urls"}
        doc["farm"]["mean_feed_bytes"] = farm.ready["bytes"] / args.feeds
        progress(f"  generated {farm.ready['bytes'] / 1e6:.0f} MB in "
                 f"{farm.ready['generate_s']:.1f} s; planet run A")  # fmt: skip
        planet = doc["planet"] = run_a(farm, args, work)
        snapshot = work / "planet-a" / "planet-snapshot.json"
        planet["stored"] = stored_content(snapshot) if snapshot.exists() else {}
        doc.update(planet.pop("front_page_wrk"))  # bare_klein, bare_resource
        progress("planet run B: wrk during a cold cycle")
        planet["wrk_cold"] = run_b(farm, args, work)
        if not args.skip_peers:
            progress("peers")
            doc["peers"] = {"sfeed": sfeed(farm, args, work), "reader": reader(farm, args, work)}
    finally:
        farm.stop()
    if planet["stored"]:
        progress("restarts on the snapshot, farm stopped")
        if args.restarts > 0:
            planet["restart"] = restarts(args, work, planet["front_page"]["entries"])
    else:
        progress("no snapshot from run A (its stop timed out?): no restart figures")
    doc["machine"]["loadavg_after"] = os.getloadavg()
    doc["total_s"] = time.perf_counter() - started

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\n{args.feeds} feeds x {args.entries} entries "
          f"(~{doc['farm']['mean_feed_bytes'] / 1000:.0f} KB) over {args.hosts} hosts, "
          f"farm latency {args.latency_ms:g} ms; wrk -t{args.wrk_threads} "
          f"-c{args.wrk_connections} -d{args.wrk_seconds}s; load average "
          f"{doc['machine']['loadavg_before'][0]:.2f} before, "
          f"{doc['machine']['loadavg_after'][0]:.2f} after\n")  # fmt: skip
    print(report(doc))
    if "peers" in doc:
        print("\n* sfeed: sum over sfeed_update and its children (curl, sfeed, sort...) at once.")
    print(f"\nwritten {out} in {doc['total_s']:.0f} s (work dir {work})")
    if not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
