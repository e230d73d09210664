"""Hostile clients against a real ``twistd planet`` (issue 19, items 9 and 13).

Each test starts the daemon as an operator would and talks to it over loopback only: the
access log is off unless asked for, a non-UTF-8 path is a 4xx with no traceback, bad
``--listen`` values are one error line, over-long requests get 414/431, and with the
unit file's ``LimitNOFILE`` 1,100 idle clients do not starve a new one.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from feeds import Item, at, atom
from process import TWISTD, Daemon, FeedServer, meaningful_lines, run_once

from planet.testing import planet_ini

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FEED = atom(
    "Hostile Web",
    "http://site.example/",
    [Item("A post", "http://site.example/1", at(2026, 6, 23, 20, 6))],
)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer({"/feed": (200, {"Content-Type": "application/atom+xml"}, FEED)})
    try:
        yield srv
    finally:
        srv.stop()


def config(server: FeedServer, **settings: object) -> str:
    return planet_ini("Hostile Web", [server.url("/feed")], fetch_interval=3600, **settings)


def start(daemons: list[Daemon], tmp_path: Path, text: str, name: str = "d") -> Daemon:
    daemon = Daemon(tmp_path / name, text)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(lambda doc: doc["entries"] == 1, what="the feed fetched")
    return daemon


REQUESTS = ("/", "/health", "/atom.xml", "/feeds/hostile-web", "/no-such-page")


def test_no_access_log_by_default(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
) -> None:
    daemon = start(daemons, tmp_path, config(server))
    for path in REQUESTS * 3:
        daemon.get(path)
    # A line logged after the requests (a fetch cycle's, through SIGUSR1) shows that their
    # lines, had there been any, would be in the log by now.
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGUSR1)
    daemon.wait_until(lambda: "cycle 2 done" in daemon.log, what="second cycle")
    _, log = daemon.stop()
    assert "HTTP/1.1" not in log, log
    for path in REQUESTS:
        assert f"GET {path} " not in log, log


def test_access_log_when_asked(server: FeedServer, daemons: list[Daemon], tmp_path: Path) -> None:
    daemon = start(daemons, tmp_path, config(server, access_log="yes"))
    for path in REQUESTS:
        daemon.get(path, headers={"User-Agent": "hostile-probe"})
    daemon.wait_until(
        lambda: daemon.log.count('"hostile-probe"') == len(REQUESTS), what="access lines"
    )
    lines = [line for line in daemon.log.splitlines() if '"hostile-probe"' in line]
    assert [line.split('"GET ', 1)[1].split(" ", 1)[0] for line in lines] == list(REQUESTS)
    # One line per request, through twisted.logger in planet's namespace.
    assert all("[planet.web#info]" in line for line in lines), lines
    assert '"GET /no-such-page HTTP/1.1" 404 ' in lines[-1]


def test_non_utf8_path_is_a_4xx_without_a_traceback(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
) -> None:
    daemon = start(daemons, tmp_path, config(server))
    for path in ("/feeds/%ff", "/%ff%fe", "/feeds/%c3%28"):
        status, headers, body = daemon.get(path)
        assert status == 400, (path, status, body)
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert body == b"400 Bad Request: the URL is not UTF-8.\n"
    assert daemon.get("/health")[0] == 200
    _, log = daemon.stop()
    assert "Traceback" not in log, log
    assert "Invalid encoding" not in log and "UnicodeDecodeError" not in log, log


@pytest.mark.parametrize(
    ("listen", "reason"),
    [
        ("tcp:99999", "port must be 0-65535"),
        ("unix:/missing/dir/web.sock", "No such file or directory: /missing/dir/web.sock.lock"),
    ],
)
def test_bad_listen_is_one_error_line(tmp_path: Path, listen: str, reason: str) -> None:
    (tmp_path / "planet.ini").write_text("[Planet]\nname = Bad Listen\n")
    code, output, took = run_once(["--config", "planet.ini", "--listen", listen], tmp_path)
    assert code != 0, output
    assert took < 15
    assert "Traceback" not in output, output
    errors = [line for line in meaningful_lines(output) if "planet: error:" in line]
    assert len(errors) == 1, output
    assert f"planet: error: --listen {listen}: cannot listen: " in errors[0], output
    assert reason in errors[0], output
    # Nothing else but Twisted's own "Site starting on" (a unix port says it before its lock).
    others = [line for line in meaningful_lines(output) if line not in errors]
    assert all("Site starting on" in line for line in others), output


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection; everything the daemon answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # it hung up on what it did not read; what it sent first is kept
    return received


def test_overlong_request_line_and_headers(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
) -> None:
    daemon = start(daemons, tmp_path, config(server))
    assert daemon.port is not None
    long_line = b"GET /?q=" + b"a" * 17_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = raw_request(daemon.port, long_line)
    assert answer.startswith(b"HTTP/1.1 414 URI Too Long\r\n"), answer[:200]
    assert b"content-type: text/plain; charset=utf-8" in answer
    big_headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 1000) for i in range(20))
    answer = raw_request(daemon.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + big_headers + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer[:200]
    many = b"".join(b"X-%d: v\r\n" % i for i in range(600))
    answer = raw_request(daemon.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer[:200]
    assert daemon.get("/health")[0] == 200
    _, log = daemon.stop()
    assert "Traceback" not in log, log


def test_request_bodies_over_max_feed_bytes_are_refused_as_they_come(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
) -> None:
    """Twisted spooled any request body to a temporary file before a resource saw it: a
    10 GB POST filled the disk. Now 413 once announced or read past ``max_feed_bytes``."""
    daemon = start(daemons, tmp_path, config(server, max_feed_bytes="1M"))
    assert daemon.port is not None
    announced = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n\r\n"
    started = time.monotonic()
    answer = raw_request(daemon.port, announced + b"x" * 65536)
    assert answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n"), answer[:200]
    assert time.monotonic() - started < 5
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    chunked = b"POST /websub/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = raw_request(daemon.port, chunked + chunk * 20)  # 1.25 MiB
    assert answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n"), answer[:200]
    assert daemon.get("/health")[0] == 200
    _, log = daemon.stop()
    assert "Traceback" not in log, log


# --- LimitNOFILE: 1,100 idle clients -------------------------------------------------------


def unit_nofile() -> int:
    """``LimitNOFILE=`` of etc/planet.service."""
    for line in (ROOT / "etc" / "planet.service").read_text().splitlines():
        if line.startswith("LimitNOFILE="):
            return int(line.partition("=")[2])
    raise AssertionError("etc/planet.service sets no LimitNOFILE")


class LimitedDaemon(Daemon):
    """The daemon with RLIMIT_NOFILE set as systemd would set it from the unit."""

    nofile: int = 1024

    def command(self) -> list[str]:
        setlimit = (
            "import os, resource, sys; n = int(sys.argv[1]); "
            "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
            "os.execv(sys.argv[2], sys.argv[2:])"
        )
        return [
            sys.executable,
            "-c",
            setlimit,
            str(self.nofile),
            str(TWISTD),
            *super().command()[1:],
        ]


IDLE_CLIENTS = 1_100


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_idle(daemon: Daemon, count: int, batch: int = 25) -> list[socket.socket]:
    """Up to ``count`` connections to ``daemon`` that send nothing.

    A batch at a time, each waited for until the daemon has accepted it (its open files
    grew), so its accept queue (50) never overflows into SYN retries; once the daemon
    accepts no more (it is at its limit on open files) no more are opened.
    """
    assert daemon.proc is not None and daemon.port is not None
    socks: list[socket.socket] = []
    while len(socks) < count:
        before = open_fds(daemon.proc.pid)
        size = min(batch, count - len(socks))
        for _ in range(size):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            result = sock.connect_ex(("127.0.0.1", daemon.port))
            assert result in (0, errno.EINPROGRESS), errno.errorcode.get(result)
            socks.append(sock)
        deadline = time.monotonic() + 2.0
        while open_fds(daemon.proc.pid) < before + size and time.monotonic() < deadline:
            time.sleep(0.01)
        # (Its own descriptors come and go too: a fetch's connection, a parser's pipes.)
        if open_fds(daemon.proc.pid) - before < size // 2:
            break  # full: it accepts no more
    return socks


def health_within(daemon: Daemon, seconds: float) -> bool:
    try:
        status, _, _ = daemon.get("/health", timeout=seconds)
    except OSError:
        return False
    return status == 200


def test_idle_clients_do_not_starve_new_ones(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * IDLE_CLIENTS + 200
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"the hard limit on open files ({hard}) is below {want}")
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    try:
        limit = unit_nofile()
        assert limit >= 8 * IDLE_CLIENTS
        capped = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        outcomes, connected = {}, {}
        for name, nofile in (("systemd default", 1024), ("unit", capped)):
            daemon = LimitedDaemon(tmp_path / name.replace(" ", "-"), config(server))
            daemon.nofile = nofile
            daemons.append(daemon)
            daemon.start()
            daemon.wait_health(lambda doc: doc["entries"] == 1, what="the feed fetched")
            assert daemon.proc is not None
            idle = open_idle(daemon, IDLE_CLIENTS)
            try:
                connected[name] = open_fds(daemon.proc.pid)
                outcomes[name] = health_within(daemon, 4.0)
            finally:
                for sock in idle:
                    sock.close()
            daemon.cleanup()
        # Without the unit's limit the new reader waits (accept() fails with EMFILE);
        # with it, it is served at once.
        assert outcomes == {"systemd default": False, "unit": True}, (outcomes, connected)
        assert connected["systemd default"] > 1000  # at its limit
        assert connected["unit"] > IDLE_CLIENTS
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
