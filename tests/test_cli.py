"""The ``planet`` command, run as the operator runs it: a process, its output, its exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from feeds import Item, at, atom
from process import FeedServer, Response

from planet.config import load_config
from planet.model import Entry, FeedState
from planet.readinglist import load_opml_file
from planet.snapshotcodec import encode

pytestmark = pytest.mark.slow

PLANET = Path(sys.executable).parent / "planet"
CORPUS_OPML = sorted((Path(__file__).parent.parent.parent / "shared/corpus/opml").glob("*.opml"))


def planet(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(
        [str(PLANET), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr


# --- usage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["check"],
        ["run-once"],
        ["opml-import"],
        ["discover"],
        ["snapshot", "inspect"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(args: list[str]):
    code, out, err = planet(*args)
    assert code == 2, (out, err)
    assert "usage: planet" in err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["check"],
        ["run-once"],
        ["opml-import"],
        ["discover"],
        ["snapshot"],
        ["snapshot", "inspect"],
    ],
)
def test_help_on_every_command(args: list[str]):
    code, out, _ = planet(*args, "--help")
    assert code == 0
    assert out.startswith("usage: planet")


# --- check ---------------------------------------------------------------------------------


def test_check_a_good_config_with_a_file_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "blogs.opml").write_text(
        "<opml version='2.0'><body>"
        "<outline text='One' xmlUrl='http://one.example/feed'/>"
        "<outline text='Two' xmlUrl='http://two.example/feed'/>"
        "</body></opml>"
    )
    (tmp_path / "planet.ini").write_text(
        "[Planet]\nname = Checked\ntemplate_files = index.html.tmpl\n\n"
        "[blogs.opml]\ncontent_type = opml\n\n"
        "[https://lists.example/more.opml]\ncontent_type = opml\n\n"
        "[http://three.example/feed]\nname = Three\n"
    )
    code, out, err = planet("check", str(tmp_path / "planet.ini"), cwd=tmp_path)
    assert code == 0, (out, err)
    lines = out.splitlines()
    assert lines[-1].startswith(f"{tmp_path / 'planet.ini'}: ok: 3 feeds (1 configured, 2 from ")
    assert "1 reading list URL fetched by the daemon" in lines[-1]
    # Every warning the daemon would log, one line each (loaded from the same working
    # directory: a template not found names the directories searched, the working one last).
    monkeypatch.chdir(tmp_path)
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert warnings == [f"warning: {w}" for w in load_config(str(tmp_path / "planet.ini")).warnings]
    assert any("template_files" in w for w in warnings)
    assert err == ""


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[Planet]\nfetch_interval = soon\n", ["[Planet]", "fetch_interval", "soon"]),
        ("[Planet]\nfetch_interval = 10\n", ["fetch_interval", "at least 60 seconds"]),
        ("no section here\n", ["line 1"]),
        ("[Planet]\nsnapshot_file = .\n", ["snapshot_file", "is a directory"]),
    ],
)
def test_check_a_broken_config_exits_1_with_one_line(tmp_path: Path, text: str, named: list[str]):
    path = tmp_path / "planet.ini"
    path.write_text(text)
    code, out, err = planet("check", str(path), cwd=tmp_path)
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"planet: error: {path}")
    for part in named:
        assert part in err


def test_check_a_missing_file(tmp_path: Path):
    code, _, err = planet("check", str(tmp_path / "nope.ini"))
    assert code == 1 and "cannot read" in err


def test_check_example_config():
    root = Path(__file__).parent.parent
    code, out, err = planet("check", "etc/planet.ini", cwd=root)
    assert code == 0, err
    assert ": ok: " in out


# --- opml-import ---------------------------------------------------------------------------


@pytest.mark.skipif(not CORPUS_OPML, reason="shared corpus not present")
def test_opml_import_of_the_corpus_list_round_trips(tmp_path: Path):
    source = CORPUS_OPML[0]
    code, out, err = planet("opml-import", str(source))
    assert code == 0, err
    listed = load_opml_file(str(source))
    assert out.startswith(f"# {len(listed)} feeds from {source}\n")
    # Appended to a config, the sections subscribe exactly the listed feeds, names included.
    path = tmp_path / "planet.ini"
    path.write_text("[Planet]\nname = Imported\n\n" + out)
    config = load_config(str(path))
    assert [(s.url, s.name) for s in config.subscriptions] == [
        (f.url, " ".join(f.name.split()) if f.name else None) for f in listed
    ]
    assert config.warnings == ()


def test_opml_import_escapes_what_the_reader_would_misread(tmp_path: Path):
    (tmp_path / "odd.opml").write_text(
        "<opml><body>"
        "<outline text='100%(sure)s ; really' xmlUrl='http://a.example/feed'/>"
        "<outline text='\"Quoted\"' xmlUrl='http://b.example/feed'/>"
        "<outline xmlUrl='http://c.example/feed'/>"
        "</body></opml>"
    )
    code, out, _ = planet("opml-import", str(tmp_path / "odd.opml"))
    assert code == 0
    path = tmp_path / "planet.ini"
    path.write_text("[Planet]\n" + out)
    names = [s.name for s in load_config(str(path)).subscriptions]
    assert names == ["100% (sure)s , really", '"Quoted"', None]


def test_opml_import_from_a_url(server: FeedServer):
    server.routes["/list.opml"] = Response(
        200,
        {"Content-Type": "text/x-opml"},
        b"<opml><body><outline text='Remote' xmlUrl='feed.xml'/></body></opml>",
    )
    code, out, err = planet("opml-import", server.url("/list.opml"))
    assert code == 0, err
    assert f"[{server.url('/feed.xml')}]\nname = Remote\n" in out


def test_opml_import_errors(tmp_path: Path, server: FeedServer):
    (tmp_path / "not.opml").write_text("<html><body>no</body></html>")
    code, out, err = planet("opml-import", str(tmp_path / "not.opml"))
    assert code == 1 and out == "" and err.startswith("planet: error: ")
    code, _, err = planet("opml-import", server.url("/missing.opml"))
    assert code == 1 and "404" in err


# --- discover ------------------------------------------------------------------------------


def test_discover_lists_the_advertised_feeds(server: FeedServer):
    server.routes["/blog/"] = Response(
        200,
        {"Content-Type": "text/html; charset=utf-8"},
        b"<!doctype html><html><head><title>Blog</title>"
        b'<link rel="alternate" type="application/atom+xml" href="/blog/atom.xml">'
        b'<link rel="alternate" type="application/rss+xml" href="rss.xml">'
        b'<link rel="stylesheet" href="/style.css">'
        b'<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">'
        b"</head><body>hi</body></html>",
    )
    code, out, err = planet("discover", server.url("/blog/"))
    assert code == 0, err
    assert out.splitlines() == [server.url("/blog/atom.xml"), server.url("/blog/rss.xml")]


def test_discover_on_a_feed_prints_the_feed(server: FeedServer):
    body = atom("F", "http://f.example/", [Item("one", "http://f.example/1", at(2026, 6, 1))])
    server.routes["/f.atom"] = Response(200, {"Content-Type": "application/atom+xml"}, body)
    code, out, _ = planet("discover", server.url("/f.atom"))
    assert code == 0 and out.splitlines() == [server.url("/f.atom")]


def test_discover_finds_nothing(server: FeedServer):
    server.routes["/plain"] = Response(200, {"Content-Type": "text/html"}, b"<p>no feeds</p>")
    code, out, err = planet("discover", server.url("/plain"))
    assert code == 1 and out == "" and "advertises no feed" in err
    code, _, err = planet("discover", "ftp://example.org/")
    assert code == 1 and "not an http(s) URL" in err


# --- snapshot inspect ----------------------------------------------------------------------


def _snapshot(path: Path) -> bytes:
    when = at(2026, 6, 1, 12, 0)
    entries = [
        Entry(
            id=f"urn:{i}",
            feed_url="http://a.example/feed",
            title=f"A {i}",
            link=f"http://a.example/{i}",
            author="",
            content="<p>x</p>",
            published=at(2026, 6, 1 + i, 8, 0),
            updated=at(2026, 6, 1 + i, 8, 0),
            first_seen=when,
        )
        for i in range(3)
    ]
    states = [
        FeedState(url="http://a.example/feed", last_fetch=when),
        FeedState(url="http://b.example/feed", last_fetch=when, error="HTTP 404 Not Found"),
    ]
    data = encode(entries, states, when)
    path.write_bytes(data)
    return data


def test_snapshot_inspect(tmp_path: Path):
    path = tmp_path / "planet-snapshot.json"
    _snapshot(path)
    code, out, err = planet("snapshot", "inspect", str(path))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{path}: schema 1, written 2026-06-01T12:00:00+00:00"
    assert lines[1] == "3 entries, 2 feeds, 0 reading list URLs"
    assert lines[2].split() == ["3", "2026-06-03", "08:00", "UTC", "ok", "http://a.example/feed"]
    assert lines[3].split() == ["0", "-", "failing", "http://b.example/feed"]


def test_snapshot_inspect_a_damaged_file(tmp_path: Path):
    path = tmp_path / "planet-snapshot.json"
    data = _snapshot(path)
    path.write_bytes(data[: len(data) // 2])
    code, out, err = planet("snapshot", "inspect", str(path))
    assert code == 1 and out == ""
    assert err.startswith(f"planet: error: {path}: damaged snapshot: ")
    path.write_bytes(json.dumps({"schema": 99}).encode())
    code, _, err = planet("snapshot", "inspect", str(path))
    assert code == 1 and "schema" in err


def test_check_reports_reading_list_entries_it_cannot_subscribe(tmp_path: Path):
    (tmp_path / "blogs.opml").write_text(
        "<opml><body>"
        "<outline text='ok' xmlUrl='http://one.example/feed'/>"
        "<outline text='js' xmlUrl='javascript:alert(1)'/>"
        "</body></opml>"
    )
    (tmp_path / "planet.ini").write_text(
        "[Planet]\nname = P\n\n[blogs.opml]\ncontent_type = opml\n"
    )
    code, out, err = planet("check", "planet.ini", cwd=tmp_path)
    assert code == 0, err
    assert out.splitlines()[0] == (
        "warning: planet.ini: [blogs.opml] reading list: 1 entry not subscribed: its xmlUrl is "
        "not an http(s) URL (javascript:alert(1))"
    )
    assert ": ok: 1 feed (" in out.splitlines()[-1]
