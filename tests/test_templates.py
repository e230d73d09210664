"""Operator templates (template_files): Venus's own themes, the variables, safety, errors."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import feedparser
import html5lib
import pytest
from feeds import Item, at, atom, rss2
from rig import Rig
from test_web import _result
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from xsscheck import tier_a_violations

from planet.config import ConfigError, load_config
from planet.model import FetchResult
from planet.parse import parse_feed
from planet.store import Store
from planet.testing import MemoryFeeds, record_fetch, run_inline
from planet.web import PlanetWeb

SHARED = Path(os.environ.get("PLANET_SHARED", Path(__file__).resolve().parents[2] / "shared"))
VENUS = SHARED / "corpus" / "templates" / "venus" / "themes"
PAYLOADS = SHARED / "corpus" / "xss" / "payloads.json"
NOW = at(2026, 6, 24, 9, 0)

needs_venus = pytest.mark.skipif(not VENUS.is_dir(), reason=f"Venus themes not at {VENUS}")

#: Three feeds as in the seed: two entries of Glyph's on one day, one of Ned's between.
GLYPH = [
    Item(
        "Glyph Lefkowitz: Adversarial Communication",
        "http://glyph.example/2",
        at(2026, 6, 23, 20, 6),
        "<p>one</p>",
        "Glyph",
    ),
    Item(
        "Glyph Lefkowitz: Earlier",
        "http://glyph.example/1",
        at(2026, 6, 23, 8, 0),
        "<p>two &amp; more</p>",
        "Glyph",
    ),
]
NED = [
    Item(
        "Ned Batchelder: Coverage",
        "http://ned.example/1",
        at(2026, 6, 23, 12, 0),
        "<p>ned</p>",
        "Ned",
    )
]
TWISTED = [
    Item("Twisted: Release", "http://tm.example/1", at(2026, 6, 22, 10, 30), "<p>rel</p>", "TM")
]
FEEDS = {
    "http://glyph.example/feed": ("Glyph's Blog", "http://glyph.example/", GLYPH, atom),
    "http://ned.example/feed": ("Ned's Blog", "http://ned.example/", NED, rss2),
    "http://tm.example/feed": ("Twisted Matrix", "http://tm.example/", TWISTED, atom),
}
RIVER = [GLYPH[0], NED[0], GLYPH[1], TWISTED[0]]


def write_ini(tmp: Path, extra: str, feed_keys: str = "") -> str:
    lines = ["[Planet]", "name = Planet Seed", "link = http://planet.example/", extra]
    for url in FEEDS:
        lines += ["", f"[{url}]", feed_keys]
    path = tmp / "planet.ini"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def served(rig: Any, path: str, headers: dict[str, str] | None = None) -> tuple[Any, bytes]:
    stub = StubTreq(rig.web.resource())
    d = stub.get("http://planet.example" + path, headers=headers)
    stub.flush()
    response = _result(d)
    body = stub.content(response)
    stub.flush()
    return response, _result(body)


class VenusThemeTests(SynchronousTestCase):
    """classic_fancy's index.html.tmpl and common's rss20/rss10 templates, untouched."""

    def setUp(self) -> None:
        if not VENUS.is_dir():
            self.skipTest(f"Venus themes not at {VENUS}")
        tmp = Path(self.mktemp())
        tmp.mkdir()
        extra = (
            "template_files = index.html.tmpl rss20.xml.tmpl rss10.xml.tmpl atom.xml.xslt\n"
            f"template_directories = {VENUS / 'classic_fancy'} {VENUS / 'common'}\n"
            "bill_of_materials = planet.css\n"
        )
        self.config = load_config(write_ini(tmp, extra, "face = me.png"))
        server = MemoryFeeds()
        for url, (title, site, items, kind) in FEEDS.items():
            server.serve(url, kind(title, site, items))
        self.rig = Rig(self, self.config, server, now=NOW)
        self.rig.start()
        self.rig.advance(0)
        self.assertEqual(self.rig.store.entry_count(), 4)

    def test_xslt_is_one_warning(self) -> None:
        (warning,) = [w for w in self.config.warnings if "xslt" in w]
        self.assertIn("atom.xml.xslt: xslt templates are not supported", warning)

    def test_index_titles_and_channel_headings_in_order(self) -> None:
        response, body = served(self.rig, "/")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/html; charset=utf-8"]
        )
        self.assertEqual(served(self.rig, "/index.html")[1], body)
        doc = html5lib.parse(body, namespaceHTMLElements=False)
        titles = ["".join(h.itertext()) for h in doc.iter("h4")]
        self.assertEqual(titles, [i.title for i in RIVER])
        headings = [("".join(h.itertext()), h.find("a").get("href")) for h in doc.iter("h3")]
        # A heading when the feed changes within a day, and on each new day.
        self.assertEqual(
            headings,
            [
                ("Glyph's Blog", "http://glyph.example/"),
                ("Ned's Blog", "http://ned.example/"),
                ("Glyph's Blog", "http://glyph.example/"),
                ("Twisted Matrix", "http://tm.example/"),
            ],
        )
        days = ["".join(h.itertext()) for h in doc.iter("h2")][:2]
        self.assertEqual(days, ["23 Jun 2026", "22 Jun 2026"])
        html = body.decode()
        # channel_<key> of the feed's section: classic_fancy's faces.
        self.assertIn('<img class="face" src="images/me.png"', html)
        self.assertIn("<p>two &amp; more</p>", html)
        self.assertIn("by Glyph at 23 Jun 2026 8:06pm GMT", html)
        self.assertEqual(html.count('<div class="daygroup">'), 2)
        # The Channels loop: name, url, link.
        self.assertIn('<a href="http://ned.example/feed" title="subscribe">', html)
        self.assertEqual(tier_a_violations(html, fragment=False), [])

    def test_rss_outputs_parse_to_the_same_entries(self) -> None:
        for path, version in (("/rss20.xml", "rss20"), ("/rss10.xml", "rss10")):
            response, body = served(self.rig, path)
            self.assertEqual(response.code, 200, path)
            kind = response.headers.getRawHeaders("content-type")[0]
            self.assertEqual(kind, "application/rss+xml; charset=utf-8")
            parsed = feedparser.parse(body)
            self.assertFalse(parsed.bozo, (path, parsed.get("bozo_exception")))
            # (feedparser names an RDF document with an atom namespace atom10.)
            self.assertIn(parsed.version, (version, "atom10"))
            self.assertEqual(parsed.feed.title, "Planet Seed")
            self.assertEqual([e.link for e in parsed.entries], [i.link for i in RIVER])
            names = {i.link: FEEDS[u][0] for u, f in FEEDS.items() for i in f[2]}
            self.assertEqual(
                [e.title for e in parsed.entries], [f"{names[i.link]}: {i.title}" for i in RIVER]
            )
            entry = parsed.entries[2]
            content = entry.content[0].value if "content" in entry else entry.summary
            self.assertIn("two &amp; more", content)

    def test_served_like_every_page(self) -> None:
        response, body = served(self.rig, "/rss20.xml")
        etag = response.headers.getRawHeaders("etag")[0]
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["public, max-age=300"])
        again, empty = served(self.rig, "/rss20.xml", {"If-None-Match": etag})
        self.assertEqual((again.code, empty), (304, b""))
        renders = self.rig.web.pages.renders
        served(self.rig, "/rss20.xml")
        self.assertEqual(self.rig.web.pages.renders, renders, "cached per store version")
        from treq.testing import RequestTraversalAgent
        from twisted.web.http_headers import Headers

        agent = RequestTraversalAgent(self.rig.web.resource())
        d = agent.request(
            b"GET", b"http://planet.example/rss20.xml", Headers({b"accept-encoding": [b"gzip"]})
        )
        agent.flush()
        zipped = _result(d)
        self.assertEqual(zipped.headers.getRawHeaders("content-encoding"), ["gzip"])
        import treq

        raw = treq.content(zipped)
        agent.flush()
        self.assertEqual(gzip.decompress(_result(raw)), body)
        d = agent.request(b"HEAD", b"http://planet.example/rss20.xml")
        agent.flush()
        self.assertEqual(_result(d).code, 200)

    def test_bill_of_materials_served(self) -> None:
        response, body = served(self.rig, "/planet.css")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/css; charset=utf-8"]
        )
        self.assertEqual(body, (VENUS / "classic_fancy" / "planet.css").read_bytes())

    def test_builtin_routes_not_named_by_templates_still_serve(self) -> None:
        response, body = served(self.rig, "/atom.xml")
        self.assertEqual(response.code, 200)
        self.assertEqual(len(feedparser.parse(body).entries), 4)
        self.assertEqual(served(self.rig, "/feeds")[0].code, 200)


# --- the variables and their safety ---------------------------------------------------------

ALL_ITEM_VARS = (
    "channel_name channel_link channel_title channel_title_plain channel_url channel_face "
    "title title_plain link content summary author creator date date_iso date_822 new_date "
    "new_channel id guid_isPermaLink published updated author_name"
).split()
ALL_PLANET_VARS = "name link owner_name owner_email generator date date_iso date_822 feed".split()
ALL_CHANNEL_VARS = "name url link title title_plain message".split()

LINK_VARS = {"channel_link", "channel_url", "link", "new_channel", "url", "feed"}


def _printed(v: str) -> str:
    """``v`` printed raw where a template prints it: as text, in quoted attributes, and
    in href when it is a link; ``content`` and ``summary`` are markup, printed as markup."""
    if v in ("content", "summary"):
        return f"<div><TMPL_VAR {v}></div>"
    href = f'<a href="<TMPL_VAR {v}>">x</a>' if v in LINK_VARS else ""
    return f"<p><TMPL_VAR {v}></p><p title=\"<TMPL_VAR {v}>\" lang='<TMPL_VAR {v}>'>x</p>{href}"


RAW_TEMPLATE = (
    "<html><body>"
    + "".join(_printed(v) for v in ALL_PLANET_VARS)
    + "<TMPL_LOOP Items><div>"
    + "".join(f'<p class="{v}">{_printed(v)}</p>' for v in ALL_ITEM_VARS)
    + "</div></TMPL_LOOP><TMPL_LOOP Channels>"
    + "".join(_printed(v) for v in ALL_CHANNEL_VARS)
    + "</TMPL_LOOP></body></html>"
)


def themed_web(
    tmp: Path, extra: str, template: str | None = None, name: str = "index.html.tmpl"
) -> PlanetWeb:
    if template is not None:
        (tmp / name).write_text(template)
    config = load_config(write_ini(tmp, f"template_files = {name}\n{extra}"))
    clock = Clock()
    clock.advance(NOW.timestamp())
    return PlanetWeb(
        config=config, store=Store(max_entries_per_feed=0), clock=clock, run_in_thread=run_inline
    )


def add(web: PlanetWeb, url: str, body: bytes) -> None:
    parsed = parse_feed(body, url, NOW)
    assert parsed.error is None, parsed.error
    result = FetchResult(url=url, final_url=url, status=200, body=body)
    record_fetch(web.store, url, result, parsed, NOW)


class SafetyTests(SynchronousTestCase):
    def test_variables_values(self) -> None:
        tmp = Path(self.mktemp())
        tmp.mkdir()
        settings = (
            "date_format = %Y-%m-%d %H:%M\nnew_date_format = %A %d\n"
            "owner_email = o@example.org\nadmin = <b>hi</b>"
        )
        template = (
            "<TMPL_LOOP Items><TMPL_VAR creator>|<TMPL_VAR new_date>|<TMPL_VAR date>|"
            "<TMPL_VAR date_822>|<TMPL_VAR date_iso>|<TMPL_VAR channel_url>|"
            "<TMPL_IF new_channel>N</TMPL_IF>\n</TMPL_LOOP><TMPL_VAR owner_email>|<TMPL_VAR admin>"
        )
        web = themed_web(tmp, settings, template)
        for url, (title, site, items, kind) in FEEDS.items():
            add(web, url, kind(title, site, items))
        _, body = served(_Rigless(web), "/")
        lines = body.decode().splitlines()
        self.assertEqual(
            lines[:2],
            [
                "Glyph|Tuesday 23|2026-06-23 20:06|Tue, 23 Jun 2026 20:06:00 GMT|"
                "2026-06-23T20:06:00Z|http://glyph.example/feed|N",
                "Ned||2026-06-23 12:00|Tue, 23 Jun 2026 12:00:00 GMT|"
                "2026-06-23T12:00:00Z|http://ned.example/feed|N",
            ],
        )
        # Every [Planet] key is a variable, printed as text.
        self.assertEqual(lines[-1], "o@example.org|&lt;b&gt;hi&lt;/b&gt;")

    def test_failing_feed_message_in_channels(self) -> None:
        tmp = Path(self.mktemp())
        tmp.mkdir()
        web = themed_web(
            tmp, "", "<TMPL_LOOP Channels><TMPL_VAR name>=<TMPL_VAR message>;</TMPL_LOOP>"
        )
        failed = FetchResult(
            url="http://ned.example/feed",
            final_url=None,
            status=404,
            body=b"",
            error="HTTP 404 Not Found",
        )
        record_fetch(web.store, "http://ned.example/feed", failed, None, NOW)
        _, body = served(_Rigless(web), "/")
        self.assertIn("ned.example=HTTP 404 Not Found;", body.decode())

    def test_every_payload_in_every_field_through_a_raw_template(self) -> None:
        if not PAYLOADS.exists():
            self.skipTest(f"XSS corpus not at {PAYLOADS}")
        payloads = [p["payload"] for p in json.loads(PAYLOADS.read_text())]
        tmp = Path(self.mktemp())
        tmp.mkdir()
        web = themed_web(tmp, f"items_per_page = {len(payloads) + 1}", RAW_TEMPLATE)
        for i, payload in enumerate(payloads):
            url = f"http://f{i}.example/feed"
            item = Item(
                payload, payload, at(2026, 6, 1 + i % 28, i % 24), payload, payload, id=payload
            )
            add(web, url, atom(payload, payload, [item]))
        web.reconfigure(web.config)  # the feeds' titles are their names
        _, body = served(_Rigless(web), "/")
        self.assertGreater(body.count(b'<p class="content">'), len(payloads) // 2)
        self.assertEqual(tier_a_violations(body.decode(), fragment=False), [])

    def test_default_theme_template_is_safe_and_laid_out(self) -> None:
        tmp = Path(self.mktemp())
        tmp.mkdir()
        theme = Path(__file__).resolve().parents[1] / "src" / "planet" / "themes" / "default"
        web = themed_web(tmp, f"template_directories = {theme}", name="index.html.j2")
        for url, (title, site, items, kind) in FEEDS.items():
            add(web, url, kind(title, site, items))
        _, body = served(_Rigless(web), "/")
        doc = html5lib.parse(body, namespaceHTMLElements=False)
        self.assertEqual(["".join(h.itertext()) for h in doc.iter("h4")], [i.title for i in RIVER])
        self.assertEqual(
            ["".join(h.itertext()) for h in doc.iter("h3")],
            ["Glyph's Blog", "Ned's Blog", "Glyph's Blog", "Twisted Matrix"],
        )
        self.assertIn("23 Jun 2026 8:06pm GMT", body.decode())

    def test_readme_worked_example_custom_header_and_colours(self) -> None:
        """The README's "Templates and themes" example: the default theme copied, its header
        and colours changed, a logo among the materials."""
        tmp = Path(self.mktemp())
        tmp.mkdir()
        default = Path(__file__).resolve().parents[1] / "src" / "planet" / "themes" / "default"
        theme = tmp / "theme"
        shutil.copytree(default, theme)
        page = (theme / "index.html.j2").read_text()
        header = re.search(r"<header class=\"masthead\">.*?</header>", page, re.S)
        assert header is not None
        custom = (
            '<header class="masthead">\n<h1><a href="./"><img src="logo.png" alt="" width="32" '
            'height="32"> {{ name }}</a></h1>\n<p>What the Example community writes, gathered '
            "every 30 minutes.</p>\n</header>"
        )
        (theme / "index.html.j2").write_text(page.replace(header.group(0), custom))
        colours = (
            ":root { --fg: #20201e; --bg: #fffaf0; --accent: #b3400b; --muted: #6b6358; "
            "--rule: #e6dccb; }\n.masthead { background: var(--accent); color: #fff; }\n"
        )
        (theme / "style.css").write_text(colours + (theme / "style.css").read_text())
        (theme / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        web = themed_web(
            tmp,
            f"name = Planet Example\ntemplate_directories = {theme}\n"
            "bill_of_materials = style.css logo.png",
            name="index.html.j2",
        )
        for url, (title, site, items, kind) in FEEDS.items():
            add(web, url, kind(title, site, items))
        _, body = served(_Rigless(web), "/")
        text = body.decode()
        self.assertIn("What the Example community writes", text)
        self.assertIn('<img src="logo.png"', text)
        self.assertIn("Planet Example</a></h1>", text)
        self.assertEqual(text.count("<h4"), len(RIVER))
        _, css = served(_Rigless(web), "/style.css")
        self.assertTrue(css.startswith(colours.encode()))
        _, logo = served(_Rigless(web), "/logo.png")
        self.assertEqual(logo, b"\x89PNG\r\n\x1a\n")


class _Rigless:
    def __init__(self, web: PlanetWeb) -> None:
        self.web = web


# --- errors ---------------------------------------------------------------------------------


class ErrorTests(SynchronousTestCase):
    def test_compile_error_names_file_and_line(self) -> None:
        tmp = Path(self.mktemp())
        tmp.mkdir()
        (tmp / "index.html.tmpl").write_text("<html>\n<TMPL_LOOP Items>\n<TMPL_VAR title>\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(write_ini(tmp, "template_files = index.html.tmpl"))
        self.assertEqual(
            str(caught.exception),
            f"{tmp.absolute() / 'index.html.tmpl'}:2: <TMPL_LOOP> is never closed",
        )
        (tmp / "bad.html.j2").write_text("ok\n{% for x in %}\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(write_ini(tmp, "template_files = bad.html.j2"))
        self.assertTrue(str(caught.exception).startswith(f"{tmp.absolute() / 'bad.html.j2'}:2: "))

    def test_render_failure_keeps_the_last_good_output(self) -> None:
        tmp = Path(self.mktemp())
        tmp.mkdir()
        # Fails once there is an entry: 1 / 0 on a number it cannot divide.
        template = "{{ name }}{% for i in Items %}{{ 1 // (i.title|length * 0) }}{% endfor %}"
        web = themed_web(tmp, "", template, name="index.html.j2")
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        response, good = served(_Rigless(web), "/")
        self.assertEqual((response.code, good), (200, b"Planet Seed"))
        self.assertEqual(web.health_data()["template_errors"], 0)
        add(web, "http://ned.example/feed", rss2("Ned", "http://ned.example/", NED))
        response, body = served(_Rigless(web), "/")
        self.assertEqual((response.code, body), (200, good))
        self.assertEqual(web.health_data()["template_errors"], 1)
        lines = [
            formatEvent(e)
            for e in events
            if e.get("log_level") is not None and e["log_level"].name == "error"
        ]
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r"index\.html\.j2 failed to render \(ZeroDivisionError")

    def test_reload_with_a_broken_template_keeps_the_old(self) -> None:
        tmp = Path(self.mktemp())
        tmp.mkdir()
        (tmp / "index.html.tmpl").write_text("<TMPL_VAR name> v1")
        path = write_ini(tmp, "template_files = index.html.tmpl")
        config = load_config(path)
        server = MemoryFeeds()
        rig = Rig(self, config, server, now=NOW)
        rig.start()
        self.assertEqual(served(rig, "/")[1], b"Planet Seed v1")
        (tmp / "index.html.tmpl").write_text("<TMPL_VAR name> v2 <TMPL_IF x>")
        self.assertFalse(self.successResultOf(rig.service.reload()))
        self.assertEqual(served(rig, "/")[1], b"Planet Seed v1")
        (tmp / "index.html.tmpl").write_text("<TMPL_VAR name> v3")
        self.assertTrue(self.successResultOf(rig.service.reload()))
        self.assertEqual(served(rig, "/")[1], b"Planet Seed v3")


def test_planet_check_reports_a_broken_template(tmp_path: Path) -> None:
    from test_cli import planet

    (tmp_path / "rss20.xml.tmpl").write_text("<rss>\n<TMPL_LOOP Items>\n</TMPL_IF>\n")
    path = write_ini(tmp_path, "template_files = rss20.xml.tmpl index.html.genshi")
    code, out, err = planet("check", path, cwd=tmp_path)
    assert (code, out) == (1, "")
    assert err == (
        f"planet: error: {tmp_path / 'rss20.xml.tmpl'}:3: </TMPL_IF> does not close <TMPL_LOOP>\n"
    )
    (tmp_path / "rss20.xml.tmpl").write_text("<rss><TMPL_LOOP Items></TMPL_LOOP></rss>\n")
    code, out, err = planet("check", path, cwd=tmp_path)
    assert (code, err) == (0, "")
    assert "index.html.genshi: genshi templates are not supported" in out
