"""A snapshot written under an older sanitizer policy, read by the running daemon.

Issue 19 item 11: entries stored under another policy are sanitized again in the parse
workers before they are served. This runs ``twistd planet`` on such a snapshot (its entries
as a weaker, older policy might have let them through) and looks at what it serves.
"""

from __future__ import annotations

import pytest
from feeds import at
from process import Daemon

from planet.model import Entry, FeedState
from planet.sanitize import POLICY_VERSION
from planet.snapshotcodec import encode

pytestmark = pytest.mark.slow

FEED = "http://old.example/feed"
WHEN = at(2026, 6, 20, 8, 0)


def old_entry(n: int, title: str, content: str) -> Entry:
    return Entry(
        id=f"urn:old:{n}",
        feed_url=FEED,
        title=title,
        link=f"http://old.example/{n}",
        author="",
        content=content,
        published=WHEN,
        updated=WHEN,
        first_seen=WHEN,
    )


def test_entries_of_an_older_policy_are_sanitized_again_before_they_are_served(
    daemon: Daemon,
) -> None:
    entries = [
        old_entry(1, "Plain <b>bold</b> title", "<p>kept</p><script>alert('old')</script>"),
        old_entry(2, "Second", '<p><img src="x" onerror="alert(2)">text</p>' + "<div>" * 600),
    ]
    states = [FeedState(url=FEED, title="Old", last_fetch=WHEN, last_success=WHEN)]
    daemon.workdir.mkdir(parents=True)
    # Written under policy 1: before flattening and the current allow-list.
    (daemon.workdir / "planet-snapshot.json").write_bytes(
        encode(entries, states, WHEN, policy=POLICY_VERSION - 1)
    )
    # The feed's server is gone: what is served comes from the snapshot alone.
    daemon.config_text = (
        "[Planet]\nname = Old policy\nfetch_interval = 3600\nsnapshot_interval = 3600\n\n"
        "[http://127.0.0.1:9/feed]\nname = Gone\n\n"
        f"[{FEED}]\nname = Old\n"
    )
    daemon.start()
    daemon.wait_health(lambda h: h["entries"] == 2, what="the re-sanitized entries")
    # A page is at most about a second behind the store.

    def shown() -> bytes | None:
        body = daemon.get("/")[2]
        return body if b"kept" in body else None

    page = daemon.wait_until(shown, deadline=5, what="the entries on the page")
    _, _, atom = daemon.get("/atom.xml")
    for body in (page, atom):
        text = body.decode()
        assert "alert(" not in text, text[:2000]
        assert "onerror" not in text
        assert "<script" not in text.lower()
    assert "kept" in page.decode(), page.decode()[-3000:]
    # A title is text: its markup shows as text, never as markup.
    assert "Plain &lt;b&gt;bold&lt;/b&gt; title" in page.decode()
    assert "sanitizer policy" in daemon.log
    assert "Sanitized 2 entries of snapshot" in daemon.log
    code, log = daemon.stop()
    assert code in (0, -15), log[-3000:]
    assert "Traceback" not in log
    # The snapshot written at stop records the current policy.
    assert f'"policy":{POLICY_VERSION}' in (daemon.workdir / "planet-snapshot.json").read_text()
