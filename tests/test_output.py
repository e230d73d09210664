"""output_dir: every output written as the bytes served, atomically, only when changed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
from feeds import Item, at, atom
from rig import Rig
from test_templates import VENUS, served
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from planet.config import load_config
from planet.model import FetchResult
from planet.output import POLL_EVERY, write_files
from planet.parse import parse_feed
from planet.testing import MemoryFeeds, ok, record_fetch

NOW = at(2026, 6, 24, 9, 0)
A = "http://a.example/feed"
B = "http://b.example/feed"
DEFAULT_FILES = {"index.html", "atom.xml", "rss20.xml", "feed.json", "opml.xml", "style.css"}


def items(n: int, prefix: str = "Post") -> list[Item]:
    return [
        Item(f"{prefix} {i}", f"http://a.example/{prefix}/{i}", at(2026, 6, 20 + i))
        for i in range(n)
    ]


class OutputDirTests(SynchronousTestCase):
    def make(self, extra: str = "", out: str | None = None) -> Rig:
        tmp = Path(self.mktemp()).absolute()
        tmp.mkdir()
        self.out = Path(out) if out else tmp / "out"
        ini = tmp / "planet.ini"
        ini.write_text(
            f"[Planet]\nname = Out\noutput_dir = {self.out}\n{extra}\n[{A}]\nname = Alpha\n[{B}]\n"
        )
        self.server = MemoryFeeds()
        self.server.serve(A, atom("Alpha", "http://a.example/", items(2)))
        rig = Rig(self, load_config(str(ini)), self.server, now=NOW)
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        rig.service.output.startService()
        self.addCleanup(rig.service.output.stopService)
        rig.start()
        rig.advance(0)
        # Pages rendered during the cycle are up to the render interval old: the writer's
        # second pass, 1.5 s after, writes their fresh renderings.
        rig.advance(2)
        return rig

    def errors(self) -> list[str]:
        return [
            formatEvent(e)
            for e in self.events
            if getattr(e.get("log_level"), "name", "") == "error"
        ]

    def assert_files_are_served_bytes(self, rig: Rig, names: set[str]) -> None:
        written = {str(p.relative_to(self.out)) for p in self.out.rglob("*") if p.is_file()}
        self.assertEqual(written, names)
        for name in names:
            response, body = served(rig, "/" + name)
            self.assertEqual(response.code, 200, name)
            self.assertEqual((self.out / name).read_bytes(), body, name)

    def test_default_pages_written_as_served(self) -> None:
        rig = self.make()
        self.assertEqual(rig.store.entry_count(), 2)
        self.assert_files_are_served_bytes(rig, DEFAULT_FILES)
        self.assertIn(b"Post 1", (self.out / "index.html").read_bytes())

    def test_written_again_only_when_changed(self) -> None:
        rig = self.make()
        before = {p.name: p.stat().st_ino for p in self.out.iterdir()}
        writer = rig.service.output
        passes = writer.passes
        self.successResultOf(writer.write_outputs())
        self.assertEqual(writer.passes, passes + 1)
        self.assertEqual({p.name: p.stat().st_ino for p in self.out.iterdir()}, before)
        # A cycle that brings a new entry: the pages and feeds change, the stylesheet not.
        self.server.serve(A, atom("Alpha", "http://a.example/", items(3)))
        rig.aggregator.refresh_all()
        rig.advance(2)
        after = {p.name: p.stat().st_ino for p in self.out.iterdir()}
        self.assertEqual(after["style.css"], before["style.css"])
        self.assertNotEqual(after["index.html"], before["index.html"])
        self.assertIn(b"Post 2", (self.out / "index.html").read_bytes())
        self.assert_files_are_served_bytes(rig, DEFAULT_FILES)

    def test_cycles_that_change_nothing_shown_write_and_render_nothing(self) -> None:
        rig = self.make()
        writer = rig.service.output
        self.server.plan(
            A,
            attrs.evolve(
                ok(atom("Alpha", "http://a.example/", items(2)), ETag='"a1"'), conditional=True
            ),
        )
        before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in self.out.iterdir()}
        passes, renders = writer.passes, rig.web.pages.renders
        fetched = self.server.count(A)
        # The same body with an ETag (only the validators change), then 304s, for hours.
        for _ in range(3):
            rig.advance(3600)
            rig.aggregator.refresh_all()
            rig.advance(0)
            rig.advance(POLL_EVERY)
        self.assertGreaterEqual(self.server.count(A), fetched + 3)
        self.assertEqual(rig.store.state(A).http_status, 304)
        self.assertEqual((writer.passes, rig.web.pages.renders), (passes, renders))
        after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in self.out.iterdir()}
        self.assertEqual(after, before)
        # What the pages show did not change: the files are still the bytes served.
        self.assert_files_are_served_bytes(rig, DEFAULT_FILES)
        self.assertEqual(rig.web.pages.renders, renders)

    def test_changes_outside_cycles_written_within_the_poll(self) -> None:
        # A WebSub push stores entries between cycles: no cycle ends, the poll writes them.
        rig = self.make()
        body = atom("Alpha", "http://a.example/", items(1, "Pushed"))
        parsed = parse_feed(body, A, NOW)
        record_fetch(
            rig.store, A, FetchResult(url=A, final_url=A, status=200, body=body), parsed, NOW
        )
        rig.advance(POLL_EVERY)
        rig.advance(2)
        self.assertIn(b"Pushed 0", (self.out / "index.html").read_bytes())
        self.assert_files_are_served_bytes(rig, DEFAULT_FILES)

    def test_templates_and_materials_written(self) -> None:
        if not VENUS.is_dir():
            self.skipTest(f"Venus themes not at {VENUS}")
        rig = self.make(
            "template_files = index.html.tmpl rss20.xml.tmpl\n"
            f"template_directories = {VENUS / 'classic_fancy'} {VENUS / 'common'}\n"
            "bill_of_materials = planet.css\n"
        )
        self.assert_files_are_served_bytes(rig, {"index.html", "rss20.xml", "planet.css"})
        self.assertIn(b'<div class="daygroup">', (self.out / "index.html").read_bytes())

    def test_unwritable_dir_is_one_line_a_retry_and_serving_goes_on(self) -> None:
        tmp = Path(self.mktemp()).absolute()
        tmp.mkdir()
        blocker = tmp / "blocker"
        blocker.write_text("a file where a directory should be")
        rig = self.make(out=str(blocker / "out"))
        (line,) = self.errors()
        self.assertIn("output_dir: 6 files not written", line)
        self.assertIn("trying again every 60 s", line)
        self.assertEqual(served(rig, "/")[0].code, 200)
        blocker.unlink()
        blocker.mkdir()
        rig.advance(60)
        self.assertEqual(len(self.errors()), 1)
        self.assert_files_are_served_bytes(rig, DEFAULT_FILES)


_WRITER = """
import sys
from planet.output import write_files
out = sys.argv[1]
bodies = [bytes([65 + n]) * (4 << 20) for n in range(2)]
n = 0
print("go", flush=True)
while True:
    n += 1
    write_files(out, {f"f{i}.html": bodies[n % 2] for i in range(4)}, {})
"""


@pytest.mark.slow
def test_kill_9_during_writes_leaves_every_file_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(out)], stdout=subprocess.PIPE, env=env
    )
    assert child.stdout is not None and child.stdout.readline() == b"go\n"
    time.sleep(0.6)
    child.send_signal(signal.SIGKILL)
    child.wait()
    whole = {bytes([65 + n]) * (4 << 20) for n in range(2)}
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert files and all(name.startswith("f") for name in files), files
    for name in files:
        if name.endswith(".html"):
            assert (out / name).read_bytes() in whole, name
    # Another writer (a restart) finishes over whatever the killed one left.
    write_files(str(out), {"f0.html": b"new"}, {})
    assert (out / "f0.html").read_bytes() == b"new"
