"""Process-level helpers for the end-to-end tests.

* :class:`FeedServer`: a loopback HTTP server (stdlib, one thread per request) serving
  feeds from a dict that tests may change between fetch cycles. It records every request
  and answers conditional GETs with 304 when the validators match.
* :class:`Daemon`: ``twistd -n planet`` run as a real process on a config written to a
  temporary directory, with its port read from the log, small HTTP helpers and
  wait-until helpers that always have a deadline.

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Union

from attrs import define, field, frozen

TWISTD = Path(sys.executable).parent / "twistd"
LOOPBACK_LISTEN = "tcp:0:interface=127.0.0.1"
PORT_LINE = re.compile(r"Site starting on (\d+)")
SHUTDOWN_LINE = "Server Shut Down."
#: Lines twistd itself logs while starting; everything else on the console is the daemon's.
STARTUP_NOISE = re.compile(
    r"^\S+ \[twisted\.scripts\._twistd_unix\.UnixAppLogger#info\] "
    r"(twistd \S+ \(.*\) starting up\.|reactor class: .*)$"
)


# --- the feed server -------------------------------------------------------------------


@frozen
class Response:
    """What the server sends for one request. ``body`` may be bytes or an iterable of chunks."""

    status: int = 200
    headers: Mapping[str, str] = field(factory=dict)
    body: bytes | Iterable[bytes] = b""
    #: Seconds to wait before answering (cut short when the server stops).
    delay: float = 0.0


@frozen
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    headers: Mapping[str, str]
    at: float

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


Handler = Callable[[Request], Response]
Route = Union[Response, Handler, tuple]


def _as_response(route: Route, request: Request) -> Response:
    if isinstance(route, Response):
        return route
    if isinstance(route, tuple):
        return Response(*route)
    return route(request)


def not_modified(request: Request, response: Response) -> bool:
    """Whether ``request``'s validators match ``response``'s (RFC 9110 13.1.1/13.1.3)."""
    headers = {k.lower(): v for k, v in response.headers.items()}
    inm = request.header("If-None-Match")
    if inm is not None:
        etag = headers.get("etag")
        return etag is not None and etag in [t.strip() for t in inm.split(",")]
    ims = request.header("If-Modified-Since")
    return ims is not None and ims == headers.get("last-modified")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (the daemon's size cap or timeout) is expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FeedServer:
    """A loopback HTTP server for feeds.

    ``routes`` maps a path (query included) to a :class:`Response`, a
    ``(status, headers, body)`` tuple, or a callable taking the :class:`Request` and
    returning a :class:`Response`. Static routes with an ``ETag`` or ``Last-Modified``
    answer a matching conditional GET with 304; callables decide for themselves.
    """

    def __init__(self, routes: Mapping[str, Route] | None = None) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server._handle(self)

            def do_HEAD(self) -> None:
                server._handle(self, head=True)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def pause(self, seconds: float) -> bool:
        """Sleep in a handler; cut short (returning True) when the server stops."""
        return self._stopping.wait(seconds)

    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _handle(self, handler: BaseHTTPRequestHandler, head: bool = False) -> None:
        request = Request(
            method=handler.command,
            path=handler.path,
            headers=dict(handler.headers.items()),
            at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(request)
            route = self.routes.get(handler.path)
        if route is None:
            response = Response(404, {"Content-Type": "text/plain"}, b"no such feed\n")
        else:
            response = _as_response(route, request)
            if not callable(route) and not_modified(request, response):
                response = Response(304, dict(response.headers), b"")
        if response.delay and self._stopping.wait(response.delay):
            return
        try:
            self._send(handler, response, head)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            # The client gave up (a size cap, a timeout): nothing more to send.
            handler.close_connection = True

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, response: Response, head: bool) -> None:
        handler.send_response(response.status)
        names = {k.lower() for k in response.headers}
        for name, value in response.headers.items():
            handler.send_header(name, value)
        body = response.body
        chunks: Iterable[bytes] = [body] if isinstance(body, bytes) else body
        if isinstance(body, bytes) and "content-length" not in names:
            if response.status not in (204, 304):
                handler.send_header("Content-Length", str(len(body)))
        elif not isinstance(body, bytes) and "content-length" not in names:
            # A streamed body without a length ends when the connection closes.
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        if head or response.status in (204, 304):
            return
        for chunk in chunks:
            handler.wfile.write(chunk)
            handler.wfile.flush()

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> FeedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stream(total: int, chunk: int = 256 * 1024) -> Iterable[bytes]:
    """``total`` bytes of feed-ish filler in ``chunk``-sized pieces, generated on the fly."""
    block = (b"<!-- " + b"x" * (chunk - 9) + b" -->")[:chunk]
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


# --- the daemon ----------------------------------------------------------------------


class DaemonError(AssertionError):
    """The daemon did not do what a test waited for; the message carries its log."""


@define
class Daemon:
    """``twistd -n planet`` on a config file in ``workdir`` (also its working directory)."""

    workdir: Path
    config_text: str | None = None
    config_name: str = "planet.ini"
    listen: str = LOOPBACK_LISTEN
    args: list[str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    port: int | None = None
    started_at: float = 0.0
    port_seen_at: float = 0.0
    leftovers: list[int] = field(factory=list)
    _log_path: Path | None = None
    _log_file: Any = None
    _runs: int = 0

    @property
    def config_path(self) -> Path:
        return self.workdir / self.config_name

    def command(self) -> list[str]:
        if self.args is not None:
            args = self.args
        else:
            args = ["--config", self.config_name, "--listen", self.listen]
        return [str(TWISTD), "-n", "--pidfile=", "planet", *args]

    def start(self, wait: bool = True, deadline: float = 20.0) -> Daemon:
        """Spawn the daemon; with ``wait``, return once its port is known."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.config_text is not None:
            self.config_path.write_text(self.config_text, encoding="utf-8")
        self._runs += 1
        self._log_path = self.workdir / f"twistd-{self._runs}.log"
        self._log_file = open(self._log_path, "wb")  # noqa: SIM115 - closed in _reap
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.port = None
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            # Its own process group, so that cleanup can reach the parser workers too.
            start_new_session=True,
        )
        if wait:
            self.wait_port(deadline)
        return self

    @property
    def log(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text("utf-8", errors="replace")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_port(self, deadline: float = 20.0, poll: float = 0.01) -> int:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            match = PORT_LINE.search(self.log)
            if match:
                self.port = int(match.group(1))
                self.port_seen_at = time.monotonic()
                return self.port
            if not self.running():
                raise DaemonError(f"daemon exited ({self.proc.returncode}) early:\n{self.log}")
            time.sleep(poll)
        raise DaemonError(f"no 'Site starting on' line within {deadline} s:\n{self.log}")

    # -- HTTP ---------------------------------------------------------------------------

    def url(self, path: str) -> str:
        assert self.port is not None, "daemon not started"
        return f"http://127.0.0.1:{self.port}{path}"

    def get(
        self, path: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> tuple[int, dict[str, str], bytes]:
        """GET ``path``; returns ``(status, headers, body)`` for any status."""
        request = urllib.request.Request(self.url(path), headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, dict(err.headers.items()), err.read()

    def health(self) -> dict[str, Any]:
        status, _, body = self.get("/health")
        if status != 200:
            raise DaemonError(f"/health answered {status}: {body[:500]!r}")
        return json.loads(body)

    def wait_until(
        self,
        predicate: Callable[[], Any],
        deadline: float = 20.0,
        poll: float = 0.05,
        what: str = "condition",
    ) -> Any:
        """Call ``predicate`` until it returns something true; that value is returned."""
        end = time.monotonic() + deadline
        last: Any = None
        while True:
            if not self.running():
                raise DaemonError(f"daemon exited while waiting for {what}:\n{self.log}")
            try:
                last = predicate()
            except (OSError, ValueError) as exc:  # not listening yet, a reset, bad JSON
                last = exc
            else:
                if last:
                    return last
            if time.monotonic() >= end:
                raise DaemonError(
                    f"{what} not reached within {deadline} s (last: {last!r}):\n{self.log[-6000:]}"
                )
            time.sleep(poll)

    def wait_health(
        self, predicate: Callable[[dict[str, Any]], bool], deadline: float = 20.0, what: str = ""
    ) -> dict[str, Any]:
        """Poll ``/health`` until ``predicate(doc)`` holds; returns that document."""

        def check() -> dict[str, Any] | None:
            doc = self.health()
            return doc if predicate(doc) else None

        return self.wait_until(check, deadline, what=what or "health condition")

    # -- stopping -----------------------------------------------------------------------

    def group_members(self) -> list[int]:
        """PIDs still in the daemon's process group (its parser workers, say). Linux only."""
        if self.proc is None:
            return []
        members = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ")".
            fields = stat.rpartition(")")[2].split()
            if len(fields) > 2 and int(fields[2]) == self.proc.pid and fields[0] != "Z":
                members.append(int(entry.name))
        return members

    def stop(self, timeout: float = 20.0, grace: float = 5.0) -> tuple[int, str]:
        """SIGTERM, wait; returns ``(returncode, log)``.

        Processes of the daemon's group still alive ``grace`` seconds after it exited are
        listed in :attr:`leftovers` (then killed).
        """
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._reap()
                raise DaemonError(f"no exit within {timeout} s of SIGTERM:\n{self.log}") from None
        end = time.monotonic() + grace
        while self.group_members() and time.monotonic() < end:
            time.sleep(0.05)
        self.leftovers = self.group_members()
        self._reap()
        return self.proc.returncode, self.log

    def kill(self) -> int:
        """SIGKILL the daemon (only the twistd process, as ``kill -9 PID`` would)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reap()
        return self.proc.returncode

    def _reap(self) -> None:
        """Kill whatever is left in the daemon's own process group (parser workers)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cleanup(self) -> None:
        """Make sure nothing of ours is left running; safe to call any time."""
        if self.proc is not None:
            self._reap()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def run_once(args: list[str], cwd: Path, timeout: float = 20.0) -> tuple[int, str, float]:
    """Run ``twistd -n --pidfile= planet ARGS`` to completion: ``(returncode, output, secs)``."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(TWISTD), "-n", "--pidfile=", "planet", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise DaemonError(
            f"twistd {args} still running after {timeout} s:\n{out.decode(errors='replace')}"
        ) from None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return proc.returncode, out.decode("utf-8", errors="replace"), time.monotonic() - started


def meaningful_lines(output: str) -> list[str]:
    """The non-empty output lines that are not twistd's own start-up chatter."""
    return [line for line in output.splitlines() if line.strip() and not STARTUP_NOISE.match(line)]


#: Seconds between two SIGUSR1 of a :class:`Kicker`.
KICK_EVERY = 0.5
_SIGUSR1_BIT = 1 << (signal.SIGUSR1 - 1)


def catches_sigusr1(pid: int) -> bool:
    """Whether ``pid`` has a handler for SIGUSR1 (whose default action would kill it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((line for line in status.splitlines() if line.startswith("SigCgt:")), "")
    return bool(caught) and bool(int(caught.split()[1], 16) & _SIGUSR1_BIT)


class Kicker:
    """Sends SIGUSR1 ("fetch every feed now") to whatever process ``daemon`` runs, every
    ``every`` seconds, once it has installed its handler (it does once the snapshot is loaded
    and the port listens): fetch cycles back to back, as ``fetch_interval`` (60 s at least)
    would not give them. Stop it before a SIGTERM: a stopping daemon restores the default
    action, which would end the process."""

    def __init__(self, daemon: Daemon, every: float = KICK_EVERY) -> None:
        self.daemon = daemon
        self.every = every
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            proc = self.daemon.proc
            if proc is None or proc.poll() is not None or not catches_sigusr1(proc.pid):
                continue
            try:
                os.kill(proc.pid, signal.SIGUSR1)
            except ProcessLookupError:
                continue
            self.sent += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def read_snapshot(path: Path) -> dict[str, Any] | None:
    """The snapshot document at ``path`` (None when there is none); a partial file raises."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    doc = json.loads(data)
    assert doc["schema"] == 1
    return doc
