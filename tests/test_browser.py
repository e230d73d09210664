"""The river in a real browser: headless Chromium driven by Selenium.

A loopback feed server serves feeds whose entries stress the layout (a 2000 px wide
image, a 300-character line of code, a long unbroken URL, a wide table, headings, a
blockquote, a very long word); the real ``twistd planet`` daemon aggregates them, and
Chromium loads the pages it serves. The checks are what a reader would notice: console
errors, Content-Security-Policy violations, sideways scrolling on a 375 px phone, and
whether dark mode really changes the page. Screenshots (light and dark, desktop and
375 px) are written to ``test-output/browser/`` under the repository root.

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``) and the ``selenium`` package. Without them the tests skip,
unless ``CI_REQUIRE_BROWSER=1`` is set (``.ci/run`` sets it): then they fail.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from feeds import Item, at, atom, rss2
from process import Daemon, FeedServer, Response

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "test-output" / "browser"
PLANET_NAME = "Planet Browser Test"
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PHONE = {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True}
DESKTOP = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}


def _find(default: str, name: str) -> str | None:
    if Path(default).is_file() and os.access(default, os.X_OK):
        return default
    return shutil.which(name)


CHROMIUM = _find("/usr/bin/chromium", "chromium")
CHROMEDRIVER = _find("/usr/bin/chromedriver", "chromedriver")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"CI_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


# --- content that stresses the layout ----------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A real PNG: horizontal colour bands, so a cut-off image is visible in a screenshot."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = bytearray()
    for x in range(width):
        band = (x * 8) // width
        row += bytes(((band * 37) % 256, (90 + band * 20) % 256, (200 - band * 23) % 256))
    raw = b"".join(b"\x00" + bytes(row) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# No hyphen, space or other break opportunity: a tracking link as feeds really carry them.
LONG_URL = (
    "https://news.example.org/redirect?target=https%3A%2F%2Fexample.com%2Farticles%2F2026%2F"
    "averyveryverylongslugwithnohyphensatall&token="
    + "".join(f"{n * 2654435761 % 2**32:08x}" for n in range(20))
)
LONG_WORD = "Donaudampfschifffahrtselektrizitaetenhauptbetriebswerkbauunterbeamtengesellschaft" * 2
LONG_CODE = "result = compute(" + ", ".join(f"argument_{n:03d}" for n in range(60)) + ")"
LONG_CODE = LONG_CODE[:299] + ")"
assert len(LONG_CODE) == 300


def wide_table(columns: int = 14) -> str:
    head = "".join(f"<th>Column heading {n}</th>" for n in range(columns))
    rows = "".join(
        "<tr>" + "".join(f"<td>value {r}.{c}</td>" for c in range(columns)) + "</tr>"
        for r in range(3)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def stress_feeds(server: FeedServer) -> dict[str, bytes]:
    image = server.url("/wide.png")
    alpha = [
        Item(
            title="A wide picture",
            link="http://alpha.example/2026/06/23/wide-picture",
            when=at(2026, 6, 23, 20, 6),
            author="Ann Alpha",
            content=(
                "<p>Here is a panorama that is much wider than any phone:</p>"
                f'<p><img src="{image}" width="2000" alt="a wide panorama"></p>'
                "<h1>A top-level heading inside an entry</h1>"
                "<p>Entries sometimes carry their own <code>h1</code> and <code>h2</code>.</p>"
                "<h2>And a second-level one</h2>"
                "<blockquote><p>A quotation from somewhere else, long enough to wrap onto"
                " a second line on a narrow screen, with a <a href='http://q.example/'>link"
                "</a> in it.</p></blockquote>"
            ),
        ),
        Item(
            title="Code and a long line",
            link="http://alpha.example/2026/06/22/code",
            when=at(2026, 6, 22, 12, 10),
            author="Ann Alpha",
            content=(
                "<p>A line of code that does not wrap:</p>"
                f"<pre><code>{LONG_CODE}</code></pre>"
                "<p>And some inline <code>code_that_is_rather_long_too()</code> after it.</p>"
            ),
        ),
    ]
    bravo = [
        Item(
            title="Links and tables",
            link="http://bravo.example/2026/06/23/links",
            when=at(2026, 6, 23, 9, 5),
            author="Bob Bravo",
            content=(
                f'<p>The source: <a href="{LONG_URL}">{LONG_URL}</a></p>'
                "<p>The numbers, in a table with many columns:</p>" + wide_table()
            ),
        ),
        Item(
            title="Long words",
            link="http://bravo.example/2026/06/05/words",
            when=at(2026, 6, 5, 11, 0),
            author="Bob Bravo",
            content=f"<p>German has words like {LONG_WORD} and they do not break.</p>",
        ),
    ]
    charlie = [
        Item(
            # Link blogs often use the URL itself as the title.
            title=LONG_URL,
            link=LONG_URL,
            when=at(2026, 6, 22, 8, 0),
            author="Cat Charlie",
            content="<p>Worth reading.</p><h2>Why</h2><p>Because it is long.</p>",
        ),
    ]
    return {
        "/alpha.atom": atom("Alpha Weblog", "http://alpha.example/", alpha),
        "/bravo.rss": rss2("Bravo News", "http://bravo.example/", bravo),
        "/charlie.atom": atom("Charlie Links", "http://charlie.example/", charlie),
    }


MISSING = "/missing.xml"


def planet_ini(server: FeedServer, paths: list[str]) -> str:
    lines = [
        "[Planet]",
        f"name = {PLANET_NAME}",
        "link = http://planet.example/",
        "owner_name = Olive Owner",
        "items_per_page = 60",
        "fetch_interval = 3600",
        "snapshot_interval = 3600",
        "feed_timeout = 10",
    ]
    for path in paths:
        lines += ["", f"[{server.url(path)}]"]
    return "\n".join(lines) + "\n"


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser test output: {OUTPUT}")
    return OUTPUT


@pytest.fixture(scope="module")
def planet(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The daemon, with every stress entry fetched."""
    started = time.monotonic()
    server = FeedServer()
    daemon: Daemon | None = None
    try:
        docs = stress_feeds(server)
        for path, body in docs.items():
            kind = "application/rss+xml" if path.endswith(".rss") else "application/atom+xml"
            server.routes[path] = Response(200, {"Content-Type": kind}, body)
        server.routes["/wide.png"] = Response(200, {"Content-Type": "image/png"}, png(2000, 120))
        total = sum(body.count(b"<entry>") + body.count(b"<item>") for body in docs.values())
        # A feed that fails (a 404): the status page has a table of failing feeds too.
        paths = [*docs, MISSING]
        daemon = Daemon(tmp_path_factory.mktemp("browser") / "planet", planet_ini(server, paths))
        daemon.start()
        daemon.wait_health(
            lambda h: (
                h["entries"] == total and h["feeds_ok"] == len(docs) and h["feeds_failing"] == 1
            ),
            what=f"{total} entries of {len(docs)} feeds, 1 failing",
        )
        print(f"daemon up with {total} entries in {time.monotonic() - started:.2f} s")
        yield daemon
    finally:
        if daemon is not None:
            daemon.cleanup()
        server.stop()


CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push({
    directive: e.violatedDirective, effective: e.effectiveDirective,
    blocked: e.blockedURI, source: e.sourceFile, line: e.lineNumber,
    sample: e.sample, disposition: e.disposition, policy: e.originalPolicy
  });
}, true);
"""


@pytest.fixture(scope="module")
def browser() -> tuple[Any, Any]:
    """Selenium's ``webdriver`` module and chrome ``Service`` class, once Chromium is known
    to be there (skip, or fail under CI_REQUIRE_BROWSER=1, before starting anything)."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        missing = [n for n, p in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not p]
        _unavailable(
            f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[test]')")
    return webdriver, Service


@pytest.fixture
def driver(browser: tuple[Any, Any]) -> Iterator[Any]:
    """A fresh Chromium per test, so that no test's findings depend on another's loads
    (Chromium asks for ``/favicon.ico`` once per profile, for one)."""
    webdriver, Service = browser
    profile = tempfile.mkdtemp(prefix="planet-chromium-")
    options = webdriver.ChromeOptions()
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    started = time.monotonic()
    drv = None
    try:
        drv = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        drv.set_page_load_timeout(30)
        drv.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_LISTENER})
        print(
            f"chromium {drv.capabilities.get('browserVersion')} up in "
            f"{time.monotonic() - started:.2f} s"
        )
        yield drv
    finally:
        if drv is not None:
            drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


# --- helpers -----------------------------------------------------------------------------------


def emulate(drv: Any, metrics: dict[str, Any], scheme: str = "light") -> None:
    drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    drv.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )


def load(drv: Any, url: str) -> None:
    """Load ``url`` (reload if already there) and wait for every image, lazy ones too."""
    if drv.current_url == url:
        drv.refresh()
    else:
        drv.get(url)
    drv.execute_script(
        "document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager');"
    )
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if drv.execute_script(
            "return document.readyState === 'complete' && "
            "Array.from(document.images).every(i => i.complete);"
        ):
            return
        time.sleep(0.05)


#: Chromium asks for /favicon.ico after the load event, and logs a failure later still.
SETTLE = 1.0


def console(drv: Any, settle: float = 0.0) -> list[dict[str, Any]]:
    """The browser log since the last call (reading it empties it); with ``settle``, also
    what is logged during that many more seconds (late requests such as the favicon)."""
    entries = list(drv.get_log("browser"))
    end = time.monotonic() + settle
    while time.monotonic() < end:
        time.sleep(0.1)
        entries += drv.get_log("browser")
    return entries


def severe(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("level") == "SEVERE"]


def show(entries: list[dict[str, Any]]) -> str:
    return (
        "\n".join(
            f"  [{e.get('level')}] {e.get('source', '')}: {e.get('message')}" for e in entries
        )
        or "  (none)"
    )


OVERFLOW_SCRIPT = """
const vw = arguments[0];
function label(el) {
  let s = el.tagName.toLowerCase();
  if (el.id) s += '#' + el.id;
  if (el.classList.length) s += '.' + Array.from(el.classList).join('.');
  return s;
}
function path(el) {
  const parts = [];
  for (let e = el; e && e !== document.body; e = e.parentElement) parts.unshift(label(e));
  return parts.join(' > ');
}
function clipped(el) {
  for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
    const ox = getComputedStyle(a).overflowX;
    if (ox !== 'visible' && a.getBoundingClientRect().right <= vw + 1) return label(a);
  }
  return null;
}
const out = [];
for (const el of document.querySelectorAll('body *')) {
  const r = el.getBoundingClientRect();
  if (r.right > vw + 1) {
    const cs = getComputedStyle(el);
    out.push({
      path: path(el), right: Math.round(r.right), width: Math.round(r.width),
      display: cs.display, whiteSpace: cs.whiteSpace, overflowWrap: cs.overflowWrap,
      clippedBy: clipped(el),
      text: (el.textContent || '').trim().slice(0, 60)
    });
  }
}
return out;
"""


def page_width(drv: Any) -> dict[str, int]:
    return drv.execute_script(
        "return {scrollWidth: document.documentElement.scrollWidth,"
        " innerWidth: window.innerWidth, clientWidth: document.documentElement.clientWidth};"
    )


def screenshot(drv: Any, path: Path) -> None:
    """A full-page PNG (beyond the viewport, so that everything below the fold shows)."""
    shot = drv.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path.write_bytes(base64.b64decode(shot["data"]))


# --- the tests ----------------------------------------------------------------------------------


def test_river_loads_without_console_errors(driver: Any, planet: Daemon) -> None:
    emulate(driver, DESKTOP)
    console(driver)
    started = time.monotonic()
    load(driver, planet.url("/"))
    print(f"/ loaded in {time.monotonic() - started:.2f} s")
    logs = console(driver, SETTLE)
    print("console on / (desktop):\n" + show(logs))
    assert driver.title == PLANET_NAME
    # Every stress entry made it, and the wide image really loaded (from the feed server).
    titles = driver.execute_script(
        "return Array.from(document.querySelectorAll('.entry-title')).map(h => h.textContent);"
    )
    assert len(titles) == 5, titles
    natural = driver.execute_script(
        "const i = document.querySelector('.content img'); return i && i.naturalWidth;"
    )
    assert natural == 2000, f"the wide image did not load (naturalWidth {natural!r})"
    errors = severe(logs)
    assert not errors, "console errors on /:\n" + show(errors)


def test_no_csp_violations(driver: Any, planet: Daemon) -> None:
    _, headers, _ = planet.get("/")
    policy = {k.lower(): v for k, v in headers.items()}.get("content-security-policy")
    print(f"Content-Security-Policy of /: {policy!r}")
    results = {}
    for name, metrics in (("desktop", DESKTOP), ("375", PHONE)):
        emulate(driver, metrics)
        console(driver)
        load(driver, planet.url("/"))
        logs = console(driver, SETTLE)
        print(f"console on / ({name}):\n" + show(logs))
        # "Refused to load ...", or (Chromium 156, inline style) "Applying inline style
        # violates the following Content Security Policy directive ...".
        refused = [
            e
            for e in logs
            if "Refused to" in str(e.get("message"))
            or "Content Security Policy" in str(e.get("message"))
        ]
        found = driver.execute_script("return window.__cspViolations;")
        print(f"CSP listener ({name}): window.__cspViolations = {json.dumps(found, indent=1)}")
        results[name] = (refused, found)
    assert all(found is not None for _, found in results.values()), (
        "the securitypolicyviolation listener was not installed"
    )
    problems = {
        name: {"console": [e["message"] for e in refused], "events": found}
        for name, (refused, found) in results.items()
        if refused or found
    }
    assert not problems, "CSP violations on /:\n" + json.dumps(problems, indent=1)


def test_no_horizontal_scroll_at_375(driver: Any, planet: Daemon) -> None:
    emulate(driver, PHONE)
    console(driver)
    load(driver, planet.url("/"))
    width = page_width(driver)
    print(f"/ at 375 px: {width}")
    over = driver.execute_script(OVERFLOW_SCRIPT, PHONE["width"])
    culprits = [o for o in over if o["clippedBy"] is None]

    def listing(items: list[dict[str, Any]]) -> str:
        """One line per distinct element path (table cells repeat), widest first."""
        groups: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        for o in items:
            groups.setdefault((o["path"], o["clippedBy"]), []).append(o)
        lines = []
        for (path, clipped_by), group in groups.items():
            o = max(group, key=lambda g: g["right"])
            lines.append(
                f"  {path}{f' (x{len(group)})' if len(group) > 1 else ''}:"
                f" right={o['right']} width={o['width']} display={o['display']}"
                f" white-space={o['whiteSpace']} overflow-wrap={o['overflowWrap']}"
                + (f" [clipped by scrolling {clipped_by}]" if clipped_by else "")
                + f" text={' '.join(o['text'].split())!r}"
            )
        return "\n".join(lines)

    report = listing(over)
    culprit_report = listing(culprits) or "  (none)"
    print(
        f"elements wider than 375 px ({len(culprits)} not inside a scroller):\n"
        + (report or "  (none)")
    )
    # Nothing scrolls sideways. innerWidth is checked to be 375 too: when the content is
    # wider, a mobile viewport zooms out (innerWidth grows up to 4 x), which would make
    # `scrollWidth <= innerWidth` alone pass for a page that overflows.
    assert width["scrollWidth"] <= width["innerWidth"] and width["innerWidth"] == PHONE["width"], (
        f"horizontal scroll at 375 px: {width}\n"
        f"elements wider than the viewport and not inside a scroller:\n{culprit_report}\n"
        f"all elements wider than the viewport:\n{report}"
    )


def test_light_and_dark_screenshots(driver: Any, planet: Daemon, output_dir: Path) -> None:
    backgrounds: dict[str, str] = {}
    for scheme in ("light", "dark"):
        for name, metrics in (("river", DESKTOP), ("river-375", PHONE)):
            emulate(driver, metrics, scheme)
            load(driver, planet.url("/"))
            matches = driver.execute_script(
                f"return matchMedia('(prefers-color-scheme: {scheme})').matches;"
            )
            assert matches, f"prefers-color-scheme: {scheme} emulation did not take"
            bg = driver.execute_script("return getComputedStyle(document.body).backgroundColor;")
            fg = driver.execute_script("return getComputedStyle(document.body).color;")
            backgrounds[f"{name}-{scheme}"] = bg
            target = output_dir / f"{name}-{scheme}.png"
            screenshot(driver, target)
            print(f"{target.name}: body background {bg}, color {fg}")
    assert backgrounds["river-light"] != backgrounds["river-dark"], backgrounds
    assert backgrounds["river-375-light"] != backgrounds["river-375-dark"], backgrounds


def test_feeds_page_at_375(driver: Any, planet: Daemon) -> None:
    emulate(driver, PHONE)
    console(driver)
    load(driver, planet.url("/feeds"))
    logs = console(driver, SETTLE)
    print("console on /feeds (375 px):\n" + show(logs))
    print(f"/feeds at 375 px: {page_width(driver)}")
    assert driver.title.endswith(PLANET_NAME), driver.title
    errors = severe(logs)
    assert not errors, "console errors on /feeds:\n" + show(errors)


# --- the status page (/feeds) at 1280 and 375 px --------------------------------------------

#: Every word of the visible headers (the selector's elements): on how many lines it lies.
WORD_BREAKS_SCRIPT = """
const bad = [], seen = [];
for (const el of document.querySelectorAll(arguments[0])) {
  const box = el.getBoundingClientRect();
  if (box.width < 2 || box.height < 2 || getComputedStyle(el).display === 'none') continue;
  seen.push(el.textContent.trim());
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const words = /\\S+/g;
    let m;
    while ((m = words.exec(n.data))) {
      const range = document.createRange();
      range.setStart(n, m.index);
      range.setEnd(n, m.index + m[0].length);
      const tops = new Set(Array.from(range.getClientRects())
        .filter(r => r.width > 0).map(r => Math.round(r.top)));
      if (tops.size > 1) bad.push({header: el.textContent.trim(), word: m[0], lines: tops.size});
    }
  }
}
return {bad: bad, seen: seen};
"""
TIMES_SCRIPT = """
return Array.from(document.querySelectorAll('.status-page time')).map(t => ({
  text: t.textContent, datetime: t.getAttribute('datetime'), title: t.getAttribute('title'),
  visible: t.getBoundingClientRect().width > 0
}));
"""
RELATIVE = re.compile(
    r"^(just now|due now|in under a minute|"
    r"(in )?\d+ (min|h|days|months|years)( \d+ min)?( ago)?)$"
)
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.mark.parametrize(
    ("name", "metrics", "headers"),
    [
        ("1280", DESKTOP, "table.feeds th, .status-page h2"),
        ("375", PHONE, "table.feeds .label, .status-page h2"),
    ],
)
def test_status_page_layout(
    driver: Any, planet: Daemon, output_dir: Path, name: str, metrics: dict[str, Any], headers: str
) -> None:
    emulate(driver, metrics)
    console(driver)
    load(driver, planet.url("/feeds"))
    screenshot(driver, output_dir / f"feeds-{name}.png")
    width = page_width(driver)
    print(f"/feeds at {name} px: {width}")
    assert width["scrollWidth"] <= width["innerWidth"] == metrics["width"], (
        f"horizontal scroll on /feeds at {name} px: {width}\n"
        + json.dumps(driver.execute_script(OVERFLOW_SCRIPT, metrics["width"])[:10], indent=1)
    )
    # No sideways scrolling inside the page either: every table fits (the header row of the
    # stacked layout is there for screen readers only, one pixel wide).
    inner = driver.execute_script(
        "return Array.from(document.querySelectorAll('.status-page *'))"
        ".filter(e => !e.closest('thead') && e.scrollWidth > e.clientWidth + 1 && "
        "getComputedStyle(e).overflowX !== 'visible')"
        ".map(e => e.tagName + '.' + e.className);"
    )
    assert inner == [], f"scrolling boxes on /feeds at {name} px: {inner}"
    words = driver.execute_script(WORD_BREAKS_SCRIPT, headers)
    print(f"headers seen at {name} px: {words['seen']}")
    assert any("Reason" in h for h in words["seen"]) and any("Failing" in h for h in words["seen"])
    assert words["bad"] == [], f"headers broken inside a word at {name} px: {words['bad']}"
    # Failing feeds: the reason comes first.
    first = driver.execute_script(
        "const c = document.querySelector('table.feeds-failing tbody td');return c && c.className;"
    )
    assert first == "col-reason", first
    times = driver.execute_script(TIMES_SCRIPT)
    assert len([t for t in times if t["visible"]]) >= 6, times
    for t in times:
        assert RELATIVE.match(t["text"]), t
        assert ISO_UTC.match(t["datetime"]), t
        assert t["title"] == t["datetime"].replace("T", " ").replace("Z", " UTC"), t
    errors = severe(console(driver))
    assert not errors, "console errors on /feeds:\n" + show(errors)
    # The summary's links filter, without JavaScript of the page's own.
    driver.execute_script(
        "document.querySelector('.status-summary a[href=\"/feeds?state=failing\"]').click();"
    )
    end = time.monotonic() + 10
    while not driver.current_url.endswith("?state=failing") and time.monotonic() < end:
        time.sleep(0.05)
    load(driver, driver.current_url)
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('table.feeds tbody tr'))"
        ".map(r => r.className);"
    )
    assert rows == ["state-failing"], rows
