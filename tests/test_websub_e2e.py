"""Issue 14 end to end: ``twistd planet`` as a process subscribes to a hub found in its
feed, answers the hub's verification, shows a pushed post at once, keeps the subscription
over a restart, stores a push answered just before SIGTERM, and unsubscribes when the feed
is removed at SIGHUP."""

from __future__ import annotations

import signal
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from feeds import Item, atom
from process import Daemon, read_snapshot
from websubhub import ThreadedHub

from planet.testing import planet_ini

pytestmark = pytest.mark.slow


def _feed(*titles: str) -> bytes:
    now = datetime.now(timezone.utc)
    return atom(
        "Blog", "http://blog.example/", [Item(t, f"http://b.example/{t}", now) for t in titles]
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_websub_through_the_daemon(daemons: list[Daemon], tmp_path: Path) -> None:
    hub = ThreadedHub(_feed("first"))
    try:
        port = _free_port()
        feed_url = hub.url("/feed")
        snapshot = tmp_path / "snap.json"
        ini = planet_ini(
            "E2E",
            [feed_url],
            websub_callback=f"http://127.0.0.1:{port}/",
            snapshot_file=snapshot,
        )
        daemon = Daemon(
            tmp_path / "planet", config_text=ini, listen=f"tcp:{port}:interface=127.0.0.1"
        )
        daemons.append(daemon)
        daemon.start()
        daemon.wait_until(lambda: hub.verified, deadline=10, what="the hub's verification")
        (callback, topic), secret = next(iter(hub.verified.items()))
        assert topic == feed_url and callback.startswith(f"http://127.0.0.1:{port}/websub/")
        rows = daemon.wait_until(
            lambda: [r for r in _feeds(daemon) if r["websub"] == "subscribed"], deadline=5
        )
        assert rows[0]["websub_hub"] == hub.url("/hub")

        started = time.monotonic()
        assert hub.publish(topic, _feed("pushed", "first")) == [202]
        daemon.wait_until(lambda: b"pushed" in daemon.get("/")[2], deadline=5, poll=0.01)
        print(
            f"\npush to the front page through twistd: {(time.monotonic() - started) * 1000:.0f} ms"
        )
        assert secret is not None and secret not in daemon.log

        # A restart keeps the subscription and its secret: no new request, pushes taken.
        daemon.stop()
        doc = read_snapshot(snapshot)
        assert doc is not None and doc["websub"][0]["secret"] == secret
        asked = len(hub.requests)
        daemon.start()
        assert hub.publish(topic, _feed("after-restart", "pushed", "first")) == [202]
        daemon.wait_until(lambda: b"after-restart" in daemon.get("/")[2], deadline=5)
        assert len(hub.requests) == asked

        # A push is answered on receipt (section 7); one answered just before SIGTERM is
        # stored before the snapshot is written.
        assert hub.publish(topic, _feed("before-stop", "after-restart", "pushed")) == [202]
        daemon.stop()
        doc = read_snapshot(snapshot)
        assert doc is not None and "before-stop" in {e["title"] for e in doc["entries"]}
        daemon.start()

        # Removed at SIGHUP: unsubscribed, and the hub verified it.
        daemon.config_path.write_text(
            planet_ini("E2E", [], websub_callback=f"http://127.0.0.1:{port}/")
        )
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_until(lambda: not hub.verified, deadline=5, what="the unsubscription")
        assert hub.requests[-1]["hub.mode"] == "unsubscribe"
        assert hub.failed_verifications == []
    finally:
        hub.stop()


def _feeds(daemon: Daemon) -> list[dict]:
    import json

    status, _, body = daemon.get("/feeds.json")
    return json.loads(body) if status == 200 else []
