"""The parse process pool: real worker processes, their priority, recovery, shutdown, and
what they cost (no helper processes, no Twisted in a worker); the malloc settings."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from attrs import evolve
from twisted.internet import reactor as _reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock, deferLater
from twisted.logger import Logger, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from planet import memory, parseworker, tap
from planet.heap import HeapTrimmer
from planet.parse import parse_feed, resanitize_entries
from planet.parseworker import HEADER, serve
from planet.workers import (
    WORKER_NICENESS,
    InlineParser,
    ParseTimeoutError,
    ProcessParser,
    ThreadParser,
    WorkerDiedError,
    _Worker,
    chunks,
    inline_parser,
)

reactor: Any = _reactor

FEED = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>Pool</title><link>http://example.com/</link>
<item><title>One</title><link>http://example.com/1</link><guid>one</guid>
<description>&lt;p&gt;hello &lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;</description></item>
</channel></rss>"""
FETCHED = datetime(2026, 6, 23, 20, 6, tzinfo=timezone.utc)


class ProcessParserTests(TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.parser = ProcessParser(reactor, workers=1)
        self.addCleanup(self.parser.close)

    async def test_parses_in_a_worker(self) -> None:
        parsed = await self.parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 50)
        self.assertEqual(parsed.title, "Pool")
        self.assertEqual([e.title for e in parsed.entries], ["One"])
        self.assertNotIn("script", parsed.entries[0].content or parsed.entries[0].summary or "")

    async def test_workers_run_at_a_lower_priority(self) -> None:
        ours = os.nice(0)
        theirs = await self.parser._submit(os.nice, 0)
        self.assertEqual(theirs, min(19, ours + WORKER_NICENESS))
        self.assertGreater(WORKER_NICENESS, 0)

    async def test_a_dead_worker_is_replaced(self) -> None:
        await self.parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 50)
        with self.assertRaises(WorkerDiedError):
            await self.parser._submit(os._exit, 3)
        parsed = await self.parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 50)
        self.assertEqual(parsed.title, "Pool")
        self.assertEqual(self.parser.spawned, 2)

    async def test_an_exception_comes_back_as_is(self) -> None:
        with self.assertRaises(ValueError) as raised:
            await self.parser._submit(int, "not a number")
        self.assertIn("Traceback", str(raised.exception.__cause__))
        # The worker survives its task's exception.
        self.assertEqual(await self.parser._submit(int, "12"), 12)
        self.assertEqual(self.parser.spawned, 1)

    async def test_tasks_queue_for_the_workers(self) -> None:
        urls = [f"http://example.com/{i}" for i in range(6)]
        parsed = await gather([self.parser(FEED, u, FETCHED, "text/xml", 50) for u in urls])
        self.assertEqual([p.title for p in parsed], ["Pool"] * 6)
        self.assertEqual(self.parser.spawned, 1, "workers=1: one process took every task")

    async def test_the_workers_are_the_only_new_processes(self) -> None:
        # multiprocessing added a forkserver and a resource tracker (~45 MB resident).
        before = set(children(os.getpid()))
        parser = ProcessParser(reactor, workers=2)
        self.addCleanup(parser.close)
        await gather([parser(FEED, f"http://e.com/{i}", FETCHED, "text/xml", 5) for i in range(4)])
        pids = {w.transport.pid for w in parser._running}
        self.assertEqual(len(pids), 2)
        self.assertEqual(set(children(os.getpid())) - before, pids)

    async def test_a_worker_imports_only_what_parsing_needs(self) -> None:
        # Not Twisted (the parent's __main__ is twistd; multiprocessing re-ran it in every
        # worker, ~6 MB each), nor this module's own imports.
        loaded = await self.parser._submit(
            eval, "sorted(m for m in __import__('sys').modules if m.split('.')[0] in "
            "('twisted', 'multiprocessing', 'concurrent', 'asyncio'))"
        )  # fmt: skip
        self.assertEqual(loaded, [])
        self.assertTrue(
            await self.parser._submit(eval, "'planet.parse' in __import__('sys').modules")
        )

    async def test_close_cancels_waiting_tasks_and_ends_the_workers(self) -> None:
        running = self.parser._submit(time.sleep, 0.5)
        waiting = self.parser._submit(int, "1")
        workers = list(self.parser._running)
        await self.parser.close()
        self.assertIsNone(await running, "the task in progress finishes")
        with self.assertRaises(CancelledError):
            await waiting
        self.assertTrue(all(w.ended.called for w in workers))

    async def test_close_kills_a_stuck_worker(self) -> None:
        self.parser.stop_timeout = 0.2
        stuck = self.parser._submit(time.sleep, 60)
        stuck.addErrback(lambda f: f.value)  # checked below
        await deferLater(reactor, 0.5, lambda: None)  # let it start sleeping
        started = time.monotonic()
        await self.parser.close()
        self.assertLess(time.monotonic() - started, 10)
        self.assertIsInstance(await stuck, WorkerDiedError)

    # -- the time limit (issue 19) ------------------------------------------------------

    async def test_a_task_out_of_time_kills_its_worker_and_fails(self) -> None:
        events: list[dict[str, Any]] = []
        self.parser.log = Logger(observer=events.append)
        await self.parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 50)
        (worker,) = self.parser._running
        pid = worker.transport.pid
        started = time.monotonic()
        with self.assertRaises(ParseTimeoutError) as raised:
            await self.parser._submit(time.sleep, 60, timeout=0.5)
        elapsed = time.monotonic() - started
        self.assertEqual(str(raised.exception), "parse timed out after 0.5 s")
        self.assertLess(elapsed, 5)
        await worker.ended  # SIGKILLed, and reaped
        self.assertFalse(Path(f"/proc/{pid}").exists())
        self.assertEqual(self.parser.timed_out, 1)
        (replacement,) = self.parser._running
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                f"parse worker {pid} killed: its task ran out of time (0.5 s); "
                f"worker {replacement.transport.pid} started"
            ],
        )
        # A new worker takes the next task.
        parsed = await self.parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 50)
        self.assertEqual(parsed.title, "Pool")
        self.assertEqual(self.parser.spawned, 2)
        self.assertNotEqual(next(iter(self.parser._running)).transport.pid, pid)

    async def test_a_real_parse_out_of_time(self) -> None:
        items = "".join(
            f"<item><title>T{n}</title><guid>g{n}</guid><description>"
            + "&lt;p&gt;word &lt;b&gt;bold&lt;/b&gt;&lt;/p&gt;" * 200
            + "</description></item>"
            for n in range(300)
        )
        body = f'<rss version="2.0"><channel><title>Big</title>{items}</channel></rss>'.encode()
        with self.assertRaises(ParseTimeoutError):
            await self.parser(body, "http://example.com/feed", FETCHED, "text/xml", 0, 0, 0.05)
        parsed = await self.parser(body, "http://example.com/feed", FETCHED, "text/xml", 0, 0, 60)
        self.assertEqual(len(parsed.entries), 300)

    async def test_time_waiting_for_a_worker_does_not_count(self) -> None:
        busy = self.parser._submit(time.sleep, 1.0, timeout=10)
        waiting = self.parser._submit(int, "7", timeout=0.5)
        self.assertEqual(await waiting, 7)
        self.assertIsNone(await busy)
        self.assertEqual((self.parser.timed_out, self.parser.spawned), (0, 1))

    async def test_an_answer_in_time_stops_the_clock(self) -> None:
        # The first task of a new worker: its start-up (imports) is not the task's time.
        self.assertEqual(await self.parser._submit(int, "3", timeout=0.3), 3)
        await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual(await self.parser._submit(int, "4"), 4)
        self.assertEqual((self.parser.timed_out, self.parser.spawned), (0, 1))

    async def test_resanitize_in_chunks_keeps_the_order(self) -> None:
        parsed = parse_feed(FEED, "http://example.com/feed", FETCHED)
        entry = parsed.entries[0]
        entries = [
            evolve(entry, id=f"e{n}", content="<p>" + "x" * 2000 + f"<script>{n}</script></p>")
            for n in range(450)
        ]
        again = await self.parser.resanitize(entries, 1000, 30)
        self.assertEqual(again, resanitize_entries(entries, 1000))
        self.assertEqual([e.id for e in again], [f"e{n}" for n in range(450)])
        self.assertTrue(all(len(e.content) <= 1000 and "script" not in e.content for e in again))
        self.assertEqual(len(chunks(entries)), 3)

    async def test_closed_pool_refuses_work(self) -> None:
        await self.parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 50)
        await self.parser.close()
        with self.assertRaises(RuntimeError):
            self.parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 50)


def gather(ds: list[Deferred[Any]]) -> Deferred[list[Any]]:
    from twisted.internet.defer import gatherResults

    return gatherResults(ds, consumeErrors=True)


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


# --- planet.memory -------------------------------------------------------------------------

ARENAS = """
import ctypes, re, sys, tempfile, threading
sys.path.insert(0, sys.argv[1])
from planet import memory
if sys.argv[2] == "tune":
    assert "arena_max" in memory.tune_malloc(environ={})
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
together = threading.Barrier(4)
def allocate():
    libc.free(libc.malloc(1000))
    together.wait()  # an exited thread's arena goes to the next thread
threads = [threading.Thread(target=allocate) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile() as out:
    f = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, f)
    libc.fclose(f)
    print(len(re.findall(rb"<heap nr=", out.read())))
"""

THRESHOLDS = """
import ctypes, sys
sys.path.insert(0, sys.argv[1])
from planet import memory
if sys.argv[2] == "tune":
    assert memory.tune_malloc(environ={}) == ["arena_max", "mmap_threshold", "trim_threshold"]
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
mapped = libc.mallinfo2().hblks
blocks = [libc.malloc(1 << 20) for _ in range(8)]  # 1 MiB each, like a page's buffers
mapped = libc.mallinfo2().hblks - mapped
heap = libc.mallinfo2().arena
for p in blocks:
    libc.free(p)
print(mapped, libc.mallinfo2().arena - heap)
"""

TRIM = """
import ctypes, re, sys
sys.path.insert(0, sys.argv[1])
from planet import memory
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read())[1]) * 1024
blocks = [libc.malloc(1000) for _ in range(60_000)]
for p in blocks:
    ctypes.memset(p, 1, 1000)
pin = libc.malloc(1000)  # above them all: free() cannot give their memory back by itself
for p in blocks:
    libc.free(p)
before = rss()
returned = memory.trim() if sys.argv[2] == "trim" else False
print(returned, before - rss())
"""

SRC = str(Path(memory.__file__).resolve().parent.parent)


def run_python(program: str, *args: str, env: dict[str, str] | None = None) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    out = subprocess.run(
        [sys.executable, "-c", program, SRC, *args],
        capture_output=True, text=True, check=True, timeout=60, env={**environ, **(env or {})},
    )  # fmt: skip
    return out.stdout.strip()


class MemoryTests(SynchronousTestCase):
    def setUp(self) -> None:
        if memory.glibc() is None:
            self.skipTest("not glibc")

    def test_tune_malloc_caps_the_threads_arenas(self) -> None:
        self.assertGreater(int(run_python(ARENAS, "default")), 2)
        self.assertEqual(run_python(ARENAS, "tune"), "2")

    def test_tune_malloc_keeps_big_buffers_in_the_heap(self) -> None:
        # glibc's default: 1 MiB blocks are mapped and unmapped one by one (page faults on
        # every use); its adaptive threshold then trims the top of the heap at each free.
        self.assertEqual(run_python(THRESHOLDS, "default"), "8 0")
        # Tuned: from the heap, which keeps them once freed (the trimmer returns them).
        self.assertEqual(run_python(THRESHOLDS, "tune"), "0 0")

    def test_the_operators_settings_are_kept(self) -> None:
        calls: list[tuple[int, int]] = []

        class Libc:
            def mallopt(self, param: int, value: int) -> int:
                calls.append((param, value))
                return 1

        env = {"MALLOC_ARENA_MAX": "4", "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"}
        self.assertEqual(memory.tune_malloc(env, Libc()), ["trim_threshold"])
        self.assertEqual(calls, [(memory.M_TRIM_THRESHOLD, 16 * 1024 * 1024)])
        calls.clear()
        self.assertEqual(len(memory.tune_malloc({}, Libc())), 3)
        self.assertEqual(
            calls,
            [
                (memory.M_ARENA_MAX, 2),
                (memory.M_MMAP_THRESHOLD, 4 << 20),
                (memory.M_TRIM_THRESHOLD, 16 << 20),
            ],
        )

    def test_trim_returns_free_memory_below_the_top_of_the_heap(self) -> None:
        kept, dropped = run_python(TRIM, "none").split()
        self.assertLess(int(dropped), 10_000_000, "free() alone keeps it")
        returned, dropped = run_python(TRIM, "trim").split()
        self.assertEqual(returned, "True")
        self.assertGreater(int(dropped), 40_000_000)

    def test_the_trimmer_trims_every_interval_while_running(self) -> None:
        clock = Clock()
        results = iter([False, True, False, True])
        trimmer = HeapTrimmer(clock=clock, interval=1.0, trim=lambda: next(results))
        trimmer.startService()
        self.assertEqual(trimmer.trims, 1, "once at start (after the snapshot's load)")
        clock.advance(0.5)
        self.assertEqual(trimmer.trims, 1)
        clock.pump([0.5, 1.0, 1.0])
        self.assertEqual((trimmer.trims, trimmer.returned), (4, 2))
        trimmer.stopService()
        clock.advance(10)
        self.assertEqual(trimmer.trims, 4)

    def test_twistd_planet_tunes_malloc(self) -> None:
        import planet.service

        applied: list[str] = []
        self.patch(memory, "tune_malloc", lambda: applied.append("tuned") or [])
        self.patch(planet.service, "build_service", lambda *a, **kw: planet.service.Service())
        options = tap.Options()
        options.parseOptions(["--config", str(self.mktemp_config())])
        tap.makeService(options, reactor=Clock())
        self.assertEqual(applied, ["tuned"])

    def test_the_daemon_runs_the_trimmer(self) -> None:
        from planet.config import load_config
        from planet.service import build_service

        top = build_service(
            load_config(str(self.mktemp_config())), "tcp:0", Clock(), parser=inline_parser
        )
        self.assertEqual(sum(isinstance(s, HeapTrimmer) for s in top), 1)

    def mktemp_config(self) -> Path:
        path = Path(self.mktemp())
        path.write_text("[Planet]\nname = x\n")
        return path


# --- planet.parseworker ----------------------------------------------------------------------


def frame(obj: object) -> bytes:
    data = pickle.dumps(obj)
    return HEADER.pack(len(data)) + data


def frames(data: bytes) -> list[Any]:
    out = []
    while data:
        (size,) = HEADER.unpack(data[: HEADER.size])
        out.append(pickle.loads(data[HEADER.size : HEADER.size + size]))
        data = data[HEADER.size + size :]
    return out


class ServeTests(SynchronousTestCase):
    """The worker's loop, in this process: one answer per task, in order, until input ends."""

    def test_answers_each_task_in_order(self) -> None:
        tasks = io.BytesIO(frame((int, ("7",))) + frame((int, ("x",))) + frame((len, ("ab",))))
        results = io.BytesIO()
        serve(tasks, results)
        (ok1, seven, _), (ok2, error, where), (ok3, two, _) = frames(results.getvalue())
        self.assertEqual((ok1, seven, ok3, two), (True, 7, True, 2))
        self.assertFalse(ok2)
        self.assertIsInstance(error, ValueError)
        self.assertIn("Traceback", where)

    def test_an_unpicklable_result_is_an_error_not_a_broken_stream(self) -> None:
        tasks = io.BytesIO(frame((threading.Lock, ())) + frame((int, ("1",))))
        results = io.BytesIO()
        serve(tasks, results)
        (ok, error, _), answer = frames(results.getvalue())
        self.assertFalse(ok)
        self.assertIn("unpicklable", str(error))
        self.assertEqual(answer, (True, 1, ""))

    def test_a_truncated_header_ends_the_loop(self) -> None:
        results = io.BytesIO()
        serve(io.BytesIO(frame((int, ("1",))) + b"\0\0"), results)
        self.assertEqual(frames(results.getvalue()), [(True, 1, "")])

    def test_an_idle_worker_trims_once_per_quiet_spell(self) -> None:
        self.patch(parseworker, "IDLE_SECONDS", 0.05)
        read_end, write_end = os.pipe()
        tasks = os.fdopen(read_end, "rb")
        trims: list[float] = []

        def feed() -> None:
            with os.fdopen(write_end, "wb") as w:
                w.write(frame((int, ("1",))))
                w.flush()
                time.sleep(0.3)  # a quiet spell: one trim
                w.write(frame((int, ("2",))))

        writer = threading.Thread(target=feed)
        writer.start()
        results = io.BytesIO()
        with tasks:
            serve(tasks, results, idle=lambda: trims.append(time.monotonic()))
        writer.join()
        self.assertEqual(frames(results.getvalue()), [(True, 1, ""), (True, 2, "")])
        # One trim in the 0.3 s spell, not one per 0.05 s: after its trim the worker just
        # waits for the next task. (A second only if the writer is slow to close the pipe.)
        self.assertIn(len(trims), (1, 2))


class _RecordingPool:
    def __init__(self) -> None:
        self.done: list[tuple[Any, bytes]] = []

    def _done(self, worker: Any, task: Any, frame: bytes) -> None:
        self.done.append((task, frame))


class FramingTests(SynchronousTestCase):
    """The daemon's side: answers read back whole however the pipe cuts them."""

    def test_frames_split_anywhere_and_joined(self) -> None:
        answers = [pickle.dumps((True, "x" * size, "")) for size in (0, 5, 70_000, 300)]
        # The empty frame first: the worker is ready.
        stream = HEADER.pack(0) + b"".join(HEADER.pack(len(a)) + a for a in answers)
        for cut in (1, 3, 8, 8192, len(stream)):
            pool = _RecordingPool()
            worker = _Worker(pool)  # type: ignore[arg-type]
            for start in range(0, len(stream), cut):
                worker.childDataReceived(1, b"stray print")  # stdout is not a frame
                worker.childDataReceived(3, stream[start : start + cut])
            self.assertEqual([frame for _, frame in pool.done], answers, f"cut every {cut}")
            self.assertTrue(worker.ready)
            self.assertEqual((worker._chunks, worker._have, worker._need), ([], 0, None))


class OtherParsersTests(TestCase):
    """The thread and inline parsers take the same arguments and limits."""

    timeout = 60

    async def test_thread_parser_fails_in_time_and_keeps_the_slot_until_the_thread_ends(
        self,
    ) -> None:
        parser = ThreadParser(reactor, limit=1)
        started = time.monotonic()
        with self.assertRaises(ParseTimeoutError):
            await parser._run(time.sleep, (1.5,), 0.2)
        self.assertLess(time.monotonic() - started, 1.2)
        # The sleeping thread still holds the one slot: the next task waits for it.
        self.assertEqual(await parser._run(int, ("5",), None), 5)
        self.assertGreaterEqual(time.monotonic() - started, 1.4)
        parsed = await parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 5, 0, 30)
        self.assertEqual(parsed.title, "Pool")
        entries = list(parsed.entries) * 3
        self.assertEqual(await parser.resanitize(entries, 0), resanitize_entries(entries, 0))

    def test_inline_parser_fails_a_parse_that_took_too_long(self) -> None:
        ticks = iter([0.0, 31.0, 100.0, 100.5])
        parser = InlineParser(clock=lambda: next(ticks))
        failure = self.failureResultOf(
            parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 5, 0, 30)
        )
        failure.trap(ParseTimeoutError)
        self.assertEqual(str(failure.value), "parse timed out after 30 s")
        parsed = self.successResultOf(
            parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 5, 0, 30)
        )
        self.assertEqual(parsed.title, "Pool")

    def test_inline_resanitize_is_resanitize_entries(self) -> None:
        entry = parse_feed(FEED, "http://example.com/feed", FETCHED).entries[0]
        old = evolve(entry, link="http://[::1", content="<p>" + "<b>" * 3 + "x</p>")
        expected = resanitize_entries([old], 0)
        self.assertIsNone(expected[0].link)
        inline = InlineParser()
        self.assertEqual(self.successResultOf(inline.resanitize([old], 0, 30)), expected)
