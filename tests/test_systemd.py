"""systemd integration: sd_notify, the SdNotifyService, --state-dir, and the unit files.

* Unit tests: :func:`planet.systemd.sd_notify` against real ``AF_UNIX``/``SOCK_DGRAM``
  sockets (a path and the abstract namespace), :class:`SdNotifyService` on a ``Clock``,
  ``--state-dir``/``$STATE_DIRECTORY`` in ``planet.tap``.
* Process tests (``slow``): ``twistd -n planet`` with ``$NOTIFY_SOCKET`` pointing at a
  socket the test reads, as systemd would run it (``READY=1`` only once the port accepts
  connections and the snapshot is served; ``STOPPING=1`` on SIGTERM), with socket
  activation, and with the state directory.
* ``systemd-analyze verify`` on ``etc/planet.service``, ``etc/planet.socket`` and the
  socket-activation drop-in. Skipped without ``systemd-analyze`` (Debian package
  ``systemd``) unless ``CI_REQUIRE_SYSTEMD=1`` (``.ci/run`` sets it): then it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from process import PORT_LINE, SHUTDOWN_LINE, TWISTD, Daemon
from twisted.application.service import MultiService, Service
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from planet import snapshotcodec as snapshot_module
from planet import systemd, tap
from planet.config import parse_config
from planet.model import Entry, FeedState
from planet.systemd import SdNotifyService, sd_notify, watchdog_interval
from planet.testing import planet_ini

ROOT = Path(__file__).resolve().parent.parent
ETC = ROOT / "etc"
INSTALLED_TWISTD = "/opt/planet/venv/bin/twistd"
INSTALLED_PLANET = "/opt/planet/venv/bin/planet"
SIGTERM_EXITS = (0, -signal.SIGTERM)


# --- a notify socket, as systemd listens on -------------------------------------------------


class NotifySocket:
    """A bound ``AF_UNIX``/``SOCK_DGRAM`` socket; ``address`` is what goes in NOTIFY_SOCKET."""

    def __init__(self, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._dir: str | None = None
        if abstract:
            name = f"planet-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            # A short directory: a socket path may hold at most 107 bytes.
            self._dir = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
            self.address = os.path.join(self._dir, "notify")
            self.sock.bind(self.address)
        self.received: list[bytes] = []

    def recv(self, timeout: float) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return None
        self.received.append(data)
        return data

    def wait_for(
        self,
        line: bytes,
        deadline: float,
        what: str = "",
        alive: Callable[[], bool] = lambda: True,
    ) -> bytes:
        """The first message (received from now on) holding ``line`` as one of its lines.

        Gives up at ``deadline`` seconds, or as soon as ``alive()`` is false.
        """
        end = time.monotonic() + deadline
        while True:
            left = end - time.monotonic()
            if left <= 0 or not alive():
                gone = "" if alive() else " (the daemon exited)"
                raise AssertionError(
                    f"no {line!r} within {deadline} s{what}{gone}; received: {self.received!r}"
                )
            data = self.recv(min(left, 0.2))
            if data is not None and line in data.split(b"\n"):
                return data

    def close(self) -> None:
        self.sock.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    ns = NotifySocket()
    try:
        yield ns
    finally:
        ns.close()


# --- sd_notify ---------------------------------------------------------------------------


def test_sd_notify_without_notify_socket_is_a_no_op() -> None:
    assert sd_notify(b"READY=1", environ={}) is False
    assert sd_notify(b"READY=1", environ={"NOTIFY_SOCKET": ""}) is False


def test_sd_notify_to_a_socket_path(notify_socket: NotifySocket) -> None:
    sent = sd_notify(b"READY=1\nSTATUS=ok", environ={"NOTIFY_SOCKET": notify_socket.address})
    assert sent is True
    assert notify_socket.recv(2) == b"READY=1\nSTATUS=ok"


def test_sd_notify_to_an_abstract_address() -> None:
    ns = NotifySocket(abstract=True)
    try:
        assert ns.address.startswith("@")
        assert sd_notify(b"WATCHDOG=1", environ={"NOTIFY_SOCKET": ns.address}) is True
        assert ns.recv(2) == b"WATCHDOG=1"
    finally:
        ns.close()


def test_sd_notify_default_environ_is_os_environ(
    notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
    assert sd_notify(b"READY=1") is True
    assert notify_socket.recv(2) == b"READY=1"


@pytest.mark.parametrize(
    "address",
    [
        "/nonexistent-dir/notify",  # nobody listening
        "@planet-test-nobody-listens-here",
        "relative/notify",  # neither a path nor @name: refused as libsystemd does
        "/tmp/with\0nul",
    ],
)
def test_sd_notify_never_raises(address: str) -> None:
    with capturedLogs() as events:
        assert sd_notify(b"READY=1", environ={"NOTIFY_SOCKET": address}) is False
    assert len(events) == 1, events
    assert events[0]["log_level"].name == "warn"


def test_sd_notify_does_not_hang_on_a_full_queue(
    notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody reads the socket: sends start failing after SEND_TIMEOUT, never block for good."""
    monkeypatch.setattr(systemd, "SEND_TIMEOUT", 0.05)
    environ = {"NOTIFY_SOCKET": notify_socket.address}
    started = time.monotonic()
    with capturedLogs() as events:
        for _ in range(10_000):
            if not sd_notify(b"x" * 4096, environ=environ):
                break
        else:
            pytest.fail("10000 datagrams of 4 KiB queued on a socket nobody reads")
    assert time.monotonic() - started < 30
    assert "failed" in events[-1]["log_format"]


# --- the watchdog interval --------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": ""}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ) == expected


# --- SdNotifyService ----------------------------------------------------------------------


def make_service(
    environ: dict[str, str] | None = None, **kw: Any
) -> tuple[SdNotifyService, Clock, list[bytes]]:
    sent: list[bytes] = []
    clock = Clock()

    def notify(state: bytes) -> bool:
        sent.append(state)
        return True

    svc = SdNotifyService(clock=clock, notify=notify, environ=environ or {}, **kw)
    return svc, clock, sent


def test_service_sends_ready_then_stopping() -> None:
    svc, clock, sent = make_service(status=lambda: "serving 3 entries")
    svc.startService()
    assert sent == [b"READY=1\nSTATUS=serving 3 entries"]
    clock.advance(3600)
    assert len(sent) == 1, "no watchdog pings without WATCHDOG_USEC"
    svc.stopService()
    assert sent[1].split(b"\n")[0] == b"STOPPING=1"
    assert not clock.getDelayedCalls()


def test_service_default_status_and_one_line_status() -> None:
    svc, _, sent = make_service()
    svc.startService()
    assert sent == [b"READY=1\nSTATUS=Serving"]
    svc, _, sent = make_service(status=lambda: "two\nlines\nWATCHDOG=1")
    svc.startService()
    assert sent == [b"READY=1\nSTATUS=two lines WATCHDOG=1"]


def test_service_ready_even_when_status_fails() -> None:
    def broken() -> str:
        raise RuntimeError("boom")

    svc, _, sent = make_service(status=broken)
    with capturedLogs() as events:
        svc.startService()
    assert sent == [b"READY=1\nSTATUS=Serving"]
    assert any("log_failure" in e for e in events)


def test_service_watchdog_pings_at_half_the_interval() -> None:
    svc, clock, sent = make_service({"WATCHDOG_USEC": "10000000"})  # 10 s
    svc.startService()
    assert sent[0].startswith(b"READY=1\n")
    assert sent[1:] == [b"WATCHDOG=1"]
    clock.advance(4.9)
    assert sent[1:] == [b"WATCHDOG=1"]
    clock.advance(0.1)
    assert sent[1:] == [b"WATCHDOG=1"] * 2
    clock.pump([5.0] * 4)
    assert sent[1:] == [b"WATCHDOG=1"] * 6
    svc.stopService()
    assert sent[-1].startswith(b"STOPPING=1")
    count = len(sent)
    clock.advance(60)
    assert len(sent) == count, "the watchdog stops with the service"
    assert not clock.getDelayedCalls()


def test_service_watchdog_for_another_pid_is_ignored() -> None:
    svc, clock, sent = make_service(
        {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    )
    svc.startService()
    clock.advance(60)
    assert [s.split(b"\n")[0] for s in sent] == [b"READY=1"]
    svc.stopService()


def test_service_reload_notifications() -> None:
    svc, _, sent = make_service()
    svc.startService()
    svc.reloading()
    lines = sent[-1].split(b"\n")
    assert lines[0] == b"RELOADING=1"
    usec = int(lines[1].removeprefix(b"MONOTONIC_USEC="))
    assert abs(usec - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000) < 10_000_000
    svc.ready()
    assert sent[-1].startswith(b"READY=1\n")


def test_service_last_child_is_ready_after_the_others_started() -> None:
    """As the last child of a MultiService, READY=1 follows every other startService."""
    order: list[str] = []

    class Recording(Service):
        def startService(self) -> None:
            super().startService()
            order.append("snapshot loaded")

    top = MultiService()
    Recording().setServiceParent(top)
    notifier = SdNotifyService(
        clock=Clock(), notify=lambda s: order.append(s.decode()) or True, environ={}
    )
    notifier.setServiceParent(top)
    top.startService()
    assert order == ["snapshot loaded", "READY=1\nSTATUS=Serving"]
    top.stopService()
    assert order[-1].startswith("STOPPING=1")


def test_service_with_real_socket(notify_socket: NotifySocket) -> None:
    environ = {"NOTIFY_SOCKET": notify_socket.address}
    svc = SdNotifyService(
        clock=Clock(), notify=lambda state: sd_notify(state, environ), environ=environ
    )
    svc.startService()
    assert notify_socket.recv(2) == b"READY=1\nSTATUS=Serving"
    svc.stopService()
    assert notify_socket.recv(2) == b"STOPPING=1\nSTATUS=Shutting down"


# --- --state-dir / $STATE_DIRECTORY ---------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "environ", "expected"),
    [
        (None, {}, None),
        ("/srv/planet", {}, "/srv/planet"),
        ("/srv/planet", {"STATE_DIRECTORY": "/var/lib/planet"}, "/srv/planet"),
        (None, {"STATE_DIRECTORY": "/var/lib/planet"}, "/var/lib/planet"),
        (None, {"STATE_DIRECTORY": "/var/lib/planet:/var/lib/other"}, "/var/lib/planet"),
        (None, {"STATE_DIRECTORY": ""}, None),
    ],
)
def test_state_directory(option: str | None, environ: dict[str, str], expected: str | None) -> None:
    assert tap.state_directory(option, environ) == expected


@pytest.mark.parametrize(
    ("planet_keys", "expected"),
    [
        ("", "/state/planet-snapshot.json"),
        ("snapshot_file = snap.json", "/state/snap.json"),
        ("snapshot_file = ./sub/../snap.json", "/state/snap.json"),
        ("cache_directory = cache", "/state/cache/planet-snapshot.json"),
        ("snapshot_file = /elsewhere/snap.json", "/elsewhere/snap.json"),
        ("cache_directory = /var/cache/planet", "/var/cache/planet/planet-snapshot.json"),
    ],
)
def test_in_state_dir(planet_keys: str, expected: str) -> None:
    config = parse_config(f"[Planet]\nname = x\n{planet_keys}\n", "planet.ini")
    assert tap.in_state_dir(config, "/state").snapshot_file == expected
    assert tap.in_state_dir(config, None) is config


def run_make_service(monkeypatch: pytest.MonkeyPatch, args: list[str], cwd: Path) -> Any:
    """``tap.makeService`` on ``args``; returns the Config it passed to build_service."""
    import planet.service

    built: list[Any] = []
    monkeypatch.setattr(
        planet.service, "build_service", lambda config, *a, **kw: built.append(config) or Service()
    )
    monkeypatch.chdir(cwd)
    options = tap.Options()
    options.parseOptions(args)
    tap.makeService(options, reactor=Clock())
    return built[0]


def test_make_service_state_dir_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "not-this-one"))
    (tmp_path / "planet.ini").write_text("[Planet]\nname = x\n")
    (tmp_path / "state").mkdir()
    config = run_make_service(
        monkeypatch, ["--config", "planet.ini", "--state-dir", "state"], tmp_path
    )
    assert config.snapshot_file == str(tmp_path / "state" / "planet-snapshot.json")
    assert config.path == "planet.ini", "--config stays relative to the working directory"


def test_make_service_state_directory_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "planet.ini").write_text("[Planet]\nname = x\nsnapshot_file = s.json\n")
    (tmp_path / "state").mkdir()
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'state'}:{tmp_path / 'other'}")
    config = run_make_service(monkeypatch, ["--config", "planet.ini"], tmp_path)
    assert config.snapshot_file == str(tmp_path / "state" / "s.json")


def test_make_service_without_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    (tmp_path / "planet.ini").write_text("[Planet]\nname = x\n")
    config = run_make_service(monkeypatch, ["--config", "planet.ini"], tmp_path)
    assert config.snapshot_file == "./planet-snapshot.json"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--state-dir", "missing"], None, "--state-dir missing: not a directory"),
        ([], "missing", "$STATE_DIRECTORY missing: not a directory"),
    ],
)
def test_make_service_state_dir_must_exist(
    args: list[str],
    env: str | None,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    if env is not None:
        monkeypatch.setenv("STATE_DIRECTORY", env)
    (tmp_path / "planet.ini").write_text("[Planet]\nname = x\n")
    with pytest.raises(SystemExit) as exc:
        run_make_service(monkeypatch, ["--config", "planet.ini", *args], tmp_path)
    assert exc.value.code == 1
    assert capsys.readouterr().err == f"planet: error: {message}\n"


# --- the daemon under a pretend systemd ---------------------------------------------------

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed): fetches are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unreachable_feed() -> str:
    return f"http://127.0.0.1:{closed_port()}/feed.xml"


def snapshot_bytes(feed_url: str, titles: list[str]) -> bytes:
    """A snapshot of ``titles`` as entries of ``feed_url``, written by planet's own encoder."""
    entries = [
        Entry(
            id=f"{feed_url}#{n}",
            feed_url=feed_url,
            title=title,
            link=f"http://127.0.0.1/entry/{n}",
            author="",
            content=f"<p>{title} content</p>",
            published=NOW.replace(hour=n % 24),
            updated=NOW.replace(hour=n % 24),
            first_seen=NOW,
        )
        for n, title in enumerate(titles)
    ]
    states = [FeedState(url=feed_url, title="Snapshot Feed", last_success=NOW)]
    return snapshot_module.encode(entries, states, NOW)


def config_text(feed_url: str, **settings: object) -> str:
    feeds = [(feed_url, "Snapshot Feed")]
    return planet_ini("Planet Systemd", feeds, snapshot_interval=3600, **settings)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No systemd variables leak in from the environment the tests run in."""
    for name in (
        "NOTIFY_SOCKET",
        "STATE_DIRECTORY",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path / "run")
    try:
        yield d
    finally:
        d.cleanup()


NOT_WIRED = (
    " (is SdNotifyService the last child of the MultiService in planet.service.build_service?)"
)


@pytest.mark.slow
def test_ready_only_once_the_snapshot_is_served(
    daemon: Daemon, notify_socket: NotifySocket, clean_env: pytest.MonkeyPatch
) -> None:
    """READY=1 arrives when the port already accepts and GET / already serves the snapshot."""
    feed = unreachable_feed()
    titles = [f"Remembered entry number {n}" for n in range(5)]
    daemon.workdir.mkdir(parents=True)
    (daemon.workdir / "planet-snapshot.json").write_bytes(snapshot_bytes(feed, titles))
    daemon.config_text = config_text(feed)
    clean_env.setenv("NOTIFY_SOCKET", notify_socket.address)
    daemon.start(wait=False)

    ready = notify_socket.wait_for(b"READY=1", deadline=30, what=NOT_WIRED, alive=daemon.running)
    # Everything below happens after READY=1, with no retry and no waiting.
    log = daemon.log
    assert "Loaded snapshot" in log and "5 entries" in log, log
    match = PORT_LINE.search(log)
    assert match, f"READY=1 before the port was bound:\n{log}"
    daemon.port = int(match.group(1))
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5):
        pass
    status, _, body = daemon.get("/")
    assert status == 200
    page = body.decode("utf-8")
    for title in titles:
        assert title in page
    assert ready.split(b"\n")[0] == b"READY=1"
    assert [m for m in notify_socket.received if b"READY=1" in m.split(b"\n")] == [ready]

    code, log = daemon.stop()
    assert code in SIGTERM_EXITS, log
    assert SHUTDOWN_LINE in log
    while notify_socket.recv(0.5) is not None:
        pass
    after = notify_socket.received[notify_socket.received.index(ready) + 1 :]
    assert any(m.split(b"\n")[0] == b"STOPPING=1" for m in after), after


@pytest.mark.slow
def test_state_dir_option_keeps_the_snapshot_there(
    daemon: Daemon, clean_env: pytest.MonkeyPatch
) -> None:
    feed = unreachable_feed()
    daemon.config_text = config_text(feed)
    state = daemon.workdir / "state"
    state.mkdir(parents=True)
    daemon.args = ["--config", "planet.ini", "--listen", daemon.listen, "--state-dir", "state"]
    daemon.start()
    expected = state.resolve() / "planet-snapshot.json"
    # The port is bound (and logged) before the services start: the load's line follows.
    daemon.wait_until(
        lambda: f"No snapshot at {expected}" in daemon.log, what="the snapshot load's line"
    )
    # The refused fetch changes the feed's state, so there is something to write at stop.
    daemon.wait_health(lambda h: h["last_fetch"] is not None, what="the first fetch")
    code, log = daemon.stop()
    assert code in SIGTERM_EXITS, log
    assert expected.exists(), log
    assert f"Snapshot written to {expected}" in log
    assert not (daemon.workdir / "planet-snapshot.json").exists()
    _, states = snapshot_module.decode(expected.read_bytes())
    assert [s.url for s in states] == [feed]


@pytest.mark.slow
def test_state_directory_env_holds_the_snapshot(
    daemon: Daemon, clean_env: pytest.MonkeyPatch
) -> None:
    """As systemd's StateDirectory= runs it: $STATE_DIRECTORY (a list), relative snapshot_file."""
    feed = unreachable_feed()
    state = daemon.workdir / "var-lib-planet"
    state.mkdir(parents=True)
    (state / "river.json").write_bytes(snapshot_bytes(feed, ["Kept in the state directory"]))
    (daemon.workdir / "river.json").write_bytes(snapshot_bytes(feed, ["Not this one"]))
    daemon.config_text = config_text(feed, snapshot_file="river.json")
    clean_env.setenv("STATE_DIRECTORY", f"{state}:{daemon.workdir / 'other'}")
    daemon.start()
    # The load is logged after the port (twistd binds it first).
    loaded = f"Loaded snapshot {state / 'river.json'}: 1 entries"
    daemon.wait_until(lambda: loaded in daemon.log, deadline=10, what="the snapshot load")
    status, _, body = daemon.get("/")
    assert status == 200
    assert b"Kept in the state directory" in body
    assert b"Not this one" not in body
    code, log = daemon.stop()
    assert code in SIGTERM_EXITS, log


@pytest.mark.slow
def test_socket_activation_and_watchdog(
    tmp_path: Path, notify_socket: NotifySocket, clean_env: pytest.MonkeyPatch
) -> None:
    """The socket-activated unit's command line: the port comes from systemd (fd 3)."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    feed = unreachable_feed()
    (workdir / "planet-snapshot.json").write_bytes(snapshot_bytes(feed, ["Via an adopted socket"]))
    (workdir / "planet.ini").write_text(config_text(feed))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    # As systemd does: the socket as fd 3, LISTEN_PID the daemon's own pid (kept across
    # exec), LISTEN_FDS/LISTEN_FDNAMES describing it.
    as_systemd = (
        "import os, sys; fd = int(sys.argv[1]); os.dup2(fd, 3)\n"
        "if fd != 3: os.close(fd)\n"
        "os.environ['LISTEN_PID'] = str(os.getpid()); os.execv(sys.argv[2], sys.argv[2:])"
    )
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        LISTEN_FDS="1",
        LISTEN_FDNAMES="web",
        NOTIFY_SOCKET=notify_socket.address,
        WATCHDOG_USEC="400000",
    )
    log_path = workdir / "twistd.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                as_systemd,
                str(fd),
                str(TWISTD),
                "--nodaemon",
                "--pidfile=",
                "--logfile=-",
                "planet",
                "--config",
                "planet.ini",
                "--listen",
                "systemd:domain=INET:index=0",
            ],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            pass_fds=(fd,),
            start_new_session=True,
        )
    listener.close()  # only the daemon holds it now
    try:
        try:
            notify_socket.wait_for(
                b"READY=1", deadline=30, what=NOT_WIRED, alive=lambda: proc.poll() is None
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log_path.read_text()}") from None
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert b"Via an adopted socket" in response.read()
        # WATCHDOG_USEC=0.4 s: a ping at start, then every 0.2 s.
        notify_socket.wait_for(b"WATCHDOG=1", deadline=5)
        notify_socket.wait_for(b"WATCHDOG=1", deadline=5)
        proc.send_signal(signal.SIGTERM)
        notify_socket.wait_for(b"STOPPING=1", deadline=20)
        assert proc.wait(20) in SIGTERM_EXITS
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    log = log_path.read_text()
    assert SHUTDOWN_LINE in log, log
    assert "Loaded snapshot" in log


# --- the unit files -----------------------------------------------------------------------


def unit_settings(path: Path) -> list[tuple[str, str, str]]:
    """``(section, key, value)`` for every assignment in a unit file, in order."""
    settings = []
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.append((section, key.strip(), value.strip()))
    return settings


def setting(path: Path, section: str, key: str) -> list[str]:
    return [v for s, k, v in unit_settings(path) if (s, k) == (section, key)]


def test_service_unit_settings() -> None:
    unit = ETC / "planet.service"
    expected = {
        ("Service", "Type"): "notify",
        ("Service", "ExecReload"): "/bin/kill -HUP $MAINPID",
        ("Service", "Restart"): "on-failure",
        ("Service", "DynamicUser"): "yes",
        ("Service", "StateDirectory"): "planet",
        ("Service", "ConfigurationDirectory"): "planet",
        ("Service", "Environment"): "PYTHONUNBUFFERED=1",
        ("Service", "UMask"): "0077",
        ("Service", "ProtectSystem"): "strict",
        ("Service", "NoNewPrivileges"): "yes",
        ("Service", "RestrictAddressFamilies"): "AF_INET AF_INET6 AF_UNIX",
        ("Service", "SystemCallFilter"): "@system-service",
        ("Service", "CapabilityBoundingSet"): "",
        ("Service", "MemoryMax"): "512M",
        # Issue 19: 1,100 idle clients starved new connections at the default 1024.
        ("Service", "LimitNOFILE"): "65536",
        ("Service", "TimeoutStopSec"): "30",
        ("Install", "WantedBy"): "multi-user.target",
    }
    for (section, key), value in expected.items():
        assert setting(unit, section, key) == [value], (section, key)
    assert setting(unit, "Service", "MemoryDenyWriteExecute") == []
    # The config is checked as the daemon reads it, before the daemon starts.
    assert setting(unit, "Service", "ExecStartPre") == [
        f"{INSTALLED_PLANET} check /etc/planet/planet.ini"
    ]
    assert setting(unit, "Service", "ExecStart") == [
        f"{INSTALLED_TWISTD} --nodaemon --pidfile= --logfile=- planet "
        "--config /etc/planet/planet.ini --listen tcp:8080:interface=127.0.0.1"
    ]
    socket_unit = ETC / "planet.socket"
    assert setting(socket_unit, "Socket", "ListenStream") == ["127.0.0.1:8080"]
    assert setting(socket_unit, "Socket", "FileDescriptorName") == ["web"]
    assert setting(socket_unit, "Install", "WantedBy") == ["sockets.target"]


def test_socket_drop_in_only_changes_listen() -> None:
    """The drop-in's ExecStart is the unit's, but for --listen: they cannot drift apart."""
    drop_in = ETC / "planet-socket-activation.conf"
    assert setting(drop_in, "Unit", "Requires") == ["planet.socket"]
    assert setting(drop_in, "Unit", "After") == ["planet.socket"]
    reset, command = setting(drop_in, "Service", "ExecStart")
    assert reset == ""
    (original,) = setting(ETC / "planet.service", "Service", "ExecStart")
    assert command == original.replace(
        "--listen tcp:8080:interface=127.0.0.1", "--listen systemd:domain=INET:index=0"
    )
    assert command != original


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        reason = "systemd-analyze not installed (apt-get install systemd)"
        if os.environ.get("CI_REQUIRE_SYSTEMD") == "1":
            pytest.fail(f"CI_REQUIRE_SYSTEMD=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def installable_copy(directory: Path, *names: str) -> list[Path]:
    """The unit files with ExecStart's /opt/planet venv replaced by this test's twistd.

    ``systemd-analyze verify`` checks that every ExecStart= command is executable; nothing
    else in the units is changed.
    """
    copies = []
    for name in names:
        text = (ETC / name).read_text()
        assert INSTALLED_TWISTD in text or not name.endswith(".service")
        copy = directory / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        planet = TWISTD.parent / "planet"
        copy.write_text(
            text.replace(INSTALLED_TWISTD, str(TWISTD)).replace(INSTALLED_PLANET, str(planet))
        )
        copies.append(copy)
    return copies


def verify(units: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [systemd_analyze(), "verify", *map(str, units)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def planet_lines(output: str, directory: Path) -> list[str]:
    """The lines of verify's output about our units (it may also talk about the host)."""
    return [line for line in output.splitlines() if "planet" in line or str(directory) in line]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    assert TWISTD.exists()
    service, sock = installable_copy(tmp_path, "planet.service", "planet.socket")
    result = verify([service, sock], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert planet_lines(output, tmp_path) == [], output


def test_systemd_analyze_verify_socket_activated(tmp_path: Path) -> None:
    """planet.service with the drop-in applied, as systemd reads planet.service.d/."""
    service, sock = installable_copy(tmp_path, "planet.service", "planet.socket")
    (drop_in,) = installable_copy(tmp_path, "planet-socket-activation.conf")
    target = tmp_path / "planet.service.d" / "socket-activation.conf"
    target.parent.mkdir()
    drop_in.rename(target)
    result = verify([service, sock], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert planet_lines(output, tmp_path) == [], output
    # The drop-in was read (a mistake in it shows up), so the check above covered it.
    target.write_text(target.read_text().replace("Requires=", "Requirez="))
    broken = verify([service, sock], tmp_path)
    assert "Requirez" in broken.stdout + broken.stderr


def test_unit_files_match_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running it as a systemd service", 1)[1].split("\n## ", 1)[0]
    for needle in (
        "etc/planet.service",
        "etc/planet.socket",
        "etc/planet-socket-activation.conf",
        "/opt/planet/venv",
        "/etc/planet/planet.ini",
        "systemctl daemon-reload",
        "systemctl enable --now planet",
        "journalctl -u planet",
        "systemctl reload planet",
        "systemd:domain=INET:index=0",
    ):
        assert needle in section, needle
    assert re.search(r"\n## Running it as a systemd service\n(.|\n)*\n## Polite fetching\n", readme)


def test_make_service_reads_the_config_with_the_collector_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No collections while a (10,000-feed) config is parsed; the collector's state is
    restored after, also when the config is refused."""
    import gc

    import planet.tap

    seen: list[bool] = []
    real = planet.tap.load_config

    def load_config(path: str) -> Any:
        seen.append(gc.isenabled())
        return real(path)

    monkeypatch.setattr(planet.tap, "load_config", load_config)
    (tmp_path / "planet.ini").write_text("[Planet]\nname = x\n")
    (tmp_path / "bad.ini").write_text("[Planet]\nfetch_interval = soon\n")
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            gc.enable() if enabled else gc.disable()
            run_make_service(monkeypatch, ["--config", "planet.ini"], tmp_path)
            assert gc.isenabled() is enabled
            with pytest.raises(SystemExit):
                run_make_service(monkeypatch, ["--config", "bad.ini"], tmp_path)
            assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()
    assert seen == [False, False, False, False]
